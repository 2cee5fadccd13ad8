"""Selection strategies: a shared contract, then what each one picks, on small synthetic pools
(unit-norm vectors and heads built from known weights, so the expected picks can be computed
by brute force)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from ml_backend.core.errors import NotFittedError
from ml_backend.core.head import LinearHead
from ml_backend.core.strategies import (
    DEFAULT_STRATEGY, STRATEGIES, HybridStrategy, NearestStrategy, Pool, RandomStrategy, Strategy,
    UncertaintyStrategy, make_strategy, top_k,
)
from tests.conftest import planted_vectors, unit_rows

DIM = 16
N = 200


@pytest.fixture
def pool_and_head():
    rng = np.random.default_rng(42)
    X, w_star, _ = planted_vectors(rng, N, DIM)
    available = rng.random(N) < 0.7
    head = LinearHead.from_weights(3.0 * w_star, 0.4)
    return Pool(vectors=X, available=available), head


def brute_force_order(priority: np.ndarray, available: np.ndarray) -> np.ndarray:
    """All available rows sorted by priority descending (the fixtures' priorities have no ties)."""
    rows = np.flatnonzero(available)
    return np.array(sorted(rows, key=lambda r: (-priority[r], r)), dtype=np.int64)


class StrategyContract:
    """What every strategy promises. Subclasses set `strategy_class`."""

    strategy_class: type[Strategy]

    def select(self, pool, head, k, seed=0):
        return self.strategy_class().select(head, pool, k, np.random.default_rng(seed))

    @pytest.mark.parametrize("k", [1, 5, 17])
    def test_returns_at_most_k_distinct_available_rows(self, pool_and_head, k):
        pool, head = pool_and_head
        rows = self.select(pool, head, k)
        assert rows.ndim == 1 and np.issubdtype(rows.dtype, np.integer)
        assert len(rows) == k
        assert len(set(rows.tolist())) == len(rows)
        assert pool.available[rows].all()

    def test_deterministic_for_a_fixed_rng(self, pool_and_head):
        pool, head = pool_and_head
        np.testing.assert_array_equal(self.select(pool, head, 10, seed=5), self.select(pool, head, 10, seed=5))

    def test_k_larger_than_the_available_rows_returns_them_all(self, pool_and_head):
        pool, head = pool_and_head
        rows = self.select(pool, head, N * 2)
        assert sorted(rows.tolist()) == np.flatnonzero(pool.available).tolist()

    def test_k_zero_selects_nothing(self, pool_and_head):
        pool, head = pool_and_head
        assert self.select(pool, head, 0).size == 0

    def test_nothing_available_selects_nothing(self, pool_and_head):
        pool, head = pool_and_head
        assert self.select(Pool(pool.vectors, np.zeros(N, dtype=bool)), head, 5).size == 0

    def test_empty_pool_selects_nothing(self, pool_and_head):
        _, head = pool_and_head
        empty = Pool(np.empty((0, DIM), np.float32), np.zeros(0, dtype=bool))
        assert self.select(empty, head, 5).size == 0

    def test_single_available_row(self, pool_and_head):
        pool, head = pool_and_head
        only = np.zeros(N, dtype=bool)
        only[123] = True
        assert self.select(Pool(pool.vectors, only), head, 5).tolist() == [123]


class TestNearest(StrategyContract):
    strategy_class = NearestStrategy

    @pytest.mark.parametrize("k", [1, 10, 50])
    def test_exactly_the_true_top_k_of_the_logit(self, pool_and_head, k):
        pool, head = pool_and_head
        logits = pool.vectors.astype(np.float64) @ head.coef_.astype(np.float64) + head.intercept_
        expected = brute_force_order(logits, pool.available)[:k]
        np.testing.assert_array_equal(self.select(pool, head, k), expected)

    def test_needs_a_head(self, pool_and_head):
        pool, _ = pool_and_head
        with pytest.raises(NotFittedError):
            self.select(pool, None, 5)


class TestUncertainty(StrategyContract):
    strategy_class = UncertaintyStrategy

    @pytest.mark.parametrize("k", [1, 10, 50])
    def test_rows_with_the_smallest_absolute_logit(self, pool_and_head, k):
        pool, head = pool_and_head
        logits = head.decision_function(pool.vectors)
        expected = brute_force_order(-np.abs(logits), pool.available)[:k]
        rows = self.select(pool, head, k)
        np.testing.assert_array_equal(rows, expected)
        others = np.setdiff1d(np.flatnonzero(pool.available), rows)
        assert np.abs(logits[rows]).max() <= np.abs(logits[others]).min()

    def test_needs_a_head(self, pool_and_head):
        pool, _ = pool_and_head
        with pytest.raises(NotFittedError):
            self.select(pool, None, 5)


class TestRandom(StrategyContract):
    strategy_class = RandomStrategy

    def test_works_without_a_head(self, pool_and_head):
        pool, _ = pool_and_head
        assert pool.available[self.select(pool, None, 8)].all()
        assert not RandomStrategy.requires_head

    def test_uniform_over_available_rows(self):
        available = np.zeros(20, dtype=bool)
        available[::2] = True  # rows 0, 2, ..., 18
        pool = Pool(np.zeros((20, 2), np.float32), available)
        rng = np.random.default_rng(0)
        counts = Counter(int(RandomStrategy().select(None, pool, 1, rng)[0]) for _ in range(3000))
        assert set(counts) == set(range(0, 20, 2))
        # 300 expected per row; a binomial sd is ~16, so +-80 is ~5 sd.
        assert all(220 <= c <= 380 for c in counts.values()), counts

    def test_different_seeds_give_different_batches(self, pool_and_head):
        pool, _ = pool_and_head
        assert not np.array_equal(self.select(pool, None, 10, seed=1), self.select(pool, None, 10, seed=2))


@pytest.mark.parametrize(
    "priority, available, k, expected",
    [
        ([0.1, 0.9, 0.5, 0.7], [True, True, True, True], 2, [1, 3]),
        ([0.1, 0.9, 0.5, 0.7], [True, False, True, True], 2, [3, 2]),
        ([0.1, 0.9, 0.5, 0.7], [True, True, True, True], 10, [1, 3, 2, 0]),
        ([1.0, 2.0], [False, False], 1, []),
        ([], [], 3, []),
    ],
)
def test_top_k(priority, available, k, expected):
    rows = top_k(np.array(priority, np.float32), np.array(available, bool), k, np.random.default_rng(0))
    assert rows.tolist() == expected


def test_top_k_breaks_ties_at_random_not_by_row_order():
    """Rows usually sit in import order (grouped by folder): a tie must not fall to the lowest rows."""
    priority = np.random.default_rng(3).integers(0, 3, size=50).astype(np.float32)
    available = np.ones(50, dtype=bool)
    top = np.flatnonzero(priority == priority.max())
    assert len(top) > 10
    picked = [top_k(priority, available, 10, np.random.default_rng(seed)) for seed in range(200)]
    assert all(set(rows.tolist()) <= set(top.tolist()) for rows in picked)  # still exactly the top value
    counts = Counter(r for rows in picked for r in rows.tolist())
    assert set(counts) == set(top.tolist())  # every tied row is picked sometimes
    expected = 200 * 10 / len(top)
    assert all(0.6 * expected <= c <= 1.4 * expected for c in counts.values()), counts


def test_top_k_orders_ties_inside_the_result_at_random():
    priority = np.array([0.2, 0.5, 0.9, 0.5], np.float32)
    orders = {tuple(top_k(priority, np.ones(4, bool), 3, np.random.default_rng(s)).tolist()) for s in range(50)}
    assert orders == {(2, 1, 3), (2, 3, 1)}


def test_top_k_of_a_flat_priority_is_a_uniform_draw():
    """All tied (a head with no signal): every row is equally likely to come first."""
    flat = np.zeros(20, np.float32)
    firsts = Counter(int(top_k(flat, np.ones(20, bool), 3, np.random.default_rng(s))[0]) for s in range(2000))
    assert set(firsts) == set(range(20))
    assert all(60 <= c <= 140 for c in firsts.values()), firsts  # 100 expected, sd ~10


def test_pool_rejects_a_mask_of_the_wrong_length():
    with pytest.raises(ValueError, match="does not match"):
        Pool(np.zeros((3, 2), np.float32), np.ones(4, dtype=bool))


def test_registry():
    assert set(STRATEGIES) == {"adaptive", "nearest", "uncertainty", "random", "hybrid"}
    for name, cls in STRATEGIES.items():
        assert type(make_strategy(name)) is cls
    assert NearestStrategy.requires_head and UncertaintyStrategy.requires_head


class TestHybrid(StrategyContract):
    strategy_class = HybridStrategy


# -- every registered strategy, and the default -------------------------------------------

ALL = sorted(STRATEGIES)


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
    """The default follows the label-efficiency results' fixed rule, or the report says why it stays
    over exactly the strategy the rule picked (`DEFAULT_KEPT_OVER`, `DEFAULT_KEPT_BECAUSE`); and the
    report was made with the default."""
    import json

    from benchmarks.label_efficiency import RESULTS_DIR
    from benchmarks.le_report import DEFAULT_KEPT_BECAUSE, DEFAULT_KEPT_OVER

    report = json.loads((RESULTS_DIR / "label_efficiency.json").read_text())
    recommendation = report["recommendation"]
    if recommendation["choice"] != DEFAULT_STRATEGY:
        assert recommendation["choice"] == DEFAULT_KEPT_OVER
        assert recommendation["default_kept"] == {"strategy": DEFAULT_STRATEGY, "over": DEFAULT_KEPT_OVER,
                                                  "because": DEFAULT_KEPT_BECAUSE}
    assert report["default_strategy"] == DEFAULT_STRATEGY


# -- the hybrid strategy ----------------------------------------------------------------

HYBRID_DIM, HYBRID_N = 8, 120


@pytest.fixture
def hybrid_pool_and_head():
    rng = np.random.default_rng(0)
    X = unit_rows(rng.normal(size=(HYBRID_N, HYBRID_DIM)))
    available = rng.random(HYBRID_N) < 0.75
    w = rng.normal(size=HYBRID_DIM)
    head = LinearHead.from_weights(3.0 * w / np.linalg.norm(w), -0.5)
    return Pool(X, available), head


@pytest.mark.parametrize("top_share, k", [(0.3, 10), (0.5, 7), (0.25, 4), (0.1, 25)])
def test_hybrid_without_exploration_is_top_then_boundary(hybrid_pool_and_head, top_share, k):
    """ceil(top_share * k) highest logits, then the k - that rows closest to the boundary."""
    pool, head = hybrid_pool_and_head
    z = head.decision_function(pool.vectors).astype(np.float64)
    rows = HybridStrategy(top_share=top_share, explore_share=0.0).select(head, pool, k, np.random.default_rng(0))
    n_top = math.ceil(top_share * k)
    top = brute_force_order(z, pool.available).tolist()[:n_top]
    assert rows[:n_top].tolist() == top
    rest = pool.available.copy()
    rest[top] = False
    assert rows[n_top:].tolist() == brute_force_order(-np.abs(z), rest).tolist()[: k - n_top]


@pytest.mark.parametrize("top_share, explore_share, k, expected", [
    (0.2, 0.3, 10, (2, 5, 3)), (0.2, 0.3, 25, (5, 13, 7)), (0.2, 0.3, 1, (1, 0, 0)), (0.2, 0.3, 3, (1, 2, 0)),
    (0.0, 0.5, 4, (0, 2, 2)), (0.5, 0.5, 10, (5, 0, 5)), (1.0, 0.0, 6, (6, 0, 0)), (0.0, 1.0, 6, (0, 0, 6)),
])
def test_hybrid_composition_counts(top_share, explore_share, k, expected):
    assert HybridStrategy(top_share=top_share, explore_share=explore_share).composition(k) == expected


@pytest.mark.parametrize("k", [10, 25])
def test_hybrid_picks_top_then_boundary_then_uniform_random(hybrid_pool_and_head, k):
    pool, head = hybrid_pool_and_head
    z = head.decision_function(pool.vectors).astype(np.float64)
    strategy = HybridStrategy(top_share=0.2, explore_share=0.3)
    n_top, n_boundary, n_random = strategy.composition(k)
    top = brute_force_order(z, pool.available).tolist()[:n_top]
    rest = pool.available.copy()
    rest[top] = False
    boundary = brute_force_order(-np.abs(z), rest).tolist()[:n_boundary]
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


def test_hybrid_extremes_are_nearest_uncertainty_and_random(hybrid_pool_and_head):
    pool, head = hybrid_pool_and_head
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
