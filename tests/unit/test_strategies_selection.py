"""Each selection strategy picks what it claims, on small synthetic pools.

Self-contained (no shared conftest): unit-norm random vectors and heads built from
known weights, so the expected picks can be computed by brute force.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml_backend.core.errors import NotFittedError
from ml_backend.core.head import LinearHead
from ml_backend.core.strategies import DEFAULT_STRATEGY, STRATEGIES, Pool, make_strategy
from ml_backend.core.strategies.hybrid import HybridStrategy, spread_out
from tests.conftest import unit_rows

DIM = 8
N = 120


@pytest.fixture
def pool_and_head():
    rng = np.random.default_rng(0)
    X = unit_rows(rng.normal(size=(N, DIM)))
    available = rng.random(N) < 0.75
    w = rng.normal(size=DIM)
    head = LinearHead.from_weights(3.0 * w / np.linalg.norm(w), -0.5)
    return Pool(X, available), head


def ranked(priority: np.ndarray, available: np.ndarray) -> list[int]:
    """Available rows by priority, highest first, ties by lower row (brute force)."""
    return sorted(np.flatnonzero(available).tolist(), key=lambda r: (-priority[r], r))


def logits_of(head: LinearHead, pool: Pool) -> np.ndarray:
    return head.decision_function(pool.vectors).astype(np.float64)


# -- the contract every registered strategy keeps ---------------------------------------

ALL = sorted(STRATEGIES)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("k", [1, 7, 25])
def test_at_most_k_distinct_available_rows(pool_and_head, name, k):
    pool, head = pool_and_head
    rows = make_strategy(name).select(head, pool, k, np.random.default_rng(1))
    assert rows.ndim == 1 and np.issubdtype(rows.dtype, np.integer)
    assert len(rows) == k
    assert len(set(rows.tolist())) == k
    assert pool.available[rows].all()


@pytest.mark.parametrize("name", ALL)
def test_deterministic_for_a_seeded_rng(pool_and_head, name):
    pool, head = pool_and_head
    a = make_strategy(name).select(head, pool, 10, np.random.default_rng(3))
    b = make_strategy(name).select(head, pool, 10, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_k_above_the_available_rows_returns_them_all(pool_and_head, name):
    pool, head = pool_and_head
    rows = make_strategy(name).select(head, pool, 10 * N, np.random.default_rng(0))
    assert sorted(rows.tolist()) == np.flatnonzero(pool.available).tolist()


@pytest.mark.parametrize("name", ALL)
def test_empty_pool_nothing_available_and_k_zero(pool_and_head, name):
    pool, head = pool_and_head
    strategy, rng = make_strategy(name), np.random.default_rng(0)
    empty = Pool(np.empty((0, DIM), np.float32), np.zeros(0, dtype=bool))
    assert strategy.select(head, empty, 5, rng).size == 0
    assert strategy.select(head, Pool(pool.vectors, np.zeros(N, dtype=bool)), 5, rng).size == 0
    assert strategy.select(head, pool, 0, rng).size == 0


@pytest.mark.parametrize("name", ALL)
def test_strategies_that_need_a_head_say_so(pool_and_head, name):
    pool, _ = pool_and_head
    strategy = make_strategy(name)
    if strategy.requires_head:
        with pytest.raises(NotFittedError):
            strategy.select(None, pool, 5, np.random.default_rng(0))
    else:
        assert len(strategy.select(None, pool, 5, np.random.default_rng(0))) == 5


def test_default_strategy_is_registered():
    assert DEFAULT_STRATEGY in STRATEGIES


def test_default_strategy_is_the_one_the_committed_benchmark_picked():
    """The default follows the label-efficiency results' fixed rule, and the report was made with it."""
    import json

    from benchmarks.label_efficiency import RESULTS_DIR

    report = json.loads((RESULTS_DIR / "label_efficiency.json").read_text())
    assert report["recommendation"]["choice"] == DEFAULT_STRATEGY
    assert report["default_strategy"] == DEFAULT_STRATEGY


# -- what each one picks ----------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 10, 40])
def test_nearest_picks_the_highest_logits(pool_and_head, k):
    pool, head = pool_and_head
    rows = make_strategy("nearest").select(head, pool, k, np.random.default_rng(0))
    assert rows.tolist() == ranked(logits_of(head, pool), pool.available)[:k]


@pytest.mark.parametrize("k", [1, 10, 40])
def test_uncertainty_picks_the_logits_closest_to_zero(pool_and_head, k):
    pool, head = pool_and_head
    z = logits_of(head, pool)
    rows = make_strategy("uncertainty").select(head, pool, k, np.random.default_rng(0))
    others = np.setdiff1d(np.flatnonzero(pool.available), rows)
    assert np.abs(z[rows]).max() <= np.abs(z[others]).min()


def test_random_ignores_the_head_and_covers_the_available_rows(pool_and_head):
    pool, head = pool_and_head
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        rows = make_strategy("random").select(None, pool, 5, rng)
        seen.update(rows.tolist())
    assert seen == set(np.flatnonzero(pool.available).tolist())


@pytest.mark.parametrize("top_share, k", [(0.3, 10), (0.5, 7), (0.25, 4), (0.1, 25)])
def test_hybrid_without_exploration_is_top_then_boundary(pool_and_head, top_share, k):
    """ceil(top_share * k) highest logits, then the k - that rows closest to the boundary."""
    pool, head = pool_and_head
    z = logits_of(head, pool)
    rows = HybridStrategy(top_share=top_share, explore_share=0.0).select(head, pool, k, np.random.default_rng(0))
    n_top = math.ceil(top_share * k)
    top = ranked(z, pool.available)[:n_top]
    assert rows[:n_top].tolist() == top
    rest = pool.available.copy()
    rest[top] = False
    assert rows[n_top:].tolist() == ranked(-np.abs(z), rest)[: k - n_top]


@pytest.mark.parametrize("top_share, explore_share, k, expected", [
    (0.2, 0.3, 10, (2, 5, 3)), (0.2, 0.3, 25, (5, 13, 7)), (0.2, 0.3, 1, (1, 0, 0)), (0.2, 0.3, 3, (1, 2, 0)),
    (0.0, 0.5, 4, (0, 2, 2)), (0.5, 0.5, 10, (5, 0, 5)), (1.0, 0.0, 6, (6, 0, 0)), (0.0, 1.0, 6, (0, 0, 6)),
])
def test_hybrid_composition_counts(top_share, explore_share, k, expected):
    assert HybridStrategy(top_share=top_share, explore_share=explore_share).composition(k) == expected


@pytest.mark.parametrize("k", [10, 25])
def test_hybrid_picks_top_then_boundary_then_uniform_random(pool_and_head, k):
    pool, head = pool_and_head
    z = logits_of(head, pool)
    strategy = HybridStrategy(top_share=0.2, explore_share=0.3)
    n_top, n_boundary, n_random = strategy.composition(k)
    top = ranked(z, pool.available)[:n_top]
    rest = pool.available.copy()
    rest[top] = False
    boundary = ranked(-np.abs(z), rest)[:n_boundary]
    rest[boundary] = False
    drawn = set()
    for seed in range(300):
        rows = strategy.select(head, pool, k, np.random.default_rng(seed))
        assert rows[:n_top].tolist() == top
        assert rows[n_top:n_top + n_boundary].tolist() == boundary
        explore = rows[n_top + n_boundary:]
        assert len(explore) == n_random and rest[explore].all()
        drawn.update(explore.tolist())
    assert drawn == set(np.flatnonzero(rest).tolist())  # every remaining row can be drawn


def test_hybrid_extremes_are_nearest_uncertainty_and_random(pool_and_head):
    pool, head = pool_and_head
    rng = np.random.default_rng(0)
    near = make_strategy("nearest").select(head, pool, 12, rng)
    unsure = make_strategy("uncertainty").select(head, pool, 12, rng)
    np.testing.assert_array_equal(HybridStrategy(1.0, 0.0).select(head, pool, 12, rng), near)
    assert sorted(HybridStrategy(0.0, 0.0).select(head, pool, 12, rng).tolist()) == sorted(unsure.tolist())
    np.testing.assert_array_equal(HybridStrategy(0.0, 1.0).select(head, pool, 12, np.random.default_rng(4)),
                                  make_strategy("random").select(None, pool, 12, np.random.default_rng(4)))


@pytest.mark.parametrize("top_share, explore_share", [(1.5, 0.0), (-0.1, 0.0), (0.0, 1.2), (0.6, 0.6)])
def test_hybrid_rejects_shares_outside_0_1(top_share, explore_share):
    with pytest.raises(ValueError):
        HybridStrategy(top_share=top_share, explore_share=explore_share)


def duplicated_pool(copies: int = 4, groups: int = 12, noise: float = 0.01, seed: int = 0) -> Pool:
    """`groups` directions, each present `copies` times with tiny jitter (near-duplicates)."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(groups, DIM)))
    X = unit_rows(np.repeat(centres, copies, axis=0) + noise * rng.normal(size=(groups * copies, DIM)))
    return Pool(X, np.ones(len(X), dtype=bool))


@pytest.mark.parametrize("top_share", [0.0, 0.4, 1.0])
def test_hybrid_diversity_keeps_picks_apart_when_the_pool_allows(top_share):
    pool = duplicated_pool()
    head = LinearHead.from_weights(pool.vectors[0] * 4.0, -1.0)
    threshold = 0.95
    rows = HybridStrategy(top_share=top_share, explore_share=0.0, max_similarity=threshold).select(head, pool, 10, np.random.default_rng(0))
    assert len(rows) == 10 and len(set(rows.tolist())) == 10
    sims = pool.vectors[rows] @ pool.vectors[rows].T
    np.fill_diagonal(sims, -1.0)
    assert sims.max() <= threshold
    # Without the diversity term the top picks are copies of the best direction.
    plain = HybridStrategy(top_share=1.0, explore_share=0.0).select(head, pool, 4, np.random.default_rng(0))
    plain_sims = pool.vectors[plain] @ pool.vectors[plain].T
    assert plain_sims[np.triu_indices(4, 1)].min() > threshold


def test_hybrid_diversity_still_fills_the_batch_when_everything_is_a_duplicate():
    X = unit_rows(np.ones((6, DIM)) + 1e-4 * np.random.default_rng(0).normal(size=(6, DIM)))
    pool = Pool(X, np.ones(6, dtype=bool))
    head = LinearHead.from_weights(np.ones(DIM), 0.0)
    rows = HybridStrategy(top_share=0.5, explore_share=0.0, max_similarity=0.5).select(head, pool, 4, np.random.default_rng(0))
    assert len(set(rows.tolist())) == 4


def test_spread_out_skips_near_duplicates_in_priority_order():
    X = unit_rows(np.array([[1, 0], [1, 0.01], [0, 1], [1, 0.02], [-1, 0.1]], dtype=np.float64))
    order = np.array([0, 1, 2, 3, 4])
    assert spread_out(order, X, 3, 0.9).tolist() == [0, 2, 4]
    assert spread_out(order, X, 3, None).tolist() == [0, 1, 2]
    # skipped rows top the batch up, best first
    assert spread_out(order, X, 4, 0.9).tolist() == [0, 2, 4, 1]
    # rows picked earlier in the batch count as neighbours too
    assert spread_out(np.array([1, 2, 3]), X, 2, 0.9, exclude=np.array([0])).tolist() == [2, 1]
    assert spread_out(order, X, 0, 0.9).size == 0
