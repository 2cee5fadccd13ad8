"""The refit recipe: background negatives and their floor, the prior, the prompt head; and the
head's hand-written gradient against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml_backend.core.errors import ConfigError
from ml_backend.core.head import LinearHead, Prior
from ml_backend.core.params import HeadParams, ProjectParams
from ml_backend.core.training import cross_fitted_scores, fit_head, prompt_prior, refit, sample_background
from tests.conftest import cosine, planted_vectors, unit_rows

DIM = 16


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    X, w_star, y = planted_vectors(rng, 300, DIM)
    return rng, X, w_star, y


@pytest.fixture
def rare():
    """A pool with a rare planted concept (about 5% positives along w_star)."""
    rng = np.random.default_rng(11)
    w_star = unit_rows(rng.normal(size=(1, DIM)))[0]
    X = unit_rows(rng.normal(size=(600, DIM)) + 1.6 * w_star * (rng.random((600, 1)) < 0.05))
    y = np.where(X @ w_star > 0.6, 1.0, -1.0)
    return rng, X, y, w_star


@pytest.mark.parametrize("n_rated, n_background, weight, floor", [
    (10, 50, 0.1, 2.0), (30, 200, 0.5, 2.0), (5, 5, 1.0, 2.0),
    (1, 100, 0.1, 2.0), (30, 100, 0.1, 2.0), (30, 100, 0.5, 0.0), (5, 100, 1.0, 8.0),
])
def test_background_weighs_the_larger_of_the_share_and_the_floor(data, n_rated, n_background, weight, floor):
    """fit_head equals a plain weighted fit where each background row weighs max(weight * n_ratings, floor) / m."""
    _, X, _, y = data
    params = HeadParams(background_weight=weight, background_min_weight=floor)
    X_rated, y_rated, background = X[:n_rated], y[:n_rated], X[100 : 100 + n_background]
    recipe = fit_head(X_rated, y_rated, params, background=background)

    each = max(weight * n_rated, floor) / n_background
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


@pytest.mark.parametrize("floor", [2.0, 5.0])
def test_zero_background_weight_ignores_the_background_whatever_the_floor(data, floor):
    _, X, _, y = data
    with_bg = fit_head(X[:40], y[:40], HeadParams(background_weight=0.0, background_min_weight=floor),
                       background=X[100:200])
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
    """With the prior role, fit_head equals LinearHead.fit with the same prior and HeadParams."""
    _, X, w_star, y = data
    prior = Prior.calibrate(w_star, X, positive_rate=0.1)
    params = HeadParams(l2=3.0, prior_l2=0.5, prompt_role="prior")
    recipe = fit_head(X[:20], y[:20], params, prior=prior)
    manual = LinearHead(l2=3.0, prior_l2=0.5).fit(X[:20], y[:20], prior=prior)
    np.testing.assert_allclose(recipe.coef_, manual.coef_, atol=1e-6)
    assert recipe.prior_weight_ == pytest.approx(manual.prior_weight_, abs=1e-6)


@pytest.mark.parametrize("weight", [1.0, 5.0])
def test_the_example_role_counts_the_prompt_as_weighted_positive_ratings(data, weight):
    """With the example role, fit_head equals a prior-free fit with the prompt's unit embedding
    appended as a +1 rating of weight `prompt_weight`."""
    _, X, w_star, y = data
    prior = Prior.calibrate(w_star + 0.5 * unit_rows(np.ones((1, DIM)))[0], X, positive_rate=0.1)
    recipe = fit_head(X[:20], y[:20], HeadParams(l2=3.0, prompt_weight=weight), prior=prior)
    manual = LinearHead(l2=3.0).fit(np.vstack([X[:20], prior.direction[None, :]]), np.append(y[:20], 1.0),
                                    sample_weight=np.append(np.ones(20), weight))
    np.testing.assert_allclose(recipe.coef_, manual.coef_, atol=1e-5)
    assert recipe.intercept_ == pytest.approx(manual.intercept_, abs=1e-5)
    assert not hasattr(recipe, "prior_weight_")


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


def test_one_example_with_the_floor_does_not_call_the_whole_pool_positive(rare):
    """The 'more like this' start: one positive and the background. Without a floor the
    background weighs 0.1 ratings and nearly every item scores above 0.5, so the head's
    boundary says nothing; with the floor only items like the example do."""
    _, X, y, w_star = rare
    example = X[np.argmax(X @ w_star)][None]
    background = X[np.random.default_rng(0).choice(len(X), 200, replace=False)]
    no_floor = fit_head(example, np.ones(1), HeadParams(background_min_weight=0.0), background=background)
    floored = fit_head(example, np.ones(1), HeadParams(background_min_weight=2.0), background=background)
    assert (no_floor.decision_function(X) > 0).mean() > 0.9
    assert (floored.decision_function(X) > 0).mean() < 0.2
    # W still points at the example: it scores above 90% of the pool
    assert floored.decision_function(example)[0] > np.quantile(floored.decision_function(X), 0.9)


def test_floor_is_validated_and_settable_per_project():
    assert HeadParams().background_min_weight == 2.0
    assert ProjectParams.parse({"head": {"background_min_weight": 0}}).head.background_min_weight == 0.0
    with pytest.raises(ConfigError, match="background_min_weight"):
        ProjectParams.parse({"head": {"background_min_weight": -1}})


def autograd_fit(X, y, w, prior, l2, prior_l2, max_iter=100):
    """The objective LinearHead.fit minimises, solved with autograd (the pre-benchmark code)."""
    X = np.asarray(X, np.float64)
    center = X.mean(axis=0)
    sigma = float(np.sqrt(((X - center) ** 2).sum(axis=1).mean()))
    Z = torch.from_numpy((X - center) / sigma)
    f = torch.from_numpy(prior.feature(X) if prior is not None else np.zeros(len(y)))
    a0 = prior.scale if prior is not None else 0.0
    t, s = torch.from_numpy((y + 1) / 2), torch.from_numpy(w)
    wv = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor([a0], dtype=torch.float64, requires_grad=prior is not None)
    params = [wv, b] + ([alpha] if prior is not None else [])
    opt = torch.optim.LBFGS(params, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure():
        opt.zero_grad()
        z = Z @ wv + alpha * f + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, t, weight=s, reduction="sum")
        loss = loss + 0.5 * l2 * torch.sum(wv**2) + 0.5 * prior_l2 * torch.sum((alpha - a0) ** 2)
        loss.backward()
        return loss

    opt.step(closure)
    return wv.detach().numpy() / sigma, float(b.item()), float(alpha.item())


@pytest.mark.parametrize("with_prior", [False, True])
def test_hand_written_gradient_matches_autograd(rare, with_prior):
    rng, X, y, w_star = rare
    targets = y[:80] * rng.uniform(0.3, 1.0, 80)  # soft ratings
    weights = rng.uniform(0.1, 2.0, 80)
    prior = Prior.calibrate(w_star, X) if with_prior else None
    head = LinearHead(l2=0.7, prior_l2=1.3).fit(X[:80], targets, sample_weight=weights, prior=prior)
    w, b, alpha = autograd_fit(X[:80], targets, weights, prior, 0.7, 1.3)
    expected = w + (alpha * prior.direction / prior.spread if with_prior else 0)
    np.testing.assert_allclose(head.coef_, expected, atol=1e-5)
    if with_prior:
        assert head.prior_weight_ == pytest.approx(alpha / prior.scale, abs=1e-5)


def test_cross_fitted_scores_come_from_heads_that_did_not_learn_the_row():
    # 40 ratings in 64 dimensions: enough room for a head to learn one row by heart
    X, w_star, y = planted_vectors(np.random.default_rng(3), 300, 64)
    rated = np.arange(40)
    ratings = y[rated].copy()
    flipped = int(np.argmin(X[rated] @ w_star))  # the clearest negative, rated +1
    ratings[flipped] = 1.0
    unrated = np.ones(len(X), dtype=bool)
    unrated[rated] = False
    params = HeadParams(l2=0.01)
    full = refit(X[rated], ratings, X, unrated, params, np.random.default_rng(0))
    held = cross_fitted_scores(X[rated], ratings, X, unrated, params, np.random.default_rng(1), init=full)
    again = cross_fitted_scores(X[rated], ratings, X, unrated, params, np.random.default_rng(1), init=full)
    trained = full.ranking_scores(X[rated])
    assert held.shape == (40,) and np.array_equal(held, again)
    assert held[flipped] < 0.5 < trained[flipped]  # its own rating alone lifted it
    others = np.arange(40) != flipped
    assert held[others][y[rated][others] > 0].mean() > held[others][y[rated][others] < 0].mean()  # still the concept


def test_a_single_rating_with_nothing_else_to_learn_from_is_left_uninformative(data):
    _, X, _, _ = data
    held = cross_fitted_scores(X[:1], np.ones(1), X[:1], np.zeros(1, dtype=bool), HeadParams(),
                               np.random.default_rng(0))
    assert held.tolist() == [0.5]
