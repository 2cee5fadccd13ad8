"""Generated blocks inside hand-written markdown: `<!-- NAME:start -->` ... `<!-- NAME:end -->`."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def read_block(path: Path, name: str) -> str | None:
    """The text between the markers, or None when the file or the markers are missing."""
    if not path.exists():
        return None
    start, end = markers(name)
    match = re.search(re.escape(start) + r"\n(.*?)\n?" + re.escape(end), path.read_text(), re.S)
    return match.group(1) if match else None


def replace_block(path: Path, name: str, text: str) -> bool:
    """Put `text` between the markers; the prose around them stays as written. False if no markers."""
    if read_block(path, name) is None:
        return False
    start, end = markers(name)
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    path.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", path.read_text()))
    return True
