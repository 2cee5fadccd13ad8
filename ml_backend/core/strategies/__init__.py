"""Pluggable selection strategies: pick which unseen tasks annotators rate next."""

from .base import Pool, Strategy, top_k
from .hybrid import HybridStrategy
from .simple import NearestStrategy, RandomStrategy, UncertaintyStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    "nearest": NearestStrategy,
    "uncertainty": UncertaintyStrategy,
    "random": RandomStrategy,
    "hybrid": HybridStrategy,
}
DEFAULT_STRATEGY = "nearest"  # the label-efficiency benchmark's pick (benchmarks/results/label_efficiency.md)


def make_strategy(name: str) -> Strategy:
    """Instantiate a registered strategy by name (names are validated in ProjectParams)."""
    return STRATEGIES[name]()


__all__ = ["Pool", "Strategy", "top_k", "STRATEGIES", "DEFAULT_STRATEGY", "make_strategy",
           "NearestStrategy", "RandomStrategy", "UncertaintyStrategy", "HybridStrategy"]
