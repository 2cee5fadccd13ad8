"""Generated blocks inside hand-written markdown: `<!-- NAME:start -->` ... `<!-- NAME:end -->`."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
# the long reading of the label-efficiency benchmarks (the cold-start tables live there)
LABEL_EFFICIENCY_DOC = README.parent / "docs" / "label-efficiency.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def _block(name: str) -> re.Pattern:
    start, end = markers(name)
    return re.compile(re.escape(start) + r"\n(.*?)\n?" + re.escape(end), re.DOTALL)


def read_block(path: Path, name: str) -> str | None:
    """The text between the markers, or None when the file or the markers are missing."""
    match = _block(name).search(path.read_text()) if path.exists() else None
    return match.group(1) if match else None


def replace_block(path: Path, name: str, text: str) -> bool:
    """Put `text` between the markers; the prose around them stays as written. False if no markers."""
    if not path.exists():
        return False
    old = path.read_text()
    start, end = markers(name)
    new, count = _block(name).subn(lambda _: f"{start}\n{text}\n{end}", old)
    if count:
        path.write_text(new)
    return bool(count)
