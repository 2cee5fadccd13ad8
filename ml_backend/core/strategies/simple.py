"""The three textbook strategies: nearest to W, closest to the boundary, random."""

from __future__ import annotations

import numpy as np

from ..errors import NotFittedError
from ..head import LinearHead
from .base import Pool, Strategy, UniformDraw, top_k


def _require(head: LinearHead | None) -> LinearHead:
    if head is None:
        raise NotFittedError("this strategy needs a fitted head")
    return head


class NearestStrategy(Strategy):
    """The seed method: the unseen items with the highest w.x (nearest to W by cosine)."""

    def select(self, head, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        return top_k(_require(head).decision_function(pool.vectors), pool.available, k, rng)


class UncertaintyStrategy(Strategy):
    """Uncertainty sampling: the unseen items whose probability is closest to 0.5."""

    def select(self, head, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        return top_k(-np.abs(_require(head).decision_function(pool.vectors)), pool.available, k, rng)


class RandomStrategy(Strategy):
    """Uniform sampling among unseen items: the baseline, and the cold-start fallback."""

    requires_head = False

    def select(self, head, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        candidates = np.flatnonzero(pool.available)
        rows = rng.permutation(candidates)[: min(k, len(candidates))]
        self.last_draw = UniformDraw(rows, len(candidates))
        return rows
