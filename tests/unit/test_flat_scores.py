"""Tied or flat scores are never ranked by row order: selection, metrics, pre-annotation scores.

A real project's rows are in import order, usually grouped by folder. After a first batch
with no positive, the head is fitted on negatives alone: |w| ~ 1e-6, b ~ -20, and in
float32 every task got the same logit, so selection by "lowest row first" walked the
pool folder by folder.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from benchmarks.label_efficiency import average_precision
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
