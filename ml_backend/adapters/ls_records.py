"""What this backend keeps about Label Studio: its side of each project, and what it was sent.

Per project: the label config Label Studio gave, the next-batch view, which head
versions' predictions it holds and which task has a prediction of which version, the
project's `model_version`, the ML connections report, and (in memory) recent
deletions. The core ledger knows none of it. Kept in the ledger's SQLite file
(`core.sqlite_file.SqliteFile`), in tables of its own, so a restart resumes the pushes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Any, Sequence

from ..core.ledger import drop_column
from ..core.sqlite_file import SqliteFile, columns

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS label_studio_state (
    project  INTEGER NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (project, key)
);
CREATE TABLE IF NOT EXISTS label_studio_predictions (
    project  INTEGER NOT NULL,
    task_id  INTEGER NOT NULL,
    version  INTEGER NOT NULL,
    PRIMARY KEY (project, task_id)
);
"""
# Deletions are remembered this long: longer than any sync started before them.
DELETIONS_KEPT_S = 3600.0


# "clip" is historical: text projects get the same name, and renaming it would orphan the versions already in
# Label Studio.
VERSION_PREFIX = "clip-head-v"


def version_name(version: int) -> str:
    """The model_version string Label Studio shows for head version `version`."""
    return f"{VERSION_PREFIX}{version}"


def version_number(name: Any) -> int | None:
    """The head version a model_version string names (`version_name`'s inverse), or None when it is not ours."""
    if not isinstance(name, str) or not name.startswith(VERSION_PREFIX):
        return None
    digits = name[len(VERSION_PREFIX):]
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 10 else None


class LabelStudioRecords:
    """Label Studio's side of each project, in the ledger's file. Thread-safe (the file's lock)."""

    def __init__(self, file: SqliteFile):
        self.file = file
        # (project, "tasks" | "annotations") -> [(time.monotonic(), id)]
        self._deleted: dict[tuple[int, str], list[tuple[float, int]]] = {}
        file.create(SCHEMA, _adopt_older_ledger)

    # -- the project as Label Studio describes it ---------------------------------
    def label_config(self, project: int) -> str:
        return self._get(project, "label_config", "")

    def set_label_config(self, project: int, label_config: str) -> None:
        self._set(project, "label_config", label_config)

    def connections(self, project: int) -> dict | None:
        """The last ML connections report (`service.connections.ConnectionReport.as_state()`)."""
        return self._get(project, "connections")

    def set_connections(self, project: int, report: dict) -> None:
        self._set(project, "connections", report)

    # -- what Label Studio has been sent ------------------------------------------
    def view(self, project: int) -> dict | None:
        """The next-batch view as last pushed: id, task ids, scores, and what it was made from."""
        return self._get(project, "view")

    def set_view(self, project: int, view: dict) -> None:
        self._set(project, "view", view)

    def project_model_version(self, project: int) -> str | None:
        return self._get(project, "project_model_version")

    def set_project_model_version(self, project: int, version: str) -> None:
        self._set(project, "project_model_version", version)

    def versions_pushed(self, project: int) -> list[int]:
        """Head versions whose predictions Label Studio holds (to delete them once superseded)."""
        return self._get(project, "versions_pushed", [])

    def note_version_pushed(self, project: int, version: int) -> None:
        with self.file.transaction() as db:
            versions = _value(db, project, "versions_pushed", [])
            if version not in versions:
                _put(db, project, "versions_pushed", sorted(versions + [version]))

    def forget_version_pushed(self, project: int, version: int) -> None:
        with self.file.transaction() as db:
            _put(db, project, "versions_pushed", [v for v in _value(db, project, "versions_pushed", []) if v != version])

    def tasks_to_predict(self, project: int, version: int, limit: int) -> list[int]:
        """Embedded tasks (the ledger's `tasks`) without a pushed prediction of `version`, lowest id first."""
        rows = self.file.query(
            "SELECT t.task_id FROM tasks t LEFT JOIN label_studio_predictions p ON p.project = t.project "
            "AND p.task_id = t.task_id WHERE t.project = ? AND t.state = 'embedded' AND COALESCE(p.version, 0) != ? "
            "ORDER BY t.task_id LIMIT ?",
            (project, version, limit),
        )
        return [row["task_id"] for row in rows]

    def has_predictions(self, project: int, version: int) -> bool:
        """Whether some task holds a pushed prediction of `version` (tasks deleted drop theirs)."""
        return bool(self.file.query("SELECT 1 FROM label_studio_predictions WHERE project = ? AND version = ? LIMIT 1",
                                    (project, version)))

    def not_predicted(self, project: int, task_ids: Sequence[int], version: int) -> list[int]:
        """Those of `task_ids` whose last pushed prediction is not of `version`."""
        rows = self.file.query_in(
            "SELECT task_id, version FROM label_studio_predictions WHERE project = ? AND task_id IN ({})", project, task_ids
        )
        done = {row["task_id"] for row in rows if row["version"] == version}
        return [t for t in task_ids if t not in done]

    def mark_predicted(self, project: int, task_ids: Sequence[int], version: int) -> None:
        with self.file.transaction() as db:
            db.executemany(
                "INSERT INTO label_studio_predictions (project, task_id, version) VALUES (?, ?, ?) "
                "ON CONFLICT (project, task_id) DO UPDATE SET version = excluded.version",
                [(project, int(t), version) for t in task_ids],
            )

    def note_in_flight(self, project: int, version: int | None) -> None:
        """Mark a chunk of `version`'s predictions as sent, its answer not yet in (None: the answer came)."""
        self._set(project, "predictions_in_flight", version)

    def in_flight(self, project: int) -> int | None:
        """The version of a prediction chunk sent whose answer never came (a timeout, a killed process): Label
        Studio may hold it, and sending it again would give its tasks two predictions of one version."""
        return self._get(project, "predictions_in_flight")

    def forget_predicted(self, project: int, version: int) -> None:
        """No task holds a prediction of `version` any more (it was deleted in Label Studio)."""
        with self.file.transaction() as db:
            db.execute("DELETE FROM label_studio_predictions WHERE project = ? AND version = ?", (project, version))

    # -- deletions ----------------------------------------------------------------
    def note_deleted(self, project: int, kind: str, ids: Sequence[int]) -> None:
        """Remember ids of `kind` ("tasks" or "annotations") just deleted; a deleted task's prediction is forgotten."""
        if kind == "tasks":
            with self.file.transaction() as db:
                db.executemany("DELETE FROM label_studio_predictions WHERE project = ? AND task_id = ?",
                               [(project, int(t)) for t in ids])
        now = time.monotonic()
        with self.file.lock:
            recent = [(at, item) for at, item in self._deleted.get((project, kind), []) if now - at < DELETIONS_KEPT_S]
            self._deleted[(project, kind)] = recent + [(now, int(i)) for i in ids]

    def deleted_since(self, project: int, kind: str, since: float) -> set[int]:
        """Ids of `kind` deleted at or after `since` (time.monotonic()), so a sync listing taken before
        a delete cannot bring them back. Ids, not tombstones for ever: Label Studio on SQLite can reuse one."""
        with self.file.lock:
            return {item for at, item in self._deleted.get((project, kind), []) if at >= since}

    def recently_deleted(self, project: int, kind: str, item: int) -> bool:
        """Whether `item` of `kind` was deleted within the last DELETIONS_KEPT_S."""
        return item in self.deleted_since(project, kind, time.monotonic() - DELETIONS_KEPT_S)

    # -- plumbing -----------------------------------------------------------------
    def _get(self, project: int, key: str, default: Any = None) -> Any:
        rows = self.file.query("SELECT value FROM label_studio_state WHERE project = ? AND key = ?", (project, key))
        return json.loads(rows[0]["value"]) if rows else default

    def _set(self, project: int, key: str, value: Any) -> None:
        with self.file.transaction() as db:
            _put(db, project, key, value)


def _value(db: sqlite3.Connection, project: int, key: str, default: Any) -> Any:
    row = db.execute("SELECT value FROM label_studio_state WHERE project = ? AND key = ?", (project, key)).fetchone()
    return json.loads(row[0]) if row else default


def _put(db: sqlite3.Connection, project: int, key: str, value: Any) -> None:
    db.execute(
        "INSERT INTO label_studio_state (project, key, value) VALUES (?, ?, ?) "
        "ON CONFLICT (project, key) DO UPDATE SET value = excluded.value",
        (project, key, json.dumps(value)),
    )


def _adopt_older_ledger(db: sqlite3.Connection) -> None:
    """Move Label Studio's state out of the core tables of a ledger written before they were split."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "project_state" in tables:  # view, versions pushed, project model version, connections
        db.execute("INSERT OR IGNORE INTO label_studio_state SELECT project, key, value FROM project_state")
        db.execute("DROP TABLE project_state")
    if "projects" in tables and "label_config" in columns(db, "projects"):
        db.executemany("INSERT OR IGNORE INTO label_studio_state (project, key, value) VALUES (?, 'label_config', ?)",
                       [(row[0], json.dumps(row[1])) for row in db.execute(
                           "SELECT id, label_config FROM projects WHERE label_config != ''")])
        drop_column(db, "projects", "label_config")
    if "tasks" in tables and "predicted_version" in columns(db, "tasks"):
        db.execute("INSERT OR IGNORE INTO label_studio_predictions (project, task_id, version) "
                   "SELECT project, task_id, predicted_version FROM tasks WHERE predicted_version != 0")
        drop_column(db, "tasks", "predicted_version")
