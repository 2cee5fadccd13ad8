"""Tied or flat scores are never ranked by row order: selection, metrics, pre-annotation scores.

A real project's rows are in import order, usually grouped by folder. After a first batch
with no positive, the head is fitted on negatives alone: |w| ~ 1e-6, b ~ -20, and in
float32 every task got the same logit, so selection by "lowest row first" walked the
pool folder by folder. Its logits now differ, but in a direction set by where the solver
started: selection and metrics treat them as tied (`is_flat`).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from benchmarks.le_simulation import average_precision, head_ap
from ml_backend.core.head import is_flat
from ml_backend.core.params import HeadParams
from ml_backend.core.strategies import STRATEGIES, Pool, make_strategy
from ml_backend.core.training import fit_head, sample_background
from tests.conftest import unit_rows

CLASSES, PER_CLASS, DIM, K = 5, 60, 16, 10


@pytest.fixture(scope="module")
def imported_by_class():
    """A pool imported class by class (rows 0-59 class 0, 60-119 class 1, ...) and a head
    fitted on ten negatives (two per class) and the background: no positive yet."""
    rng = np.random.default_rng(0)
    centres = unit_rows(rng.normal(size=(CLASSES, DIM)))
    X = unit_rows(np.repeat(centres, PER_CLASS, axis=0) + 0.3 * rng.normal(size=(CLASSES * PER_CLASS, DIM)))
    rated = np.array([c * PER_CLASS + i for c in range(CLASSES) for i in (7, 31)])
    available = np.ones(len(X), dtype=bool)
    available[rated] = False
    background = sample_background(np.flatnonzero(available), 200, np.random.default_rng(1))
    head = fit_head(X[rated], -np.ones(len(rated)), HeadParams(), background=X[background])
    return Pool(X, available), head


def test_the_negatives_only_head_is_flat_but_its_logits_are_not_rounded_together(imported_by_class):
    pool, head = imported_by_class
    logits = head.decision_function(pool.vectors)
    assert np.ptp(logits) < 1e-3  # no signal: every task is about as (un)likely
    assert len(np.unique(logits)) > len(logits) // 2  # float32 + b ~ -20 made them all equal


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_no_strategy_selects_in_import_order_after_a_negatives_only_refit(imported_by_class, name):
    pool, head = imported_by_class
    first_rows = np.flatnonzero(pool.available)[:K].tolist()
    batches = [make_strategy(name).select(head, pool, K, np.random.default_rng(seed)) for seed in range(30)]
    assert all(sorted(rows.tolist()) != first_rows for rows in batches)
    from_first_class = np.mean([np.mean(rows < PER_CLASS) for rows in batches])
    assert from_first_class < 0.5, f"{name}: {from_first_class:.0%} of picks from the first imported folder"


def test_average_precision_counts_tied_scores_as_one_group_whatever_their_order():
    y = np.array([True, False, False, True, False, False, False, True])
    flat = np.zeros(len(y))
    assert average_precision(y, flat) == pytest.approx(y.mean())
    assert average_precision(y[::-1], flat) == pytest.approx(y.mean())  # not the rows' order


def test_average_precision_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.2
    scores = np.round(rng.normal(size=400) + y, 1)  # many ties
    assert average_precision(y, scores) == pytest.approx(average_precision_score(y, scores), abs=1e-12)


def test_pre_annotation_scores_keep_the_order_of_tiny_probabilities(imported_by_class):
    """The negatives-only head's probabilities (~1e-9) still differ where the logits do."""
    pool, head = imported_by_class
    logits = head.decision_function(pool.vectors)
    probabilities = head.predict_proba(pool.vectors)
    assert probabilities.max() < 1e-4
    i, j = np.argmin(logits), np.argmax(logits)
    assert probabilities[i] < probabilities[j]


def test_a_negatives_only_head_scores_the_base_rate_wherever_its_solver_started(imported_by_class):
    """Its tiny direction depends on the solver's start (a refit starts from the previous head),
    not on the ratings: the metric must not credit or blame a strategy for it."""
    pool, head = imported_by_class
    X = pool.vectors
    rated = np.flatnonzero(~pool.available)
    y = np.arange(len(X)) < PER_CLASS  # the first imported class is the concept
    from_zero = fit_head(X[rated], -np.ones(len(rated)), HeadParams(max_iter=5))
    from_other = fit_head(X[rated], -np.ones(len(rated)), HeadParams(max_iter=5), init=head)
    raw = [average_precision(y, h.decision_function(X)) for h in (head, from_zero, from_other)]
    assert max(raw) - min(raw) > 0.01  # the artefact the metric removes
    for h in (head, from_zero, from_other):
        logits = h.decision_function(X)
        assert is_flat(logits)
        assert head_ap(y, logits) == pytest.approx(y.mean())


def test_ranking_scores_tie_a_flat_head_and_keep_any_other_heads_probabilities(imported_by_class):
    pool, flat_head = imported_by_class
    X = pool.vectors
    tied = flat_head.ranking_scores(X)
    assert len(np.unique(tied)) == 1 and tied[0] < 1e-4
    y = np.where(np.arange(len(X)) < PER_CLASS, 1.0, -1.0)
    head = fit_head(X[::7], y[::7], HeadParams())
    logits = head.decision_function(X)
    assert not is_flat(logits)
    np.testing.assert_array_equal(head.ranking_scores(X), head.predict_proba(X).astype(np.float64))
    assert head_ap(y > 0, logits) == average_precision(y > 0, logits)


def test_is_flat_at_the_spread_that_selection_uses():
    assert is_flat(np.array([-20.0, -20.0 + 1e-6]))
    assert not is_flat(np.array([-1.0, 1.0]))
    assert is_flat(np.empty(0))
