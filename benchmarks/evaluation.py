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

This module is the command line; the work is in two others: ``benchmarks.ev_simulation`` (the task
sets, the strategy under test, the simulated projects and the recorder that scores every estimate)
and ``benchmarks.ev_report`` (coverage and stopping tables, goals, the README blocks, .md and plot).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import time
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchmarks import choices  # noqa: E402
from benchmarks import label_efficiency as le  # noqa: E402
from benchmarks import le_tasks  # noqa: E402
from benchmarks.ev_report import markdown, plot, readme_summary, summarise  # noqa: E402
from benchmarks.ev_simulation import (  # noqa: E402
    BATCH, BUDGET, CHECKPOINTS, QUICK_TASKS, STRATEGY, TASK_SETS, run_all)
from benchmarks.markdown import README, replace_block  # noqa: E402
from ml_backend.core.evaluation import (  # noqa: E402
    CROSS_FIT_FOLDS, HOLD_EDGES, MIN_STRATUM_DRAWS, INTERVAL, NONLINEAR_INTERVAL, PLACEMENT_SLOPE, POOL_PRIOR, PRIOR,
    STRATA_PER_SIDE)
from ml_backend.core.params import EvaluationParams, SelectionParams  # noqa: E402

RESULTS_DIR = le.RESULTS_DIR
README_BLOCK = "evaluation-summary"
# Each set's files (<stem>.json / .md / .png in the results folder) and README block.
TASK_SET_STEMS = {"full": "evaluation", "heldout": "evaluation_heldout", "development": "evaluation_development",
                  "own": "evaluation_own"}
README_BLOCKS = {"full": README_BLOCK, "heldout": "evaluation-heldout"}


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
    parser.add_argument("--selection", default="{}",
                        help="SelectionParams overrides as JSON, e.g. '{\"uniform_share\": 0.2}': what a larger audit "
                             "share buys (development runs; the reported runs use the defaults)")
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
    selection = SelectionParams(**json.loads(args.selection))
    print(f"evaluation: {len(tasks)} tasks x {len(seeds)} seeds, budget {budget}, selection {selection.model_dump()}",
          flush=True)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    results = run_all(tasks, seeds, cache_dir, budget, evaluation, args.workers, selection=selection)
    runtime = time.perf_counter() - t0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(r["cpu_seconds"] for r in results) if args.workers > 1 else time.process_time()
    report = {
        "command": "python -m benchmarks.evaluation" + (" " + shlex.join(argv) if argv else ""),
        "quick": bool(args.quick), "task_set": args.task_set, "seeds": seeds,
        "settings": {"batch": BATCH, "budget": budget, "strategy": STRATEGY,
                     "uniform_share": selection.uniform_share, "prevalence_gain": selection.prevalence_gain,
                     "confidence": evaluation.confidence,
                     "target_recall": evaluation.target_recall, "stable_labels": evaluation.stable_labels,
                     "stable_kappa": evaluation.stable_kappa, "pool_prior": POOL_PRIOR, "prior": PRIOR, "interval": INTERVAL,
                     "nonlinear_interval": NONLINEAR_INTERVAL,
                     "strata_per_side": STRATA_PER_SIDE, "min_stratum_draws": MIN_STRATUM_DRAWS,
                     "placement_slope": PLACEMENT_SLOPE, "cross_fit_folds": CROSS_FIT_FOLDS, "hold_edges": HOLD_EDGES,
                     "checkpoints": list(CHECKPOINTS)},
        "selection_params": selection.model_dump(),  # every override --selection made, not only the share
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
