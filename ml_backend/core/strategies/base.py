"""The selection interface shared by the backend and the benchmarks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..head import LinearHead


@dataclass(frozen=True)
class Pool:
    """Candidate rows for selection.

    vectors : (n, d) float32, unit-norm rows (the whole store; not copied per query).
    available : (n,) bool, True where a row may be selected (embedded and unseen).
    """

    vectors: np.ndarray
    available: np.ndarray

    def __post_init__(self) -> None:
        if self.available.shape != (self.vectors.shape[0],):
            raise ValueError(f"available mask {self.available.shape} does not match {self.vectors.shape[0]} rows")


class Strategy(ABC):
    """Selects up to k available rows. Hyperparameters go in __init__, logic in `select`."""

    #: False when the strategy works without a fitted head (the loop falls back to such one).
    requires_head = True

    @abstractmethod
    def select(self, head: LinearHead | None, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        """Return up to k distinct row indices of available rows, most wanted first."""


def top_k(priority: np.ndarray, available: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k available rows with the highest `priority`, highest first.

    Exact (a masked argpartition), ties broken by lower row index so results are stable.
    """
    candidates = np.flatnonzero(available)
    k = min(k, len(candidates))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    values = priority[candidates]
    if k < len(candidates):
        # argpartition alone picks arbitrary rows among ties at the k-th value; keep the
        # rows strictly above it, then the lowest-index rows equal to it.
        kth = np.partition(values, len(values) - k)[len(values) - k]
        above = values > kth
        tied = np.flatnonzero(values == kth)[: k - int(above.sum())]
        keep = np.concatenate([np.flatnonzero(above), tied])
        candidates, values = candidates[keep], values[keep]
    order = np.lexsort((candidates, -values))
    return candidates[order]
