"""Bytes of a text file -> str: UTF-8 (with or without BOM), else the encoding charset-normalizer detects."""

from __future__ import annotations

from charset_normalizer import from_bytes

from .errors import TextError


def decode_text(data: bytes) -> str:
    """The text in `data`; raises TextError for binary data or bytes no encoding reads."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        best = from_bytes(data).best()
        if best is None:
            raise TextError("not a text file: no text encoding reads it") from None
        text = str(best)
    if "\x00" in text:
        raise TextError("not a text file: it holds binary data (NUL bytes)")
    return text
