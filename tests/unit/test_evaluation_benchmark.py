"""The evaluation benchmark's bookkeeping (no data, no embeddings)."""

from __future__ import annotations

import numpy as np
import pytest

import benchmarks.evaluation as evaluation
from benchmarks.ev_report import QUANTITIES, checkpoint_band, coverage_interval, coverage_table


def run(task: str, covered: list[bool]) -> dict:
    """A run whose every quantity's interval [0, 1] covers the truth (0.5) or misses it (2.0), one checkpoint per flag."""
    points = []
    for i, hit in enumerate(covered):
        estimate = {"value": 0.5, "low": 0.0, "high": 1.0}
        points.append({"labels": 10 * (i + 1), "default": {q: estimate for q in QUANTITIES},
                       "truth": {q: 0.5 if hit else 2.0 for q in QUANTITIES}})
    return {"task": task, "points": points}


def test_coverage_comes_with_an_interval_that_resamples_whole_runs():
    rng = np.random.default_rng(0)
    runs = [run("t", list(rng.random(10) < 0.9)) for _ in range(40)]
    table = coverage_table(runs)["precision"]["not_exact"]
    low, high = table["interval"]
    assert low < table["coverage"] < high and 0.8 < low and high < 1.0
    assert coverage_table(runs)["precision"]["not_exact"]["interval"] == [low, high]  # reproducible


def test_runs_that_cover_all_or_nothing_give_a_wider_interval_than_independent_checkpoints():
    """Checkpoints of one run share its audit sample: their hits are not independent trials."""
    rng = np.random.default_rng(1)
    clustered = [[bool(rng.random() < 0.9)] * 10 for _ in range(40)]
    independent = [list(rng.random(10) < 0.9) for _ in range(40)]
    width = [np.diff(coverage_interval(per_run))[0] for per_run in (clustered, independent)]
    assert width[0] > 2 * width[1]
    assert coverage_interval([[True, False]]) is None  # one run: no spread to resample


def test_runs_come_in_task_order_whatever_order_the_workers_finished_in():
    from benchmarks.ev_simulation import in_task_order
    from benchmarks.le_tasks import Task

    a, b = Task("a", "spam", (1,)), Task("b", "spam", (1,), prevalence=0.01)
    finished = [{"task": b.name, "seed": 1}, {"task": a.name, "seed": 1}, {"task": b.name, "seed": 0},
                {"task": a.name, "seed": 0}]
    assert [(r["task"], r["seed"]) for r in in_task_order(finished, [a, b])] == [
        (a.name, 0), (a.name, 1), (b.name, 0), (b.name, 1)]


def test_the_evaluation_benchmark_refuses_the_same_empty_filter(tmp_path, capsys):
    with pytest.raises(SystemExit):
        evaluation.main(["--tasks", "Bag @1% b10 example", "--out", str(tmp_path)])
    assert "matches no task" in capsys.readouterr().err


def test_a_checkpoint_just_outside_the_band_is_noise_one_far_outside_is_not():
    by_checkpoint = {
        "20": {"coverage": 0.96, "n": 50, "width": 0.5},    # 48 of 50: the band's edge is inside its interval
        "50": {"coverage": 0.90, "n": 200, "width": 0.4},   # in the band
        "100": {"coverage": 1.0, "n": 200, "width": 0.3},   # 200 of 200: surely over
        "200": {"coverage": 0.70, "n": 200, "width": 0.2},  # surely under
        "300": {"coverage": None, "n": 0, "width": None},   # nothing estimated there: not a checkpoint
    }
    assert checkpoint_band(by_checkpoint) == (3, 2, 4)


def test_the_share_interval_is_jeffreys_with_its_limits_at_the_ends():
    from benchmarks.intervals import share_interval
    low, high = share_interval(90, 100)
    assert 0.84 < low < 0.86 and 0.94 < high < 0.95
    assert share_interval(0, 20)[0] == 0.0 and share_interval(20, 20)[1] == 1.0


def test_coverage_is_split_by_whether_every_positive_was_already_found():
    """Every quantity, the head's too: once all positives are found the truth sits where the ratings pin it."""
    runs = []
    for seed in range(4):
        r = run("t", [seed % 2 == 0, True])  # first checkpoint: half the runs miss; second: all cover
        r["points"][0]["truth"]["all_found"] = False
        r["points"][1]["truth"]["all_found"] = True
        runs.append(r)
    for quantity, table in coverage_table(runs).items():
        assert table["some_left"] == {"coverage": 0.5, "n": 4} and table["all_found"] == {"coverage": 1.0, "n": 4}
        assert table["by_checkpoint"]["10"]["some_left"] == {"coverage": 0.5, "n": 4}
        assert table["by_checkpoint"]["20"]["some_left"] == {"coverage": None, "n": 0}
