"""The durable record of the loop: projects, tasks, ratings, `seen`, head versions.

One SQLite file under MODEL_DIR, in WAL mode. Every change is one transaction, so a
process killed at any instant leaves either the old or the new state (a rating is
never half-recorded; a head version is never half-written). Vectors live in Chroma;
this file says which tasks still need embedding and which predictions still need
pushing, so a restarted worker picks up where it stopped.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import LedgerCorruptError

log = logging.getLogger(__name__)

MAX_TASK_DATA_BYTES = 2**20
# SQLite's primary result codes for a damaged file.
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id            INTEGER PRIMARY KEY,
    label_config  TEXT NOT NULL DEFAULT '',
    params        TEXT NOT NULL DEFAULT '{}',
    ratings_rev   INTEGER NOT NULL DEFAULT 0,
    batch_rev     INTEGER NOT NULL DEFAULT 0,
    updated_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    project             INTEGER NOT NULL,
    task_id             INTEGER NOT NULL,
    data                TEXT NOT NULL,
    state               TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'embedded', 'failed')),
    error               TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    seen                INTEGER NOT NULL DEFAULT 0,
    store_seen          INTEGER NOT NULL DEFAULT 0,
    predicted_version   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project, task_id)
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (project, state);
CREATE TABLE IF NOT EXISTS annotations (
    project            INTEGER NOT NULL,
    annotation_id      INTEGER NOT NULL,
    task_id            INTEGER NOT NULL,
    target             REAL,
    error              TEXT,
    updated_at         REAL NOT NULL,
    source_updated_at  REAL,
    PRIMARY KEY (project, annotation_id)
);
CREATE INDEX IF NOT EXISTS annotations_by_task ON annotations (project, task_id);
CREATE TABLE IF NOT EXISTS heads (
    project      INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    coef         BLOB NOT NULL,
    intercept    REAL NOT NULL,
    fit_key      TEXT NOT NULL,
    n_ratings    INTEGER NOT NULL,
    embedding_model TEXT NOT NULL DEFAULT '',
    created_at   REAL NOT NULL,
    PRIMARY KEY (project, version)
);
CREATE TABLE IF NOT EXISTS project_state (
    project  INTEGER NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (project, key)
);
"""


@dataclass(frozen=True)
class StoredHead:
    version: int
    coef: np.ndarray
    intercept: float
    fit_key: str
    n_ratings: int
    created_at: float


@dataclass(frozen=True)
class TaskRecord:
    state: str
    seen: bool
    store_seen: bool


@dataclass(frozen=True)
class ProjectRecord:
    id: int
    label_config: str
    params: dict
    ratings_rev: int
    batch_rev: int


class Ledger:
    """Thread-safe access to the SQLite ledger. One instance per process and file."""

    def __init__(self, path: str | Path, max_task_data_bytes: int = MAX_TASK_DATA_BYTES):
        self.path = Path(path)
        # Each task's data is kept (to embed it, and again after a model change): bounded per task.
        self.max_task_data_bytes = max_task_data_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        # Why the file cannot be used, once a check or a query found it damaged; then every
        # call raises LedgerCorruptError, so nothing is read from or written into a broken file.
        self.corruption: str | None = None
        # Recent deletions, so a sync listing taken before a delete cannot bring the row back.
        self._deleted: dict[tuple[int, str], list[tuple[float, int]]] = {}
        try:
            self._open()
        except LedgerCorruptError:
            log.error("%s", self.corruption)  # the service still starts, to say so in /health

    def _open(self) -> None:
        with self._lock, self._guarded():
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a killed process (not against power loss) and much faster than FULL.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._migrate()
            # A damaged page may sit where no query goes for a while: look at every page once, at start.
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                self._corrupt("; ".join(problems))

    def _corrupt(self, detail: str) -> None:
        self.corruption = (
            f"the ledger {self.path} is damaged ({detail[:300]}). Stop the backend, move the file aside (keep it "
            "for inspection) and start again: the next /setup from Label Studio (e.g. opening the project's Model "
            "settings) sets the project up again and its tasks and annotations are read back from Label Studio")
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

    def _migrate(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(annotations)")}
        if "source_updated_at" not in columns:  # ledgers written before this column existed
            self._db.execute("ALTER TABLE annotations ADD COLUMN source_updated_at REAL")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guarded():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self._guarded():
            return self._db.execute(sql, args).fetchall()

    # -- projects ------------------------------------------------------------
    def upsert_project(self, project: int, label_config: str | None = None, params: dict | None = None) -> None:
        """Create the project or update the given fields."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO projects (id, label_config, params, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (project, label_config or "", json.dumps(params or {}), time.time()),
            )
            if label_config is not None:
                db.execute("UPDATE projects SET label_config = ?, updated_at = ? WHERE id = ?", (label_config, time.time(), project))
            if params is not None:
                db.execute("UPDATE projects SET params = ?, updated_at = ? WHERE id = ?", (json.dumps(params), time.time(), project))

    def project(self, project: int) -> ProjectRecord | None:
        rows = self._query("SELECT * FROM projects WHERE id = ?", (project,))
        if not rows:
            return None
        row = rows[0]
        return ProjectRecord(row["id"], row["label_config"], json.loads(row["params"]), row["ratings_rev"], row["batch_rev"])

    def project_ids(self) -> list[int]:
        return [row["id"] for row in self._query("SELECT id FROM projects ORDER BY id")]

    def request_batch(self, project: int) -> int:
        """Ask for a new next-batch push; returns the new request counter."""
        with self._transaction() as db:
            db.execute("UPDATE projects SET batch_rev = batch_rev + 1 WHERE id = ?", (project,))
            return db.execute("SELECT batch_rev FROM projects WHERE id = ?", (project,)).fetchone()[0]

    # -- tasks ---------------------------------------------------------------
    def add_tasks(self, project: int, tasks: Iterable[tuple[int, dict]]) -> int:
        """Record tasks to embed; tasks already known are left as they are. Returns how many were new.

        A task whose data is over `max_task_data_bytes` is recorded as failed, with the
        reason and without its data.
        """
        rows = [(project, int(task_id), *self._stored_data(data), project, int(task_id)) for task_id, data in tasks]
        with self._transaction() as db:
            before = db.total_changes
            # A task can be annotated before its TASKS_CREATED arrives: it is seen from the start.
            db.executemany(
                "INSERT OR IGNORE INTO tasks (project, task_id, data, state, error, seen) VALUES (?, ?, ?, ?, ?, "
                "EXISTS (SELECT 1 FROM annotations WHERE project = ? AND task_id = ?))",
                rows,
            )
            return db.total_changes - before

    def _stored_data(self, data: dict) -> tuple[str, str, str | None]:
        """(data as stored, state, error) for a new task: oversized data is not kept."""
        text = json.dumps(data)
        if len(text) <= self.max_task_data_bytes:
            return text, "pending", None
        return "{}", "failed", (
            f"task data is {len(text)} bytes, over the limit of {self.max_task_data_bytes} (MAX_TASK_DATA_BYTES): "
            "give the image as a URL, an upload or local storage instead of inline data")

    def task_ids(self, project: int) -> list[int]:
        return [row["task_id"] for row in self._query("SELECT task_id FROM tasks WHERE project = ?", (project,))]

    def task_total(self, project: int) -> int:
        return self._query("SELECT COUNT(*) FROM tasks WHERE project = ?", (project,))[0][0]

    def task_data(self, project: int, task_ids: Sequence[int]) -> dict[int, dict]:
        rows = self._query_in("SELECT task_id, data FROM tasks WHERE project = ? AND task_id IN ({})", project, task_ids)
        return {row["task_id"]: json.loads(row["data"]) for row in rows}

    def tasks_in_state(self, project: int, state: str, limit: int = -1, max_attempts: int | None = None) -> list[tuple[int, dict]]:
        sql = "SELECT task_id, data FROM tasks WHERE project = ? AND state = ?"
        args: list[Any] = [project, state]
        if max_attempts is not None:
            sql += " AND attempts < ?"
            args.append(max_attempts)
        rows = self._query(sql + " ORDER BY task_id LIMIT ?", (*args, limit))
        return [(row["task_id"], json.loads(row["data"])) for row in rows]

    def task_index(self, project: int) -> dict[int, TaskRecord]:
        """Every task of the project: its state, `seen` and the `seen` flag last written to the store."""
        rows = self._query("SELECT task_id, state, seen, store_seen FROM tasks WHERE project = ?", (project,))
        return {row["task_id"]: TaskRecord(row["state"], bool(row["seen"]), bool(row["store_seen"])) for row in rows}

    def task_states(self, project: int, task_ids: Sequence[int]) -> dict[int, str]:
        rows = self._query_in("SELECT task_id, state FROM tasks WHERE project = ? AND task_id IN ({})", project, task_ids)
        return {row["task_id"]: row["state"] for row in rows}

    def mark_embedded(self, project: int, task_ids: Sequence[int], stored_seen: Sequence[bool]) -> None:
        """Record that these tasks' vectors are in the store, with the `seen` flags written there."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE tasks SET state = 'embedded', error = NULL, store_seen = ? WHERE project = ? AND task_id = ?",
                [(int(bool(flag)), project, int(t)) for t, flag in zip(task_ids, stored_seen, strict=True)],
            )

    def mark_failed(self, project: int, task_id: int, error: str, transient: bool) -> None:
        """Record a failed embedding. Transient failures stay pending (and count attempts)."""
        state = "pending" if transient else "failed"
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET state = ?, error = ?, attempts = attempts + 1 WHERE project = ? AND task_id = ?",
                (state, error, project, task_id),
            )

    def give_up_pending(self, project: int, max_attempts: int) -> int:
        """Mark pending tasks that failed transiently `max_attempts` times as failed."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE tasks SET state = 'failed' WHERE project = ? AND state = 'pending' AND attempts >= ?",
                (project, max_attempts),
            ).rowcount

    def retry_given_up(self, project: int, max_attempts: int) -> int:
        """Queue again the tasks given up after `max_attempts` transient failures; returns how many.

        Those failed on timeouts, 5xx or an unreachable Label Studio: worth another
        try once the outage is over. Permanent failures (a corrupt image) stay failed.
        """
        with self._transaction() as db:
            return db.execute(
                "UPDATE tasks SET state = 'pending', attempts = 0 WHERE project = ? AND state = 'failed' AND attempts >= ?",
                (project, max_attempts),
            ).rowcount

    def reset_embeddings(self, project: int, task_ids: Sequence[int] | None = None) -> None:
        """Mark tasks (default: all) as needing embedding again."""
        with self._transaction() as db:
            if task_ids is None:
                db.execute("UPDATE tasks SET state = 'pending', attempts = 0 WHERE project = ?", (project,))
            else:
                db.executemany(
                    "UPDATE tasks SET state = 'pending', attempts = 0 WHERE project = ? AND task_id = ?",
                    [(project, int(t)) for t in task_ids],
                )

    def delete_tasks(self, project: int, task_ids: Sequence[int]) -> None:
        with self._transaction() as db:
            for table in ("tasks", "annotations"):
                db.executemany(f"DELETE FROM {table} WHERE project = ? AND task_id = ?", [(project, int(t)) for t in task_ids])
            db.execute("UPDATE projects SET ratings_rev = ratings_rev + 1 WHERE id = ?", (project,))
        self._note_deleted(project, "tasks", task_ids)

    def deleted_since(self, project: int, kind: str, since: float) -> set[int]:
        """Ids of `kind` ("tasks" or "annotations") deleted at or after `since` (time.monotonic()).

        Kept in memory for an hour: long enough for any sync started before the delete.
        Ids, not tombstones for ever: Label Studio on SQLite can reuse a deleted id.
        """
        with self._lock:
            return {item for at, item in self._deleted.get((project, kind), []) if at >= since}

    def _note_deleted(self, project: int, kind: str, ids: Sequence[int]) -> None:
        now = time.monotonic()
        with self._lock:
            recent = [(at, item) for at, item in self._deleted.get((project, kind), []) if now - at < 3600]
            self._deleted[(project, kind)] = recent + [(now, int(i)) for i in ids]

    # -- ratings and seen ----------------------------------------------------
    def record_annotation(
        self, project: int, annotation_id: int, task_id: int, target: float | None,
        error: str | None = None, task_data: dict | None = None, source_updated_at: float | None = None,
    ) -> bool:
        """Insert or replace an annotation and mark its task seen, atomically.

        `target` None means the annotation is not a rating (skipped, or unreadable with `error`).
        `task_data` registers the task for embedding if the ledger has not seen it yet.
        `source_updated_at` is Label Studio's own time of this version of the annotation: an
        older version (a sync listing taken before an update webhook) never replaces a newer one.
        Only news marks the task seen: a new annotation, a changed value, or a newer version.
        Reading the same annotation again (every sync does) leaves `seen` alone, so a
        `reset_seen` second pass is not undone by the next sync.
        Returns whether the ledger knows the task (False: the rating waits for the task).
        """
        with self._transaction() as db:
            if task_data is not None:
                db.execute(
                    "INSERT OR IGNORE INTO tasks (project, task_id, data, state, error) VALUES (?, ?, ?, ?, ?)",
                    (project, task_id, *self._stored_data(task_data)),
                )
            before = db.execute(
                "SELECT task_id, target, error, source_updated_at FROM annotations WHERE project = ? AND annotation_id = ?",
                (project, annotation_id),
            ).fetchone()
            applied = db.execute(
                "INSERT INTO annotations (project, annotation_id, task_id, target, error, updated_at, source_updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (project, annotation_id) DO UPDATE SET task_id = excluded.task_id, target = excluded.target, "
                "error = excluded.error, updated_at = excluded.updated_at, source_updated_at = excluded.source_updated_at "
                "WHERE excluded.source_updated_at IS NULL OR annotations.source_updated_at IS NULL "
                "OR excluded.source_updated_at >= annotations.source_updated_at",
                (project, annotation_id, task_id, target, error, time.time(), source_updated_at),
            ).rowcount > 0
            if applied and _is_news(before, task_id, target, error, source_updated_at):
                db.execute("UPDATE tasks SET seen = 1 WHERE project = ? AND task_id = ?", (project, task_id))
                db.execute("UPDATE projects SET ratings_rev = ratings_rev + 1 WHERE id = ?", (project,))
            return db.execute("SELECT 1 FROM tasks WHERE project = ? AND task_id = ?", (project, task_id)).fetchone() is not None

    def delete_annotations(self, project: int, annotation_ids: Sequence[int]) -> int:
        """Forget annotations; a task with none left becomes unseen again. Returns how many were deleted."""
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT DISTINCT task_id FROM annotations WHERE project = ? AND annotation_id IN ({_marks(annotation_ids)})",
                (project, *annotation_ids),
            ).fetchall()
            deleted = db.execute(
                f"DELETE FROM annotations WHERE project = ? AND annotation_id IN ({_marks(annotation_ids)})",
                (project, *annotation_ids),
            ).rowcount
            for row in rows:
                # A task with no annotation left is unseen; one with some left keeps its flag
                # (it may have been reset for a second pass).
                db.execute(
                    "UPDATE tasks SET seen = seen AND EXISTS (SELECT 1 FROM annotations a WHERE a.project = ? AND a.task_id = ?) "
                    "WHERE project = ? AND task_id = ?",
                    (project, row["task_id"], project, row["task_id"]),
                )
            if deleted:
                db.execute("UPDATE projects SET ratings_rev = ratings_rev + 1 WHERE id = ?", (project,))
        self._note_deleted(project, "annotations", annotation_ids)
        return deleted

    def annotation_ids(self, project: int) -> list[int]:
        return [row["annotation_id"] for row in self._query("SELECT annotation_id FROM annotations WHERE project = ?", (project,))]

    def ratings(self, project: int) -> dict[int, float]:
        """Task id -> mean target over the task's rating annotations."""
        rows = self._query(
            "SELECT task_id, AVG(target) AS target FROM annotations WHERE project = ? AND target IS NOT NULL GROUP BY task_id",
            (project,),
        )
        return {row["task_id"]: float(row["target"]) for row in rows}

    def mark_seen(self, project: int, task_ids: Sequence[int]) -> None:
        with self._transaction() as db:
            db.executemany("UPDATE tasks SET seen = 1 WHERE project = ? AND task_id = ?", [(project, int(t)) for t in task_ids])

    def reset_seen(self, project: int) -> int:
        """Make every task selectable again (a second pass); ratings are kept."""
        with self._transaction() as db:
            return db.execute("UPDATE tasks SET seen = 0 WHERE project = ? AND seen = 1", (project,)).rowcount

    def unsynced_seen(self, project: int) -> list[tuple[int, bool]]:
        """Embedded tasks whose `seen` differs from the flag in the vector store."""
        rows = self._query(
            "SELECT task_id, seen FROM tasks WHERE project = ? AND state = 'embedded' AND seen != store_seen", (project,)
        )
        return [(row["task_id"], bool(row["seen"])) for row in rows]

    def mark_seen_synced(self, project: int, task_ids: Sequence[int], seen: bool) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE tasks SET store_seen = ? WHERE project = ? AND task_id = ?", [(int(seen), project, int(t)) for t in task_ids]
            )

    def seen_task_ids(self, project: int) -> set[int]:
        return {row["task_id"] for row in self._query("SELECT task_id FROM tasks WHERE project = ? AND seen = 1", (project,))}

    # -- heads ---------------------------------------------------------------
    def save_head(
        self, project: int, coef: np.ndarray, intercept: float, fit_key: str, n_ratings: int, embedding_model: str = "",
    ) -> int:
        """Store a new head version atomically; returns its version number (1, 2, ...)."""
        coef32 = np.ascontiguousarray(coef, dtype="<f4")
        with self._transaction() as db:
            version = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM heads WHERE project = ?", (project,)).fetchone()[0]
            db.execute(
                "INSERT INTO heads (project, version, coef, intercept, fit_key, n_ratings, embedding_model, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (project, version, coef32.tobytes(), float(intercept), fit_key, n_ratings, embedding_model, time.time()),
            )
            return version

    def latest_head(self, project: int, embedding_model: str | None = None) -> StoredHead | None:
        """The newest head, optionally only among heads fitted on `embedding_model`'s vectors."""
        if embedding_model is not None:
            rows = self._query(
                "SELECT * FROM heads WHERE project = ? AND embedding_model = ? ORDER BY version DESC LIMIT 1",
                (project, embedding_model),
            )
            return _stored_head(rows[0]) if rows else None
        rows = self._query("SELECT * FROM heads WHERE project = ? ORDER BY version DESC LIMIT 1", (project,))
        return _stored_head(rows[0]) if rows else None

    # -- what Label Studio has been sent -------------------------------------
    def tasks_to_predict(self, project: int, version: int, limit: int) -> list[int]:
        rows = self._query(
            "SELECT task_id FROM tasks WHERE project = ? AND state = 'embedded' AND predicted_version != ? ORDER BY task_id LIMIT ?",
            (project, version, limit),
        )
        return [row["task_id"] for row in rows]

    def not_predicted(self, project: int, task_ids: Sequence[int], version: int) -> list[int]:
        """Those of `task_ids` whose last pushed prediction is not of `version`."""
        rows = self._query_in(
            "SELECT task_id, predicted_version FROM tasks WHERE project = ? AND task_id IN ({})", project, task_ids
        )
        done = {row["task_id"] for row in rows if row["predicted_version"] == version}
        return [t for t in task_ids if t not in done]

    def mark_predicted(self, project: int, task_ids: Sequence[int], version: int) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE tasks SET predicted_version = ? WHERE project = ? AND task_id = ?", [(version, project, int(t)) for t in task_ids]
            )

    def note_version_pushed(self, project: int, version: int) -> None:
        """Remember that Label Studio holds predictions of head `version` (to clean up later)."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM project_state WHERE project = ? AND key = 'versions_pushed'", (project,)).fetchone()
            versions = json.loads(row[0]) if row else []
            if version not in versions:
                db.execute(
                    "INSERT INTO project_state (project, key, value) VALUES (?, 'versions_pushed', ?) "
                    "ON CONFLICT (project, key) DO UPDATE SET value = excluded.value",
                    (project, json.dumps(sorted(versions + [version]))),
                )

    def versions_pushed(self, project: int) -> list[int]:
        return self.get_state(project, "versions_pushed", [])

    def forget_version_pushed(self, project: int, version: int) -> None:
        self.set_state(project, "versions_pushed", [v for v in self.versions_pushed(project) if v != version])

    def get_state(self, project: int, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM project_state WHERE project = ? AND key = ?", (project, key))
        return json.loads(rows[0]["value"]) if rows else default

    def set_state(self, project: int, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO project_state (project, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (project, key) DO UPDATE SET value = excluded.value",
                (project, key, json.dumps(value)),
            )

    # -- reporting -----------------------------------------------------------
    def counts(self, project: int) -> dict[str, Any]:
        """Task counts by state, ratings, seen, and the most recent embedding failures."""
        states = {row["state"]: row["n"] for row in self._query(
            "SELECT state, COUNT(*) AS n FROM tasks WHERE project = ? GROUP BY state", (project,))}
        one = lambda sql: self._query(sql, (project,))[0][0]  # noqa: E731
        failures = self._query(
            "SELECT task_id, error FROM tasks WHERE project = ? AND error IS NOT NULL ORDER BY task_id DESC LIMIT 20", (project,)
        )
        bad = self._query(
            "SELECT annotation_id, task_id, error FROM annotations WHERE project = ? AND error IS NOT NULL ORDER BY updated_at DESC LIMIT 20",
            (project,),
        )
        return {
            "tasks": {"pending": states.get("pending", 0), "embedded": states.get("embedded", 0), "failed": states.get("failed", 0)},
            "seen": one("SELECT COUNT(*) FROM tasks WHERE project = ? AND seen = 1"),
            "rated_tasks": one("SELECT COUNT(DISTINCT task_id) FROM annotations WHERE project = ? AND target IS NOT NULL"),
            "annotations": one("SELECT COUNT(*) FROM annotations WHERE project = ?"),
            "task_errors": [{"task": row["task_id"], "error": row["error"]} for row in failures],
            "annotation_errors": [dict(row) for row in bad],
        }

    def _query_in(self, sql: str, project: int, ids: Sequence[int]) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = []
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-variable limit
            chunk = ids[start : start + 500]
            rows.extend(self._query(sql.format(_marks(chunk)), (project, *chunk)))
        return rows


def _is_news(before: sqlite3.Row | None, task_id: int, target: float | None, error: str | None,
             source_updated_at: float | None) -> bool:
    """Whether recording an annotation tells the ledger something it did not know."""
    if before is None:
        return True
    if (before["task_id"], before["target"], before["error"]) != (task_id, target, error):
        return True
    return source_updated_at is not None and (before["source_updated_at"] is None or source_updated_at > before["source_updated_at"])


def _stored_head(row: sqlite3.Row) -> StoredHead:
    return StoredHead(
        row["version"], np.frombuffer(row["coef"], dtype="<f4").copy(), row["intercept"], row["fit_key"],
        row["n_ratings"], row["created_at"],
    )


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values)) or "NULL"
