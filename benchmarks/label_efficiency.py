"""How many labels does the loop save? Selection strategies on real embeddings.

Simulates annotators rating batches picked by the backend's own selection
strategies (``ml_backend.core.strategies.make_strategy``, with the project's
selection settings), refitting with the backend's own refit function
(``ml_backend.core.training.refit``, the one ``ActiveLoop`` calls) after every
batch, on real labeled data with real pretrained embeddings:

- text: SpamAssassin emails embedded with all-MiniLM-L6-v2; a text prompt
  embedded with the same model starts W (the zero-shot head);
- images: Fashion-MNIST embedded with ImageNet EfficientNet-Lite0; there is no
  text tower, so W starts from one example item (a random pool positive, given
  as "more like this").

Run (from the repo root, after ``bash benchmarks/setup_data.sh``)::

    python -m benchmarks.label_efficiency --workers 2   # full protocol, 20 seeds (wall time in the .md)
    python -m benchmarks.label_efficiency --quick       # smoke run: 3 tasks x 2 starts x 3 seeds, ~1 min on 2 cores

``--max-minutes M`` stops a run after M minutes and reports the seeds that finished every
task (marked in the report); ``--from-raw benchmarks/results/label_efficiency_raw.pkl``
re-writes the report from a finished run's saved curves without simulating again.
Tuning runs use other seeds and a held-out part of the pool, never the test split:
``--first-seed 1000 --evaluate-on validation`` with ``--head``/``--selection`` overrides.

It writes ``benchmarks/results/label_efficiency.json``, PNG learning curves and
``label_efficiency.md`` beside it, and prints the results table. ``--task-set heldout``
runs the same protocol on concepts no tuning run used (``HELDOUT_TASKS``) and writes
``label_efficiency_heldout.*`` instead; ``--dataset FILE.npz`` runs it on every class of a
dataset of your own (``benchmarks.own_data``), to ``results/own/label_efficiency_own.*``.

This module is the command line; the work is in three others: ``benchmarks.le_tasks`` (the concepts,
task sets and each seed's pool), ``benchmarks.le_simulation`` (the simulated loop and its metrics) and
``benchmarks.le_report`` (summaries, goals, recommendation, tables, plots, README blocks).

Protocol (see ``benchmarks/results/label_efficiency.md`` for the numbers)
- concept tasks: one-vs-rest binary concepts, and concepts of two kinds (trousers or
  bags; spam or mails of the exmh list); the POOL is subsampled (per seed) to the task's
  prevalence by dropping positives; the test split is fixed; pool rows stay in import
  order, grouped by folder;
- starts: every task runs from its informed start (text: the prompt; images: one example
  positive, rated +1 and not counted as a label) at batch sizes 10 and 25, and from a cold
  start (no prompt, no example) at batch size 10. `random` refits the same head on the
  same start, only its selection is random;
- after every batch the head is refit (prompt as prior, fresh background negatives) and
  scored on the test split: average precision (ties as one group), F1 at the decision
  threshold (logit 0), positives found so far;
- per curve: labels to reach 90% of the full-pool probe's AP (0 if the start alone does;
  first grid point; null if never within the budget) and the area under AP over
  log2(labels), normalised so the median random curve = 0 and the probe = 1.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchmarks import le_tasks  # noqa: E402
from benchmarks.le_report import descriptions, heldout_summary, markdown, plot, readme_summary, report_from  # noqa: E402
from benchmarks.le_simulation import BUDGET, REFERENCE_STRATEGIES, run_all  # noqa: E402
from benchmarks.le_tasks import QUICK_TASKS, TASK_SETS, filter_tasks_or_exit, own_tasks_or_exit  # noqa: E402
from benchmarks.markdown import README, replace_block  # noqa: E402
from ml_backend.core.params import HeadParams, SelectionParams  # noqa: E402
from ml_backend.core.strategies import DEFAULT_STRATEGY, STRATEGIES  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Where --quick runs and runs on your own data write by default: not the committed results (.gitignore).
QUICK_DIR = RESULTS_DIR / "quick"
OWN_DIR = RESULTS_DIR / "own"


def results_dir(out: str | None, quick: bool) -> Path:
    """The folder a run writes to (made if missing): --out, else the quick or the committed results."""
    folder = Path(out) if out else (QUICK_DIR if quick else RESULTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


README_BLOCK = "label-efficiency-summary"
# Each set's files: <stem>.json / .md / _raw.pkl / _<group>.png in the results folder, and its README block.
TASK_SET_STEMS = {"full": "label_efficiency", "heldout": "label_efficiency_heldout",
                  "development": "label_efficiency_development", "own": "label_efficiency_own"}
README_BLOCKS = {"full": README_BLOCK, "heldout": "label-efficiency-heldout"}


class _RawUnpickler(pickle.Unpickler):
    """Reads a `*_raw.pkl` whichever way it was written. Files from before `Task` moved to
    `benchmarks.le_tasks` (2026-12-05) name it under `__main__` (a run started as `python -m`) or this
    module; both resolve to `le_tasks.Task`, so old and new files merge into runs of one Task class."""

    def find_class(self, module: str, name: str):
        if module in ("__main__", "benchmarks.label_efficiency") and hasattr(le_tasks, name):
            return getattr(le_tasks, name)
        return super().find_class(module, name)


def load_raw(path: str | Path) -> dict:
    """The contents of a saved `*_raw.pkl` (a benchmark's own output: unpickling runs its code)."""
    with open(path, "rb") as f:
        return _RawUnpickler(f).load()


def merge_raw(saved: Sequence[dict]) -> dict:
    """Saved runs (`*_raw.pkl` contents) as one: a later run's (task, seed) results replace the earlier
    ones; the first run's tasks, strategies and meta, with each later run's command and runtime in
    meta["replaced_by"]."""
    first, results = saved[0], {(r["task"].name, r["seed"]): r for r in saved[0]["results"]}
    replaced_by = list(first["meta"].get("replaced_by", []))
    for later in saved[1:]:
        missing = set(first["strategies"]) - set(later["strategies"])
        if missing:
            raise ValueError(f"{later['meta']['command']} lacks strategies {sorted(missing)}")
        results.update({(r["task"].name, r["seed"]): r for r in later["results"]})
        replaced_by.append({"command": later["meta"]["command"], "runtime_seconds": later["meta"]["runtime_seconds"],
                            "tasks": sorted({r["task"].name for r in later["results"]})})
    meta = {**first["meta"], **({"replaced_by": replaced_by} if replaced_by else {})}
    return {"results": list(results.values()), "tasks": first["tasks"], "strategies": first["strategies"], "meta": meta}


def _compact_json(report: dict) -> str:
    """Indented JSON with every list of plain values (per-seed numbers, curves) on one line."""
    text = json.dumps(report, indent=1, allow_nan=False)
    return re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)


def rewrite_prose(task_set: str) -> dict:
    """The committed report of `task_set` with today's `descriptions()`: a development run recorded
    after the report's run (a candidate tried and not kept) is added without rerunning it."""
    stem = TASK_SET_STEMS[task_set]
    path = RESULTS_DIR / f"{stem}.json"
    report = {**json.loads(path.read_text()), **descriptions()}
    path.write_text(_compact_json(report) + "\n")
    (RESULTS_DIR / f"{stem}.md").write_text(markdown(report, report["command"], report["strategies"]))
    if task_set in README_BLOCKS:
        replace_block(README, README_BLOCKS[task_set],
                      readme_summary(report) if task_set == "full" else heldout_summary(report))
    return report


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seeds and tasks, batch 10 (CI)")
    parser.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR"),
                        help="embedding cache (default: benchmarks/.cache, or $BENCH_CACHE_DIR)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 20; quick 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed.. (tuning used 1000..)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated registry names, or the reference {', '.join(REFERENCE_STRATEGIES)} "
                             "(knows the truth; not in the default run)")
    parser.add_argument("--task-set", choices=tuple(TASK_SETS), default="full",
                        help="'heldout': concepts no tuning run used, to its own files (label_efficiency_heldout.*)")
    parser.add_argument("--dataset", default=None,
                        help="a dataset file of your own (python -m benchmarks.own_data): every class one-vs-rest, "
                        f"to its own files (label_efficiency_own.*; default folder {OWN_DIR})")
    parser.add_argument("--tasks", default=None, help="substring filter on task names")
    parser.add_argument("--evaluate-on", choices=("test", "validation"), default="test",
                        help="'validation': hold out 25%% of the pool and score there (tuning; test untouched)")
    parser.add_argument("--head", default="{}", help="HeadParams overrides as JSON (tuning)")
    parser.add_argument("--selection", default="{}", help="SelectionParams overrides as JSON (tuning)")
    parser.add_argument("--budget", type=int, default=BUDGET, help="annotator labels per run (tuning used 200)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop after this long and report the seeds that finished every task")
    parser.add_argument("--from-raw", action="append", default=None,
                        help="re-write the report from a saved label_efficiency_raw.pkl (no simulation), "
                        "e.g. after changing the default strategy; given again, a later file's runs replace the "
                        "earlier ones of the same task and seed (a rerun of some tasks)")
    parser.add_argument("--out", default=None,
                        help=f"results folder (default {RESULTS_DIR}; with --quick {QUICK_DIR}, never committed)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--readme", action="store_true",
                        help="re-write the committed report's prose (hyperparameters and how they were chosen) from "
                        "the code, and its .md and README block: no simulation")
    args = parser.parse_args(argv)
    if args.readme:
        if args.dataset:
            parser.error("--readme re-writes a committed report; a run on your own data has none")
        return rewrite_prose(args.task_set)

    out = results_dir(args.out or (str(OWN_DIR) if args.dataset else None), args.quick)
    task_set, saved = ("own" if args.dataset else args.task_set), None
    if args.from_raw:
        saved = merge_raw([load_raw(path) for path in args.from_raw])
        task_set = saved["meta"].get("task_set", "full")  # a raw file knows which set it ran
    stem = TASK_SET_STEMS[task_set]
    if saved is not None:
        results, tasks, strategies, meta = saved["results"], saved["tasks"], saved["strategies"], saved["meta"]
    else:
        from benchmarks.datasets import DEFAULT_CACHE_DIR
        cache_dir = str(args.cache_dir or DEFAULT_CACHE_DIR)
        strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
        if "random" not in strategies:
            strategies.insert(0, "random")
        unknown = [s for s in strategies if s not in STRATEGIES and s not in REFERENCE_STRATEGIES]
        if unknown:
            parser.error(f"unknown strategies {unknown}; registered: {sorted(STRATEGIES)}, "
                         f"reference: {sorted(REFERENCE_STRATEGIES)}")
        if args.dataset:
            tasks = own_tasks_or_exit(parser, args.dataset)
        else:
            tasks = QUICK_TASKS if args.quick else TASK_SETS[task_set]
        if args.tasks:
            tasks = filter_tasks_or_exit(parser, tasks, args.tasks)
        n_seeds = args.seeds or (3 if args.quick else 20)
        seeds = list(range(args.first_seed, args.first_seed + n_seeds))
        params = HeadParams(**json.loads(args.head))
        selection = SelectionParams(**json.loads(args.selection))
        print(f"label efficiency: {len(tasks)} tasks x {len(seeds)} seeds x {len(strategies)} strategies "
              f"({', '.join(strategies)}), head {params.model_dump()}, selection {selection.model_dump()}", flush=True)
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        results = run_all(tasks, seeds, strategies, cache_dir, params, args.workers, args.evaluate_on, args.budget,
                          max_minutes=args.max_minutes, log=lambda m: print(m, flush=True), selection=selection)
        runtime = time.perf_counter() - t0
        command = "python -m benchmarks.label_efficiency" + (" --quick" if args.quick else "") + (
            f" --task-set {task_set}" if task_set not in ("full", "own") else "") + (
            f" --dataset {args.dataset}" if args.dataset else "")
        if argv:
            command = "python -m benchmarks.label_efficiency " + shlex.join(argv)
        meta = {
            "command": command, "quick": bool(args.quick), "task_set": task_set, "evaluate_on": args.evaluate_on,
            "seeds_requested": seeds, "budget": args.budget, "strategies": strategies, "head_params": params.model_dump(),
            "selection_params": selection.model_dump(), "runtime_seconds": round(runtime, 1), "workers": args.workers,
            "cpu_count": os.cpu_count(),
            "cpu_seconds_in_jobs": round(sum(r["seconds"] for r in results), 1),
            "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "stopped_early": len(results) < len(tasks) * len(seeds),
        }
        with open(out / f"{stem}_raw.pkl", "wb") as f:  # not committed (.gitignore): for --from-raw
            pickle.dump({"results": results, "tasks": tuple(tasks), "strategies": strategies, "meta": meta}, f)

    # The raw file keeps what was measured; what the code says about it is taken from the code, so a
    # report rewritten with --from-raw after a wording change carries the new wording.
    meta = {**meta, **descriptions()}
    default = DEFAULT_STRATEGY if DEFAULT_STRATEGY in strategies else strategies[-1]
    report = report_from(results, tasks, strategies, default, meta)
    (out / f"{stem}.json").write_text(_compact_json(report) + "\n")
    entries = report["tasks"]
    if not args.no_plots:
        clean = [e for e in entries if not e["noise"] and e["ratings"] == "hard"]
        groups = {"b10": [e for e in clean if e["batch_size"] == 10 and e["start"] != "none"],
                  "cold": [e for e in clean if e["start"] == "none"],
                  "b25": [e for e in entries if e["batch_size"] == 25],
                  "noisy_soft": [e for e in entries if e["noise"] or e["ratings"] == "soft"]}
        for tag, group in groups.items():
            if group:
                plot(group, strategies, out / f"{stem}_{tag}.png", f"test AP vs labels, {tag}")
    md = markdown(report, report["command"], strategies)
    (out / f"{stem}.md").write_text(md)
    if out.resolve() == RESULTS_DIR.resolve() and not report["quick"] and task_set in README_BLOCKS:
        # a quick, side or development run leaves the README alone
        summary = readme_summary(report) if task_set == "full" else heldout_summary(report)
        replace_block(README, README_BLOCKS[task_set], summary)
    print(md)
    print(f"runtime {report['runtime_seconds']:.0f}s; wrote {out / f'{stem}.json'}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
