"""The stopping suggestion (`core.stopping`): each rule on its own, and the target rule on
synthetic pools whose true recall is known at every batch."""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend.core.audit import NOT_SEEN, AuditDraw, AuditSample
from ml_backend.core.evaluation import estimate_pool
from ml_backend.core.stopping import prediction_agreement, suggest

from .test_evaluation_estimators import label_like_the_loop


def test_kappa_is_one_for_the_same_predictions_and_zero_for_unrelated_ones():
    rng = np.random.default_rng(0)
    a = rng.random(5000) < 0.3
    assert prediction_agreement(a, a) == 1.0
    assert abs(prediction_agreement(a, rng.random(5000) < 0.3)) < 0.05
    assert prediction_agreement(np.zeros(4, bool), np.zeros(4, bool)) == 1.0
    with pytest.raises(ValueError):
        prediction_agreement(a, a[:-1])


def test_each_rule_fires_on_its_own_and_says_why():
    _, _, sample = label_like_the_loop(0, batches=30, drawn=2)
    pool = estimate_pool(sample, target_recall=0.5)
    assert pool.recall_reached > 0.9
    both = suggest(pool, agreement=0.995, confidence=0.9, stable_kappa=0.99, stable_labels=100)
    assert both.stop and both.target_reached and both.head_stable and len(both.reasons) == 2
    assert both.reasons[0].startswith("Target recall reached") and "100 labels" in both.reasons[1]
    only_stable = suggest(None, agreement=0.995, confidence=0.9, stable_kappa=0.99, stable_labels=100)
    assert only_stable.stop and not only_stable.target_reached and only_stable.recall_reached is None
    neither = suggest(estimate_pool(sample, target_recall=0.999), agreement=0.9, confidence=0.9, stable_kappa=0.99,
                      stable_labels=100)
    assert not neither.stop and neither.reasons == ()


def test_without_a_complete_draw_the_target_rule_never_fires():
    # every task rated but no draw: the ratings prove recall 1, yet the rule certifies from draws only
    labels = np.array([1.0, 0.0, 1.0])
    pool = estimate_pool(AuditSample(labels, np.array([0, 0, 0]), ()))
    assert pool.recall_reached == 1.0
    assert not suggest(pool, None, 0.9, 0.99, 100).stop


@pytest.mark.parametrize("prevalence", [0.05, 0.15])
def test_when_the_target_rule_fires_the_true_recall_has_reached_the_target_in_at_least_90_percent_of_pools(prevalence):
    reached, fired = [], 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        truth = rng.random(500) < prevalence
        score = truth * 2.0 + rng.normal(size=500)
        labels, seen_at, draws = np.full(500, np.nan), np.full(500, NOT_SEEN, dtype=np.int64), []
        for seq in range(50):  # batches of 10: 2 uniform picks, 8 of the highest scores
            unseen = np.flatnonzero(np.isnan(labels))
            uniform = rng.choice(unseen, 2, replace=False)
            rest = np.setdiff1d(unseen, uniform)
            picked = np.concatenate([uniform, rest[np.argsort(-score[rest])[:8]]])
            draws.append(AuditDraw(seq, uniform, len(unseen)))
            labels[picked], seen_at[picked] = truth[picked], seq + 1
            pool = estimate_pool(AuditSample(labels, seen_at, tuple(draws)), confidence=0.9, target_recall=0.9)
            if suggest(pool, None, 0.9, 0.99, 100).target_reached:
                fired += 1
                reached.append(np.count_nonzero(labels == 1) / truth.sum() >= 0.9)
                break
    assert fired >= 30  # it does fire within 500 of 500 labels on most pools
    assert np.mean(reached) >= 0.9
