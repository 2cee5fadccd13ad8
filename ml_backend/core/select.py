"""Select: the next batch, k unseen tasks chosen by the project's strategy.

Strategies (`core.strategies`) pick rows of the pool (the store's vectors, with the
tasks annotators have seen masked out, as the ledger records them, and the current
ratings, which adaptive strategies react to); the batch is returned highest score
first, the order annotators label it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .audit_log import AuditLog
from .ledger import Ledger
from .params import ProjectParams
from .refit import HeadVersion
from .strategies import Pool, RandomStrategy, make_strategy


@dataclass(frozen=True)
class ScoredTask:
    task_id: int
    score: float


class BatchSelection:
    """The select step of `ActiveLoop` (a mixin: the loop holds `project`, `params`, `ledger` and
    `audit`, and gives `pool` and `current_head`)."""

    project: int
    params: ProjectParams
    ledger: Ledger
    pool: Callable[..., tuple[np.ndarray, Pool]]
    current_head: Callable[[], HeadVersion | None]
    audit: AuditLog | None

    def select_batch(self, k: int | None = None) -> list[ScoredTask]:
        """The next k unseen tasks chosen by the project's strategy, highest score first.

        Without a head, strategies that need one fall back to random selection. Tasks
        with equal scores keep the strategy's pick order, never row (import) order. With an
        audit log, the strategy's uniform draw is recorded, or an earlier draw still waiting
        for ratings is kept in the batch instead (`AuditLog.keep_sample`).
        """
        ids, pool = self.pool()
        if not pool.available.any():
            return []
        current = self.current_head()
        strategy = make_strategy(self.params.strategy, self.params.selection)
        if current is None and strategy.requires_head:
            strategy = RandomStrategy()
        rng = np.random.default_rng([self.project, current.version if current else 0, int(pool.available.sum())])
        pool = self._with_ratings(ids, pool)
        rows = strategy.select(current.head if current else None, pool, k or self.params.batch_size, rng)
        if self.audit is not None:
            rows = self.audit.unless_damaged(lambda: self.audit.keep_sample(
                self.project, ids, pool.available, rows, strategy, k or self.params.batch_size,
                current.version if current else 0), rows)
        scores = current.head.predict_proba(pool.vectors[rows]) if current else np.zeros(len(rows), np.float32)
        order = np.argsort(-scores, kind="stable")
        return [ScoredTask(int(ids[rows[i]]), float(scores[i])) for i in order]

    def _with_ratings(self, ids: np.ndarray, pool: Pool) -> Pool:
        """`pool` plus the rows and targets of the current ratings (what adaptive strategies react to),
        and which of them the audit log drew uniformly at random."""
        ratings = self.ledger.ratings(self.project)
        row_of = {int(task_id): row for row, task_id in enumerate(ids)}
        rated = [(row_of[t], t, target) for t, target in ratings.items() if t in row_of]
        rows = np.array([row for row, _, _ in rated], dtype=np.int64)
        targets = np.array([target for _, _, target in rated], dtype=np.float64)
        uniform = np.empty(0, dtype=bool)  # without an audit log nobody knows: say nothing
        drawn = (self.audit.unless_damaged(lambda: self.audit.drawn_task_ids(self.project), None)
                 if self.audit is not None else None)
        if drawn is not None:
            # a drawn task's rating counts while the task is seen (as in the audit sample): after a
            # reset, a rating from the first pass is not the draw's answer
            uniform = np.array([t in drawn and not pool.available[row] for row, t, _ in rated], dtype=bool)
        return Pool(pool.vectors, pool.available, rows, targets, uniform)
