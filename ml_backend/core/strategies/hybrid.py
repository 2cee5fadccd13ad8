"""Hybrid selection: positives-first picks, boundary picks and a few random ones."""

from __future__ import annotations

import math

import numpy as np

from .base import Pool, Strategy, informative_logits, top_k
from .simple import _require, uniform_draw


class HybridStrategy(Strategy):
    """Positives first, then the boundary, plus a few random picks to explore.

    Of a batch of k: ceil(`top_share` * k) picks are the highest-scored items (nearest
    to W: on rare concepts they find the positives); floor(`explore_share` * k) are
    drawn uniformly from the rest (on broad or mixed concepts the head's view is
    narrow and a random item is often the most informative one: it finds the other
    kinds of positives that neither W nor the boundary point at); the others are the
    items whose logit is closest to 0 (the boundary).
    """

    def __init__(self, top_share: float = 0.2, explore_share: float = 0.3):
        if not (0.0 <= top_share <= 1.0 and 0.0 <= explore_share <= 1.0 and top_share + explore_share <= 1.0):
            raise ValueError(f"need shares in [0, 1] summing to <= 1, got top {top_share}, explore {explore_share}")
        self.top_share = top_share
        self.explore_share = explore_share

    def composition(self, k: int) -> tuple[int, int, int]:
        """(top, boundary, random) pick counts for a batch of k."""
        n_top = min(k, math.ceil(self.top_share * k - 1e-9))
        n_random = min(k - n_top, math.floor(self.explore_share * k + 1e-9))
        return n_top, k - n_top - n_random, n_random

    def select(self, head, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        logits = informative_logits(_require(head), pool)
        if logits is None:  # a flat head ranks nothing
            return uniform_draw(pool, k, rng)
        available = pool.available.copy()
        k = min(k, int(available.sum()))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        n_top, n_boundary, n_random = self.composition(k)
        top = top_k(logits, available, n_top, rng)
        available[top] = False
        boundary = top_k(-np.abs(logits), available, n_boundary, rng)
        available[boundary] = False
        explore = rng.permutation(np.flatnonzero(available))[:n_random]
        return np.concatenate([top, boundary, explore]).astype(np.int64)
