"""The refit recipe's background floor (`HeadParams.background_min_weight`) and the hand-written gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml_backend.core.errors import ConfigError
from ml_backend.core.head import LinearHead, Prior
from ml_backend.core.params import HeadParams, ProjectParams
from ml_backend.core.training import fit_head
from tests.conftest import unit_rows

DIM = 12


@pytest.fixture
def data():
    """A pool with a rare planted concept (about 5% positives along w_star)."""
    rng = np.random.default_rng(11)
    w_star = unit_rows(rng.normal(size=(1, DIM)))[0]
    X = unit_rows(rng.normal(size=(600, DIM)) + 1.6 * w_star * (rng.random((600, 1)) < 0.05))
    y = np.where(X @ w_star > 0.6, 1.0, -1.0)
    return rng, X, y, w_star


def manual_fit(X_rated, y_rated, background, each, params):
    return LinearHead(l2=params.l2, prior_l2=params.prior_l2, max_iter=params.max_iter).fit(
        np.concatenate([X_rated, background]), np.concatenate([y_rated, -np.ones(len(background))]),
        sample_weight=np.concatenate([np.ones(len(y_rated)), np.full(len(background), each)]),
    )


@pytest.mark.parametrize("n_rated, weight, floor", [(1, 0.1, 2.0), (10, 0.1, 2.0), (30, 0.1, 2.0), (30, 0.5, 0.0), (5, 1.0, 8.0)])
def test_background_weighs_the_larger_of_the_share_and_the_floor(data, n_rated, weight, floor):
    _, X, y, _ = data
    params = HeadParams(background_weight=weight, background_min_weight=floor)
    background = X[300:400]
    recipe = fit_head(X[:n_rated], y[:n_rated], params, background=background)
    each = max(weight * n_rated, floor) / len(background)
    manual = manual_fit(X[:n_rated], y[:n_rated], background, each, params)
    np.testing.assert_allclose(recipe.coef_, manual.coef_, atol=1e-5)
    assert recipe.intercept_ == pytest.approx(manual.intercept_, abs=1e-5)


def test_zero_background_weight_still_turns_the_background_off(data):
    _, X, y, _ = data
    params = HeadParams(background_weight=0.0, background_min_weight=5.0)
    off = fit_head(X[:20], y[:20], params, background=X[300:500])
    np.testing.assert_allclose(off.coef_, LinearHead().fit(X[:20], y[:20]).coef_, atol=1e-6)


def test_one_example_with_the_floor_does_not_call_the_whole_pool_positive(data):
    """The 'more like this' start: one positive and the background. Without a floor the
    background weighs 0.1 ratings and nearly every item scores above 0.5, so the head's
    boundary says nothing; with the floor only items like the example do."""
    _, X, y, w_star = data
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
def test_hand_written_gradient_matches_autograd(data, with_prior):
    rng, X, y, w_star = data
    targets = y[:80] * rng.uniform(0.3, 1.0, 80)  # soft ratings
    weights = rng.uniform(0.1, 2.0, 80)
    prior = Prior.calibrate(w_star, X) if with_prior else None
    head = LinearHead(l2=0.7, prior_l2=1.3).fit(X[:80], targets, sample_weight=weights, prior=prior)
    w, b, alpha = autograd_fit(X[:80], targets, weights, prior, 0.7, 1.3)
    expected = w + (alpha * prior.direction / prior.spread if with_prior else 0)
    np.testing.assert_allclose(head.coef_, expected, atol=1e-5)
    if with_prior:
        assert head.prior_weight_ == pytest.approx(alpha / prior.scale, abs=1e-5)
