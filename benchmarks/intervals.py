"""Bootstrap intervals for the benchmarks' reports: how much of a reported number is seed noise."""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.stats

RESAMPLES = 2000


def bootstrap_interval(samples: tuple[np.ndarray, ...], statistic: Callable, confidence: float = 0.9,
                       paired: bool = False) -> list[float] | None:
    """Percentile-bootstrap interval [low, high] of `statistic` over `samples` (SciPy's `bootstrap`, with a
    fixed resampling seed so a report is reproducible); None with fewer than 2 observations."""
    if len(samples[0]) < 2:
        return None
    result = scipy.stats.bootstrap(samples, statistic, paired=paired, vectorized=True, confidence_level=confidence,
                                   method="percentile", n_resamples=RESAMPLES, random_state=np.random.default_rng(0))
    return [round(float(result.confidence_interval.low), 4), round(float(result.confidence_interval.high), 4)]


def share_interval(successes: int, trials: int, confidence: float = 0.9) -> tuple[float, float]:
    """Jeffreys interval of a share from `successes` of `trials` independent trials (Brown, Cai & DasGupta
    2001), with the same limits at 0 and `trials` as theirs."""
    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(scipy.stats.beta.ppf(tail, successes + 0.5, trials - successes + 0.5))
    high = 1.0 if successes == trials else float(scipy.stats.beta.ppf(1 - tail, successes + 0.5,
                                                                      trials - successes + 0.5))
    return low, high
