"""The durable record of each project's audit sample: its draws, and when each task was first seen.

Kept in its own SQLite file beside the ledger (MODEL_DIR/evaluation.sqlite), written by
the loop at selection time, read by the evaluation. One transaction per change, so a
killed process leaves the old or the new record, never half a draw.

A project's sample lives in an **epoch**: one fixed pool of tasks. A selection whose pool
differs from the epoch's (tasks imported, deleted or re-embedded), or in which a task seen
before is unseen again (a second pass, a deleted annotation), starts a new epoch: the
earlier draws were drawn from a pool that no longer exists, and the estimators cannot
use them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np

from .audit import NOT_SEEN, AuditDraw, AuditSample, carry_pending
from .errors import LedgerCorruptError
from .sqlite_file import SqliteFile

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_epochs (
    project     INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    signature   TEXT NOT NULL,
    pool_size   INTEGER NOT NULL,  -- pool_size and started_at: for whoever inspects the file
    started_at  REAL NOT NULL,
    PRIMARY KEY (project, epoch)
);
CREATE TABLE IF NOT EXISTS audit_tasks (
    project   INTEGER NOT NULL,
    epoch     INTEGER NOT NULL,
    task_id   INTEGER NOT NULL,
    seen_at   INTEGER,
    PRIMARY KEY (project, epoch, task_id)
);
CREATE TABLE IF NOT EXISTS audit_draws (
    project       INTEGER NOT NULL,
    epoch         INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    task_ids      TEXT NOT NULL,
    n_available   INTEGER NOT NULL,
    head_version  INTEGER NOT NULL,
    created_at    REAL NOT NULL,
    PRIMARY KEY (project, epoch, seq)
);
CREATE TABLE IF NOT EXISTS evaluations (
    project     INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    payload     TEXT NOT NULL,
    PRIMARY KEY (project, version)
);
"""


@dataclass(frozen=True)
class RecordedDraw:
    """A draw as recorded: its tasks, the number of unseen tasks it was drawn from, the head then."""

    seq: int
    task_ids: tuple[int, ...]
    n_available: int
    head_version: int
    created_at: float


@dataclass(frozen=True)
class EpochState:
    """Where a project's sample stands at a selection.

    epoch : the current epoch (a new one if the pool changed).
    pending : task ids of the epoch's last draw that are still unseen (carried into the batch).
    """

    epoch: int
    pending: tuple[int, ...]


def pool_signature(task_ids: Sequence[int]) -> str:
    """A digest of a pool's membership (order-free)."""
    ids = np.sort(np.asarray(task_ids, dtype=np.int64))
    return hashlib.blake2b(ids.tobytes(), digest_size=16).hexdigest()


class AuditLog:
    """Thread-safe access to the audit record (its own `SqliteFile`). One instance per process and file."""

    RECOVERY = ("Selection, training and pre-annotations go on without it, with no evaluation. Stop the backend, "
                "move the file aside and start again: the evaluation starts afresh from the next batches' uniform "
                "picks (no rating is lost)")

    def __init__(self, path: str | Path):
        self.file = SqliteFile(path, name="the evaluation's audit log", recovery=self.RECOVERY)
        self.file.create(SCHEMA)

    @property
    def damage(self) -> str | None:
        """Why the audit log cannot be used (then selection goes on without it), or None."""
        return self.file.corruption

    def unless_damaged(self, call: Callable[[], T], fallback: T) -> T:
        """`call()` (one of this log's reads or writes), or `fallback` once the file is found damaged: what
        only serves the evaluation must not stop selection, training or pre-annotations."""
        if self.damage is not None:
            return fallback
        try:
            return call()
        except LedgerCorruptError as exc:
            log.error("%s", exc)
            return fallback

    def close(self) -> None:
        self.file.close()

    def _transaction(self):
        return self.file.transaction()

    def _query(self, sql: str, args: Sequence = ()) -> list[sqlite3.Row]:
        return self.file.query(sql, args)

    # -- at selection time ----------------------------------------------------
    def settle(self, project: int, pool_ids: Sequence[int], available: np.ndarray) -> EpochState:
        """Bring the record up to date with the pool at a selection: start a new epoch when the
        pool changed, note the tasks seen since the last draw. Returns the state to select with.

        pool_ids (N,) and available (N,) bool: the store's tasks and which are unseen.
        """
        pool_ids = np.asarray(pool_ids, dtype=np.int64)
        available = np.asarray(available, dtype=bool)
        signature = pool_signature(pool_ids)
        with self._transaction() as db:
            epoch = self._current_epoch(db, project)
            recorded = self._recorded_seen(db, project, epoch["epoch"]) if epoch is not None else None
            if epoch is None or epoch["signature"] != signature or np.isin(recorded, pool_ids[available]).any():
                number = self._start_epoch(db, project, signature, pool_ids)
                recorded = np.empty(0, dtype=np.int64)
            else:
                number = epoch["epoch"]
            draws = db.execute("SELECT seq, task_ids FROM audit_draws WHERE project = ? AND epoch = ? "
                               "ORDER BY seq DESC LIMIT 1", (project, number)).fetchall()
            seq = draws[0]["seq"] + 1 if draws else 0
            # Seen since the last draw: already seen at the next draw's seq.
            newly_seen = np.setdiff1d(pool_ids[~available], recorded)
            db.executemany("UPDATE audit_tasks SET seen_at = ? WHERE project = ? AND epoch = ? AND task_id = ?",
                           [(seq, project, number, int(t)) for t in newly_seen])
            pending: tuple[int, ...] = ()
            if draws:
                drawn = np.array(json.loads(draws[0]["task_ids"]), dtype=np.int64)
                pending = tuple(int(t) for t in drawn[np.isin(drawn, pool_ids[available])])
        return EpochState(number, pending)

    def record_draw(self, project: int, epoch: int, task_ids: Sequence[int], n_available: int, head_version: int) -> int:
        """Record a new draw in `epoch` (call right after `settle`); returns its seq."""
        with self._transaction() as db:
            row = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM audit_draws WHERE project = ? AND epoch = ?",
                             (project, epoch)).fetchone()
            seq = int(row[0])
            db.execute("INSERT INTO audit_draws (project, epoch, seq, task_ids, n_available, head_version, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (project, epoch, seq, json.dumps([int(t) for t in task_ids]), int(n_available), int(head_version),
                        time.time()))
        return seq

    def keep_sample(self, project: int, task_ids: np.ndarray, available: np.ndarray, rows: np.ndarray, strategy,
                    k: int, head_version: int) -> np.ndarray:
        """The batch to show for a selection of `rows` by `strategy`: its uniform picks recorded as
        a draw, or, while an earlier draw still waits for ratings, that draw's tasks in their place
        (`core.audit.carry_pending`). task_ids (N,) and available (N,) bool: the pool then."""
        task_ids = np.asarray(task_ids, dtype=np.int64)
        state = self.settle(project, task_ids, available)
        draw = strategy.last_draw  # `random`: its whole selection; `adaptive`: its uniform share
        own = np.asarray(draw.rows, dtype=np.int64) if draw is not None else np.empty(0, dtype=np.int64)
        if state.pending:
            row_of = {int(t): row for row, t in enumerate(task_ids)}
            return carry_pending(rows, own, np.array([row_of[t] for t in state.pending], dtype=np.int64), k)
        if len(own):
            self.record_draw(project, state.epoch, task_ids[own].tolist(), draw.n_available, head_version)
        return rows

    def _current_epoch(self, db: sqlite3.Connection, project: int) -> sqlite3.Row | None:
        return db.execute("SELECT * FROM audit_epochs WHERE project = ? ORDER BY epoch DESC LIMIT 1", (project,)).fetchone()

    def _recorded_seen(self, db: sqlite3.Connection, project: int, epoch: int) -> np.ndarray:
        rows = db.execute("SELECT task_id FROM audit_tasks WHERE project = ? AND epoch = ? AND seen_at IS NOT NULL",
                          (project, epoch)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def _start_epoch(self, db: sqlite3.Connection, project: int, signature: str, pool_ids: np.ndarray) -> int:
        row = db.execute("SELECT COALESCE(MAX(epoch), 0) + 1 FROM audit_epochs WHERE project = ?", (project,)).fetchone()
        number = int(row[0])
        # Earlier epochs' draws can never be used again (their pool is gone): they are deleted.
        db.execute("DELETE FROM audit_tasks WHERE project = ?", (project,))
        db.execute("DELETE FROM audit_draws WHERE project = ? AND epoch < ?", (project, number))
        db.execute("INSERT INTO audit_epochs (project, epoch, signature, pool_size, started_at) VALUES (?, ?, ?, ?, ?)",
                   (project, number, signature, len(pool_ids), time.time()))
        db.executemany("INSERT INTO audit_tasks (project, epoch, task_id, seen_at) VALUES (?, ?, ?, NULL)",
                       [(project, number, int(t)) for t in pool_ids])
        return number

    # -- at evaluation time ---------------------------------------------------
    def epoch(self, project: int) -> dict | None:
        rows = self._query("SELECT * FROM audit_epochs WHERE project = ? ORDER BY epoch DESC LIMIT 1", (project,))
        return dict(rows[0]) if rows else None

    def draws(self, project: int, epoch: int) -> list[RecordedDraw]:
        rows = self._query("SELECT * FROM audit_draws WHERE project = ? AND epoch = ? ORDER BY seq", (project, epoch))
        return [RecordedDraw(r["seq"], tuple(json.loads(r["task_ids"])), r["n_available"], r["head_version"],
                             r["created_at"]) for r in rows]

    def drawn_task_ids(self, project: int) -> set[int]:
        """The tasks of every uniform draw the log holds for the project (a changed pool starts a new
        epoch and forgets the old draws: until the next draws are rated, no rating counts as a uniform pick)."""
        rows = self._query("SELECT task_ids FROM audit_draws WHERE project = ?", (project,))
        return {int(t) for r in rows for t in json.loads(r["task_ids"])}

    def sample(self, project: int, pool_ids: Sequence[int], ratings: dict[int, float], seen: set[int]) -> AuditSample | None:
        """The audit sample over the current pool, or None when the pool is not the epoch's.

        ratings : task id -> target in [-1, 1] (positive: > 0). seen : ids rated or skipped;
        a seen task without a rating (skipped, unreadable) counts as not positive.
        """
        current = self.epoch(project)
        pool_ids = np.asarray(pool_ids, dtype=np.int64)
        if current is None or current["signature"] != pool_signature(pool_ids):
            return None
        epoch = current["epoch"]
        recorded = {r["task_id"]: r["seen_at"] for r in self._query(
            "SELECT task_id, seen_at FROM audit_tasks WHERE project = ? AND epoch = ?", (project, epoch))}
        row_of = {int(t): i for i, t in enumerate(pool_ids)}
        labels = np.full(len(pool_ids), np.nan)
        for task_id, row in row_of.items():
            if task_id in ratings:
                labels[row] = 1.0 if ratings[task_id] > 0 else 0.0
            elif task_id in seen:
                labels[row] = 0.0
        seen_at = np.array([NOT_SEEN if recorded.get(int(t)) is None else recorded[int(t)] for t in pool_ids],
                           dtype=np.int64)
        if np.any(np.isnan(labels) & (seen_at != NOT_SEEN)):
            return None  # a task seen at a draw is unseen again: the next selection starts a new epoch
        draws = []
        for draw in self.draws(project, epoch):
            rows = np.array([row_of[t] for t in draw.task_ids if t in row_of], dtype=np.int64)
            if len(rows) == len(draw.task_ids) and not np.isnan(labels[rows]).any():
                draws.append(AuditDraw(draw.seq, rows, draw.n_available))
        return AuditSample(labels, seen_at, tuple(draws))

    # -- evaluation history ----------------------------------------------------
    def save_evaluation(self, project: int, version: int, payload: dict) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO evaluations (project, version, created_at, payload) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (project, version) DO UPDATE SET created_at = excluded.created_at, "
                       "payload = excluded.payload", (project, int(version), time.time(), json.dumps(payload)))

    def latest_evaluation(self, project: int) -> dict | None:
        rows = self._query("SELECT version, created_at, payload FROM evaluations WHERE project = ? "
                           "ORDER BY version DESC LIMIT 1", (project,))
        return {"version": rows[0]["version"], "created_at": rows[0]["created_at"], **json.loads(rows[0]["payload"])} \
            if rows else None

    def evaluations(self, project: int) -> list[dict]:
        """Every stored evaluation of the project, oldest version first."""
        rows = self._query("SELECT version, created_at, payload FROM evaluations WHERE project = ? ORDER BY version",
                           (project,))
        return [{"version": r["version"], "created_at": r["created_at"], **json.loads(r["payload"])} for r in rows]
