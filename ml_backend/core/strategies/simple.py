"""The three textbook strategies: nearest to W, closest to the boundary, random."""

from __future__ import annotations

import numpy as np

from ..errors import NotFittedError
from ..head import LinearHead
from .base import Pool, Strategy, UniformDraw, informative_logits, top_k


def _require(head: LinearHead | None) -> LinearHead:
    if head is None:
        raise NotFittedError("this strategy needs a fitted head")
    return head


def uniform_draw(pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
    """k available rows drawn uniformly at random (all of them when k is larger)."""
    candidates = np.flatnonzero(pool.available)
    return rng.permutation(candidates)[: min(k, len(candidates))]


class NearestStrategy(Strategy):
    """The seed method: the unseen items with the highest w.x (nearest to W by cosine).

    A flat head (no positive, no prompt) ranks nothing: then the picks are uniform at random.
    """

    def select(self, head, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        logits = informative_logits(_require(head), pool)
        return uniform_draw(pool, k, rng) if logits is None else top_k(logits, pool.available, k, rng)


class UncertaintyStrategy(Strategy):
    """Uncertainty sampling: the unseen items whose probability is closest to 0.5 (uniform on a flat head)."""

    def select(self, head, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        logits = informative_logits(_require(head), pool)
        return uniform_draw(pool, k, rng) if logits is None else top_k(-np.abs(logits), pool.available, k, rng)


class RandomStrategy(Strategy):
    """Uniform sampling among unseen items: the baseline, and the cold-start fallback."""

    requires_head = False

    def select(self, head, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        rows = uniform_draw(pool, k, rng)
        self.last_draw = UniformDraw(rows, int(pool.available.sum()))
        return rows
