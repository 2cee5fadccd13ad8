"""Pluggable selection strategies: pick which unseen tasks annotators rate next."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .adaptive import AdaptiveStrategy
from .base import Pool, Strategy, UniformDraw, top_k
from .hybrid import HybridStrategy
from .simple import NearestStrategy, RandomStrategy, UncertaintyStrategy

if TYPE_CHECKING:
    from ..params import SelectionParams

STRATEGIES: dict[str, type[Strategy]] = {
    "adaptive": AdaptiveStrategy,
    "nearest": NearestStrategy,
    "uncertainty": UncertaintyStrategy,
    "random": RandomStrategy,
    "hybrid": HybridStrategy,
}
DEFAULT_STRATEGY = "adaptive"  # the label-efficiency benchmark's pick (benchmarks/results/label_efficiency.md)


def make_strategy(name: str, settings: "SelectionParams | None" = None) -> Strategy:
    """A registered strategy by name (validated in ProjectParams), with the project's selection settings."""
    return STRATEGIES[name].from_params(settings)


__all__ = ["Pool", "Strategy", "UniformDraw", "top_k", "STRATEGIES", "DEFAULT_STRATEGY", "make_strategy",
           "AdaptiveStrategy", "NearestStrategy", "RandomStrategy", "UncertaintyStrategy", "HybridStrategy"]
