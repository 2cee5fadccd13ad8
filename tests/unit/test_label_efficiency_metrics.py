"""The label-efficiency benchmark's metrics and bookkeeping (no data, no embeddings)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from benchmarks.label_efficiency import _compact_json
from benchmarks.le_report import median_labels
from benchmarks.le_simulation import (average_precision, complete_seeds, f1_at_threshold, labels_to_target, log_area,
                                      simulate)
from benchmarks.le_tasks import FULL_TASKS, HELDOUT_TASKS, QUICK_TASKS, Split, Task
from ml_backend.core.params import HeadParams, SelectionParams


def test_average_precision_matches_sklearn_without_ties():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.1
    scores = rng.normal(size=300) + 1.5 * y
    assert average_precision(y, scores) == pytest.approx(average_precision_score(y, scores), abs=1e-12)


def test_f1_at_the_zero_logit():
    y = np.array([True, True, False, False])
    assert f1_at_threshold(y, np.array([1.0, -1.0, 1.0, -1.0])) == pytest.approx(0.5)
    assert f1_at_threshold(y, np.array([-1.0, -1.0, -1.0, -1.0])) == 0.0


def test_labels_to_target_is_the_first_grid_point_reaching_it():
    labels = np.array([10, 20, 30, 40])
    ap = np.array([0.2, 0.5, 0.45, 0.9])
    assert labels_to_target(labels, ap, 0.5) == 20
    assert labels_to_target(labels, ap, 0.95) is None


def test_log_area_of_a_flat_curve_is_its_height_and_weights_by_log_labels():
    labels = np.array([10, 20, 40, 80])
    assert log_area(labels, np.full(4, 0.7)) == pytest.approx(0.7)
    # AP 0 then 1 from 20 labels on: the first of three equal log2 steps is half-filled
    assert log_area(labels, np.array([0.0, 1.0, 1.0, 1.0])) == pytest.approx((0.5 + 1 + 1) / 3)


def test_median_counts_never_as_infinite():
    assert median_labels([10, 20, None]) == 20
    assert median_labels([10, None, None]) is None


def test_complete_seeds_drops_seeds_that_did_not_finish_every_task():
    a, b = Task("a", "spam", (1,)), Task("b", "spam", (1,), prevalence=0.01)
    results = [{"task": a, "seed": 0}, {"task": b, "seed": 0}, {"task": a, "seed": 1}]
    assert [r["seed"] for r in complete_seeds(results, [a, b])] == [0, 0]


def test_complete_seeds_come_in_task_order_whatever_order_the_workers_finished_in():
    a, b = Task("a", "spam", (1,)), Task("b", "spam", (1,), prevalence=0.01)
    finished = [{"task": b, "seed": 1}, {"task": a, "seed": 1}, {"task": b, "seed": 0}, {"task": a, "seed": 0}]
    assert [(r["task"].concept, r["seed"]) for r in complete_seeds(finished, [a, b])] == [
        ("a", 0), ("a", 1), ("b", 0), ("b", 1)]


def test_protocol_covers_the_issue():
    """Both modalities at natural, 5% and 1% prevalence with batches 10 and 25, plus noisy and soft runs;
    a cold start for every task; a concept of several kinds per modality."""
    clean = [t for t in FULL_TASKS if not t.noise and t.ratings == "hard"]
    for modality in ("text", "image"):
        for prevalence in (None, 0.05, 0.01):
            assert any(t.modality == modality and t.prevalence == prevalence and set(t.batch_sizes) == {10, 25}
                       for t in clean), (modality, prevalence)
        assert any(t.modality == modality and "mixed" in t.concept and t.prevalence == 0.01 for t in clean), modality
    assert any(t.noise == 0.1 for t in FULL_TASKS) and any(t.ratings == "soft" for t in FULL_TASKS)
    assert len({t.name for t in FULL_TASKS}) == len(FULL_TASKS)
    for task in FULL_TASKS + QUICK_TASKS + HELDOUT_TASKS:
        starts = {start for start, _ in task.settings}
        assert "none" in starts and starts & {"prompt", "example"}, task.name
        assert ("prompt" in starts) == (task.prompt is not None)


def test_heldout_concepts_were_never_tuned_on():
    """The held-out set asks whether the defaults carry over: none of its concepts is one of the
    tuned tasks' (same dataset, same positive classes and lists), and it spans both modalities,
    a rare and a common concept, a concept of two kinds and noisy ratings."""
    tuned = {(t.dataset, frozenset(t.positives), frozenset(t.lists)) for t in FULL_TASKS}
    assert all((t.dataset, frozenset(t.positives), frozenset(t.lists)) not in tuned for t in HELDOUT_TASKS)
    assert len({t.name for t in HELDOUT_TASKS}) == len(HELDOUT_TASKS)
    for modality in ("text", "image"):
        mine = [t for t in HELDOUT_TASKS if t.modality == modality]
        assert any(t.prevalence == 0.01 for t in mine) and any(t.prevalence is None for t in mine), modality
        assert any("mixed" in t.concept for t in mine), modality
    assert any(t.noise for t in HELDOUT_TASKS)


def toy_split(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    X[:30] += 3.0  # the concept: 10%
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    y = np.arange(n) < 30
    return Split(X, y, np.where(y, 1.0, -1.0), X, y)


@pytest.mark.parametrize("example", [None, 3])
def test_the_example_item_is_not_counted_as_a_label(example):
    """Labels count annotator ratings: with an example, the first point is still one batch."""
    curve = simulate(toy_split(), "adaptive", 10, 0, HeadParams(), SelectionParams(), None, example, budget=40)
    assert curve["labels"].tolist() == [10, 20, 30, 40]
    assert (curve["start_ap"] is None) == (example is None)


def test_uniform_draws_are_counted_like_any_other_label():
    curve = simulate(toy_split(), "adaptive", 10, 0, HeadParams(), SelectionParams(uniform_share=0.2, prevalence_gain=0), None, 3,
                     budget=40)
    assert curve["uniform"].tolist() == [2, 4, 6, 8] and curve["labels"][-1] == 40


def test_the_benchmark_refits_with_the_backends_own_function():
    """One refit function for the loop and the benchmark (issue 13)."""
    import benchmarks.le_simulation as benchmark
    import ml_backend.core.refit as loop_refit
    import ml_backend.core.select as loop_select
    from ml_backend.core import training

    assert benchmark.refit is training.refit and loop_refit.refit is training.refit
    assert benchmark.make_strategy is loop_select.make_strategy


def test_compact_json_round_trips_and_puts_plain_lists_on_one_line():
    report = {"a": [1, 2.5, None], "b": {"c": [[0.1, 0.2], [0.3]], "s": "U[0.3, 1.0]"}, "e": []}
    text = _compact_json(report)
    assert json.loads(text) == report
    assert '"a": [1, 2.5, null]' in text and '[0.1, 0.2]' in text


def test_a_report_rewritten_from_raw_results_takes_its_prose_from_the_code(tmp_path):
    """--from-raw keeps the measured numbers of the saved run and the current code's descriptions."""
    import pickle

    import benchmarks.label_efficiency as benchmark
    from benchmarks import choices, le_tasks

    task = Task(concept="Bag (easy)", dataset="fashion", positives=(8,), prevalence=0.1, batch_sizes=(10,))
    strategies = ["random", "adaptive"]
    results = []
    for seed in (0, 1):
        curves = {(start, s, 10): simulate(toy_split(seed=seed), s, 10, seed, HeadParams(), SelectionParams(), None,
                                           3 if start == "example" else None, budget=30)
                  for start, _ in task.settings for s in strategies}
        results.append({"task": task, "seed": seed, "probe_ap": 1.0, "zero_shot_ap": None, "pool_size": 300,
                        "pool_positives": 30, "curves": curves, "seconds": 0.1})
    stale = {"starts": {"example": "STALE WORDING"}, "hyperparameters": ["STALE"], "noise_model": "STALE"}
    meta = {"command": "python -m benchmarks.label_efficiency", "quick": True, "evaluate_on": "test",
            "seeds_requested": [0, 1], "budget": 30, "strategies": strategies, "head_params": {}, "selection_params": {},
            "runtime_seconds": 12.5, "workers": 1, "cpu_count": 2, "cpu_seconds_in_jobs": 0.2,
            "load_average_1min_before_after": [0.0, 0.0], "stopped_early": False, **stale}
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"results": results, "tasks": (task,), "strategies": strategies, "meta": meta}))

    report = benchmark.main(["--from-raw", str(raw), "--out", str(tmp_path), "--no-plots"])

    assert report["starts"] == le_tasks.STARTS and report["hyperparameters"] == list(choices.LABEL_EFFICIENCY)
    assert "STALE" not in (tmp_path / "label_efficiency.md").read_text()
    assert "STALE" not in (tmp_path / "label_efficiency.json").read_text()
    assert report["runtime_seconds"] == 12.5 and report["seeds"] == [0, 1]


def test_goal_one_separates_a_setting_below_random_from_seed_noise():
    """Each setting's median area comes with a bootstrap interval over seeds and a paired count against random."""
    from benchmarks.le_report import _goal_lines, goals, median_interval, seeds_above_random

    rng = np.random.default_rng(0)
    noisy = rng.normal(-0.05, 0.5, size=20)  # below 0 by less than the seeds' spread
    surely_below = rng.normal(-0.5, 0.05, size=20)
    random_areas = rng.normal(0.0, 0.1, size=20)

    def entry(name, areas):
        return {"name": name, "seeds": list(range(20)), "prevalence_setting": None, "noise": 0, "ratings": "hard",
                "start": "example", "strategies": {"adaptive": {"normalised_alc": areas.tolist()},
                                                   "random": {"normalised_alc": random_areas.tolist()}}}

    low, high = median_interval(noisy)
    assert low < np.median(noisy) < high and low < 0 < high
    assert median_interval(noisy) == [low, high]  # reproducible
    assert median_interval(surely_below)[1] < 0
    assert seeds_above_random(entry("x", surely_below), "adaptive") == 0
    assert seeds_above_random(entry("x", random_areas + 0.01), "adaptive") == 20

    report = {"goals": goals([entry("noisy", noisy), entry("below", surely_below)], "adaptive")}
    area_line = _goal_lines(report)[0]
    assert "**MISSED**" in area_line and "above random on 0 of 20 seeds" in area_line
    assert "0 of the 2 settings have a 90% bootstrap interval of the median over seeds wholly above 0" in area_line
    assert "1 of those below it wholly below 0" in area_line


@pytest.mark.parametrize("batch, within", [(10, True), (25, False)])
def test_goal_two_says_when_one_batch_already_exceeds_a_fifth_of_randoms_labels(batch, within):
    from benchmarks.le_report import goals

    entry = {"name": "rare", "seeds": [0, 1, 2], "prevalence_setting": 0.01, "noise": 0, "ratings": "hard",
             "start": "example", "batch_size": batch,
             "strategies": {"adaptive": {"normalised_alc": [0.1, 0.2, 0.3], "labels_to_90pct_ap": [batch] * 3},
                            "random": {"normalised_alc": [0.0, 0.0, 0.1], "labels_to_90pct_ap": [60, 62, 70]}}}
    (rare,) = goals([entry], "adaptive")["rare_concepts_one_fifth_of_random_labels"]["tasks"]
    assert rare["met"] is within and rare["first_batch_within_allowance"] is within


def test_a_setting_whose_area_cannot_be_normalised_is_named_and_left_out_not_a_crash():
    """Where random's median area reaches the full-pool probe's, nALC is undefined (None per seed)."""
    from benchmarks.le_report import _goal_lines, goals, recommend, table

    def entry(name, areas):
        values = {s: {"normalised_alc": areas, "labels_to_90pct_ap": [10, 10]} for s in ("adaptive", "random")}
        return {"name": name, "seeds": [0, 1], "prevalence_setting": None, "noise": 0, "ratings": "hard",
                "start": "cold", "batch_size": 10, "probe_ap": [0.5, 0.5], "strategies": values}

    entries = [entry("fine", [0.2, 0.4]), entry("flat", [None, None])]
    report = {"goals": goals(entries, "adaptive")}
    assert [t["task"] for t in report["goals"]["normalised_alc_not_below_random"]["tasks"]] == ["fine"]
    assert report["goals"]["typical_median_nalc_at_least_0.45"]["median_nalc"] == pytest.approx(0.3)
    assert "not normalisable" in _goal_lines(report)[0] and "flat" in _goal_lines(report)[0]
    assert "| flat | 0.500 | 10 | 10 / n/a |" in table(entries, ["adaptive", "random"], "adaptive")
    assert recommend(entries, ["adaptive", "random"])["candidates"][0]["median_nalc"] == pytest.approx(0.3)


@pytest.mark.parametrize("positives, expected", [(3, 3), (40, 5)])
def test_the_truth_oracle_fills_half_a_batch_with_positives_while_it_can(positives, expected):
    from benchmarks.le_simulation import TruthOracle
    from ml_backend.core.strategies import Pool

    truth = np.zeros(200, dtype=bool)
    truth[:positives] = True
    available = np.ones(200, dtype=bool)
    available[0] = False                       # rated already: never picked again
    pool = Pool(np.eye(200, dtype=np.float32), available)
    picks = TruthOracle(truth).select(None, pool, 10, np.random.default_rng(0))
    assert len(picks) == len(set(picks.tolist())) == 10 and available[picks].all()
    assert truth[picks].sum() == min(expected, positives - 1)


def test_the_reference_after_the_first_positive_follows_the_default_until_a_rating_is_positive():
    from benchmarks.le_simulation import TruthAfterFirstPositive
    from ml_backend.core.strategies import Pool, make_strategy

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = np.zeros(300, dtype=bool)
    truth[:30] = True
    available = np.ones(300, dtype=bool)
    available[[100, 101]] = False
    negatives_only = Pool(vectors, available, np.array([100, 101]), np.array([-1.0, -1.0]), np.array([True, False]))
    reference = TruthAfterFirstPositive(truth)
    picks = reference.select(None, negatives_only, 10, np.random.default_rng(5))
    np.testing.assert_array_equal(picks, make_strategy("adaptive").select(None, negatives_only, 10,
                                                                          np.random.default_rng(5)))
    assert reference.last_draw is not None  # the default's uniform picks stay an audit sample
    available[0] = False
    with_positive = Pool(vectors, available, np.array([100, 101, 0]), np.array([-1.0, -1.0, 1.0]),
                         np.array([True, False, False]))
    picks = reference.select(None, with_positive, 10, np.random.default_rng(5))
    assert truth[picks].sum() == 5 and reference.last_draw is None


def test_randoms_extension_goes_on_until_the_target_or_the_end_of_the_pool():
    """Goal 2 compares with random's labels to 90%: measured past the budget, not assumed at a cap."""
    split = toy_split(n=300)
    run = simulate(split, "random", 10, 0, HeadParams(), SelectionParams(), None, None, budget=20, extend_to=300)
    assert run["ext_labels"].tolist() == [120, 220, 300]  # steps of EXTEND_STEP to the end of the pool
    first_good = next(n for n, ap in zip(run["ext_labels"], run["ext_ap"]) if ap >= 0.99 * run["ext_ap"].max())
    until = simulate(split, "random", 10, 0, HeadParams(), SelectionParams(), None, None, budget=20, extend_to=300,
                     extend_until_ap=0.99 * run["ext_ap"].max())
    assert until["ext_labels"][-1] == first_good  # stops with the first point that reaches it, same picks
    np.testing.assert_array_equal(until["ext_ap"], run["ext_ap"][: len(until["ext_ap"])])
    reached = simulate(split, "random", 10, 0, HeadParams(), SelectionParams(), None, None, budget=20, extend_to=300,
                       extend_until_ap=0.0)
    assert len(reached["ext_labels"]) == 0  # reached within the budget: nothing to extend


def test_a_rerun_of_some_tasks_replaces_their_runs_in_the_report(tmp_path):
    from benchmarks.label_efficiency import merge_raw

    def saved(seeds, command, tag, tasks=("A", "B")):
        results = [{"task": Task(concept=name, dataset="fashion", positives=(8,)), "seed": s, "tag": tag}
                   for name in tasks for s in seeds]
        return {"results": results, "tasks": (), "strategies": ["random", "adaptive"],
                "meta": {"command": command, "runtime_seconds": 60.0}}

    merged = merge_raw([saved([0, 1], "full run", "old"), saved([1], "rerun of B", "new", tasks=("B",))])
    tags = {(r["task"].concept, r["seed"]): r["tag"] for r in merged["results"]}
    assert tags == {("A", 0): "old", ("A", 1): "old", ("B", 0): "old", ("B", 1): "new"}
    assert merged["meta"]["command"] == "full run"
    assert merged["meta"]["replaced_by"] == [{"command": "rerun of B", "runtime_seconds": 60.0, "tasks": ["B @natural"]}]
    fewer = saved([1], "rerun without adaptive", "new")
    fewer["strategies"] = ["random"]
    with pytest.raises(ValueError, match="lacks strategies"):
        merge_raw([saved([0], "full run", "old"), fewer])


def test_a_raw_file_written_before_the_split_or_from_python_dash_m_loads_as_today_s_tasks(tmp_path, monkeypatch):
    """Files written before `Task` moved to `benchmarks.le_tasks` name it under `__main__` (`python -m`) or
    `benchmarks.label_efficiency`; loaded, it must be today's Task, so old and new files merge into runs of
    one Task class."""
    import pickle
    import sys

    import benchmarks.label_efficiency as benchmark
    from benchmarks import le_tasks

    task = Task(concept="Bag (easy)", dataset="fashion", positives=(8,))
    for index, module in enumerate(("__main__", "benchmarks.label_efficiency")):
        monkeypatch.setattr(Task, "__module__", module)
        monkeypatch.setattr(sys.modules[module], "Task", Task, raising=False)
        old = pickle.dumps({"results": [{"task": task, "seed": index}], "tasks": (task,), "strategies": ["random"],
                            "meta": {"command": "python -m ...", "runtime_seconds": 1.0}})
        assert module.encode() in old
        monkeypatch.undo()
        (tmp_path / f"old{index}.pkl").write_bytes(old)

    (tmp_path / "new.pkl").write_bytes(pickle.dumps({"results": [{"task": task, "seed": 2}]}))

    for name in ("old0.pkl", "old1.pkl", "new.pkl"):
        loaded = benchmark.load_raw(tmp_path / name)
        assert type(loaded["results"][0]["task"]) is le_tasks.Task and loaded["results"][0]["task"] == task


def test_a_task_filter_that_matches_nothing_is_refused_before_any_run(tmp_path, capsys):
    """A start or batch size in the filter ('... b10 prompt') matched no task and ended in a NaN report."""
    import benchmarks.label_efficiency as benchmark

    with pytest.raises(SystemExit):
        benchmark.main(["--tasks", "spam @1% noisy10% b10 prompt", "--out", str(tmp_path), "--no-plots"])
    assert "matches no task" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())

