"""The audit sample: the uniform draws a project's batches carry, and what became of them.

Each batch of the adaptive strategy (and every batch of `random`) holds picks drawn
uniformly at random, without replacement, from all the tasks unseen at that moment
(`Strategy.last_draw`). Such a draw is the one part of the ratings whose selection
probability is known whatever the head says, so the estimators of `core.evaluation`
use nothing else to learn about the tasks nobody has rated.

Three facts make a draw usable, and this module keeps them:

- **the pool it was drawn from.** Draws are numbered (`seq`) in the order they were
  made; `seen_at[i]` is the `seq` of the first draw at which task i was already seen
  (rated or skipped). Task i was among the unseen tasks of draw j iff seen_at[i] > j.
  The unseen pool shrinks between draws as the strategy's own picks are rated.
- **its outcome.** A draw counts once every task it drew is resolved (rated, or
  skipped: a skip counts as "not positive"). A draw still waiting for a rating is
  left out, and the loop keeps its tasks in every batch until they are resolved, so
  whether a draw is used never depends on what its tasks turn out to be.
- **one fixed pool.** All draws of a sample come from one pool of tasks; a project
  whose pool changes (an import, a deletion, a second pass) starts a new sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# seen_at of a task not seen at any draw so far (it may be rated since the last draw).
NOT_SEEN = np.iinfo(np.int64).max


@dataclass(frozen=True)
class AuditDraw:
    """One uniform draw: pool `rows` drawn from the `n_available` tasks unseen at draw `seq`."""

    seq: int
    rows: np.ndarray
    n_available: int


@dataclass(frozen=True)
class AuditSample:
    """A pool, what annotators said about it, and the complete uniform draws made from it.

    labels : (N,) float64, 1.0 for a task rated positive (rating > 0), 0.0 for a task
        rated 0 or below or skipped, NaN for a task nobody has rated or skipped yet.
    seen_at : (N,) int64, the seq of the first draw at which the task was already seen
        (NOT_SEEN: unseen at every draw so far).
    draws : complete draws only (every drawn task has a label), in seq order.
    """

    labels: np.ndarray
    seen_at: np.ndarray
    draws: tuple[AuditDraw, ...] = ()

    def __post_init__(self) -> None:
        labels, seen_at = np.asarray(self.labels, dtype=np.float64), np.asarray(self.seen_at, dtype=np.int64)
        if labels.ndim != 1 or seen_at.shape != labels.shape:
            raise ValueError(f"labels {labels.shape} and seen_at {seen_at.shape} must be equal 1-d shapes")
        known = ~np.isnan(labels)
        if not np.all((labels[known] == 0) | (labels[known] == 1)):
            raise ValueError("labels must be 0, 1 or NaN")
        if np.any(~known & (seen_at != NOT_SEEN)):
            raise ValueError("a task seen at some draw has no label")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "seen_at", seen_at)
        previous = None
        for draw in self.draws:
            rows = np.asarray(draw.rows, dtype=np.int64)
            if previous is not None and draw.seq <= previous:
                raise ValueError(f"draws must be in increasing seq order ({draw.seq} after {previous})")
            previous = draw.seq
            if len(rows) == 0 or len(np.unique(rows)) != len(rows):
                raise ValueError(f"draw {draw.seq} must draw at least one row, each once")
            if rows.min() < 0 or rows.max() >= len(labels):
                raise ValueError(f"draw {draw.seq} names rows outside the pool")
            if np.any(seen_at[rows] <= draw.seq):
                raise ValueError(f"draw {draw.seq} drew a task that was already seen")
            if np.any(~known[rows]):
                raise ValueError(f"draw {draw.seq} is not complete: a drawn task has no label yet")
            unseen = int(np.count_nonzero(seen_at > draw.seq))
            if unseen != draw.n_available:
                raise ValueError(f"draw {draw.seq} was drawn from {draw.n_available} unseen tasks, "
                                 f"but the pool had {unseen} unseen then")

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def seen(self) -> np.ndarray:
        """(N,) bool, True where the task has a label."""
        return ~np.isnan(self.labels)

    @property
    def positives_found(self) -> int:
        return int(np.count_nonzero(self.labels == 1))

    @property
    def drawn_rows(self) -> np.ndarray:
        """Every row any complete draw drew (a row is drawn at most once: drawn tasks are then seen)."""
        return np.concatenate([d.rows for d in self.draws]) if self.draws else np.empty(0, dtype=np.int64)


def carry_pending(rows: np.ndarray, own_draw: np.ndarray, pending: np.ndarray, k: int) -> np.ndarray:
    """The batch to show while an earlier draw's tasks (`pending` rows) still wait for a rating.

    They take the place of this selection's own uniform picks (`own_draw` rows, which are
    then not recorded as a draw): a draw stays in the batch until it is resolved, so
    whether it is ever resolved cannot depend on what its tasks are (an annotator reaches
    every task of the tab in time). The strategy's other picks follow; if that leaves fewer
    than k, this selection's own uniform picks fill up. Returns at most k distinct rows,
    pending ones first.
    """
    pending = [int(r) for r in pending]
    taken = set(pending)
    own = {int(r) for r in own_draw}
    batch = pending + [int(r) for r in rows if int(r) not in own and int(r) not in taken]
    batch += [int(r) for r in own_draw if int(r) not in taken][: max(0, k - len(batch))]
    return np.array(list(dict.fromkeys(batch))[:k], dtype=np.int64)
