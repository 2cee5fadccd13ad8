"""Bytes of a text file -> str: UTF-8 (with or without BOM; a stray invalid byte shown as U+FFFD), UTF-16
or UTF-32 with a BOM, UTF-16 without one when its NUL bytes say so, else the encoding charset-normalizer
detects."""

from __future__ import annotations

import codecs
import unicodedata

from charset_normalizer import from_bytes

from .errors import TextError

# Unicode categories that show nothing: controls, format characters, separators (spaces, line and paragraph).
INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def is_blank(text: str) -> bool:
    """True when `text` shows nothing: only whitespace, control and format characters (NUL, zero-width
    spaces, a BOM, soft hyphens). A tokenizer drops them all, so it would embed as the empty string."""
    return all(unicodedata.category(ch) in INVISIBLE for ch in text)


def decode_text(data: bytes) -> str:
    """The text in `data`; raises TextError for binary data or bytes no encoding reads."""
    for bom, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(bom):
            text = _mostly_valid(data[len(bom):], encoding)
            if text is None:
                raise TextError(f"not a text file: it starts with a {encoding.upper()} byte order mark but is not "
                                f"{encoding.upper()}")
            return _no_nul(text)
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


# UTF-32's marks first: UTF-32-LE's starts with UTF-16-LE's. UTF-8's is read with the UTF-8 path below.
_BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
                     (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def _mostly_valid(data: bytes, encoding: str) -> str | None:
    """`data` in `encoding`, a stray invalid unit (a byte cut off at the end, say) shown as U+FFFD as a
    browser shows it; None when more than 1% of it is invalid."""
    text = data.decode(encoding, errors="replace")
    return text if text.count("\ufffd") <= 1 + len(text) // 100 else None


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise TextError("not a text file: it holds binary data (NUL bytes)")
    return text


def _bomless_utf16(data: bytes) -> str | None:
    """UTF-16 without a byte order mark, else None. Its NUL bytes say which: every ASCII character has one,
    at odd offsets (little-endian) or even ones (big-endian), never both, as binary data has. A few NULs
    can suffice (a Cyrillic text has them only in its spaces), so the text must decode cleanly and read as
    text (printable characters and whitespace)."""
    stray = "\ufffd" if len(data) % 2 else ""  # a byte cut off at the end, shown as a browser shows it
    data = data[: len(data) - len(stray)]
    if len(data) < 2:
        return None
    even, odd = data[0::2].count(0), data[1::2].count(0)
    if (even == 0) == (odd == 0):  # both sides (binary) or neither (no sign of UTF-16)
        return None
    # Latin-script UTF-16 has a NUL in (nearly) every unit; with fewer, bytes that read as UTF-8 text
    # are a text with stray NULs, not UTF-16.
    if max(even, odd) < 0.9 * (len(data) // 2) and _readable(data.decode("utf-8", errors="replace").replace("\x00", "")):
        return None
    try:
        text = data.decode("utf-16-le" if odd else "utf-16-be")
    except UnicodeDecodeError:
        return None
    return text + stray if "\x00" not in text and _readable(text) else None


def _readable(text: str) -> bool:
    """At least 95% printable characters and whitespace."""
    return sum(1 for ch in text if ch.isprintable() or ch in "\t\n\r\f") >= 0.95 * len(text)


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a stray byte or two (each shown as U+FFFD, as a browser shows it), when most of the
    file's non-ASCII characters are valid UTF-8; else None. Charset detection read such a file as
    CP932 mojibake from start to end."""
    text = data.decode("utf-8-sig", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 127) - bad
    return text if good > bad else None
