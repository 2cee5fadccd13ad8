"""One SQLite file under MODEL_DIR, shared by the ledger and the Label Studio records.

WAL mode, one connection per process guarded by a lock, every change one transaction:
a process killed at any instant leaves either the old or the new state. A damaged file
is detected (at open and at any query) and then refused for good, so nothing is read
from or written into it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import LedgerCorruptError

log = logging.getLogger(__name__)

# SQLite's primary result codes for a damaged file.
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
# Ids bound per query, under SQLite's bound-variable limit.
ID_CHUNK = 500


class SqliteFile:
    """Thread-safe access to one SQLite file. One instance per process and file.

    `corruption` says why the file cannot be used, once a check or a query found it
    damaged; then every call raises `LedgerCorruptError`. Opening a damaged file does
    not raise (the service still starts, to say so in /health).
    """

    LEDGER_RECOVERY = ("Stop the backend, move the file aside (keep it for inspection) and start again: the next "
                       "/setup from Label Studio (e.g. opening the project's Model settings) sets the project up "
                       "again and its tasks and annotations are read back from Label Studio")

    def __init__(self, path: str | Path, name: str = "the ledger", recovery: str = LEDGER_RECOVERY):
        """`name` and `recovery` word the message a damaged file gives (what it is, how to start afresh)."""
        self.path = Path(path)
        self.name, self.recovery = name, recovery
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        self.corruption: str | None = None
        try:
            with self.lock, self._guarded():
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL is durable against a killed process (not against power loss) and much faster than FULL.
                self._db.execute("PRAGMA synchronous=NORMAL")
                # A damaged page may sit where no query goes for a while: look at every page once, at start.
                problems = [row[0] for row in self._db.execute("PRAGMA quick_check(5)")]
                if problems != ["ok"]:
                    self._corrupt("; ".join(problems))
        except LedgerCorruptError:
            log.error("%s", self.corruption)

    def create(self, schema: str, migrate: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """Create tables (`schema`, idempotent), then run `migrate(connection)` in one transaction.

        Skipped on a damaged file (`corruption` says why).
        """
        if self.corruption is not None:
            return
        try:
            try:
                with self.lock, self._guarded():
                    self._db.executescript(schema)
                if migrate is not None:
                    with self.transaction() as db:
                        migrate(db)
            except sqlite3.OperationalError as exc:  # another program's database: its tables are not ours
                self._corrupt(f"not a file of this backend: {exc}")
        except LedgerCorruptError:
            log.error("%s", self.corruption)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock, self._guarded():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock, self._guarded():
            return self._db.execute(sql, args).fetchall()

    def query_in(self, sql: str, project: int, ids: Sequence[int]) -> list[sqlite3.Row]:
        """`sql` with `{}` standing for the placeholders of `ids`, run in chunks; args are (project, *chunk)."""
        rows: list[sqlite3.Row] = []
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            rows.extend(self.query(sql.format(marks(chunk)), (project, *chunk)))
        return rows

    def _corrupt(self, detail: str) -> None:
        self.corruption = f"{self.name} {self.path} is damaged ({detail[:300]}). {self.recovery}"
        raise LedgerCorruptError(self.corruption)

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Turn SQLite's "damaged file" errors into LedgerCorruptError (and remember them)."""
        if self.corruption is not None:
            raise LedgerCorruptError(self.corruption)
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB):
                self._corrupt(str(exc))
            raise


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values)) or "NULL"
