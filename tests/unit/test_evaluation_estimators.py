"""The estimators of `core.evaluation` on synthetic pools whose every answer is known.

Each pool is labeled the way the loop labels one: batches of a strategy's picks (here:
the tasks a noisy score ranks highest, the way `nearest` or the adaptive top picks go)
plus uniform draws from the unseen tasks, with the unseen pool shrinking between draws.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import hypergeom
from sklearn.metrics import average_precision_score

from ml_backend.core.audit import NOT_SEEN, AuditDraw, AuditSample, carry_pending
from ml_backend.core.evaluation import (POOL_PRIOR, calibrated_chance, estimate_head, estimate_pool, joint_share,
                                        placed_positives, positives_posterior, region_interval, score_strata)
from ml_backend.core.params import HeadParams
from ml_backend.core.training import cross_fitted_scores, refit


def label_like_the_loop(seed: int, size: int = 600, prevalence: float = 0.08, batches: int = 25, batch: int = 10,
                        drawn: int = 1, signal: float = 1.5):
    """(truth (N,) bool, noisy scores (N,), AuditSample after `batches` batches)."""
    rng = np.random.default_rng(seed)
    truth = rng.random(size) < prevalence
    score = truth * signal + rng.normal(size=size)
    return truth, score, rate_in_batches(rng, truth, score, batches, batch, drawn)


def rate_in_batches(rng: np.random.Generator, truth: np.ndarray, score: np.ndarray, batches: int, batch: int,
                    drawn: int) -> AuditSample:
    """Each batch: `drawn` uniform draws from the unseen tasks, the rest the unseen tasks `score` ranks highest."""
    size = len(truth)
    labels = np.full(size, np.nan)
    seen_at = np.full(size, NOT_SEEN, dtype=np.int64)
    draws = []
    for seq in range(batches):
        unseen = np.flatnonzero(np.isnan(labels))
        if not len(unseen):
            break
        uniform = rng.choice(unseen, size=min(drawn, len(unseen)), replace=False)
        draws.append(AuditDraw(seq, uniform, len(unseen)))
        rest = np.setdiff1d(unseen, uniform)
        picked = np.concatenate([uniform, rest[np.argsort(-score[rest])[: batch - len(uniform)]]])
        labels[picked] = truth[picked]
        seen_at[picked] = seq + 1
    return AuditSample(labels, seen_at, tuple(draws))


def test_the_posterior_is_the_product_of_each_draws_hypergeometric_probability():
    truth, _, sample = label_like_the_loop(0, size=300, prevalence=0.1, batches=15, drawn=3)
    posterior = positives_posterior(sample, prior="flat")
    log_likelihood = np.zeros(len(posterior.values))
    for draw in sample.draws:
        unseen_then = np.count_nonzero(sample.seen_at > draw.seq)
        positives_seen_then = np.count_nonzero((sample.seen_at <= draw.seq) & (sample.labels == 1))
        log_likelihood += hypergeom.logpmf(sample.labels[draw.rows].sum(), unseen_then,
                                           posterior.values - positives_seen_then, len(draw.rows))
    expected = np.exp(log_likelihood - log_likelihood.max())
    np.testing.assert_allclose(posterior.probs, expected / expected.sum(), atol=1e-12)
    assert posterior.values[0] == sample.positives_found
    assert posterior.values[-1] == sample.positives_found + np.count_nonzero(~sample.seen)


def test_without_draws_the_pool_estimate_says_only_what_the_ratings_prove():
    truth, _, labeled = label_like_the_loop(1)
    sample = AuditSample(labeled.labels, labeled.seen_at, ())
    estimate = estimate_pool(sample)
    unseen = np.count_nonzero(~sample.seen)
    assert estimate.audit_draws == 0
    assert estimate.positives.low >= sample.positives_found
    # the prior alone (Beta(1/2, 5) on the unseen share): a minority of the unseen tasks, but far
    # more than the ratings show, and it certifies nothing
    assert estimate.positives.high > sample.positives_found + 0.15 * unseen
    assert estimate.labeling_recall.low < 0.4 and estimate.recall_reached < 0.5


def test_a_fully_labeled_pool_is_known_exactly():
    truth, score, sample = label_like_the_loop(2, size=200, batches=40)
    assert sample.seen.all()
    pool = estimate_pool(sample)
    assert pool.positives.low == pool.positives.high == truth.sum()
    assert pool.labeling_recall.value == 1.0
    head = estimate_head(sample, score, threshold=0.5)
    predicted = score > 0.5
    assert head.precision.low == head.precision.high == pytest.approx((truth & predicted).sum() / predicted.sum())
    assert head.recall.value == pytest.approx((truth & predicted).sum() / truth.sum())
    assert head.average_precision.value == pytest.approx(average_precision_score(truth, score))


@pytest.mark.parametrize("prevalence, drawn, max_width", [(0.2, 1, 0.3), (0.05, 1, 0.2), (0.05, 3, 0.1)])
def test_90_percent_intervals_of_the_positives_cover_the_truth_at_least_about_90_percent_of_the_time(
        prevalence, drawn, max_width):
    covered, widths = [], []
    for seed in range(200):
        truth, _, sample = label_like_the_loop(100 + seed, prevalence=prevalence, drawn=drawn)
        estimate = estimate_pool(sample, confidence=0.9)
        covered.append(estimate.positives.covers(truth.sum()))
        widths.append(estimate.positives.width / np.count_nonzero(~sample.seen))
    # Counts are whole numbers, and when the strategy has found most positives the truth sits near
    # the lower end of the support, where the shortest interval reaches the edge: coverage errs on
    # the high side there (measured 0.95-0.99 here), never far below 90%.
    assert np.mean(covered) >= 0.85
    # and it is not wide by default: far narrower than "any number of the unseen tasks"
    assert np.mean(widths) < max_width


def test_the_labeling_recall_and_the_stopping_probability_follow_the_positives():
    truth, _, sample = label_like_the_loop(3, batches=40, drawn=2)
    estimate = estimate_pool(sample, target_recall=0.5)
    found = sample.positives_found
    assert estimate.labeling_recall.value == pytest.approx(found / estimate.positives.value)
    assert estimate.labeling_recall.low == pytest.approx(found / estimate.positives.high)
    posterior = positives_posterior(sample, prior=POOL_PRIOR)
    assert estimate.recall_reached == pytest.approx(posterior.probs[posterior.values <= 2 * found].sum())
    assert estimate_pool(sample, target_recall=0.99).recall_reached < estimate.recall_reached


def test_head_intervals_cover_its_true_precision_recall_and_average_precision():
    covered = {"precision": [], "recall": [], "average_precision": []}
    for seed in range(60):
        truth, score, sample = label_like_the_loop(500 + seed, prevalence=0.15, batches=30, drawn=3)
        head = 1 / (1 + np.exp(-(score - 1.0)))  # a head's probabilities: a fixed function of the score
        predicted = head > 0.5
        exact = {"precision": (truth & predicted).sum() / predicted.sum(),
                 "recall": (truth & predicted).sum() / truth.sum(),
                 "average_precision": average_precision_score(truth, head)}
        estimate = estimate_head(sample, head, threshold=0.5, samples=300, seed=seed)
        for name in covered:
            covered[name].append(getattr(estimate, name).covers(exact[name]))
    for name, hits in covered.items():
        assert np.mean(hits) >= 0.85, name


@pytest.mark.parametrize("quantity, prevalence, batches, drawn, signal, shift", [
    ("recall", 0.01, 5, 2, 4.0, 2.5), ("average_precision", 0.02, 6, 4, 3.5, 2.0)])
def test_early_on_a_rare_concept_the_head_intervals_hold_the_joint_mode(
        quantity, prevalence, batches, drawn, signal, shift):
    # A strong head on a rare concept, a few batches in: both sides of the threshold still hold
    # unseen tasks, and the most probable joint count is "hardly a positive left below it". The
    # shortest interval of the recall's (AP's) samples cut that off: 0.57 (0.63) of these covered.
    covered, both_uncertain = [], []
    for seed in range(100):
        truth, score, sample = label_like_the_loop(700 + seed, size=3000, prevalence=prevalence, batches=batches,
                                                   drawn=drawn, signal=signal)
        head = 1 / (1 + np.exp(-(score - shift)))
        predicted = head > 0.5
        exact = {"recall": (truth & predicted).sum() / truth.sum(),
                 "average_precision": average_precision_score(truth, head)}[quantity]
        estimate = getattr(estimate_head(sample, head, threshold=0.5, samples=300, seed=seed), quantity)
        both_uncertain.append(np.any(predicted & ~sample.seen) and np.any(~predicted & ~sample.seen))
        if estimate is not None:
            covered.append(estimate.covers(exact))
    assert np.mean(both_uncertain) >= 0.7 and len(covered) >= 30
    assert np.mean(covered) >= 0.85


def test_placed_positives_sum_to_the_count_and_follow_the_heads_odds():
    logits = np.array([3.0, 1.0, 0.0, -2.0, -6.0])
    placed = placed_positives(logits, np.array([0, 1, 2, 5, 7]), slope=0.5)
    assert placed.sum(axis=1) == pytest.approx([0, 1, 2, 5, 5])
    assert np.all(np.diff(placed[1:3], axis=1) < 0)  # a higher score, a likelier positive
    assert placed[3] == pytest.approx(np.ones(5))
    assert placed_positives(logits, np.array([2]), slope=0.0)[0] == pytest.approx(np.full(5, 0.4))  # evenly
    steep = placed_positives(logits, np.array([1]), slope=1.0)[0]
    assert steep[0] > placed[1, 0] and steep[-1] < placed[1, -1]


def label_under_a_calibrated_head(seed: int, size: int = 3000, mean_logit: float = -6.0, spread: float = 2.5,
                                  batches: int = 15, batch: int = 10, drawn: int = 2):
    """(truth, head probabilities, AuditSample): each task is positive with the head's probability; every
    batch `drawn` uniform draws and the head's top unseen tasks, which rates all it calls positive early."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(mean_logit, spread, size)
    truth = rng.random(size) < 1 / (1 + np.exp(-logit))
    return truth, 1 / (1 + np.exp(-logit)), rate_in_batches(rng, truth, logit, batches, batch, drawn)


def test_the_average_precision_puts_a_strong_heads_missed_positives_near_its_threshold():
    # Every task above the threshold is rated; the unseen positives left below it sit mostly just
    # under it, as the head's odds say. Spread evenly over the unseen tasks, they pulled the AP down
    # (mean error -0.09, covered 0.88 of these pools) with intervals a quarter wider.
    errors, widths, covered = {0.0: [], None: []}, {0.0: [], None: []}, []
    for seed in range(60):
        truth, head, sample = label_under_a_calibrated_head(seed)
        assert not np.any((head > 0.5) & ~sample.seen)
        exact = average_precision_score(truth, head)
        for slope in errors:
            options = {} if slope is None else {"placement_slope": slope}
            estimate = estimate_head(sample, head, samples=300, seed=seed, **options).average_precision
            errors[slope].append(estimate.value - exact)
            widths[slope].append(estimate.width)
            if slope is None:
                covered.append(estimate.covers(exact))
    assert abs(np.mean(errors[None])) < 0.6 * abs(np.mean(errors[0.0]))
    assert np.mean(widths[None]) < np.mean(widths[0.0])
    assert np.mean(covered) >= 0.9


def test_a_range_over_the_joint_region_is_a_90_percent_interval_for_a_gaussian_posterior():
    assert joint_share(0.9, 1) == pytest.approx(0.9)
    assert joint_share(0.9, 2) == pytest.approx(0.742, abs=1e-3)
    # the range of x over the densest 74.2% of a 2-d standard normal holds 90% of x
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200_000, 2))
    region = region_interval(points[:, 0], -0.5 * (points ** 2).sum(axis=1), joint_share(0.9, 2))
    assert np.mean((points[:, 0] >= region.low) & (points[:, 0] <= region.high)) == pytest.approx(0.9, abs=0.005)


def test_score_strata_cut_each_side_of_the_threshold_into_bins_of_unseen_tasks():
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05])
    unseen = np.ones(10, dtype=bool)
    strata = score_strata(scores, unseen, 0.5, per_side=2)
    assert strata.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    assert (score_strata(scores, unseen, 0.5, per_side=1) == (scores <= 0.5)).all()


def test_a_draw_that_does_not_match_its_pool_is_refused():
    labels = np.array([1.0, 0.0, np.nan, np.nan])
    seen_at = np.array([1, 1, NOT_SEEN, NOT_SEEN])
    with pytest.raises(ValueError, match="unseen tasks"):
        AuditSample(labels, seen_at, (AuditDraw(0, np.array([0]), 3),))
    with pytest.raises(ValueError, match="not complete"):
        AuditSample(labels, np.array([0, 0, NOT_SEEN, NOT_SEEN]), (AuditDraw(0, np.array([2]), 2),))
    with pytest.raises(ValueError, match="already seen"):
        AuditSample(labels, np.array([0, 1, NOT_SEEN, NOT_SEEN]), (AuditDraw(0, np.array([0]), 3),))
    with pytest.raises(ValueError, match="no label"):
        AuditSample(np.array([np.nan]), np.array([0]))


def test_a_pending_draw_takes_the_place_of_the_selections_own_uniform_picks():
    rows, own = np.array([5, 6, 7, 9]), np.array([9])
    assert carry_pending(rows, own, np.array([2]), 4).tolist() == [2, 5, 6, 7]
    # a pending task the strategy picked too is shown once, and the own draw fills the batch
    assert carry_pending(rows, own, np.array([6]), 4).tolist() == [6, 5, 7, 9]
    assert carry_pending(rows, own, np.array([1, 2, 3, 4, 8]), 4).tolist() == [1, 2, 3, 4]


def test_precision_and_average_precision_wait_for_audit_draws_in_their_score_strata():
    # 20 tasks above the threshold, 20 below; nothing rated but what the draws picked
    scores = np.r_[np.linspace(0.95, 0.55, 20), np.linspace(0.45, 0.05, 20)]
    truth = np.r_[np.ones(20), np.zeros(20)]

    def after(draw_rows):
        labels = np.full(40, np.nan)
        seen_at = np.full(40, NOT_SEEN, dtype=np.int64)
        draws, unseen = [], 40
        for seq, row in enumerate(draw_rows):
            draws.append(AuditDraw(seq, np.array([row]), unseen))
            labels[row], seen_at[row] = truth[row], seq + 1
            unseen -= 1
        return estimate_head(AuditSample(labels, seen_at, tuple(draws)), scores, threshold=0.5, min_stratum_draws=2)

    below_only = after([25, 30, 35])
    assert below_only.fewest_stratum_draws == 0 and below_only.above_threshold_draws == 0
    assert below_only.average_precision is None and below_only.precision is None
    assert below_only.precision_bounds == (0.0, 1.0)  # nothing above the threshold is rated
    one_above = after([25, 30, 3])
    assert one_above.fewest_stratum_draws == 1 and one_above.above_threshold_draws == 1
    assert one_above.average_precision is None and one_above.precision is None
    assert one_above.precision_bounds == (pytest.approx(1 / 20), 1.0)
    assert one_above.recall is not None  # the recall is not withheld (one positive is known)
    above_only = after([3, 8])
    assert above_only.precision is not None and above_only.average_precision is None
    both = after([25, 30, 3, 8])
    assert both.fewest_stratum_draws == 2 and both.above_threshold_draws == 2
    exact = average_precision_score(truth, scores)
    assert both.average_precision is not None and both.average_precision.covers(exact)
    assert both.precision is not None and both.precision.covers(1.0)
    low, high = both.precision_bounds
    assert low == pytest.approx(2 / 20) and high == 1.0 and low <= both.precision.low


def test_precision_needs_no_draw_once_every_task_above_the_threshold_is_rated():
    scores = np.r_[np.linspace(0.95, 0.55, 10), np.linspace(0.45, 0.05, 30)]
    labels = np.full(40, np.nan)
    labels[:10] = [1, 1, 1, 0, 1, 1, 0, 1, 1, 1]  # rated by the strategy, not drawn
    seen_at = np.where(np.isnan(labels), NOT_SEEN, 0).astype(np.int64)
    estimate = estimate_head(AuditSample(labels, seen_at, ()), scores, threshold=0.5)
    assert estimate.above_threshold_draws == 0
    assert estimate.precision is not None and estimate.precision.width == pytest.approx(0.0)
    assert estimate.precision.value == pytest.approx(0.8) and estimate.precision_bounds == (0.8, 0.8)


def test_the_average_precision_needs_no_draw_once_every_task_is_rated():
    rng = np.random.default_rng(3)
    truth = rng.random(60) < 0.2
    head = 1 / (1 + np.exp(-(truth * 1.5 + rng.normal(size=60))))
    sample = AuditSample(truth.astype(np.float64), np.full(60, NOT_SEEN, dtype=np.int64), ())
    estimate = estimate_head(sample, head, threshold=0.5)
    assert estimate.average_precision.width == pytest.approx(0.0)
    assert estimate.average_precision.value == pytest.approx(average_precision_score(truth, head))


def drawn_negatives(sample: AuditSample, m: int, rng: np.random.Generator) -> AuditSample:
    """`sample` plus one more uniform draw of m unseen tasks, every one rated not positive."""
    unseen = np.flatnonzero(~sample.seen)
    rows = rng.choice(unseen, size=m, replace=False)
    seq = max((d.seq for d in sample.draws), default=-1) + 1
    labels, seen_at = sample.labels.copy(), sample.seen_at.copy()
    labels[rows], seen_at[rows] = 0.0, seq + 1
    return AuditSample(labels, seen_at, sample.draws + (AuditDraw(seq, rows, len(unseen)),))


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_the_uniform_picks_to_certify_are_the_fewest_that_reach_the_confidence_when_none_is_positive(seed):
    _, _, sample = label_like_the_loop(seed, size=800, prevalence=0.02, batches=20, drawn=1, signal=3.0)
    estimate = estimate_pool(sample, confidence=0.9, target_recall=0.9)
    m = estimate.uniform_to_certify
    assert estimate.recall_reached < 0.9 and 0 < m <= np.count_nonzero(~sample.seen)
    rng = np.random.default_rng(seed)
    assert estimate_pool(drawn_negatives(sample, m, rng)).recall_reached >= 0.9
    assert estimate_pool(drawn_negatives(sample, m - 1, rng)).recall_reached < 0.9
    # a rare concept whose positives the loop found quickly costs far more to certify than to find
    assert m > 2 * sample.size * 0.02


def test_no_further_picks_are_needed_once_the_target_is_certified():
    _, _, sample = label_like_the_loop(7, size=300, prevalence=0.1, batches=30, drawn=10)
    estimate = estimate_pool(sample, confidence=0.9, target_recall=0.5)
    assert estimate.recall_reached >= 0.9 and estimate.uniform_to_certify == 0


def test_the_picks_to_certify_a_common_concept_come_from_the_log_posterior_not_its_underflowed_tail():
    """Many positives still unseen: P(no unseen positive left) underflows to 0 in the posterior's probabilities,
    yet enough picks without a positive would prove it; the count must not collapse to 'every unseen task'."""
    _, _, sample = label_like_the_loop(8, size=6000, prevalence=0.4, batches=150, drawn=10)
    posterior = positives_posterior(sample, prior=POOL_PRIOR)
    assert posterior.probs[0] == 0.0  # the tail the computation needs has underflowed
    estimate = estimate_pool(sample, confidence=0.9, target_recall=0.9)
    m = estimate.uniform_to_certify
    assert 0 < m < np.count_nonzero(~sample.seen)
    rng = np.random.default_rng(8)
    assert estimate_pool(drawn_negatives(sample, m, rng)).recall_reached >= 0.9
    assert estimate_pool(drawn_negatives(sample, m - 1, rng)).recall_reached < 0.9


def test_on_a_rare_concept_nearly_all_found_the_recall_and_ap_intervals_keep_the_none_left_end():
    # A strong, calibrated head on a ~1% concept, every task above its threshold rated: one uncertain
    # stratum below it, whose most probable count is 'no positive left'. The recall and the AP fall fast
    # with the first few unseen positives and slowly after, so the shortest interval of their samples
    # cut off that end, where the truth is: it held the AP in 0.88 of these pools, the recall in 0.88.
    covered = {"hpd": {"recall": [], "average_precision": []}, None: {"recall": [], "average_precision": []}}
    for seed in range(60):
        truth, head, sample = label_under_a_calibrated_head(seed, mean_logit=-7.0, batches=20)
        exact = {"recall": (truth & (head > 0.5)).sum() / truth.sum(),
                 "average_precision": average_precision_score(truth, head)}
        for kind, hits in covered.items():
            estimate = estimate_head(sample, head, samples=300, seed=seed, **({"nonlinear_kind": kind} if kind else {}))
            for name in hits:
                hits[name].append(getattr(estimate, name).covers(exact[name]))
    for name in ("recall", "average_precision"):
        assert np.mean(covered[None][name]) >= 0.93
        assert np.mean(covered[None][name]) > np.mean(covered["hpd"][name])


def label_with_a_head_that_learns(seed: int, size: int = 1000, dim: int = 64, prevalence: float = 0.3,
                                  batches: int = 12, batch: int = 10, drawn: int = 3):
    """(sample, the current head's scores, the rated tasks' cross-fitted scores, truth): a loop whose head
    is refit on its ratings after every batch, by the project's recipe, and picks its top unseen tasks."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    X = rng.normal(size=(size, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    margin = X @ direction / np.linalg.norm(direction) * np.sqrt(dim) + 0.5 * rng.normal(size=size)
    truth = margin > np.quantile(margin, 1 - prevalence)
    labels = np.full(size, np.nan)
    seen_at = np.full(size, NOT_SEEN, dtype=np.int64)
    draws, rated, head, params = [], [], None, HeadParams()
    for seq in range(batches):
        unseen = np.flatnonzero(np.isnan(labels))
        uniform = rng.choice(unseen, size=drawn, replace=False)
        draws.append(AuditDraw(seq, uniform, len(unseen)))
        rest = np.setdiff1d(unseen, uniform)
        order = rng.permutation(rest) if head is None else rest[np.argsort(-head.ranking_scores(X[rest]))]
        picked = np.concatenate([uniform, order[: batch - drawn]])
        labels[picked] = truth[picked]
        seen_at[picked] = seq + 1
        rated.extend(picked.tolist())
        head = refit(X[rated], np.where(truth[rated], 1.0, -1.0), X, np.isnan(labels), params,
                     np.random.default_rng([seed, seq]), init=head)
    held_out = np.full(size, np.nan)
    held_out[rated] = cross_fitted_scores(X[rated], np.where(truth[rated], 1.0, -1.0), X, np.isnan(labels), params,
                                          np.random.default_rng([seed, 99]), init=head)
    return AuditSample(labels, seen_at, tuple(draws)), head.ranking_scores(X), held_out, truth


def test_rated_tasks_enter_the_strata_where_a_head_not_trained_on_them_puts_them():
    # A head in 64 dimensions fitted on ~100 ratings lifts the positives it was trained on above its
    # threshold: placed by its scores, the audit draws below the threshold hold hardly any positive and
    # the head's recall interval sits above the truth (covered 1 time in 20 here).
    covered = {False: [], True: []}
    for seed in range(20):
        sample, scores, held_out, truth = label_with_a_head_that_learns(seed)
        drawn = sample.drawn_rows
        recall = (truth & (scores > 0.5)).sum() / truth.sum()
        for cross_fitted in covered:
            estimate = estimate_head(sample, scores, samples=300, seed=seed,
                                     held_out_scores=held_out if cross_fitted else None).recall
            covered[cross_fitted].append(estimate.covers(recall))
        assert np.mean(scores[drawn][truth[drawn]] > 0.5) >= np.mean(held_out[drawn][truth[drawn]] > 0.5)
    assert np.mean(covered[False]) < 0.5
    assert np.mean(covered[True]) >= 0.8


def test_calibrated_chance_follows_the_rated_tasks_share_of_positives_by_score():
    held_out = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9, np.nan, np.nan])
    labels = np.array([0, 0, 1, 0, 1, 1, np.nan, np.nan], dtype=float)
    chance = calibrated_chance(np.array([0.05, 0.25, 0.65, 0.95]), held_out, labels)
    assert np.all(np.diff(chance) >= 0) and np.all((chance > 0) & (chance < 1))
    assert chance[0] == pytest.approx(0.5 / 7) and chance[-1] == pytest.approx(6.5 / 7)
    assert calibrated_chance(np.array([0.5]), np.full(2, np.nan), np.array([np.nan, np.nan])) is None


def test_an_interval_on_one_stratum_whose_draws_hold_no_positive_keeps_the_none_left_edge():
    # A rare concept's head that found every positive: all 41 above the threshold and rated, ~4,000 unseen
    # tasks below it and 12 audit draws there, none positive. 'No positive left' is just under the equal
    # tails' 5% there, so without the edge the recall and AP intervals end short of the truth.
    rng = np.random.default_rng(0)
    above, below = 60, 4000
    scores = np.r_[np.linspace(0.99, 0.6, above), rng.uniform(0.01, 0.45, below)]
    truth = np.r_[np.arange(above) < 41, np.zeros(below, dtype=bool)]
    labels = np.full(above + below, np.nan)
    labels[:above] = truth[:above]
    seen_at = np.where(np.isnan(labels), NOT_SEEN, 0).astype(np.int64)
    drawn = rng.choice(np.arange(above, above + below), size=12, replace=False)
    labels[drawn], seen_at[drawn] = 0.0, 1
    sample = AuditSample(labels, seen_at, (AuditDraw(0, drawn, below),))
    exact = {"recall": 1.0, "average_precision": average_precision_score(truth, scores)}
    without = estimate_head(sample, scores, hold_edges=False)
    held = estimate_head(sample, scores, hold_edges=True)
    for name, value in exact.items():
        assert getattr(without, name).high < value - 0.005
        assert getattr(held, name).covers(value) and getattr(held, name).high == pytest.approx(value)
        assert getattr(held, name).low == getattr(without, name).low
    # one positive among the draws: the edge is ruled out, the interval unchanged
    labels[drawn[0]] = 1.0
    hit = AuditSample(labels, seen_at, (AuditDraw(0, drawn, below),))
    assert estimate_head(hit, scores, hold_edges=True).recall == estimate_head(hit, scores, hold_edges=False).recall
