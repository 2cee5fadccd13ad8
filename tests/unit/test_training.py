"""The refit recipe: background negatives, the prior, the prompt head."""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend.core.head import LinearHead, Prior
from ml_backend.core.params import HeadParams
from ml_backend.core.training import fit_head, prompt_prior, sample_background
from tests.conftest import cosine, planted_vectors

DIM = 16


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    X, w_star, y = planted_vectors(rng, 300, DIM)
    return rng, X, w_star, y


@pytest.mark.parametrize("n_rated, n_background, background_weight", [(10, 50, 0.1), (30, 200, 0.5), (5, 5, 1.0)])
def test_background_negatives_weigh_background_weight_times_the_ratings(data, n_rated, n_background, background_weight):
    """fit_head equals a plain weighted fit where each background row weighs max(bw * n_ratings, floor) / m."""
    _, X, _, y = data
    params = HeadParams(background_weight=background_weight)
    X_rated, y_rated, background = X[:n_rated], y[:n_rated], X[100 : 100 + n_background]
    recipe = fit_head(X_rated, y_rated, params, background=background)

    each = max(background_weight * n_rated, params.background_min_weight) / n_background
    manual = LinearHead(l2=params.l2, prior_l2=params.prior_l2, max_iter=params.max_iter).fit(
        np.concatenate([X_rated, background]),
        np.concatenate([y_rated, -np.ones(n_background)]),
        sample_weight=np.concatenate([np.ones(n_rated), np.full(n_background, each)]),
    )
    np.testing.assert_allclose(recipe.coef_, manual.coef_, atol=1e-5)
    assert recipe.intercept_ == pytest.approx(manual.intercept_, abs=1e-5)


@pytest.mark.parametrize("background", [None, np.empty((0, DIM), np.float32)])
def test_no_background_is_a_plain_fit(data, background):
    _, X, _, y = data
    recipe = fit_head(X[:40], y[:40], HeadParams(), background=background)
    plain = LinearHead().fit(X[:40], y[:40])
    np.testing.assert_allclose(recipe.coef_, plain.coef_, atol=1e-6)


def test_zero_background_weight_ignores_the_background(data):
    _, X, _, y = data
    with_bg = fit_head(X[:40], y[:40], HeadParams(background_weight=0.0), background=X[100:200])
    np.testing.assert_allclose(with_bg.coef_, LinearHead().fit(X[:40], y[:40]).coef_, atol=1e-6)


def test_background_supplies_the_negatives_that_positive_only_ratings_lack(data):
    """Only positives rated: without background every item looks relevant; with it, random items score low."""
    _, X, w_star, _ = data
    order = np.argsort(-(X @ w_star))
    positives, pool = X[order[:10]], X[order[10:]]
    params = HeadParams(background_weight=1.0)
    alone = fit_head(positives, np.ones(10), params)
    with_bg = fit_head(positives, np.ones(10), params, background=pool[::2])
    assert alone.predict_proba(pool).mean() > 0.5
    assert with_bg.predict_proba(pool).mean() < alone.predict_proba(pool).mean()
    assert with_bg.predict_proba(positives).mean() > with_bg.predict_proba(pool).mean()


def test_fit_head_passes_the_prior_and_its_penalty(data):
    """fit_head with a prior equals LinearHead.fit with the same prior and HeadParams."""
    _, X, w_star, y = data
    prior = Prior.calibrate(w_star, X, positive_rate=0.1)
    params = HeadParams(l2=3.0, prior_l2=0.5)
    recipe = fit_head(X[:20], y[:20], params, prior=prior)
    manual = LinearHead(l2=3.0, prior_l2=0.5).fit(X[:20], y[:20], prior=prior)
    np.testing.assert_allclose(recipe.coef_, manual.coef_, atol=1e-6)
    assert recipe.prior_weight_ == pytest.approx(manual.prior_weight_, abs=1e-6)


def test_hyperparameters_reach_the_head(data):
    _, X, _, y = data
    head = fit_head(X[:20], y[:20], HeadParams(l2=2.5, prior_l2=4.0, max_iter=7))
    assert (head.l2, head.prior_l2, head.max_iter) == (2.5, 4.0, 7)
    assert head.n_iter_ <= 7


@pytest.mark.parametrize("rate", [0.1, 0.25])
def test_prompt_prior_is_the_calibrated_text_direction(data, rate):
    _, X, w_star, _ = data
    prior = prompt_prior(w_star.astype(np.float32), X, HeadParams(prior_positive_rate=rate))
    head = prior.head()
    assert cosine(head.coef_, w_star) == pytest.approx(1.0, abs=1e-6)
    assert abs(int((head.predict_proba(X) > 0.5).sum()) - rate * len(X)) <= 1


@pytest.mark.parametrize("n, expected_size", [(0, 0), (-3, 0), (5, 5), (50, 20)])
def test_sample_background_draws_distinct_candidates(n, expected_size):
    candidates = np.arange(100, 120)
    rows = sample_background(candidates, n, np.random.default_rng(0))
    assert len(rows) == expected_size
    assert len(set(rows.tolist())) == expected_size
    assert set(rows.tolist()) <= set(candidates.tolist())


def test_sample_background_of_nothing_is_empty():
    assert sample_background(np.empty(0, dtype=np.int64), 10, np.random.default_rng(0)).size == 0


def test_sample_background_is_deterministic_for_a_seed():
    candidates = np.arange(1000)
    a = sample_background(candidates, 10, np.random.default_rng(3))
    b = sample_background(candidates, 10, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
