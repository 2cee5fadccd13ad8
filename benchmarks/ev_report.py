"""The evaluation benchmark's report: how often the intervals cover the truth (pooled, per task, per
checkpoint, with bootstrap intervals over runs), what each stopping rule cost against the oracle, the
goals, and the README blocks, the .md and the plot, all computed from the runs the recorder wrote
(`benchmarks.ev_simulation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks.intervals import bootstrap_interval, share_interval
from benchmarks.le_tasks import Task
from ml_backend.core.params import EvaluationParams

QUANTITIES = ("positives", "labeling_recall", "precision", "recall", "average_precision")
POOL_QUANTITIES = ("positives", "labeling_recall")
COVERAGE_GOAL = (0.85, 0.95)
STOP_GOAL = 0.9  # share of the seeds where a rule fires whose recall then is >= the target
LEGEND_TASKS = 12  # tasks named in the stopping plot's legend at most

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
