"""Hybrid selection: positives-first picks, boundary picks and a few random ones, spread out."""

from __future__ import annotations

import math

import numpy as np

from .base import Pool, Strategy, informative_logits, top_k
from .simple import _require, uniform_draw


def spread_out(order: np.ndarray, vectors: np.ndarray, k: int, max_similarity: float | None,
               exclude: np.ndarray | None = None) -> np.ndarray:
    """Up to k rows of `order` (rows by priority) with no two picks more similar than `max_similarity`.

    Walks `order` and keeps a row unless its cosine similarity to a row already kept, or
    to a row of `exclude` (picks made earlier in the same batch), exceeds `max_similarity`.
    If that leaves fewer than k rows, the skipped rows fill the rest in priority order,
    so the result always has min(k, len(order)) rows. `max_similarity` None: the first k.
    """
    k = min(k, len(order))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if max_similarity is None:
        return np.asarray(order[:k], dtype=np.int64)
    kept: list[int] = []
    skipped: list[int] = []
    anchors = [vectors[r] for r in (exclude if exclude is not None else [])]
    for row in order:
        v = vectors[row]
        if anchors and float(np.max(np.stack(anchors) @ v)) > max_similarity:
            skipped.append(int(row))
        else:
            kept.append(int(row))
            anchors.append(v)
            if len(kept) == k:
                break
    result = kept + skipped[: k - len(kept)]
    return np.array(result, dtype=np.int64)


class HybridStrategy(Strategy):
    """Positives first, then the boundary, plus a few random picks to explore.

    Of a batch of k: ceil(`top_share` * k) picks are the highest-scored items (nearest
    to W: on rare concepts they find the positives); floor(`explore_share` * k) are
    drawn uniformly from the rest (on broad or mixed concepts the head's view is
    narrow and a random item is often the most informative one: it finds the other
    kinds of positives that neither W nor the boundary point at); the others are the
    items whose logit is closest to 0 (the boundary). With `max_similarity`, no two
    top or boundary picks of a batch have cosine similarity above it when the pool
    allows (near-duplicate emails or images waste ratings); None turns that off.
    """

    def __init__(self, top_share: float = 0.2, explore_share: float = 0.3, max_similarity: float | None = None,
                 candidates: int = 20):
        if not (0.0 <= top_share <= 1.0 and 0.0 <= explore_share <= 1.0 and top_share + explore_share <= 1.0):
            raise ValueError(f"need shares in [0, 1] summing to <= 1, got top {top_share}, explore {explore_share}")
        self.top_share = top_share
        self.explore_share = explore_share
        self.max_similarity = max_similarity
        self.candidates = candidates  # rows considered per pick when filtering near-duplicates

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
        depth = k * self.candidates if self.max_similarity is not None else k
        none = np.empty(0, dtype=np.int64)
        top = spread_out(top_k(logits, available, max(depth, n_top), rng), pool.vectors, n_top,
                         self.max_similarity) if n_top else none
        available[top] = False
        boundary = spread_out(top_k(-np.abs(logits), available, max(depth, n_boundary), rng), pool.vectors,
                              n_boundary, self.max_similarity, exclude=top) if n_boundary else none
        available[boundary] = False
        explore = rng.permutation(np.flatnonzero(available))[:n_random]
        return np.concatenate([top, boundary, explore]).astype(np.int64)
