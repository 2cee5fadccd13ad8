"""LinearHead and Prior: logistic regression with soft targets, sample weights and a prompt prior."""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend.core.errors import NotFittedError
from ml_backend.core.head import LinearHead, Prior
from tests.conftest import cosine, planted_vectors, unit_rows

DIM = 16


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("n", [200, 400])
def test_recovers_a_planted_direction(rng, n):
    X, w_star, y = planted_vectors(rng, n, DIM)
    head = LinearHead().fit(X, y)
    assert cosine(head.coef_, w_star) > 0.9
    assert head.coef_.dtype == np.float32
    accuracy = np.mean((head.decision_function(X) > 0) == (y > 0))
    assert accuracy > 0.9


def test_more_labels_point_closer_to_the_planted_direction(rng):
    X, w_star, y = planted_vectors(rng, 400, DIM)
    few = cosine(LinearHead().fit(X[:20], y[:20]).coef_, w_star)
    many = cosine(LinearHead().fit(X, y).coef_, w_star)
    assert many > few


def test_soft_target_sets_the_probability():
    """BCE with target (y + 1) / 2 is minimised at p = (y + 1) / 2: y = 0.5 -> p = 0.75."""
    X = np.tile(unit_rows(np.ones((1, DIM))), (20, 1))
    head = LinearHead().fit(X, np.full(20, 0.5))
    assert head.predict_proba(X[:1])[0] == pytest.approx(0.75, abs=1e-3)


def test_all_unsure_targets_give_probability_one_half(rng):
    X, _, _ = planted_vectors(rng, 50, DIM)
    head = LinearHead().fit(X, np.zeros(50))
    np.testing.assert_allclose(head.predict_proba(X), 0.5, atol=1e-3)


def test_sample_weights_weigh_conflicting_labels():
    """Two copies of one point, +1 with weight 3 and -1 with weight 1: p = 3 / 4."""
    X = np.tile(unit_rows(np.arange(1, DIM + 1, dtype=float)[None]), (2, 1))
    head = LinearHead().fit(X, np.array([1.0, -1.0]), sample_weight=np.array([3.0, 1.0]))
    assert head.predict_proba(X[:1])[0] == pytest.approx(0.75, abs=1e-3)


def test_labels_of_zero_weight_rows_have_no_influence(rng):
    X, _, y = planted_vectors(rng, 60, DIM)
    weights = np.where(np.arange(60) < 40, 1.0, 0.0)
    flipped = y.copy()
    flipped[40:] *= -1
    a = LinearHead().fit(X, y, sample_weight=weights)
    b = LinearHead().fit(X, flipped, sample_weight=weights)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)
    assert a.intercept_ == pytest.approx(b.intercept_, abs=1e-6)


def prompt_prior(rng, X, direction=None):
    direction = unit_rows(rng.normal(size=(1, DIM)))[0] if direction is None else direction
    return Prior.calibrate(direction, X, positive_rate=0.1)


def test_strong_penalties_keep_the_head_on_the_prior(rng):
    X, _, y = planted_vectors(rng, 200, DIM)
    prior = prompt_prior(rng, X)
    head = LinearHead(l2=1e6, prior_l2=1e6).fit(X, y, prior=prior)
    assert cosine(head.coef_, prior.direction) == pytest.approx(1.0, abs=1e-6)
    assert head.prior_weight_ == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(head.coef_, prior.head().coef_, rtol=1e-3)


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["agree", "contradict"])
def test_the_prior_weight_follows_ratings_that_agree_or_contradict_the_prompt(rng, sign):
    """W frozen by a large l2, the prompt's weight free: it grows or flips with the ratings."""
    X, w_star, y = planted_vectors(rng, 200, DIM)
    prior = prompt_prior(rng, X, direction=w_star)
    head = LinearHead(l2=1e6, prior_l2=1e-3).fit(X, sign * y, prior=prior)
    assert np.sign(head.prior_weight_) == sign and abs(head.prior_weight_) > 1.0
    assert cosine(head.coef_, sign * w_star) == pytest.approx(1.0, abs=1e-6)


def test_enough_ratings_override_an_unrelated_prompt(rng):
    X, w_star, y = planted_vectors(rng, 400, DIM)
    prior = prompt_prior(rng, X)
    with_prior = LinearHead(l2=1.0).fit(X, y, prior=prior)
    without = LinearHead(l2=1.0).fit(X, y)
    assert cosine(with_prior.coef_, w_star) > 0.9
    assert cosine(with_prior.coef_, prior.direction) > cosine(without.coef_, prior.direction)  # a trace remains


def test_without_a_prior_there_is_no_prior_weight(rng):
    X, _, y = planted_vectors(rng, 50, DIM)
    assert not hasattr(LinearHead().fit(X, y), "prior_weight_")


def test_large_l2_without_prior_shrinks_w_to_zero(rng):
    X, _, y = planted_vectors(rng, 100, DIM)
    head = LinearHead(l2=1e6).fit(X, y)
    assert np.linalg.norm(head.coef_) < 1e-3


@pytest.mark.parametrize("method", ["decision_function", "predict_proba"])
def test_unfitted_head_raises_not_fitted(method):
    with pytest.raises(NotFittedError):
        getattr(LinearHead(), method)(np.zeros((2, DIM)))


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.zeros((3, DIM)), np.array([0.0, 1.5, -1.0]), r"\[-1, 1\]"),
        (np.zeros(DIM), np.zeros(DIM), "need X"),
        (np.zeros((0, DIM)), np.zeros(0), "need X"),
        (np.zeros((3, DIM)), np.zeros(2), "need X"),
    ],
)
def test_fit_validates_its_input(X, y, message):
    with pytest.raises(ValueError, match=message):
        LinearHead().fit(X, y)


@pytest.mark.parametrize("positive_rate", [0.05, 0.1, 0.3])
def test_prior_head_calibrates_the_top_share_above_one_half(rng, positive_rate):
    X, w_star, _ = planted_vectors(rng, 1000, DIM)
    prior = Prior.calibrate(5.0 * w_star, X, positive_rate=positive_rate)
    head = prior.head()
    probabilities = head.predict_proba(X)
    positive = probabilities > 0.5
    assert abs(int(positive.sum()) - positive_rate * len(X)) <= 1
    cosines = X @ w_star
    assert cosines[positive].min() > cosines[~positive].max()  # exactly the top share
    assert head.decision_function(X).std() == pytest.approx(prior.scale, rel=1e-3)
    assert cosine(head.coef_, w_star) == pytest.approx(1.0, abs=1e-6)


def test_prior_head_scores_exactly_like_the_prior_feature(rng):
    X, w_star, _ = planted_vectors(rng, 300, DIM)
    prior = Prior.calibrate(w_star, X, positive_rate=0.2, scale=3.0)
    feature = prior.feature(X)
    np.testing.assert_allclose(feature, (X.astype(np.float64) @ w_star - prior.center) / prior.spread, atol=1e-5)
    np.testing.assert_allclose(prior.head().decision_function(X), 3.0 * feature, atol=1e-4)


def test_prior_with_a_degenerate_reference_is_finite_and_points_along_the_direction(rng):
    direction = rng.normal(size=DIM)
    prior = Prior.calibrate(direction, np.tile(unit_rows(direction[None]), (5, 1)))
    head = prior.head()
    assert prior.spread == 1.0
    assert cosine(head.coef_, direction) == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.isfinite(head.coef_)) and np.isfinite(head.intercept_)


def test_from_weights_round_trip(rng):
    X, _, y = planted_vectors(rng, 100, DIM)
    fitted = LinearHead().fit(X, y)
    stored = np.frombuffer(fitted.coef_.tobytes(), dtype=np.float32)  # what the ledger keeps
    rebuilt = LinearHead.from_weights(stored, fitted.intercept_)
    np.testing.assert_array_equal(rebuilt.decision_function(X), fitted.decision_function(X))
    manual = X.astype(np.float32) @ fitted.coef_ + np.float32(fitted.intercept_)
    np.testing.assert_allclose(fitted.decision_function(X), manual, rtol=1e-6)


def test_predict_proba_is_in_unit_interval_and_monotone_in_the_logit():
    head = LinearHead.from_weights(np.array([1.0, 0.0], dtype=np.float32), 0.0)
    logits = np.concatenate([[-1e4, -50.0], np.linspace(-10, 10, 101), [50.0, 1e4]])
    X = np.stack([logits, np.zeros_like(logits)], axis=1)
    with np.errstate(all="raise"):  # no overflow warning at extreme logits
        probabilities = head.predict_proba(X)
    assert probabilities.dtype == np.float32
    assert np.all((probabilities >= 0.0) & (probabilities <= 1.0))
    assert np.all(np.diff(probabilities) >= 0.0)
    assert probabilities[len(logits) // 2] == pytest.approx(0.5)
    assert probabilities[0] == pytest.approx(0.0, abs=1e-6) and probabilities[-1] == pytest.approx(1.0, abs=1e-6)


def test_fit_is_deterministic(rng):
    X, _, y = planted_vectors(rng, 100, DIM)
    a, b = LinearHead().fit(X, y), LinearHead().fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.intercept_ == b.intercept_
