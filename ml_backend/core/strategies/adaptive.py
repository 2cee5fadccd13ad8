"""The adaptive default: uniform audit picks, then positives or the boundary as the ratings call for."""

from __future__ import annotations

import math

import numpy as np

from .base import Pool, Strategy, UniformDraw, top_k


class AdaptiveStrategy(Strategy):
    """EXPERIMENTAL draft (tuning in progress)."""

    requires_head = False

    def __init__(self, uniform_share: float = 0.2, balance: float = 0.5, flat_spread: float = 1e-3):
        if not 0.0 <= uniform_share <= 1.0:
            raise ValueError(f"uniform_share must lie in [0, 1], got {uniform_share}")
        if not 0.0 < balance <= 1.0:
            raise ValueError(f"balance must lie in (0, 1], got {balance}")
        self.uniform_share = uniform_share
        self.balance = balance
        self.flat_spread = flat_spread

    @classmethod
    def from_params(cls, settings) -> "AdaptiveStrategy":
        return cls() if settings is None else cls(uniform_share=settings.uniform_share)

    def n_uniform(self, k: int) -> int:
        """Uniform picks in a batch of k: round(uniform_share * k), at least one when the share is > 0."""
        if k <= 0 or self.uniform_share <= 0:
            return 0
        return min(k, max(1, math.floor(self.uniform_share * k + 0.5)))

    def select(self, head, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        available = pool.available.copy()
        candidates = np.flatnonzero(available)
        k = min(k, len(candidates))
        logits = head.decision_function(pool.vectors) if head is not None and k > 0 else None
        signal = logits is not None and float(np.std(logits[candidates])) > self.flat_spread
        n_uniform = k if not signal else self.n_uniform(k)
        uniform = rng.choice(candidates, size=n_uniform, replace=False) if n_uniform else np.empty(0, np.int64)
        self.last_draw = UniformDraw(uniform.astype(np.int64), len(candidates))
        rest = k - n_uniform
        if rest <= 0:
            return uniform.astype(np.int64)
        available[uniform] = False
        rated_positive = float(np.sum(pool.targets > 0))
        share_positive = rated_positive / len(pool.targets) if len(pool.targets) else 0.0
        n_top = min(rest, math.ceil(rest * max(0.0, self.balance - share_positive) / self.balance - 1e-9))
        top = top_k(logits, available, n_top, rng) if n_top else np.empty(0, np.int64)
        available[top] = False
        boundary = top_k(-np.abs(logits), available, rest - n_top, rng) if rest > n_top else np.empty(0, np.int64)
        return np.concatenate([top, boundary, uniform]).astype(np.int64)
