"""Our refit recipe around `LinearHead`: which data a refit sees and where W is pulled.

Kept apart from the estimator so the loop and the benchmarks run the same recipe.
"""

from __future__ import annotations

import numpy as np

from .head import LinearHead, Prior
from .params import HeadParams


def prompt_prior(text_embedding: np.ndarray, pool_sample: np.ndarray, params: HeadParams) -> Prior:
    """The zero-shot score of a prompt, calibrated on a pool sample (m, d); `.head()` is the zero-shot head."""
    return Prior.calibrate(text_embedding, pool_sample, positive_rate=params.prior_positive_rate)


def sample_background(candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to `n` rows drawn without replacement from `candidates` (1-d index array)."""
    if n <= 0 or len(candidates) == 0:
        return np.empty(0, dtype=np.int64)
    return rng.choice(candidates, size=min(n, len(candidates)), replace=False)


def fit_head(
    X_rated: np.ndarray,
    y_rated: np.ndarray,
    params: HeadParams,
    prior: Prior | None = None,
    background: np.ndarray | None = None,
    init: LinearHead | None = None,
) -> LinearHead:
    """Fit a head on rated vectors (n, d) with targets (n,) in [-1, 1].

    - With a prompt (`prior`) and `prompt_role` "example" (the default), the prompt's
      embedding is one more positive, weighing `prompt_weight` ratings: a head never lacks
      a positive, and the prompt's pull fades as ratings accumulate. With "prior", the
      head starts from the prompt's score and learns how much to keep of it. On the
      label-efficiency benchmark's text tasks the example role needed far fewer labels
      (benchmarks/choices.py, head.prompt_role); on isotropic synthetic data,
      where the prompt points straight at the concept, the prior role keeps the prompt's
      AP better in the first few random-pick refits (tests/unit/test_refit.py).
    - `background` (m, d): unrated pool items added as negatives whose total weight is
      `background_weight` times the number of ratings, but at least `background_min_weight`.
      When positives are rare, a random unrated item is almost surely negative, and these
      give the head the negatives an annotator rating only near-W items never supplies.
      The floor matters for the first refits: with one example rated +1 and a background
      weighing 0.1 ratings, the head calls the whole pool positive and its boundary lies
      far from anything relevant (benchmarks/choices.py, head.background_min_weight).
    """
    X_parts, y_parts, w_parts = [np.asarray(X_rated, np.float32)], [np.asarray(y_rated, np.float64)], [np.ones(len(y_rated))]
    if prior is not None and params.prompt_role == "example":
        X_parts.append(prior.direction.reshape(1, -1).astype(np.float32))
        y_parts.append(np.ones(1))
        w_parts.append(np.full(1, params.prompt_weight))
        prior = None
    if background is not None and len(background) and params.background_weight > 0:
        X_parts.append(np.asarray(background, np.float32))
        y_parts.append(-np.ones(len(background)))
        total = max(params.background_weight * max(len(y_rated), 1), params.background_min_weight)
        w_parts.append(np.full(len(background), total / len(background)))
    head = LinearHead(l2=params.l2, prior_l2=params.prior_l2, max_iter=params.max_iter)
    return head.fit(np.concatenate(X_parts), np.concatenate(y_parts), sample_weight=np.concatenate(w_parts), prior=prior,
                    init=init)


def refit(
    X_rated: np.ndarray,
    y_rated: np.ndarray,
    pool_vectors: np.ndarray,
    unrated: np.ndarray,
    params: HeadParams,
    rng: np.random.Generator,
    prior: Prior | None = None,
    init: LinearHead | None = None,
) -> LinearHead:
    """One refit of the loop, as the backend and the benchmarks both run it.

    X_rated (n, d) / y_rated (n,): every current rating. `pool_vectors` (N, d) and the
    bool mask `unrated` (N,): the rows the background negatives are drawn from (a fresh
    sample of `background_samples` at every refit, by `rng`). `init`: the previous head,
    to start the solver from (same optimum, fewer iterations).
    """
    rows = sample_background(np.flatnonzero(unrated), params.background_samples, rng)
    return fit_head(X_rated, y_rated, params, prior=prior, background=pool_vectors[rows], init=init)


def cross_fitted_scores(
    X_rated: np.ndarray,
    y_rated: np.ndarray,
    pool_vectors: np.ndarray,
    unrated: np.ndarray,
    params: HeadParams,
    rng: np.random.Generator,
    prior: Prior | None = None,
    init: LinearHead | None = None,
    folds: int = 10,
) -> np.ndarray:
    """Each rated row's score (n,) from a head refit (`refit`, same recipe) without its fold's ratings.

    A head ranks the tasks it was trained on by their own labels (a positive rating lifts its
    task above the threshold); where a task would sit without its rating is what an estimate
    stratified by the head's score must use for rated tasks (`core.evaluation.estimate_head`).
    The rows are split at random into `folds` folds (fewer with fewer rows); `init`, the head
    fitted on every rating, starts each solver. A fold whose refit has nothing to learn from
    (no other rating, no prompt, no unrated task) scores 0.5.
    """
    X_rated = np.asarray(X_rated)
    n = len(y_rated)
    scores = np.full(n, 0.5)
    n_folds = min(folds, n)
    if n_folds == 0 or (n_folds == 1 and prior is None and not np.any(unrated)):
        return scores
    fold_of = rng.permutation(n) % n_folds
    for fold in range(n_folds):
        held = fold_of == fold
        head = refit(X_rated[~held], np.asarray(y_rated)[~held], pool_vectors, unrated, params, rng, prior=prior,
                     init=init)
        scores[held] = head.ranking_scores(X_rated[held])
    return scores
