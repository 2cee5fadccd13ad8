"""Bytes of a text file -> str: UTF-8 (with or without BOM; a stray invalid byte shown as U+FFFD), else the
encoding charset-normalizer detects."""

from __future__ import annotations

from charset_normalizer import from_bytes

from .errors import TextError


def decode_text(data: bytes) -> str:
    """The text in `data`; raises TextError for binary data or bytes no encoding reads."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = _mostly_utf8(data)
        if text is None:
            best = from_bytes(data).best()
            if best is None:
                raise TextError("not a text file: no text encoding reads it") from None
            text = str(best)
    if "\x00" in text:
        raise TextError("not a text file: it holds binary data (NUL bytes)")
    return text


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a stray byte or two (each shown as U+FFFD, as a browser shows it), when most of the
    file's non-ASCII characters are valid UTF-8; else None. Charset detection read such a file as
    CP932 mojibake from start to end."""
    text = data.decode("utf-8-sig", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 127) - bad
    return text if good > bad else None
