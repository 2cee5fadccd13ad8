"""Cold starts: how many labels until the first positive, on every concept of the built-in datasets.

Run (from the repo root, after ``bash benchmarks/setup_data.sh``)::

    python -m benchmarks.cold_start --workers 2   # 19 concepts at 1% x 20 seeds x every strategy
    python -m benchmarks.cold_start --quick       # 3 concepts x 3 seeds, to results/quick/
    python -m benchmarks.cold_start --dataset F.npz   # every class of your own data at 1%, to results/own/

Why it is its own benchmark. With no prompt and no example, every rating is negative until the
first positive, so what any strategy picks until then depends on the pool and its random stream,
never on the concept: it is a fixed order of the pool. Over all concepts of m items in a pool of
N, the labels a fixed order takes to its first positive follow the same distribution as uniform
picks (mean (N + 1) / (m + 1)): an order that finds some concepts sooner finds others later. So no
selection rule finds the first positive of *every* rare concept sooner than random from a cold
start; it can only bet on which concepts are likely, e.g. those that form a region of the
embedding space of their own. Issue 14's goal 2 (a 1% concept reaches 90% of the full-pool AP
with a fifth of random's labels) needs that bet to win from a cold start, and its goal 1 (never
below random) needs it never to lose by much. This benchmark measures where the bet lands: for
every class of Fashion-MNIST and every mail concept of the spam corpus with enough mails, at 1% of
the pool (subsampled as ``benchmarks.le_tasks`` does), the labels each strategy's cold
start needs, in batches of 10, until a batch holds a positive, against random's exact
distribution. Nothing is tuned on it.

It writes ``cold_start.json``, ``cold_start.md`` and ``cold_start.png`` under
``benchmarks/results/`` and the block ``cold-start-summary`` of ``docs/label-efficiency.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks import label_efficiency as le
from benchmarks import le_report, le_simulation, le_tasks
from benchmarks.le_tasks import FASHION, RAZOR_LIST, RPM_LIST, Task
from benchmarks.markdown import LABEL_EFFICIENCY_DOC, replace_block
from ml_backend.core.params import HeadParams, SelectionParams
from ml_backend.core.strategies import DEFAULT_STRATEGY, STRATEGIES

DOC_BLOCK = "cold-start-summary"  # in docs/label-efficiency.md
STEM = "cold_start"
BATCH = 10
PREVALENCE = 0.01
CAP = 500  # labels; random at 1% goes past it on about 0.7% of seeds
# Mail concepts of the spam corpus with enough mails for 1% of the pool (written down before the run).
MAIL_LISTS = ("fork.xent.com", "ilug.linux.ie", RPM_LIST, RAZOR_LIST, "spamassassin-talk.example.sourceforge.net",
              "exmh-workers.spamassassin.taint.org", "exmh-users.spamassassin.taint.org", "social.linux.ie")


def _list_task(name: str) -> Task:
    return Task(concept=name.split(".")[0] + " list", dataset="spam", positives=(), lists=(name,),
                prevalence=PREVALENCE, batch_sizes=(BATCH,))


CONCEPTS: tuple[Task, ...] = (
    tuple(Task(concept=name, dataset="fashion", positives=(k,), prevalence=PREVALENCE, batch_sizes=(BATCH,))
          for k, name in enumerate(FASHION))
    + (Task(concept="spam", dataset="spam", positives=(1,), prevalence=PREVALENCE, batch_sizes=(BATCH,)),)
    + tuple(_list_task(name) for name in MAIL_LISTS))
QUICK_CONCEPTS = tuple(t for t in CONCEPTS if t.concept in ("Bag", "Shirt", "spam"))


def own_concepts(parser: argparse.ArgumentParser, path: str) -> tuple[Task, ...]:
    """Every class of a dataset file of your own that the label-efficiency benchmark runs at PREVALENCE, cold."""
    tasks = tuple(replace(t, prompt=None) for t in le_tasks.own_tasks_or_exit(parser, path) if t.prevalence == PREVALENCE)
    if not tasks:
        parser.error(f"{path}: no class can be subsampled to {PREVALENCE:.0%} with {le_tasks.OWN_MIN_POSITIVES} positives "
                     "left (the pool is too small, or every class too rare already)")
    return tasks


def _used_by(task: Task) -> str:
    """Which label-efficiency task set already runs this concept (as a single concept), if any."""
    for set_name, tasks in le_tasks.TASK_SETS.items():
        if any(t.positives == task.positives and t.lists == task.lists and t.dataset == task.dataset for t in tasks):
            return {"full": "tuned", "heldout": "held-out", "development": "development"}[set_name]
    return "-"


# ---------------------------------------------------------------- uniform picks, exactly

def random_survival(n: int, m: int, t: int) -> float:
    """P(no positive among t uniform picks without replacement) from n rows holding m positives."""
    if t > n - m:
        return 0.0
    return math.exp(math.lgamma(n - m + 1) - math.lgamma(n - m - t + 1) - math.lgamma(n + 1) + math.lgamma(n - t + 1))


def random_first_positive(n: int, m: int, batch: int = BATCH) -> dict:
    """Labels until a batch of uniform picks holds a positive (multiples of `batch`): exact mean,
    median and 5% / 95% quantiles."""
    survival = [random_survival(n, m, batch * j) for j in range(n // batch + 2)]

    def quantile(q: float) -> int:
        return batch * next(j for j, s in enumerate(survival) if s <= 1 - q)

    return {"mean": batch * float(sum(survival)), "median": quantile(0.5), "q05": quantile(0.05),
            "q95": quantile(0.95)}


# ---------------------------------------------------------------- simulation

def labels_to_first_positive(split: le_tasks.Split, strategy: str, seed: int, cap: int = CAP) -> int | None:
    """The backend's strategy from a cold start (the benchmark's own loop and refit), in batches of
    BATCH: labels until a batch holds a positive, or None within `cap`."""
    run = le_simulation.simulate(split, strategy, BATCH, seed, HeadParams(), SelectionParams(), None, None,
                                 budget=cap, until_first_positive=True)
    return int(run["labels"][-1]) if len(run["found"]) and run["found"][-1] else None


def run_concept_seed(job) -> dict:
    task, seed, strategies, cache_dir, cap = job
    from threadpoolctl import threadpool_limits
    t0 = time.perf_counter()
    with threadpool_limits(limits=1):
        split = le_tasks.make_split(task, seed, cache_dir)
        firsts = {s: labels_to_first_positive(split, s, seed, cap) for s in strategies}
    return {"task": task, "seed": seed, "pool_size": len(split.y), "pool_positives": int(split.y.sum()),
            "first_positive": firsts, "seconds": time.perf_counter() - t0}


def summarise(results: list[dict], tasks: Sequence[Task], strategies: Sequence[str]) -> list[dict]:
    entries = []
    for task in tasks:
        runs = sorted((r for r in results if r["task"] == task), key=lambda r: r["seed"])
        n, m = runs[0]["pool_size"], runs[0]["pool_positives"]
        exact = random_first_positive(n, m)
        per_strategy = {}
        for s in strategies:
            values = [r["first_positive"][s] for r in runs]
            per_strategy[s] = {"labels": values, "median": le_report.median_labels(values),
                               "seeds_past_random_q95": int(sum(v is None or v > exact["q95"] for v in values))}
        entries.append({"name": task.name, "concept": task.concept, "modality": task.modality, "used_by": _used_by(task),
                        "pool_size": n, "pool_positives": m, "random_exact": exact, "strategies": per_strategy})
    return entries


def same_as_random(results: list[dict], strategies: Sequence[str]) -> list[str]:
    """Strategies whose labels to the first positive equal random's on every run (none without random)."""
    if "random" not in strategies:
        return []
    return [s for s in strategies if s != "random"
            and all(r["first_positive"][s] == r["first_positive"]["random"] for r in results)]


def overall(entries: list[dict], strategy: str, cap: int) -> dict:
    """Across concepts: how often the median is sooner / later than random's exact median, and the
    geometric mean of the ratio (a median past the cap counted at the cap: a bound in the strategy's favour)."""
    ratios = []
    for e in entries:
        median = e["strategies"][strategy]["median"]
        ratios.append((cap if median is None else median) / e["random_exact"]["median"])
    return {"sooner": sum(r < 1 for r in ratios), "later": sum(r > 1 for r in ratios),
            "same": sum(r == 1 for r in ratios), "geometric_mean_ratio": float(np.exp(np.mean(np.log(ratios)))),
            "best_ratio": float(min(ratios)), "worst_ratio": float(max(ratios))}


def split_at_first_positive(report: dict, label_efficiency_report: dict) -> list[dict]:
    """The label-efficiency run's clean 1% cold settings of the same concepts, split at the first positive.

    Both benchmarks build the same pool for a seed and run the same picks and refits until the first
    positive, so a seed's labels to 90% of the full-pool AP there minus its labels to the first positive
    here are the labels the head needed once it had a positive."""
    firsts = {(e["concept"], e["pool_positives"]): e["strategies"] for e in report["concepts"]}
    rows = []
    for t in label_efficiency_report["tasks"]:
        key = (t["concept"].split(" (")[0], t["pool_positives"])
        if t["start"] != "none" or t["prevalence_setting"] != PREVALENCE or t["noise"] or t["ratings"] != "hard" \
                or key not in firsts or t["seeds"] != list(range(report["first_seed"], report["first_seed"] + report["seeds"])):
            continue
        row = {"name": t["name"], "budget": label_efficiency_report["budget"]}
        for s in ("random", report["default_strategy"]):
            if s not in firsts[key] or s not in t["strategies"]:
                continue
            first, to_target = firsts[key][s]["labels"], t["strategies"][s]["labels_to_90pct_ap"]
            after = [b - a for a, b in zip(first, to_target) if a is not None and b is not None]
            row[s] = {"first_positive": le_report.median_labels(first), "to_90pct_ap": le_report.median_labels(to_target),
                      "after_first_positive": float(np.median(after)) if after else None,
                      "reached": len(after), "runs": len(first)}
        rows.append(row)
    return rows


# ---------------------------------------------------------------- report

def _fmt(median: float | None, cap: int) -> str:
    return f">{cap}" if median is None else f"{median:g}"


def _shown(report: dict) -> list[str]:
    """Strategies other than random that picked differently from it on some run (the others are named, not shown)."""
    return [s for s in report["strategies"] if s == "random" or s not in report["same_as_random"]]


def table(report: dict) -> str:
    strategies, cap = _shown(report), report["cap"]
    head = ("| concept (runs in) | pool (positives) | random, exact: median [5%, 95%] | "
            + " | ".join(f"{s}{' (default)' if s == report['default_strategy'] else ''}" for s in strategies) + " |")
    lines = [head, "|" + "---|" * (3 + len(strategies))]
    for e in report["concepts"]:
        r = e["random_exact"]
        cells = []
        for s in strategies:
            v = e["strategies"][s]
            late = f", {v['seeds_past_random_q95']} past random's 95%" if v["seeds_past_random_q95"] else ""
            cells.append(f"{_fmt(v['median'], cap)}{late}")
        lines.append(f"| {e['modality']}: {e['concept']} ({e['used_by']}) | {e['pool_size']} ({e['pool_positives']}) | "
                     f"{r['median']} [{r['q05']}, {r['q95']}] | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_block(report: dict) -> str:
    """The cold-start tables of docs/label-efficiency.md (and the head of the .md), from the JSON."""
    lines = [f"Measured with `{report['command']}`: {report['seeds']} seeds x {len(report['concepts'])} concepts at "
             f"{PREVALENCE:.0%} of the pool, batches of {BATCH}, cold start; {report['runtime_seconds'] / 60:.0f} min on "
             f"{report['workers']} workers. Cells: median labels until a batch holds a positive ('>{report['cap']}': not "
             "within the cap), and on how many seeds it came later than random's 95% quantile. (runs in): the "
             "label-efficiency task set that runs the concept, whose runs chose the constants ('tuned', 'development') "
             "or not ('held-out', '-').", ""]
    same = report["same_as_random"]
    if same:
        lines.append(f"- {', '.join(f'`{s}`' for s in same)}: the same labels as `random` on every run (until the "
                     "first positive their head is flat, and they draw uniformly at random from the same stream); "
                     "not shown below.")
    for s in _shown(report):
        o = report["overall"][s]
        lines.append(f"- `{s}`: sooner than random's median on {o['sooner']} of {len(report['concepts'])} concepts, "
                     f"later on {o['later']}; median over random's median: geometric mean {o['geometric_mean_ratio']:.2f}, "
                     f"from {o['best_ratio']:.2f} to {o['worst_ratio']:.2f}.")
    lines += ["", table(report)]
    pairs = report.get("split_at_first_positive") or []
    if pairs:
        default = report["default_strategy"]
        lines += ["", "The label-efficiency run's 1% cold settings of these concepts (same seeds, pools and picks up to the "
                  "first positive), split there: medians over seeds of the labels to the first positive (above), to 90% of "
                  "the full-pool AP (that run), and between the two (over the seeds that reached 90% within its "
                  "budget).", "",
                  "| setting | strategy | first positive | 90% of full-pool AP | after the first positive (seeds) |",
                  "|---|---|---|---|---|"]
        for row in pairs:
            for s in (default, "random"):
                if s in row:
                    v = row[s]
                    after = "-" if v["after_first_positive"] is None else f"{v['after_first_positive']:g}"
                    lines.append(f"| {row['name']} | {s} | {_fmt(v['first_positive'], report['cap'])} | "
                                 f"{_fmt(v['to_90pct_ap'], row['budget'])} | {after} ({v['reached']} of {v['runs']}) |")
    return "\n".join(lines)


def _why() -> str:
    """The module docstring's paragraph on why this benchmark exists, on one line."""
    return next(p for p in (__doc__ or "").split("\n\n") if p.startswith("Why")).replace("\n", " ")


def markdown(report: dict) -> str:
    return "\n".join([
        "# Cold starts: labels to the first positive", "",
        _why(), "",
        summary_block(report), "",
        "Per seed (labels; null: not within the cap):", "",
        "```json", json.dumps({e["name"]: {s: e["strategies"][s]["labels"] for s in report["strategies"]}
                               for e in report["concepts"]}, indent=1), "```", ""])


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    entries, cap = report["concepts"], report["cap"]
    fig, ax = plt.subplots(figsize=(8, 0.34 * len(entries) + 1.8))
    y = np.arange(len(entries))[::-1]
    r = np.array([[e["random_exact"][q] for q in ("q05", "median", "q95")] for e in entries], dtype=float)
    ax.hlines(y, r[:, 0], r[:, 2], color="lightgrey", lw=6, label="random, exact 5-95%")
    ax.scatter(r[:, 1], y, marker="|", s=200, color="grey", label="random, exact median")
    offsets = np.linspace(-0.25, 0.25, len(_shown(report)))
    for s, dy in zip(_shown(report), offsets):
        medians = [e["strategies"][s]["median"] for e in entries]
        x = np.array([cap * 1.15 if v is None else v for v in medians], dtype=float)
        ax.scatter(x, y + dy, s=22 if s == report["default_strategy"] else 10, label=s + " (median)",
                   zorder=3 if s == report["default_strategy"] else 2)
    ax.set_yticks(y, [f"{e['modality']}: {e['concept']}" for e in entries], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"labels until a batch of {BATCH} holds a positive (cold start, {PREVALENCE:.0%} of the pool)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=4, frameon=False)
    ax.set_title("Cold starts: the first positive, per concept", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 concepts x 3 seeds, to results/quick/")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 20; quick 3)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated registry names")
    parser.add_argument("--cap", type=int, default=CAP, help="labels after which a run stops without a positive")
    parser.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR"))
    parser.add_argument("--dataset", default=None,
                        help="a dataset file of your own (python -m benchmarks.own_data): every class that can be "
                        f"subsampled to {PREVALENCE:.0%}, to {le.OWN_DIR}/{STEM}_own.*")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results; quick: results/quick)")
    args = parser.parse_args(argv)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategies {unknown}; registered: {sorted(STRATEGIES)}")
    from benchmarks.datasets import DEFAULT_CACHE_DIR
    cache_dir = str(args.cache_dir or DEFAULT_CACHE_DIR)
    tasks, stem = (QUICK_CONCEPTS if args.quick else CONCEPTS), STEM
    if args.dataset:
        tasks, stem = own_concepts(parser, args.dataset), f"{STEM}_own"
    seeds = list(range(args.first_seed, args.first_seed + (args.seeds or (3 if args.quick else 20))))
    out = le.results_dir(args.out or (str(le.OWN_DIR) if args.dataset else None), args.quick)
    print(f"cold start: {len(tasks)} concepts x {len(seeds)} seeds x {', '.join(strategies)}", flush=True)
    t0 = time.perf_counter()
    jobs = [(t, s, tuple(strategies), cache_dir, args.cap) for s in seeds for t in tasks]
    results = le_simulation.run_jobs(run_concept_seed, jobs, args.workers, log=lambda m: print(m, flush=True))
    entries = summarise(results, tasks, strategies)
    default = DEFAULT_STRATEGY if DEFAULT_STRATEGY in strategies else strategies[0]
    report = {"command": "python -m benchmarks.cold_start " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "quick": bool(args.quick), "seeds": len(seeds), "first_seed": args.first_seed, "cap": args.cap,
              "batch_size": BATCH, "prevalence": PREVALENCE, "strategies": strategies, "default_strategy": default,
              "runtime_seconds": round(time.perf_counter() - t0, 1), "workers": args.workers,
              "concepts": entries, "overall": {s: overall(entries, s, args.cap) for s in strategies},
              "same_as_random": same_as_random(results, strategies)}
    report["command"] = report["command"].strip()
    # the label-efficiency report of the same concepts, where one was written
    paired = (out / f"{le.TASK_SET_STEMS['own']}.json") if args.dataset else le.RESULTS_DIR / "label_efficiency.json"
    if paired.exists():
        report["split_at_first_positive"] = split_at_first_positive(report, json.loads(paired.read_text()))
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(report))
    plot(report, out / f"{stem}.png")
    if out.resolve() == le.RESULTS_DIR.resolve() and not args.quick and not args.dataset:
        replace_block(LABEL_EFFICIENCY_DOC, DOC_BLOCK, summary_block(report))
    print(summary_block(report))
    return report


if __name__ == "__main__":
    main()
