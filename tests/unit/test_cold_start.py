"""The cold-start benchmark: random's exact distribution, the loop's stop at the first positive, the report."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import cold_start, le_simulation, le_tasks
from ml_backend.core.params import HeadParams, SelectionParams


@pytest.mark.parametrize("n, m", [(50, 1), (200, 7), (1000, 10)])
def test_one_pick_at_a_time_random_needs_n_plus_1_over_m_plus_1_labels_on_average(n, m):
    exact = cold_start.random_first_positive(n, m, batch=1)
    assert exact["mean"] == pytest.approx((n + 1) / (m + 1), rel=1e-9)


def test_randoms_batch_distribution_matches_a_simulation():
    n, m, batch = 400, 4, 10
    rng = np.random.default_rng(0)
    positives = np.zeros(n, dtype=bool)
    positives[:m] = True
    firsts = []
    for _ in range(20000):
        first_item = int(np.flatnonzero(positives[rng.permutation(n)])[0]) + 1
        firsts.append(batch * -(-first_item // batch))  # the end of the batch holding it
    exact = cold_start.random_first_positive(n, m, batch)
    assert np.mean(firsts) == pytest.approx(exact["mean"], rel=0.02)
    assert np.median(firsts) == exact["median"]
    assert np.quantile(firsts, 0.05) <= exact["q05"] <= np.quantile(firsts, 0.06) + batch
    assert exact["q05"] < exact["median"] < exact["q95"]


def test_survival_is_zero_once_the_negatives_are_used_up():
    assert cold_start.random_survival(10, 3, 7) > 0
    assert cold_start.random_survival(10, 3, 8) == 0.0


def _split(y: np.ndarray, seed: int = 0) -> le_tasks.Split:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(len(y), 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ratings = np.where(y, 1.0, -1.0)
    return le_tasks.Split(X, y, ratings, X, y)


@pytest.mark.parametrize("strategy", ["adaptive", "random"])
def test_the_run_stops_with_the_first_batch_that_holds_a_positive(strategy):
    y = np.zeros(600, dtype=bool)
    y[np.random.default_rng(1).choice(600, 6, replace=False)] = True
    labels = cold_start.labels_to_first_positive(_split(y), strategy, seed=3, cap=600)
    run = le_simulation.simulate(_split(y), strategy, 10, 3, HeadParams(), SelectionParams(), None, None, budget=600)
    first = int(np.argmax(run["found"] > 0))
    assert labels == run["labels"][first]  # the same picks as the full curve, cut at its first positive
    assert labels % 10 == 0


def test_a_pool_without_positives_within_the_cap_counts_as_not_found():
    assert cold_start.labels_to_first_positive(_split(np.zeros(300, dtype=bool)), "random", seed=0, cap=30) is None


def test_the_report_names_strategies_identical_to_random_and_counts_medians_past_the_cap():
    task = cold_start.CONCEPTS[0]
    results = [{"task": task, "seed": s, "pool_size": 1000, "pool_positives": 10,
                "first_positive": {"random": v, "nearest": v, "adaptive": a}}
               for s, (v, a) in enumerate([(50, None), (90, None), (130, 20)])]
    strategies = ["random", "nearest", "adaptive"]
    entries = cold_start.summarise(results, [task], strategies)
    assert entries[0]["strategies"]["adaptive"]["median"] is None  # two of three runs past the cap
    assert entries[0]["strategies"]["random"]["median"] == 90
    report = {"command": "x", "seeds": 3, "concepts": entries, "runtime_seconds": 60, "workers": 2, "cap": 500,
              "strategies": strategies, "default_strategy": "adaptive",
              "overall": {s: cold_start.overall(entries, s, 500) for s in strategies},
              "same_as_random": cold_start.same_as_random(results, strategies)}
    assert report["same_as_random"] == ["nearest"]
    summary = cold_start.summary_block(report)
    assert "`nearest`: the same labels as `random` on every run" in summary
    assert "| >500, 2 past random's 95% |" in summary
    assert "later on 1" in summary
    assert "what any strategy picks until then depends on the pool" in cold_start.markdown(report)


def test_the_concepts_are_every_fashion_class_and_the_mail_concepts_at_one_percent():
    names = [t.concept for t in cold_start.CONCEPTS]
    assert set(le_tasks.FASHION) <= set(names) and "spam" in names
    assert all(t.prevalence == cold_start.PREVALENCE and t.prompt is None for t in cold_start.CONCEPTS)
    assert cold_start._used_by(next(t for t in cold_start.CONCEPTS if t.concept == "Bag")) == "tuned"
    assert cold_start._used_by(next(t for t in cold_start.CONCEPTS if t.concept == "Sneaker")) == "held-out"


def test_a_dataset_of_your_own_runs_every_class_that_can_be_subsampled_to_one_percent(tmp_path):
    from tests.unit.test_own_data import write_dataset

    path = write_dataset(tmp_path / "own.npz")
    report = cold_start.main(["--dataset", str(path), "--seeds", "2", "--workers", "1", "--strategies",
                              "adaptive,random", "--out", str(tmp_path / "out")])
    assert [e["concept"] for e in report["concepts"]] == ["common", "middling", "rare", "scarce"]
    assert all(abs(e["pool_positives"] / e["pool_size"] - 0.01) < 0.001 for e in report["concepts"])
    assert (tmp_path / "out" / "cold_start_own.md").exists() and (tmp_path / "out" / "cold_start_own.png").exists()
    assert "split_at_first_positive" not in report  # no label-efficiency report of this file beside it


def test_a_dataset_too_small_for_one_percent_is_refused_with_why(tmp_path, capsys):
    from tests.unit.test_own_data import write_dataset

    path = write_dataset(tmp_path / "own.npz", pool=300)
    with pytest.raises(SystemExit):
        cold_start.main(["--dataset", str(path), "--out", str(tmp_path / "out")])
    assert "no class can be subsampled to 1%" in capsys.readouterr().err
