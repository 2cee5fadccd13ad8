"""When can the team stop labeling? Two suggestions, each with its reason.

- **Target recall reached**: the labeling has found at least `target_recall` of the
  pool's positives with probability >= `confidence` (from `core.evaluation.estimate_pool`,
  the audit sample alone). This is the certified rule: the simulation measures how often
  the recall truly reached is below the target when it fires.
- **The head stopped changing**: the current head and the head of `stable_labels` labels
  ago predict the same label (score above 0.5 or not) on the pool, Cohen's kappa >=
  `stable_kappa` ("stabilizing predictions", Bloodgood & Vijay-Shanker 2009). More labels
  then no longer change what the head says, so neither its quality nor its
  pre-annotations; it says nothing about the positives still unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .evaluation import PoolEstimate


@dataclass(frozen=True)
class StopSuggestion:
    """Whether to suggest stopping, which rule says so, and why (one reason per rule that fired)."""

    stop: bool
    target_reached: bool
    head_stable: bool
    reasons: tuple[str, ...]
    recall_reached: float | None
    agreement: float | None


def prediction_agreement(previous: np.ndarray, current: np.ndarray) -> float:
    """Cohen's kappa between two heads' yes/no predictions (n,) bool on the same tasks.

    1.0 when they agree everywhere (also when both say the same thing of every task).
    """
    previous, current = np.asarray(previous, dtype=bool), np.asarray(current, dtype=bool)
    if previous.shape != current.shape:
        raise ValueError(f"predictions {previous.shape} and {current.shape} differ in shape")
    if not len(current):
        return 1.0
    observed = float(np.mean(previous == current))
    p, q = float(np.mean(previous)), float(np.mean(current))
    chance = p * q + (1 - p) * (1 - q)
    if chance >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - chance) / (1.0 - chance)


def target_reached(pool: PoolEstimate | None, confidence: float) -> bool:
    """The certified rule: at least one complete audit draw, and the labeling's recall is at least the
    target with probability >= `confidence`."""
    return pool is not None and pool.audit_draws > 0 and pool.recall_reached >= confidence


def suggest(pool: PoolEstimate | None, agreement: float | None, confidence: float, stable_kappa: float,
            stable_labels: int) -> StopSuggestion:
    """The suggestion from the latest pool estimate and the agreement with the head of `stable_labels` ago.

    Either may be None (no audit sample yet; not that many labels yet).
    """
    target = target_reached(pool, confidence)
    stable = agreement is not None and agreement >= stable_kappa
    reasons = []
    if target:
        reasons.append(
            f"Target recall reached: the labeling has found at least {pool.target_recall:.0%} of the pool's "
            f"positives with probability {pool.recall_reached:.0%} (asked: {confidence:.0%}).")
    if stable:
        reasons.append(
            f"The head stopped changing: over the last {stable_labels} labels its yes/no on the pool agrees with "
            f"kappa {agreement:.3f} (>= {stable_kappa}); more labels no longer change its quality or its "
            "pre-annotations. This says nothing about positives not found yet.")
    return StopSuggestion(target or stable, target, stable, tuple(reasons),
                          pool.recall_reached if pool is not None else None, agreement)
