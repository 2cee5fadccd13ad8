"""MODEL_DIR: checked before the server forks, held by one process, watched while it runs.

Everything the backend knows lives there (the ledger, Chroma's vectors, the audit log, the
instance id). A damaged or foreign file, a full disk or a second process on the same folder
must give one clear sentence, not a traceback from the forked worker or two processes that
silently disagree.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from pathlib import Path
from typing import IO

# Less free space than this at start, or while running, and SQLite's next write may fail.
MIN_FREE_BYTES = 10 * 2**20
LOCK_FILE = ".backend.lock"


def startup_problems(model_dir: Path) -> list[str]:
    """What in MODEL_DIR stops a start, one sentence each (before the server forks)."""
    model_dir = Path(model_dir)
    problems = []
    free = shutil.disk_usage(model_dir).free
    if free < MIN_FREE_BYTES:
        problems.append(f"MODEL_DIR={model_dir} has {free // 1024} KB free; the backend needs at least "
                        f"{MIN_FREE_BYTES // 2**20} MB to record tasks and vectors")
    for name, kind in (("ledger.sqlite", "file"), ("evaluation.sqlite", "file"), ("instance_id", "file"),
                       ("chroma", "folder")):
        path = model_dir / name
        if path.exists() and (path.is_dir() if kind == "file" else not path.is_dir()):
            problems.append(f"{path} should be a {kind}: move it aside and start again")
    instance_id = model_dir / "instance_id"
    if instance_id.is_file():
        try:
            instance_id.read_text(encoding="ascii")
        except (UnicodeDecodeError, OSError) as exc:
            problems.append(f"{instance_id} is damaged ({exc.__class__.__name__}): delete it and start again; a new "
                            "id is made, and Label Studio's connections are still recognised by BACKEND_URL")
    chroma_file = model_dir / "chroma" / "chroma.sqlite3"
    if chroma_file.is_file() and chroma_file.stat().st_size:
        problem = _sqlite_problem(chroma_file)
        if problem:
            problems.append(f"Chroma's file {chroma_file} is damaged ({problem}): stop the backend, move "
                            f"{chroma_file.parent} aside and start again; every vector is embedded again from "
                            "the ledger")
    return problems


def _sqlite_problem(path: Path) -> str | None:
    """Why SQLite cannot read `path`'s schema (garbage, cut short), or None. Reading the schema is cheap,
    unlike a full check, and catches what made Chroma fail at open."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None


def hold(model_dir: Path) -> IO | None:
    """An exclusive lock on MODEL_DIR for this process's lifetime (keep the returned file open); None when
    another process holds it: two backends on one folder each keep their own vectors and heads in memory and
    silently drift apart."""
    handle = open(Path(model_dir) / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def holder(model_dir: Path) -> str:
    """The process id written by the lock's holder, for the message."""
    try:
        return (Path(model_dir) / LOCK_FILE).read_text().strip() or "?"
    except OSError:
        return "?"


class StorageWatch:
    """While running: is the ledger still the file this process opened, and is there room to write?"""

    def __init__(self, ledger_path: Path):
        self.ledger_path = Path(ledger_path)
        self._identity = _identity(self.ledger_path)

    def ledger_gone(self) -> str | None:
        """Why what the ledger records now is lost at the next start (it was deleted or replaced), or None."""
        if self._identity is not None and _identity(self.ledger_path) != self._identity:
            return (f"the ledger {self.ledger_path} was deleted or replaced while the backend ran: what it records "
                    "now is lost at the next start. Restore MODEL_DIR, or restart the backend on the new one")
        return None

    def problem(self) -> str | None:
        gone = self.ledger_gone()
        if gone:
            return gone
        try:
            free = shutil.disk_usage(self.ledger_path.parent).free
        except OSError as exc:
            return f"MODEL_DIR {self.ledger_path.parent} cannot be read: {exc}"
        if free < MIN_FREE_BYTES:
            return (f"MODEL_DIR {self.ledger_path.parent} has {free // 1024} KB free: new tasks and ratings may be "
                    "refused until space is freed")
        return None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
