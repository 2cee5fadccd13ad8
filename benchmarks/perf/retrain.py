"""Retrain: how long one refit takes with 50, 500 and 5,000 ratings.

Times `fit_head`, the project's refit recipe, with what `ActiveLoop.refit_if_needed`
gives it: the rated vectors and targets, the prompt's prior calibrated on a pool
sample, and the default 200 unrated background vectors. Vectors are the clustered
512-d set; targets come from a hidden "relevant" direction (+1 near it, mostly -1
elsewhere, some 0 = unsure), as annotators would give them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ml_backend.core.params import HeadParams
from ml_backend.core.training import fit_head, prompt_prior, sample_background

from .common import clustered_unit_vectors, percentile_ms, query_vectors

POOL = 20_000


@dataclass
class RetrainSettings:
    ratings: tuple[int, ...] = (50, 500, 5000)
    repeats: int = 7


def measure(settings: RetrainSettings) -> list[dict]:
    X = clustered_unit_vectors(POOL, seed=7)
    truth, prompt = query_vectors(7, 2)
    params = HeadParams()
    rng = np.random.default_rng(0)
    scores = X @ truth
    relevant = scores >= np.quantile(scores, 0.95)
    prior = prompt_prior(prompt, X[rng.choice(POOL, 2000, replace=False)], params)
    rows = []
    for count in settings.ratings:
        times, iterations = [], []
        for repeat in range(settings.repeats + 1):  # the first run warms up torch
            rated = rng.choice(POOL, size=count, replace=False)
            y = np.where(relevant[rated], 1.0, -1.0)
            y[rng.random(count) < 0.1] = 0.0
            unrated = np.setdiff1d(np.arange(POOL), rated)
            background = X[sample_background(unrated, params.background_samples, rng)]
            start = time.perf_counter()
            head = fit_head(X[rated], y, params, prior=prior, background=background)
            elapsed = time.perf_counter() - start
            if repeat:
                times.append(elapsed)
                iterations.append(head.n_iter_)
        rows.append({"ratings": count, "p50_ms": percentile_ms(times, 50), "p95_ms": percentile_ms(times, 95),
                     "lbfgs_iterations_median": float(np.median(iterations)), "repeats": settings.repeats})
    return rows
