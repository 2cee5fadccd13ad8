"""The loop's refit (`core.training.refit`): warm start from the previous head, and the prompt floor."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from ml_backend.core.params import HeadParams
from ml_backend.core.training import prompt_prior, refit
from tests.conftest import unit_rows

DIM = 32


@pytest.fixture(scope="module")
def concept():
    """2,000 unit rows, 5% positives around a direction; a prompt that points near it, not on it."""
    rng = np.random.default_rng(7)
    direction = unit_rows(rng.normal(size=(1, DIM)))[0]
    y = rng.random(2000) < 0.05
    X = unit_rows(rng.normal(size=(2000, DIM)) + 2.5 * np.outer(y, direction))
    prompt = unit_rows((direction + 0.8 * unit_rows(rng.normal(size=(1, DIM)))[0])[None, :])[0]
    return X, y, prompt


def test_a_warm_started_refit_reaches_the_same_head_in_fewer_iterations(concept):
    """The objective is convex: starting from the previous head changes the cost, not the result."""
    X, y, _ = concept
    rng = np.random.default_rng(0)
    rated = rng.choice(len(X), 60, replace=False)
    targets = np.where(y, 1.0, -1.0)
    unrated = np.ones(len(X), bool)
    unrated[rated] = False
    params = HeadParams()
    previous = refit(X[rated[:50]], targets[rated[:50]], X, unrated, params, np.random.default_rng(1))
    cold = refit(X[rated], targets[rated], X, unrated, params, np.random.default_rng(2))
    warm = refit(X[rated], targets[rated], X, unrated, params, np.random.default_rng(2), init=previous)
    np.testing.assert_allclose(warm.decision_function(X), cold.decision_function(X), atol=1e-3)
    assert warm.n_iter_ < cold.n_iter_


def refits_below_the_prompt(concept, params: HeadParams) -> list[bool]:
    """After each of 5 batches of 10 (random picks, rated truthfully), over 20 seeds: is the
    refit's AP below the zero-shot prompt's AP - 0.02?"""
    X, y, prompt = concept
    targets = np.where(y, 1.0, -1.0)
    below = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        prior = prompt_prior(prompt, X[rng.choice(len(X), 500, replace=False)], params)
        zero_shot = average_precision_score(y, prior.head().decision_function(X))
        order = rng.permutation(len(X))
        head = None
        for n in range(10, 60, 10):
            rated = order[:n]
            unrated = np.ones(len(X), bool)
            unrated[rated] = False
            head = refit(X[rated], targets[rated], X, unrated, params, rng, prior=prior, init=head)
            ap = average_precision_score(y, head.decision_function(X))
            below.append(ap < zero_shot - 0.02)
    return below


def test_prior_role_refits_keep_the_prompts_average_precision(concept):
    """Goal 4 on synthetic data, for the prior role: no refit of 100 falls below the prompt's AP."""
    below = refits_below_the_prompt(concept, HeadParams(prompt_role="prior"))
    assert not any(below), f"{sum(below)} of {len(below)} refits fell below the prompt's AP"


def test_example_role_refits_mostly_keep_the_prompts_average_precision(concept):
    """The default example role on the same data: the prompt's direction competes with the
    rated negatives' mean, so a few of the first refits dip (measured: 9 of 100, by at most
    0.06); on the benchmark's real text tasks it holds the floor in more seeds than the prior
    role (benchmarks/choices.py, head.prompt_role). Without the prompt as a positive,
    refits on a batch or two of random picks hold no positive and fall far below."""
    assert sum(refits_below_the_prompt(concept, HeadParams())) <= 15
    assert sum(refits_below_the_prompt(concept, HeadParams(prompt_role="example", prompt_weight=1e-6))) > 15
