"""The selection interface shared by the backend and the benchmarks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..head import LinearHead, is_flat

if TYPE_CHECKING:
    from ..params import SelectionParams


@dataclass(frozen=True)
class Pool:
    """Candidate rows for selection, and what annotators said about rows of it.

    vectors : (n, d) float32, unit-norm rows (the whole store; not copied per query).
    available : (n,) bool, True where a row may be selected (embedded and unseen).
    rated : (m,) int row indices that have a rating (empty: none, or not known), in the order
        they were rated.
    targets : (m,) float ratings of those rows, in [-1, 1] (> 0: a positive).
    uniform : (m,) bool, True where that rating's row was drawn uniformly at random from the
        unseen pool (an unbiased sample: its share of positives estimates the prevalence);
        empty when not known.
    """

    vectors: np.ndarray
    available: np.ndarray
    rated: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    targets: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    uniform: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))

    def __post_init__(self) -> None:
        if self.available.shape != (self.vectors.shape[0],):
            raise ValueError(f"available mask {self.available.shape} does not match {self.vectors.shape[0]} rows")
        if np.shape(self.rated) != np.shape(self.targets):
            raise ValueError(f"{np.size(self.rated)} rated rows but {np.size(self.targets)} targets")
        if np.size(self.uniform) and np.shape(self.uniform) != np.shape(self.rated):
            raise ValueError(f"{np.size(self.rated)} rated rows but {np.size(self.uniform)} uniform flags")

    @property
    def knows_uniform(self) -> bool:
        """Whether `uniform` says, rating by rating, which rows were drawn uniformly (empty: nobody knows)."""
        return np.size(self.uniform) == np.size(self.rated)


@dataclass(frozen=True)
class UniformDraw:
    """The picks of one selection drawn uniformly at random, without replacement, from all available rows.

    rows : the row indices so drawn (a subset of the selection).
    n_available : how many rows they were drawn from, so each available row had
        probability len(rows) / n_available of being drawn, whatever the head says.
    """

    rows: np.ndarray
    n_available: int


class Strategy(ABC):
    """Selects up to k available rows. Hyperparameters go in __init__, logic in `select`.

    After each `select`, `last_draw` tells which picks were uniform draws from all
    available rows (None: the strategy made no such draw), in the manner of
    small-text's `ScoringMixin.last_scores`.
    """

    #: False when the strategy works without a fitted head (the loop falls back to such one).
    requires_head = True
    last_draw: UniformDraw | None = None

    @classmethod
    def from_params(cls, settings: "SelectionParams | None") -> "Strategy":
        """The strategy with a project's selection settings (strategies without settings ignore them)."""
        return cls()

    @abstractmethod
    def select(self, head: LinearHead | None, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        """Return up to k distinct row indices of available rows, most wanted first."""


def informative_logits(head: LinearHead, pool: Pool) -> np.ndarray | None:
    """The head's logits (n,) float64 for the pool's rows, or None when they are flat over the
    available rows (no positive and no prompt yet): then any ranking is noise, and a pick by
    it would follow whatever the noise or the row order favours."""
    logits = head.decision_function(pool.vectors)
    return None if is_flat(logits[pool.available]) else logits


def top_k(priority: np.ndarray, available: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the k available rows with the highest `priority`, highest first.

    Exact (a masked argpartition). Ties are broken at random by `rng`, never by row
    index: rows are usually in import order, often grouped by folder or class, so an
    index tie-break on a flat head would walk the pool in that order.
    """
    candidates = np.flatnonzero(available)
    k = min(k, len(candidates))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    values = np.asarray(priority)[candidates]
    if k < len(candidates):
        # argpartition alone picks arbitrary rows among ties at the k-th value; keep the
        # rows strictly above it, then a random subset of the rows equal to it.
        kth = np.partition(values, len(values) - k)[len(values) - k]
        above = np.flatnonzero(values > kth)
        tied = np.flatnonzero(values == kth)
        keep = np.concatenate([above, rng.choice(tied, size=k - len(above), replace=False)])
        candidates, values = candidates[keep], values[keep]
    order = np.lexsort((rng.random(len(candidates)), -values))
    return candidates[order]
