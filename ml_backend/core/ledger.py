"""The durable record of the loop: projects, tasks, ratings, `seen`, head versions.

In the SQLite file under MODEL_DIR (`SqliteFile`: WAL, every change one transaction),
so a process killed at any instant leaves either the old or the new state (a rating
is never half-recorded; a head version is never half-written). Vectors live in the
vector store; this file says which tasks still need embedding, so a restarted worker
picks up where it stopped. `seen` lives here only: the selection mirror is derived
from it. What Label Studio has been sent is the adapters' (`adapters.ls_records`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .sqlite_file import ID_CHUNK, SqliteFile, columns, marks

log = logging.getLogger(__name__)

MAX_TASK_DATA_BYTES = 2**20

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id            INTEGER PRIMARY KEY,
    params        TEXT NOT NULL DEFAULT '{}',
    batch_rev     INTEGER NOT NULL DEFAULT 0,
    version_floor INTEGER NOT NULL DEFAULT 0,
    updated_at    REAL NOT NULL
);
-- adapters/ls_records.tasks_to_predict joins this table on (project, task_id, state)
CREATE TABLE IF NOT EXISTS tasks (
    project             INTEGER NOT NULL,
    task_id             INTEGER NOT NULL,
    data                TEXT NOT NULL,
    state               TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'embedded', 'failed')),
    error               TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    seen                INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT,  -- the source's creation time of the task, as its listing gives it (None: not listed yet)
    PRIMARY KEY (project, task_id)
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (project, state);
-- Selection reads the seen tasks before every batch: this keeps that read as small as the answer.
CREATE INDEX IF NOT EXISTS tasks_seen ON tasks (project, task_id) WHERE seen = 1;
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
"""
# Columns of older ledgers that now hold nothing: `store_seen` (a second copy of `seen`) and
# `ratings_rev` (read by nobody). Label Studio's own columns move out in `adapters.ls_records`.
RETIRED_COLUMNS = {"tasks": ("store_seen",), "projects": ("ratings_rev",)}


@dataclass(frozen=True)
class StoredHead:
    version: int
    coef: np.ndarray
    intercept: float
    fit_key: str
    n_ratings: int
    created_at: float


@dataclass(frozen=True)
class RecordedAnnotation:
    """What recording an annotation did: whether the task is known (False: the rating waits for the
    task's data) and whether this version was applied (False: a newer one is recorded already)."""

    task_known: bool
    applied: bool


@dataclass(frozen=True)
class ProjectRecord:
    id: int
    params: dict
    batch_rev: int


class Ledger:
    """The loop's durable record over one SQLite file (`SqliteFile`). One instance per process and file.

    Facts from outside (tasks, annotations, deletions, batch requests, parameters) are
    written through `core.facts.Facts`; what the loop derives from them (embedding
    states, head versions) by the loop's steps.
    """

    def __init__(self, path: str | Path | SqliteFile, max_task_data_bytes: int = MAX_TASK_DATA_BYTES):
        self.file = path if isinstance(path, SqliteFile) else SqliteFile(path)
        self.path = self.file.path
        # Each task's data is kept (to embed it, and again after a model change): bounded per task.
        self.max_task_data_bytes = max_task_data_bytes
        self.file.create(SCHEMA, _retire_columns)
        self._transaction = self.file.transaction
        self._query = self.file.query
        self._query_in = self.file.query_in

    @property
    def corruption(self) -> str | None:
        """Why the file cannot be used (None while it is sound)."""
        return self.file.corruption

    def close(self) -> None:
        self.file.close()

    # -- projects ------------------------------------------------------------
    def upsert_project(self, project: int, params: dict | None = None) -> None:
        """Create the project, or replace its parameters when given."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO projects (id, params, updated_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (project, json.dumps(params or {}), time.time()),
            )
            if params is not None:
                db.execute("UPDATE projects SET params = ?, updated_at = ? WHERE id = ?", (json.dumps(params), time.time(), project))

    def project(self, project: int) -> ProjectRecord | None:
        rows = self._query("SELECT id, params, batch_rev FROM projects WHERE id = ?", (project,))
        if not rows:
            return None
        row = rows[0]
        return ProjectRecord(row["id"], json.loads(row["params"]), row["batch_rev"])

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

    def recreated_tasks(self, project: int, created: dict[int, str]) -> list[int]:
        """Known tasks whose recorded creation time (`note_created`) differs from the one given (task id -> time):
        the source deleted them and made new ones under the same ids (Label Studio on SQLite reuses ids), and
        what the ledger holds of them is the old tasks'."""
        rows = self._query_in("SELECT task_id, created_at FROM tasks WHERE project = ? AND task_id IN ({})", project,
                              list(created))
        return sorted(row["task_id"] for row in rows if row["created_at"] is not None and row["created_at"] != created[row["task_id"]])

    def note_created(self, project: int, created: dict[int, str]) -> None:
        """Record when the source created each task (task id -> its creation time), where not recorded yet."""
        with self._transaction() as db:
            db.executemany("UPDATE tasks SET created_at = ? WHERE project = ? AND task_id = ? AND created_at IS NULL",
                           [(at, project, int(t)) for t, at in created.items()])

    def _stored_data(self, data: dict) -> tuple[str, str, str | None]:
        """(data as stored, state, error) for a new task: oversized data is not kept."""
        text = json.dumps(data)
        # measured as UTF-8, not as the stored form, where every non-ASCII character is a 6-byte escape
        size = len(json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if size <= self.max_task_data_bytes:
            return text, "pending", None
        return "{}", "failed", (
            f"task data is {size} bytes, over the limit of {self.max_task_data_bytes} (MAX_TASK_DATA_BYTES): "
            "give the image or text as a URL, an upload or local storage instead of inline data")

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

    def task_states(self, project: int, task_ids: Sequence[int] | None = None) -> dict[int, str]:
        """Task id -> embedding state ("pending", "embedded", "failed"), of `task_ids` or of every task."""
        if task_ids is None:
            rows = self._query("SELECT task_id, state FROM tasks WHERE project = ?", (project,))
        else:
            rows = self._query_in("SELECT task_id, state FROM tasks WHERE project = ? AND task_id IN ({})", project, task_ids)
        return {row["task_id"]: row["state"] for row in rows}

    def mark_embedded(self, project: int, task_ids: Sequence[int]) -> None:
        """Record that these tasks' vectors are in the store."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE tasks SET state = 'embedded', error = NULL WHERE project = ? AND task_id = ?",
                [(project, int(t)) for t in task_ids],
            )

    def mark_failed(self, project: int, task_id: int, error: str, transient: bool) -> None:
        """Record a failed embedding. Transient failures stay pending (and count attempts)."""
        state = "pending" if transient else "failed"
        with self._transaction() as db:
            db.execute(
                "UPDATE tasks SET state = ?, error = ?, attempts = attempts + 1 WHERE project = ? AND task_id = ?",
                (state, storable(error), project, task_id),
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

    def retry_failed(self, project: int) -> int:
        """Queue again every failed task that has its data (not one whose data was too big to keep); returns
        how many. The error stays until the next attempt replaces or clears it."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE tasks SET state = 'pending', attempts = 0 WHERE project = ? AND state = 'failed' AND data != '{}'",
                (project,),
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
        """Forget tasks and their annotations."""
        with self._transaction() as db:
            for table in ("tasks", "annotations"):
                db.executemany(f"DELETE FROM {table} WHERE project = ? AND task_id = ?", [(project, int(t)) for t in task_ids])

    # -- ratings and seen ----------------------------------------------------
    def record_annotation(
        self, project: int, annotation_id: int, task_id: int, target: float | None,
        error: str | None = None, task_data: dict | None = None, source_updated_at: float | None = None,
    ) -> RecordedAnnotation:
        """Insert or replace an annotation and mark its task seen, atomically.

        `target` None means the annotation is not a rating (skipped, or unreadable with `error`).
        `task_data` registers the task for embedding if the ledger has not seen it yet.
        `source_updated_at` is Label Studio's own time of this version of the annotation: an
        older version (a sync listing taken before an update webhook) never replaces a newer one.
        Only news marks the task seen: a new annotation, a changed value, or a newer version.
        Reading the same annotation again (every sync does) leaves `seen` alone, so a
        `reset_seen` second pass is not undone by the next sync.
        Returns whether the ledger knows the task and whether this version was applied.
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
                (project, annotation_id, task_id, target, storable(error), time.time(), source_updated_at),
            ).rowcount > 0
            if applied and _is_news(before, task_id, target, error, source_updated_at):
                db.execute("UPDATE tasks SET seen = 1 WHERE project = ? AND task_id = ?", (project, task_id))
            known = db.execute("SELECT 1 FROM tasks WHERE project = ? AND task_id = ?", (project, task_id)).fetchone() is not None
            return RecordedAnnotation(task_known=known, applied=applied)

    def delete_annotations(self, project: int, annotation_ids: Sequence[int]) -> int:
        """Forget annotations; a task with none left becomes unseen again. Returns how many were deleted."""
        ids = [int(i) for i in annotation_ids]
        with self._transaction() as db:
            rows, deleted = [], 0
            # in chunks, in one transaction: SQLite caps the variables of one statement (32,766 in stock builds)
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ids[start : start + ID_CHUNK]
                rows += db.execute(
                    f"SELECT DISTINCT task_id FROM annotations WHERE project = ? AND annotation_id IN ({marks(chunk)})",
                    (project, *chunk),
                ).fetchall()
                deleted += db.execute(
                    f"DELETE FROM annotations WHERE project = ? AND annotation_id IN ({marks(chunk)})", (project, *chunk),
                ).rowcount
            for row in rows:
                # A task with no annotation left is unseen; one with some left keeps its flag
                # (it may have been reset for a second pass).
                db.execute(
                    "UPDATE tasks SET seen = seen AND EXISTS (SELECT 1 FROM annotations a WHERE a.project = ? AND a.task_id = ?) "
                    "WHERE project = ? AND task_id = ?",
                    (project, row["task_id"], project, row["task_id"]),
                )
        return deleted

    def annotation_total(self, project: int) -> int:
        return self._query("SELECT COUNT(*) FROM annotations WHERE project = ?", (project,))[0][0]

    def annotation_ids(self, project: int) -> list[int]:
        return [row["annotation_id"] for row in self._query("SELECT annotation_id FROM annotations WHERE project = ?", (project,))]

    def ratings(self, project: int) -> dict[int, float]:
        """Task id -> mean target over the task's rating annotations, in the order the tasks were first
        annotated (Label Studio's annotation ids grow): the adaptive strategy reads the latest ratings."""
        rows = self._query(
            "SELECT task_id, AVG(target) AS target FROM annotations WHERE project = ? AND target IS NOT NULL "
            "GROUP BY task_id ORDER BY MIN(annotation_id)",
            (project,),
        )
        return {row["task_id"]: float(row["target"]) for row in rows}

    def reset_seen(self, project: int) -> int:
        """Make every task selectable again (a second pass); ratings are kept."""
        with self._transaction() as db:
            return db.execute("UPDATE tasks SET seen = 0 WHERE project = ? AND seen = 1", (project,)).rowcount

    def seen_task_ids(self, project: int) -> set[int]:
        """The tasks annotators have seen (rated or skipped): the one record of `seen`."""
        return {row["task_id"] for row in self._query("SELECT task_id FROM tasks WHERE project = ? AND seen = 1", (project,))}

    # -- heads ---------------------------------------------------------------
    def save_head(
        self, project: int, coef: np.ndarray, intercept: float, fit_key: str, n_ratings: int, embedding_model: str = "",
    ) -> int:
        """Store a new head version atomically; returns its version number (1, 2, ...), above every earlier
        one and above the project's `version_floor`."""
        coef32 = np.ascontiguousarray(coef, dtype="<f4")
        with self._transaction() as db:
            version = db.execute(
                "SELECT MAX(COALESCE((SELECT MAX(version) FROM heads WHERE project = ?), 0), "
                "COALESCE((SELECT version_floor FROM projects WHERE id = ?), 0)) + 1", (project, project),
            ).fetchone()[0]
            db.execute(
                "INSERT INTO heads (project, version, coef, intercept, fit_key, n_ratings, embedding_model, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (project, version, coef32.tobytes(), float(intercept), fit_key, n_ratings, embedding_model, time.time()),
            )
            return version

    def version_floor(self, project: int) -> int:
        """Head versions of this project stay above this (0: no floor)."""
        rows = self._query("SELECT version_floor FROM projects WHERE id = ?", (project,))
        return rows[0]["version_floor"] if rows else 0

    def raise_version_floor(self, project: int, published: int) -> bool:
        """Versions up to `published` were published elsewhere by an earlier ledger of this project (a lost or
        restored MODEL_DIR): number the next above it. True when this raised the floor above every stored head."""
        with self._transaction() as db:
            newest = db.execute("SELECT COALESCE(MAX(version), 0) FROM heads WHERE project = ?",
                                (project,)).fetchone()[0]
            raised = db.execute(
                "UPDATE projects SET version_floor = ? WHERE id = ? AND version_floor < ? AND ? > ?",
                (published, project, published, published, newest),
            ).rowcount
            return raised > 0

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

    def head_before(self, project: int, max_ratings: int, embedding_model: str) -> StoredHead | None:
        """The newest head fitted on at most `max_ratings` ratings of `embedding_model`'s vectors, if any."""
        rows = self._query(
            "SELECT * FROM heads WHERE project = ? AND embedding_model = ? AND n_ratings <= ? ORDER BY version DESC LIMIT 1",
            (project, embedding_model, max_ratings),
        )
        return _stored_head(rows[0]) if rows else None

    # -- reporting -----------------------------------------------------------
    def state_counts(self, project: int) -> dict[str, int]:
        """Tasks per state ("pending", "embedded", "failed"); a state no task is in is absent."""
        return {row["state"]: row["n"] for row in self._query(
            "SELECT state, COUNT(*) AS n FROM tasks WHERE project = ? GROUP BY state", (project,))}

    def counts(self, project: int) -> dict[str, Any]:
        """Task counts by state, ratings, seen, and the most recent embedding failures."""
        states = self.state_counts(project)
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
            "annotations": self.annotation_total(project),
            "task_errors": [{"task": row["task_id"], "error": row["error"]} for row in failures],
            "annotation_errors": [dict(row) for row in bad],
        }


def storable(message: str | None) -> str | None:
    """`message` as SQLite can store it: a lone surrogate (from task data or a URL quoted in an
    error) cannot be encoded as UTF-8, and the failed write would leave the task pending for good."""
    if message is None:
        return None
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def _retire_columns(db: sqlite3.Connection) -> None:
    if "source_updated_at" not in columns(db, "annotations"):  # ledgers written before this column existed
        db.execute("ALTER TABLE annotations ADD COLUMN source_updated_at REAL")
    if "created_at" not in columns(db, "tasks"):
        db.execute("ALTER TABLE tasks ADD COLUMN created_at TEXT")
    if "version_floor" not in columns(db, "projects"):
        db.execute("ALTER TABLE projects ADD COLUMN version_floor INTEGER NOT NULL DEFAULT 0")
    for table, retired in RETIRED_COLUMNS.items():
        for column in retired:
            if column in columns(db, table):
                drop_column(db, table, column)


def drop_column(db: sqlite3.Connection, table: str, column: str) -> None:
    """Drop a column of an older ledger; SQLite before 3.35 cannot, and then it stays, unread."""
    try:
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    except sqlite3.OperationalError as exc:
        log.warning("ledger: cannot drop the retired column %s.%s (%s); it is left unread", table, column, exc)


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

