"""Are the evaluation's intervals honest, and what does the stopping suggestion cost?

Runs the label-efficiency benchmark's simulated annotators (``benchmarks.le_tasks`` and ``le_simulation``:
its tasks, pools, prompts, examples, the backend's strategy and refit) and, after every
batch, the backend's own estimators (``ml_backend.core.evaluation``) on what a project
would hold at that moment: the ratings, and the default strategy's uniform draws with
the number of unseen tasks each was drawn from. The simulation knows every answer, so
each estimate is checked against the truth:

- the estimands (``core.evaluation``): positives in the pool, the labeling's recall
  (positives found / positives in the pool), and the current head's precision and recall
  at its threshold and its average precision on the pool; the truth is what the
  simulated annotator answers for every task;
- at each checkpoint (labels spent), how often the 90% interval covers the truth
  (goal 85-95%; an interval of zero width is the value the ratings prove, not an
  estimate, and is left out) and its mean width;
- the stopping suggestion (``core.stopping``): when each rule first fires, the recall of
  the labeling truly reached then (goal: >= the target in >= 90% of the seeds where it
  fires) and the labels spent, against an oracle that stops as soon as the true recall
  reaches the target; the knee method (Cormack & Grossman 2016) as the literature's
  baseline.

Run (from the repo root, after ``bash benchmarks/setup_data.sh``)::

    python -m benchmarks.evaluation --workers 2              # 20 seeds, the reported run
    python -m benchmarks.evaluation --quick                  # 2 tasks x 2 seeds, a smoke run
    python -m benchmarks.evaluation --task-set heldout       # concepts no constant was chosen on

Tunable constants were chosen on development seeds (``--first-seed 1000``), never on the
reported ones (0-19): see ``benchmarks.choices.EVALUATION``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

from benchmarks import choices  # noqa: E402
from benchmarks import label_efficiency as le  # noqa: E402
from benchmarks import le_simulation, le_tasks  # noqa: E402
from benchmarks.le_tasks import BAG, MIXED, SHIRT, SPAM, Task  # noqa: E402
from benchmarks.intervals import bootstrap_interval, share_interval  # noqa: E402
from benchmarks.markdown import README, replace_block  # noqa: E402
from ml_backend.core.audit import NOT_SEEN, AuditDraw, AuditSample  # noqa: E402
from ml_backend.core.evaluation import (  # noqa: E402
    CROSS_FIT_FOLDS, HOLD_EDGES, MIN_STRATUM_DRAWS, INTERVAL, NONLINEAR_INTERVAL, PLACEMENT_SLOPE, POOL_PRIOR, PRIOR,
    STRATA_PER_SIDE, estimate_head, estimate_pool)
from ml_backend.core.params import EvaluationParams, HeadParams, SelectionParams  # noqa: E402
from ml_backend.core.training import cross_fitted_scores, prompt_prior  # noqa: E402
from ml_backend.core.stopping import prediction_agreement, target_reached  # noqa: E402
from ml_backend.core.strategies import (  # noqa: E402
    DEFAULT_STRATEGY, Pool, RandomStrategy, Strategy, UniformDraw, make_strategy)

RESULTS_DIR = le.RESULTS_DIR
README_BLOCK = "evaluation-summary"
BATCH = 10
BUDGET = 2000  # labels; a run also ends when the pool is exhausted
CHECKPOINTS = (20, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000)
QUANTITIES = ("positives", "labeling_recall", "precision", "recall", "average_precision")
POOL_QUANTITIES = ("positives", "labeling_recall")
COVERAGE_GOAL = (0.85, 0.95)
STOP_GOAL = 0.9  # share of the seeds where a rule fires whose recall then is >= the target
# The simulated 'certify' policy re-estimates at most this many uniform picks after one found a positive
# (every batch would cost ~6x the whole run on common concepts; a later check can only delay the stop).
CERTIFY_RECHECK = 50
LEGEND_TASKS = 12  # tasks named in the stopping plot's legend at most
TASKS: tuple[Task, ...] = (
    Task(**SPAM, batch_sizes=(BATCH,)), Task(**SPAM, prevalence=0.05, batch_sizes=(BATCH,)),
    Task(**SPAM, prevalence=0.01, batch_sizes=(BATCH,)),
    Task(**BAG, batch_sizes=(BATCH,)), Task(**BAG, prevalence=0.05, batch_sizes=(BATCH,)),
    Task(**BAG, prevalence=0.01, batch_sizes=(BATCH,)),
    Task(**SHIRT, prevalence=0.05, batch_sizes=(BATCH,)),
    Task(**MIXED, prevalence=0.01, batch_sizes=(BATCH,)),
)
QUICK_TASKS = (TASKS[1], TASKS[5])
# The label-efficiency benchmark's held-out concepts (no constant below was chosen on them), clean ratings:
# with flipped ratings the team's answers are not one truth to cover.
HELDOUT_TASKS = tuple(replace(t, batch_sizes=(BATCH,)) for t in le_tasks.HELDOUT_TASKS if not t.noise)
# Development concepts (the label-efficiency benchmark's, which no reported run uses) at the tuned set's
# prevalences, for checking an estimator change before it touches a reported seed; written down
# 2026-12-04 before any run on them. Nothing from them is reported in the README.
_ILUG, _FORK, _SA_TALK, _TSHIRT, _TROUSER = (replace(t, batch_sizes=(BATCH,)) for t in le_tasks.DEVELOPMENT_TASKS)
DEVELOPMENT_TASKS = (
    _ILUG, replace(_ILUG, prevalence=0.01), replace(_SA_TALK, prevalence=0.01), replace(_FORK, prevalence=0.05),
    _TSHIRT, replace(_TSHIRT, prevalence=0.01), replace(_TROUSER, prevalence=0.05),
    replace(_TSHIRT, concept="T-shirt+Trouser (mixed)", positives=_TSHIRT.positives + _TROUSER.positives,
            prevalence=0.01),
)
TASK_SETS = {"full": TASKS, "heldout": HELDOUT_TASKS, "development": DEVELOPMENT_TASKS}
# Each set's files (<stem>.json / .md / .png in the results folder) and README block.
TASK_SET_STEMS = {"full": "evaluation", "heldout": "evaluation_heldout", "development": "evaluation_development",
                  "own": "evaluation_own"}
README_BLOCKS = {"full": README_BLOCK, "heldout": "evaluation-heldout"}


# ---------------------------------------------------------------- the strategy under test

# The simulated projects select as a project does by default: `adaptive`, whose uniform
# share of every batch is the audit sample.
STRATEGY = DEFAULT_STRATEGY
SELECTION = SelectionParams()


def strategy_under_test() -> Strategy:
    return make_strategy(STRATEGY, SELECTION)


@dataclass
class Recorder:
    """Follows one simulated project batch by batch, as the backend would see it, and scores
    every estimate against the truth. `on_batch` is called after each batch is rated and refit."""

    X: np.ndarray
    truth: np.ndarray                      # (N,) bool: what the annotator answers (rating > 0)
    evaluation: EvaluationParams
    checkpoints: Sequence[int]
    variants: dict = field(default_factory=dict)   # name -> estimator options, scored side by side
    budget: int = BUDGET
    audit_rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    labels: np.ndarray = field(init=False)
    seen_at: np.ndarray = field(init=False)
    draws: list = field(default_factory=list)
    n_labels: int = 0
    points: list = field(default_factory=list)
    stops: dict = field(default_factory=dict)
    oracle: int | None = None
    found_curve: list = field(default_factory=list)
    _heads: deque = field(default_factory=deque)
    _next_checkpoint: int = 0
    _certify_simulated: bool = False
    _batches: int = 0
    snapshots: list | None = None          # development runs: what the estimators saw at each checkpoint
    ap_curve: list = field(default_factory=list)  # (labels, the head's true AP on the pool) after every batch

    def __post_init__(self) -> None:
        self.labels = np.full(len(self.truth), np.nan)
        self.seen_at = np.full(len(self.truth), NOT_SEEN, dtype=np.int64)
        self.variants = self.variants or {"default": {}}

    def given(self, row: int) -> None:
        """A task rated before the first batch (the example): seen, positive, not a label."""
        self.labels[row] = 1.0
        self.seen_at[row] = 0

    def on_batch(self, rows: np.ndarray, draw: UniformDraw | None, head,
                 held_out: Callable[[], np.ndarray] | None = None) -> None:
        """`draw`: the batch's uniform picks and how many unseen tasks they were drawn from (`Strategy.last_draw`).
        `held_out`: computes the rated tasks' cross-fitted scores, (N,) NaN elsewhere (`held_out_scores`); called
        at checkpoints only."""
        seq = self._batches  # one selection per batch: the draws' clock
        self._batches += 1
        if draw is not None and len(draw.rows):
            self.draws.append(AuditDraw(seq, np.asarray(draw.rows, dtype=np.int64), draw.n_available))
        self.labels[rows] = self.truth[rows].astype(np.float64)
        self.seen_at[rows] = seq + 1
        self.n_labels += len(rows)
        sample = AuditSample(self.labels, self.seen_at, tuple(self.draws))
        found = int(np.count_nonzero(self.labels == 1))
        positives = int(self.truth.sum())
        true_recall = found / positives if positives else 1.0
        self.found_curve.append((self.n_labels, found))
        if self.oracle is None and true_recall >= self.evaluation.target_recall:
            self.oracle = self.n_labels
        scores = head.ranking_scores(self.X) if head is not None else np.zeros(len(self.truth))
        predictions = scores > 0.5
        self.ap_curve.append((self.n_labels, round(le_simulation.average_precision(self.truth, scores), 4)))
        rules = self.variants.get("default", {}).get(
            "stable", ((self.evaluation.stable_labels, self.evaluation.stable_kappa),))
        longest = max(window for window, _ in rules)
        self._heads.append((self.n_labels, predictions))
        while len(self._heads) > 1 and self._heads[1][0] <= self.n_labels - longest:
            self._heads.popleft()
        for window, kappa in rules:
            # the newest head fitted at least `window` labels ago, as the service compares
            earlier = [p for labels, p in self._heads if labels <= self.n_labels - window]
            if earlier:
                self._stop(f"stable {window}/{kappa}", prediction_agreement(earlier[-1], predictions) >= kappa,
                           true_recall)
        self._stop("knee", knee_reached(self.found_curve), true_recall)
        if not self._certify_simulated and any(k.startswith("stable ") for k in self.stops):
            self._certify_simulated = True  # once, from the batch where the head first stopped changing
            self._certify_from_here()
        checkpoint = (self._next_checkpoint < len(self.checkpoints)
                      and self.n_labels >= self.checkpoints[self._next_checkpoint])
        point = {"labels": self.n_labels,
                 "truth": {"positives": positives, "labeling_recall": true_recall, "all_found": found == positives}}
        for name, options in self.variants.items():
            if name != "default" and not checkpoint:
                continue  # variants are compared on their intervals; the stopping rule uses the default
            pool = estimate_pool(sample, self.evaluation.confidence, self.evaluation.target_recall,
                                 prior=options.get("pool_prior", POOL_PRIOR), kind=options.get("kind", INTERVAL))
            if name == "default":
                self._stop("target", target_reached(pool, self.evaluation.confidence), true_recall)
            if checkpoint:
                # unrounded: an interval that pins a value exactly must not miss it by a rounding
                point[name] = {"positives": asdict(pool.positives), "labeling_recall": asdict(pool.labeling_recall),
                               "uniform_to_certify": pool.uniform_to_certify}
        if checkpoint:
            self._next_checkpoint += 1
            if self.snapshots is not None:
                self.snapshots.append({"labels": self.n_labels, "y": np.nan_to_num(self.labels, nan=-1).astype(np.int8),
                                       "seen_at": self.seen_at.copy(), "scores": scores.astype(np.float32),
                                       "draws": [(d.seq, d.rows.copy(), d.n_available) for d in self.draws]})
            if head is not None:
                point["truth"].update(head_truth(self.truth, scores))
                held = held_out() if held_out is not None else None
                if self.snapshots is not None:
                    self.snapshots[-1]["held_out"] = held
                for name, options in self.variants.items():
                    estimate = estimate_head(sample, scores, 0.5, self.evaluation.confidence,
                                             per_side=options.get("per_side", STRATA_PER_SIDE),
                                             prior=options.get("prior", PRIOR), kind=options.get("kind", INTERVAL),
                                             held_out_scores=held)
                    point[name].update({q: asdict(getattr(estimate, q)) if getattr(estimate, q) else None
                                        for q in ("precision", "recall", "average_precision")})
            self.points.append(point)

    def _certify_from_here(self) -> None:
        """The 'certify' rule: once the head stopped changing, the team switches to uniform picks only (the
        `random` strategy) until the target rule fires. Simulated on a copy of the run from this batch on (the
        main run goes on unchanged); its stop records the labels spent in all and the recall truly reached."""
        labels, seen_at, draws = self.labels.copy(), self.seen_at.copy(), list(self.draws)
        seq, spent, stable_at = self._batches, self.n_labels, self.n_labels
        positives = int(self.truth.sum())
        need = picks = None
        while True:
            # While the picks find no positive, the estimate is known in advance: it fires once they reach
            # `uniform_to_certify` (the same posterior, several zero-hit draws or one). Re-estimate only then;
            # after a positive, which only raises what is needed, at the latest CERTIFY_RECHECK picks later.
            if need is None or picks >= need:
                pool = estimate_pool(AuditSample(labels, seen_at, tuple(draws)), self.evaluation.confidence,
                                     self.evaluation.target_recall)
                if target_reached(pool, self.evaluation.confidence):
                    found = int(np.count_nonzero(labels == 1))
                    self.stops["certify"] = {"labels": spent, "recall": round(found / positives if positives else 1.0, 4),
                                             "head_at": stable_at}
                    return
                need, picks = pool.uniform_to_certify, 0
            unseen = np.flatnonzero(np.isnan(labels))
            if not len(unseen) or spent >= self.budget:
                return
            rows = self.audit_rng.choice(unseen, size=min(BATCH, len(unseen), self.budget - spent), replace=False)
            draws.append(AuditDraw(seq, rows, len(unseen)))
            labels[rows] = self.truth[rows].astype(np.float64)
            seen_at[rows] = seq + 1
            seq, spent, picks = seq + 1, spent + len(rows), picks + len(rows)
            if np.any(self.truth[rows]):
                need = max(need, picks + CERTIFY_RECHECK)

    def _stop(self, rule: str, fired, true_recall: float) -> None:
        if fired and rule not in self.stops:
            self.stops[rule] = {"labels": self.n_labels, "recall": round(true_recall, 4)}

    def result(self) -> dict:
        return {"points": self.points, "stops": self.stops, "oracle": self.oracle, "ap_curve": self.ap_curve,
                **({"snapshots": self.snapshots, "truth": self.truth} if self.snapshots is not None else {}),
                "positives": int(self.truth.sum()), "pool": len(self.truth), "labels": self.n_labels,
                "audit_draws": len(self.draws), "audit_labels": int(sum(len(d.rows) for d in self.draws))}


def held_out_scores(split: le_tasks.Split, rated: list[int], available: np.ndarray, params: HeadParams, prior,
                    seed: int, head) -> np.ndarray:
    """(N,) the rated tasks' cross-fitted scores (`core.training.cross_fitted_scores`, as the service computes
    them for `estimate_head`), NaN for the others."""
    rows = np.array(rated, dtype=np.int64)
    out = np.full(len(split.y), np.nan)
    out[rows] = cross_fitted_scores(split.X[rows], split.ratings[rows], split.X, available, params,
                                    np.random.default_rng([seed, len(rows), 17]), prior=prior, init=head,
                                    folds=CROSS_FIT_FOLDS)
    return out


def head_truth(truth: np.ndarray, scores: np.ndarray) -> dict:
    """The head's true precision and recall at 0.5 and average precision on the pool."""
    predicted = scores > 0.5
    true_positives = int(np.count_nonzero(predicted & truth))
    return {
        "precision": true_positives / int(predicted.sum()) if predicted.any() else None,
        "recall": true_positives / int(truth.sum()) if truth.any() else None,
        "average_precision": le_simulation.average_precision(truth, scores),
    }


def knee_reached(found_curve: Sequence[tuple[int, int]], min_labels: int = 150) -> bool:
    """The knee method of Cormack & Grossman (2016): stop once at least `min_labels` are spent and the
    gain curve's slope before its knee is >= 156 - min(found, 150) times its slope after it."""
    labels, found = found_curve[-1]
    if labels < min_labels or found == 0:
        return False
    xs = np.array([0] + [x for x, _ in found_curve], dtype=np.float64)
    ys = np.array([0] + [y for _, y in found_curve], dtype=np.float64)
    # the knee: the point farthest above the line from the origin to the last point
    distance = ys * labels - xs * found
    knee = int(np.argmax(distance))
    if xs[knee] <= 0 or xs[knee] >= labels:
        return False
    ratio = (ys[knee] / xs[knee]) / ((found - ys[knee] + 1) / (labels - xs[knee]))
    return ratio >= 156 - min(found, 150)


def simulate(task: Task, seed: int, cache_dir: str, budget: int, evaluation: EvaluationParams,
             variants: dict | None = None,
             checkpoints: Sequence[int] = CHECKPOINTS, snapshots: bool = False) -> dict:
    """One simulated project from its informed start (prompt or example) to `budget` labels."""
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(1)
    t0, cpu0 = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=1):
        split = le_tasks.make_split(task, seed, cache_dir)
        params = HeadParams()
        available = np.ones(len(split.y), dtype=bool)
        rated: list[int] = []
        prior = head = None
        if task.prompt is None:  # a task with a prompt starts from it, the others from an example (as label_efficiency)
            example = int(np.random.default_rng([seed, 5]).choice(np.flatnonzero(split.y)))
            split.ratings[example] = 1.0  # "more like this" is never a noisy rating
            rated.append(example)
            available[example] = False
        recorder = Recorder(split.X, split.ratings > 0, evaluation, checkpoints, variants or {}, budget,
                            np.random.default_rng([seed, 13]),
                            snapshots=[] if snapshots else None)
        if task.prompt is not None:
            prior = prompt_prior(le_tasks.prompt_vector(task, cache_dir), split.X, params)
            head = prior.head()
        else:
            recorder.given(rated[0])
            head = le_simulation.refit_head(split, rated, available, params, None, seed, None)
        given = len(rated)
        strategy = strategy_under_test()
        rng = np.random.default_rng([seed, 11])
        drawn = np.zeros(len(split.y), dtype=bool)
        while len(rated) - given < budget and available.any():
            chooser = RandomStrategy() if head is None and strategy.requires_head else strategy
            # which ratings were uniform draws, as the backend's audit log tells its strategy
            pool = Pool(split.X, available, np.array(rated, dtype=np.int64), split.ratings[rated], drawn[rated])
            rows = chooser.select(head, pool, min(BATCH, budget - (len(rated) - given)), rng)
            rated.extend(int(r) for r in rows)
            available[rows] = False
            draw = chooser.last_draw
            if draw is not None:
                drawn[draw.rows] = True
            head = le_simulation.refit_head(split, rated, available, params, prior, seed, head)
            recorder.on_batch(rows, draw, head, held_out=lambda: held_out_scores(split, rated, available, params, prior,
                                                                                  seed, head))
    return {"task": task.name, "seed": seed, **recorder.result(),
            "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - cpu0, 2)}


# ---------------------------------------------------------------- running

def _job(args):
    task, seed, cache_dir, budget, evaluation = args
    return simulate(task, seed, cache_dir, budget, evaluation)


def run_all(tasks: Sequence[Task], seeds: Sequence[int], cache_dir: str, budget: int, evaluation: EvaluationParams,
            workers: int = 2, log=print) -> list[dict]:
    """Every (task, seed) run, across `workers` processes, in the order of `tasks` then seeds."""
    jobs = [(task, seed, cache_dir, budget, evaluation) for seed in seeds for task in tasks]
    return in_task_order(le_simulation.run_jobs(_job, jobs, workers, log, noun="runs", reports=20), tasks)


def in_task_order(results: list[dict], tasks: Sequence[Task]) -> list[dict]:
    """Runs sorted by task (as listed) then seed: lists pooled over runs in the report do not depend
    on which worker finished first."""
    position = {task.name: i for i, task in enumerate(tasks)}
    return sorted(results, key=lambda r: (position[r["task"]], r["seed"]))


# ---------------------------------------------------------------- aggregation

RULES = {"target": "target recall reached (certified)", "stable": "the head stopped changing",
         "certify": "the head stopped changing, then uniform picks only until the target is certified",
         "knee": "knee method (Cormack & Grossman 2016), baseline"}


def _rule_key(stops: dict, rule: str) -> str | None:
    return next((k for k in stops if k == rule or k.startswith(rule + " ")), None)


# An interval no wider than this is the value the ratings prove, not an estimate.
ZERO_WIDTH = 1e-12


def coverage_table(results: list[dict], task: str | None = None) -> dict:
    """quantity -> {overall, n, mean_width, withheld, exact, not_exact, all_found, some_left,
    by_checkpoint: {labels: {coverage, width, n, exact}}} over the runs of `task` (all: None). withheld: checkpoints
    with a true value but no estimate; exact: intervals of zero width (the value is known from the ratings
    alone), not_exact: coverage and count without them; all_found / some_left: coverage and count where the
    labeling had found every positive (for the pool's quantities the truth is then the lowest count the
    ratings allow, which any interval holding that count covers) and where it had not, zero-width intervals
    left out. A checkpoint's coverage and n leave its zero-width intervals out, as the goal does (its
    some_left: the same, where some positive was unfound); its width is over all."""
    out = {}
    for quantity in QUANTITIES:
        hits: dict[int, list] = {}
        widths: dict[int, list] = {}
        # all_found -> checkpoint -> the hits of estimated intervals (every positive found, or some unfound)
        by_found: dict[bool, dict[int, list]] = {True: {}, False: {}}
        per_run: list[list[bool]] = []  # each run's hits of estimated (width > 0) intervals
        withheld = 0
        for r in results:
            if task is not None and r["task"] != task:
                continue
            per_run.append([])
            for p in r["points"]:
                estimate, truth = p["default"].get(quantity), p["truth"].get(quantity)
                withheld += estimate is None and truth is not None and quantity in p["default"]
                if estimate is None or truth is None:
                    continue
                covered = estimate["low"] - 1e-9 <= truth <= estimate["high"] + 1e-9
                width = estimate["high"] - estimate["low"]
                hits.setdefault(p["labels"], []).append(covered)
                widths.setdefault(p["labels"], []).append(width)
                if width > ZERO_WIDTH:
                    per_run[-1].append(covered)
                    if "all_found" in p["truth"]:
                        by_found[p["truth"]["all_found"]].setdefault(p["labels"], []).append(covered)
        every = [h for v in hits.values() for h in v]
        # per checkpoint, the hits of the intervals that are estimates (width > 0)
        estimated = {c: [h for h, w in zip(hits[c], widths[c]) if w > ZERO_WIDTH] for c in hits}
        not_exact = [h for run in per_run for h in run]  # the same hits, grouped by run instead
        out[quantity] = {
            "overall": round(float(np.mean(every)), 4) if every else None, "n": len(every), "withheld": withheld,
            "exact": len(every) - len(not_exact),
            "not_exact": {**_share(not_exact), "interval": coverage_interval(per_run)},
            "all_found": _share(_flat(by_found[True])), "some_left": _share(_flat(by_found[False])),
            "mean_width": round(float(np.mean([w for v in widths.values() for w in v])), 4) if every else None,
            "by_checkpoint": {str(c): {**_share(estimated[c]), "width": round(float(np.mean(widths[c])), 4),
                                       "exact": len(hits[c]) - len(estimated[c]),
                                       "some_left": _share(by_found[False].get(c, []))} for c in sorted(hits)},
        }
    return out


def _flat(by_checkpoint: dict[int, list]) -> list:
    return [hit for hits in by_checkpoint.values() for hit in hits]


def coverage_interval(per_run: list[list[bool]], confidence: float = 0.9) -> list[float] | None:
    """Bootstrap interval of the share of covering intervals, resampling whole runs: a run's
    checkpoints share its audit sample, so they are not independent trials."""
    runs = [hits for hits in per_run if hits]
    covered = np.array([sum(hits) for hits in runs], dtype=float)
    counts = np.array([len(hits) for hits in runs], dtype=float)
    return bootstrap_interval((covered, counts), lambda c, n, axis: c.sum(axis=axis) / n.sum(axis=axis),
                              confidence, paired=True)


def _share(hits: list) -> dict:
    return {"coverage": round(float(np.mean(hits)), 4) if hits else None, "n": len(hits)}


def stopping_table(results: list[dict], target: float) -> dict:
    """rule -> how often it fired, the true recall then, the labels spent against the oracle's."""
    out = {}
    for rule in RULES:
        fired, recalls, spent, oracle_pairs, ap_drops = 0, [], [], [], []
        for r in results:
            key = _rule_key(r["stops"], rule)
            if key is None:
                continue
            stop = r["stops"][key]
            fired += 1
            recalls.append(stop["recall"])
            spent.append(stop["labels"])
            oracle_pairs.append((stop["labels"], r["oracle"]))
            ap = dict(r["ap_curve"])
            # 'certify' keeps the head of the moment the head stopped changing
            ap_drops.append(round(r["ap_curve"][-1][1] - ap[stop.get("head_at", stop["labels"])], 4))
        ok = [x >= target - 1e-9 for x in recalls]
        out[rule] = {
            "runs": len(results), "fired": fired, "recall_at_stop": recalls, "labels_at_stop": spent,
            "share_at_or_above_target": round(float(np.mean(ok)), 4) if ok else None,
            "median_labels": _median_or_none(spent),
            "oracle_labels": [r["oracle"] for r in results],
            "median_oracle_labels": _median_or_none([r["oracle"] for r in results]),
            "labels_over_oracle": [round(s / o, 3) for s, o in oracle_pairs if o],
            "ap_gain_after_stop": ap_drops,
        }
    return out


def _median_or_none(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def certify_at_end(runs: list[dict]) -> dict:
    """At each run's last checkpoint, the uniform picks still needed to certify the target recall (what the
    page tells the team), over the runs whose target rule had not fired by then."""
    open_runs = [r for r in runs if r["points"] and "target" not in r["stops"]]
    picks = [r["points"][-1]["default"]["uniform_to_certify"] for r in open_runs]
    return {"runs": len(open_runs), "labels": _median_or_none([r["points"][-1]["labels"] for r in open_runs]),
            "median_picks": _median_or_none(picks), "picks": picks}


def summarise(results: list[dict], tasks: Sequence[Task], evaluation: EvaluationParams) -> dict:
    names = [t.name for t in tasks]
    per_task = []
    for task in tasks:
        runs = sorted((r for r in results if r["task"] == task.name), key=lambda r: r["seed"])
        if not runs:
            continue
        per_task.append({
            "task": task.name, "dataset": task.dataset, "prevalence_setting": task.prevalence or "natural",
            "pool": int(np.median([r["pool"] for r in runs])), "positives": int(np.median([r["positives"] for r in runs])),
            "seeds": [r["seed"] for r in runs], "labels": int(np.median([r["labels"] for r in runs])),
            "audit_labels": int(np.median([r["audit_labels"] for r in runs])),
            "coverage": coverage_table(runs), "stopping": stopping_table(runs, evaluation.target_recall),
            "certify_at_end": certify_at_end(runs),
        })
    overall = coverage_table(results)
    stopping = stopping_table(results, evaluation.target_recall)
    low, high = COVERAGE_GOAL
    # an interval of zero width is the value the ratings prove, not an estimate: the goal is judged without them
    judged = {q: overall[q]["not_exact"]["coverage"] for q in QUANTITIES}
    goals = {
        "coverage": {q: {"coverage": c, "met": c is not None and low <= c <= high} for q, c in judged.items()},
        "target_rule_recall": {"share": stopping["target"]["share_at_or_above_target"], "fired": stopping["target"]["fired"],
                               "runs": stopping["target"]["runs"],
                               "met": stopping["target"]["share_at_or_above_target"] is not None
                               and stopping["target"]["share_at_or_above_target"] >= STOP_GOAL},
    }
    return {"tasks_run": names, "per_task": per_task, "coverage": overall, "stopping": stopping, "goals": goals}


# ---------------------------------------------------------------- reporting

NAMES = {"positives": "positives in pool", "labeling_recall": "recall of labeling", "precision": "head precision",
         "recall": "head recall", "average_precision": "head AP"}


def _pct(value: float | None, decimals: int = 0) -> str:
    return "-" if value is None else f"{value:.{decimals}%}"


def _labels(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _interval(coverage: dict) -> str:
    interval = coverage["not_exact"].get("interval")
    return "" if interval is None else f" [{_pct(interval[0], 1)}, {_pct(interval[1], 1)}]"


def checkpoint_band(by_checkpoint: dict, part: str | None = None) -> tuple[int, int, int]:
    """(checkpoints whose coverage is outside the goal band, those of them whose 90% Jeffreys interval over
    the runs lies outside it too, checkpoints). A cell of 150-200 runs misses the band by chance now and
    then; the second count is the misses that noise does not explain (each run taken as one independent
    draw, which ignores that the tasks differ: if anything it counts too many). `part` "some_left": the
    checkpoints' intervals while some positive was still unfound."""
    low, high = COVERAGE_GOAL
    outside = surely = 0
    entries = [entry.get(part, {}) if part else entry for entry in by_checkpoint.values()]
    for entry in entries:
        if not entry.get("n"):
            continue
        covered = round(entry["coverage"] * entry["n"])
        if not low <= entry["coverage"] <= high:
            outside += 1
            lo, hi = share_interval(covered, entry["n"])
            surely += hi < low or lo > high
    return outside, surely, sum(1 for entry in entries if entry.get("n"))


def _stop_cell(stop: dict) -> str:
    if not stop["fired"]:
        return f"0/{stop['runs']}"
    ratio = _median_or_none(stop["labels_over_oracle"])
    return (f"{stop['fired']}/{stop['runs']}; recall >= target in {_pct(stop['share_at_or_above_target'])}; "
            f"{_labels(stop['median_labels'])} labels" + (f" ({ratio:.1f}x oracle)" if ratio is not None else ""))


def readme_summary(report: dict) -> str:
    """The README's block, generated from the JSON (a test checks it matches)."""
    s = report["summary"]
    settings = report["settings"]
    low, high = COVERAGE_GOAL
    g = s["goals"]
    # one decimal: the goal's edges (85%, 95%) are where a rounded share would hide a miss
    coverage_line = "; ".join(f"{NAMES[q]} {_pct(g['coverage'][q]['coverage'], 1)}{_interval(s['coverage'][q])} "
                              f"({'met' if g['coverage'][q]['met'] else 'MISSED'})" for q in QUANTITIES)
    target = g["target_rule_recall"]
    certify = s["stopping"].get("certify")
    cov = s["coverage"]
    exact = [f"{NAMES[q]} {cov[q]['exact']} of {cov[q]['n']} (with them: {_pct(cov[q]['overall'])})"
             for q in QUANTITIES if cov[q].get("exact")]
    caveats = []
    for q, where in (("precision", "above the threshold"), ("average_precision", "with unseen tasks")):
        if cov[q].get("withheld"):
            caveats.append(f"{NAMES[q]} withheld at {cov[q]['withheld']} checkpoints (a score stratum {where} had fewer "
                           f"than {settings.get('min_stratum_draws')} audit draws), not counted")
    if exact:
        caveats.append("zero-width intervals (the value is known from the ratings alone), not counted: " + "; ".join(exact))
    boundary = [f"{NAMES[q]} {_pct(cov[q]['some_left']['coverage'])} of {cov[q]['some_left']['n']} while some were "
                f"unfound, {_pct(cov[q]['all_found']['coverage'])} of {cov[q]['all_found']['n']} once all were"
                for q in POOL_QUANTITIES if cov[q].get("all_found", {}).get("n")]
    if boundary:
        caveats.append("once the labeling has found every positive, the truth is the lowest count the ratings allow, "
                       "and any interval holding it covers: " + "; ".join(boundary))
    head_found = [f"{NAMES[q]} {_pct(cov[q]['some_left']['coverage'])} of {cov[q]['some_left']['n']} while some "
                  f"were unfound, {_pct(cov[q]['all_found']['coverage'])} of {cov[q]['all_found']['n']} once all were"
                  for q in QUANTITIES if q not in POOL_QUANTITIES and cov[q].get("all_found", {}).get("n")]
    if head_found:
        caveats.append("the head's intervals (zero-width left out): " + "; ".join(head_found))
    bands = {q: checkpoint_band(cov[q]["by_checkpoint"]) for q in QUANTITIES}
    unfound = {q: checkpoint_band(cov[q]["by_checkpoint"], "some_left") for q in QUANTITIES}
    band_line = ("- By checkpoint (the table in the .md), checkpoints whose coverage is outside the goal band, in "
                 "brackets how many of them stay outside it allowing for the runs' noise (a 90% Jeffreys interval "
                 "of the checkpoint's coverage outside the band)"
                 + ("; then the same counting only the intervals given while some positive was still unfound"
                    if any(u[2] for u in unfound.values()) else "") + ": " + "; ".join(
                     f"{NAMES[q]} {bands[q][0]} of {bands[q][2]} ({bands[q][1]})"
                     + (f", {unfound[q][0]} of {unfound[q][2]} ({unfound[q][1]})" if unfound[q][2] else "")
                     for q in QUANTITIES) + ".")
    lines = [
        f"Measured with `{report['command']}`: {len(report['seeds'])} seeds x {len(s['per_task'])} tasks, batches of "
        f"{settings['batch']} from the `{settings['strategy']}` strategy (uniform share {settings['uniform_share']}"
        + (f", at least {settings['prevalence_gain']} x the estimated prevalence" if "prevalence_gain" in settings else "")
        + "), "
        f"up to {settings['budget']} labels; {report['runtime_seconds'] / 60:.0f} min wall, "
        f"{report['cpu_seconds'] / 60:.0f} min CPU on {report['cpu_count']} shared cores (load average "
        f"{report['load_average'][0]} before, {report['load_average'][1]} after).", "",
        f"- 90% intervals cover the truth (goal {low:.0%}-{high:.0%}, all checkpoints and tasks, intervals of zero width "
        f"left out; in brackets a 90% bootstrap interval over runs): {coverage_line}.",
        *([f"- {'. '.join(c[0].upper() + c[1:] for c in caveats)}."] if caveats else []),
        band_line,
        f"- Target rule (recall >= {settings['target_recall']:.0%} at {settings['confidence']:.0%} confidence): fired in "
        f"{target['fired']} of {target['runs']} runs; recall truly >= the target in {_pct(target['share'])} of those "
        f"(goal >= {STOP_GOAL:.0%}): **{'met' if target['met'] else 'MISSED'}**.",
        *([f"- The head stopped changing, then uniform picks only until the target rule fires (simulated from that "
           f"batch on): fired in {certify['fired']} of {certify['runs']} runs within {settings['budget']} labels; "
           f"recall truly >= the target in {_pct(certify['share_at_or_above_target'])} of those."]
          if certify else []), "",
        "| task | pool (positives); labels (audit) per run | coverage: positives / recall of labeling / head precision / recall / AP "
        "| mean width: recall of labeling / head AP | target rule: fired; recall >= target; median labels "
        "| oracle: median labels | head stopped changing: fired; median labels; median recall "
        "| head stopped changing, then uniform picks until certified: fired; recall >= target; median labels in all "
        "| knee (baseline) | not certified at the end: runs; uniform picks still needed (median) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in s["per_task"]:
        c, st = t["coverage"], t["stopping"]
        stable = st["stable"]
        lines.append(
            f"| {t['task']} | {t['pool']} ({t['positives']}); {t['labels']} ({t['audit_labels']}) | "
            + " / ".join(_pct(c[q]["not_exact"]["coverage"]) for q in QUANTITIES)
            + f" | {c['labeling_recall']['mean_width']:.2f} / "
            + (f"{c['average_precision']['mean_width']:.2f}" if c["average_precision"]["mean_width"] is not None else "-")
            + f" | {_stop_cell(st['target'])} | {_labels(st['target']['median_oracle_labels'])} | "
            + (f"{stable['fired']}/{stable['runs']}; {_labels(stable['median_labels'])}; "
               f"{_pct(_median_or_none(stable['recall_at_stop']))}" if stable["fired"] else f"0/{stable['runs']}")
            + f" | {_stop_cell(st['certify']) if 'certify' in st else '-'} | {_stop_cell(st['knee'])} | "
            + f"{_certify_cell(t.get('certify_at_end'))} |")
    return "\n".join(lines)


def _certify_cell(entry: dict | None) -> str:
    if not entry or not entry["runs"]:
        return "-"
    return f"{entry['runs']}; {_labels(entry['median_picks'])} after {_labels(entry['labels'])} labels"


def markdown(report: dict) -> str:
    s = report["summary"]
    out = ["# Evaluation: are the intervals honest, and what does the stopping suggestion cost?", "",
           f"Command: `{report['command']}`", "", readme_summary(report), "",
           "## Settings and how the constants were chosen", "",
           *(f"- `{k}` = {v}" for k, v in report["settings"].items()), "",
           *(f"- {c['constant']} = {c['value']}: {c['how']}" for c in report["choices"]), "",
           "## Coverage by checkpoint (all tasks)", "",
           "Zero-width intervals (the value is known from the ratings alone) are left out of the coverage and n, "
           "counted as 'exact'; the width is over all.", "",
           "| labels | " + " | ".join(NAMES[q] for q in QUANTITIES) + " |", "|---|" + "---|" * len(QUANTITIES)]
    checkpoints = sorted({int(c) for q in QUANTITIES for c in s["coverage"][q]["by_checkpoint"]})
    for c in checkpoints:
        cells = []
        for q in QUANTITIES:
            entry = s["coverage"][q]["by_checkpoint"].get(str(c))
            cells.append(f"{_pct(entry['coverage'])} (w {entry['width']:.2g}, n {entry['n']}"
                         + (f", exact {entry['exact']}" if entry.get("exact") else "") + ")" if entry else "-")
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    out += ["", "## Stopping rules, per task", "",
            "Labels at the stop and the recall of the labeling truly reached then, per seed; the oracle stops at the "
            "first batch whose true recall reaches the target. 'AP gain after stop': how much the head's true AP on the "
            "pool still rose between the stop and the end of the run (what 'the head stopped changing' promises to "
            "be small).", ""]
    for t in s["per_task"]:
        out.append(f"### {t['task']}")
        out.append("")
        for rule, name in RULES.items():
            st = t["stopping"][rule]
            out.append(f"- {name}: fired {st['fired']}/{st['runs']}; labels {st['labels_at_stop']}; recall "
                       f"{st['recall_at_stop']}; AP gain after stop {st['ap_gain_after_stop']}")
        out.append(f"- oracle labels: {t['stopping']['target']['oracle_labels']}")
        out.append("")
    return "\n".join(out) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = report["summary"]
    fig, (cover, stops) = plt.subplots(1, 2, figsize=(12, 4.2))
    low, high = COVERAGE_GOAL
    cover.axhspan(low, high, color="green", alpha=0.1, label="goal")
    for q in QUANTITIES:
        by = s["coverage"][q]["by_checkpoint"]
        xs = sorted(int(c) for c in by if by[c]["coverage"] is not None)
        cover.plot(xs, [by[str(c)]["coverage"] for c in xs], marker="o", ms=3, label=NAMES[q])
    cover.set_xscale("log")
    cover.set_ylim(0, 1.02)
    cover.set_xlabel("labels")
    cover.set_ylabel("share of 90% intervals covering the truth")
    cover.set_title("coverage, all tasks (zero-width intervals left out)")
    cover.legend(fontsize=7)
    named = len(s["per_task"]) <= LEGEND_TASKS  # more would cover the plot: the table names them
    for i, t in enumerate(s["per_task"]):
        for rule, marker in (("target", "o"), ("stable", "s"), ("knee", "^")):
            st = t["stopping"][rule]
            stops.scatter(st["labels_at_stop"], st["recall_at_stop"], marker=marker, s=14, color=f"C{i}",
                          label=t["task"] if rule == "target" and named else None, alpha=0.7)
        oracle = [o for o in t["stopping"]["target"]["oracle_labels"] if o]
        if oracle:
            stops.axvline(np.median(oracle), color=f"C{i}", ls=":", lw=0.8)
    stops.axhline(report["settings"]["target_recall"], color="grey", ls="--", lw=1)
    fired = any(x for t in s["per_task"] for st in t["stopping"].values()
                for x in st["labels_at_stop"] + st["oracle_labels"])
    stops.set_xscale("log" if fired else "linear")  # nothing fired and no oracle in a short run: no positive x
    stops.set_xlabel("labels at the stop (dotted: oracle median)")
    stops.set_ylabel("recall of the labeling truly reached")
    stops.set_title("stops: o target rule, s head stopped changing, ^ knee")
    if named:
        stops.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 tasks x 2 seeds, 300 labels (a smoke run)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 20; quick 2)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed.. (development runs used 1000..)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budget", type=int, default=None, help=f"labels per run (default {BUDGET}; quick 300)")
    parser.add_argument("--task-set", choices=tuple(TASK_SETS), default="full",
                        help="'heldout': the label-efficiency benchmark's held-out concepts, to evaluation_heldout.*; "
                             "'development': concepts no reported run uses, for checking a change first (to "
                             f"{le.QUICK_DIR / 'development'} unless --out)")
    parser.add_argument("--dataset", default=None,
                        help="a dataset file of your own (python -m benchmarks.own_data): every class one-vs-rest, "
                        f"to evaluation_own.* (default folder {le.OWN_DIR})")
    parser.add_argument("--tasks", default=None, help="substring filter on task names")
    parser.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR"))
    parser.add_argument("--out", default=None,
                        help=f"results folder (default {RESULTS_DIR}; with --quick {le.QUICK_DIR}, never committed)")
    parser.add_argument("--readme", action="store_true",
                        help="only re-render the README block and evaluation.md from the committed JSON, with the "
                             "code's account of how the constants were chosen (benchmarks.choices); no simulation")
    args = parser.parse_args(argv)
    if args.dataset:
        if args.readme:
            parser.error("--readme re-renders a committed report; a run on your own data has none")
        args.task_set, args.out = "own", args.out or str(le.OWN_DIR)
    stem = TASK_SET_STEMS[args.task_set]
    if args.task_set == "development":
        if args.readme:
            parser.error("--readme re-renders a reported run; development runs are never reported")
        args.out = args.out or str(le.QUICK_DIR / "development")  # never committed
    if args.readme:
        report = json.loads((RESULTS_DIR / f"{stem}.json").read_text())
        # prose, not measurement: a development run recorded after the report's run is added without rerunning it
        report["choices"] = list(choices.EVALUATION)
        (RESULTS_DIR / f"{stem}.json").write_text(le._compact_json(report) + "\n")
        replace_block(README, README_BLOCKS[args.task_set], readme_summary(report))
        (RESULTS_DIR / f"{stem}.md").write_text(markdown(report))
        return report
    from benchmarks.datasets import DEFAULT_CACHE_DIR
    cache_dir = str(args.cache_dir or DEFAULT_CACHE_DIR)
    if args.dataset:
        tasks = le_tasks.own_tasks_or_exit(parser, args.dataset)
    else:
        tasks = QUICK_TASKS if args.quick else TASK_SETS[args.task_set]
    if args.tasks:
        tasks = le_tasks.filter_tasks_or_exit(parser, tasks, args.tasks)
    seeds = list(range(args.first_seed, args.first_seed + (args.seeds or (2 if args.quick else 20))))
    budget = args.budget or (300 if args.quick else BUDGET)
    evaluation = EvaluationParams()
    print(f"evaluation: {len(tasks)} tasks x {len(seeds)} seeds, budget {budget}", flush=True)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    results = run_all(tasks, seeds, cache_dir, budget, evaluation, args.workers)
    runtime = time.perf_counter() - t0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(r["cpu_seconds"] for r in results) if args.workers > 1 else time.process_time()
    report = {
        "command": "python -m benchmarks.evaluation" + (" " + shlex.join(argv) if argv else ""),
        "quick": bool(args.quick), "task_set": args.task_set, "seeds": seeds,
        "settings": {"batch": BATCH, "budget": budget, "strategy": STRATEGY,
                     "uniform_share": SELECTION.uniform_share, "prevalence_gain": SELECTION.prevalence_gain,
                     "confidence": evaluation.confidence,
                     "target_recall": evaluation.target_recall, "stable_labels": evaluation.stable_labels,
                     "stable_kappa": evaluation.stable_kappa, "pool_prior": POOL_PRIOR, "prior": PRIOR, "interval": INTERVAL,
                     "nonlinear_interval": NONLINEAR_INTERVAL,
                     "strata_per_side": STRATA_PER_SIDE, "min_stratum_draws": MIN_STRATUM_DRAWS,
                     "placement_slope": PLACEMENT_SLOPE, "cross_fit_folds": CROSS_FIT_FOLDS, "hold_edges": HOLD_EDGES,
                     "checkpoints": list(CHECKPOINTS)},
        "choices": list(choices.EVALUATION),
        "runtime_seconds": round(runtime, 1), "cpu_seconds": round(cpu, 1),
        "cpu_seconds_children_rusage": round(children.ru_utime + children.ru_stime, 1),
        "cpu_count": os.cpu_count(), "workers": args.workers,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "summary": summarise(results, tasks, evaluation),
    }
    out = le.results_dir(args.out, args.quick)
    (out / f"{stem}.json").write_text(le._compact_json(report) + "\n")
    plot(report, out / f"{stem}.png")
    md = markdown(report)
    (out / f"{stem}.md").write_text(md)
    if out.resolve() == RESULTS_DIR.resolve() and not args.quick and args.task_set in README_BLOCKS:
        replace_block(README, README_BLOCKS[args.task_set], readme_summary(report))
    print(md)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
