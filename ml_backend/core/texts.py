"""Bytes of a text file -> str: UTF-8 (with or without BOM; a stray invalid byte shown as U+FFFD), UTF-16
(with a BOM, or without one when its NUL bytes say so), else the encoding charset-normalizer detects."""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

from .errors import TextError


def decode_text(data: bytes) -> str:
    """The text in `data`; raises TextError for binary data or bytes no encoding reads."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return _no_nul(data.decode("utf-16"))
        except UnicodeDecodeError:
            raise TextError("not a text file: it starts with a UTF-16 byte order mark but is not UTF-16") from None
    text = _bomless_utf16(data)
    if text is not None:
        return text
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = _mostly_utf8(data)
        if text is None:
            best = from_bytes(data).best()
            if best is None:
                raise TextError("not a text file: no text encoding reads it") from None
            text = str(best)
    return _no_nul(text)


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise TextError("not a text file: it holds binary data (NUL bytes)")
    return text


def _bomless_utf16(data: bytes) -> str | None:
    """UTF-16 without a byte order mark, else None. Text in a Latin script stored so has a NUL in every
    other byte: at odd offsets (little-endian) or even ones (big-endian), never both, as binary data has."""
    if len(data) < 2 or len(data) % 2:
        return None
    even, odd = data[0::2].count(0), data[1::2].count(0)
    if (even == 0) == (odd == 0) or max(even, odd) < len(data) // 4:  # both or neither; or too few to say
        return None
    try:
        text = data.decode("utf-16-le" if odd else "utf-16-be")
    except UnicodeDecodeError:
        return None
    return text if "\x00" not in text else None


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a stray byte or two (each shown as U+FFFD, as a browser shows it), when most of the
    file's non-ASCII characters are valid UTF-8; else None. Charset detection read such a file as
    CP932 mojibake from start to end."""
    text = data.decode("utf-8-sig", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 127) - bad
    return text if good > bad else None
