"""The evaluation page an admin opens in a browser: plots (matplotlib, as inline SVG) and a summary.

Rendered on the server from the same report `GET /projects/<id>/evaluation` answers, so
the page needs no script and nothing from outside the backend.
"""

from __future__ import annotations

import html
import io
import threading
from typing import Any, Sequence

from matplotlib.figure import Figure

from ..core.evaluation import MIN_STRATUM_DRAWS

COLORS = {"estimate": "#1f77b4", "found": "#2ca02c", "precision": "#ff7f0e", "recall": "#9467bd",
          "average_precision": "#d62728", "target": "#7f7f7f"}
# matplotlib's mathtext parser (the symlog axis's tick labels) is one per process and not thread-safe, and the
# server answers on several threads: two pages drawn at once failed with a ParseException (fuzz pass).
_DRAWING = threading.Lock()
HEAD_ESTIMATES = {"precision": "precision at 0.5", "recall": "recall at 0.5", "average_precision": "average precision"}


def render_page(report: dict[str, Any]) -> str:
    """The whole HTML page for `report` (the JSON of GET /projects/<id>/evaluation)."""
    project = report["project"]
    current = report.get("current")
    history = [h for h in report.get("history", []) if h.get("pool")]
    # versions with a head estimate to draw (each one may be withheld or undefined)
    head_history = [h for h in history if any((h.get("head") or {}).get(key) for key in HEAD_ESTIMATES)]
    parts = [
        f"<h1>Evaluation of project {project}</h1>",
        _summary(current, report),
        "<h2>Positives found and estimated in the pool</h2>",
        _figure(_positives_plot, history, report) if history else _empty(),
        "<h2>Recall of the labeling so far</h2>",
        _figure(_recall_plot, history, report) if history else _empty(),
        "<h2>The head's quality on the pool</h2>",
        _figure(_head_plot, head_history, report) if head_history else _empty(),
        "<h2>The current head's scores on the pool</h2>",
        _figure(_scores_plot, [current], report) if current and current.get("scores") else _empty(),
        "<h2>How these numbers are made</h2>",
        f"<p>{html.escape(report['method'])}</p>",
        f'<p>The same numbers as JSON: <a href="{html.escape(report["links"]["json"])}">'
        f'{html.escape(report["links"]["json"])}</a>; the project\'s state: '
        f'<a href="{html.escape(report["links"]["status"])}">{html.escape(report["links"]["status"])}</a>.</p>',
    ]
    return (
        # an empty icon: the browser asks the backend for no /favicon.ico (a 404 in its console)
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\">"
        f"<title>Evaluation · project {project}</title><style>{STYLE}</style></head>"
        f"<body><main>{''.join(parts)}</main></body></html>"
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #fafafa; color: #222; }
main { max-width: 980px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
.suggestion { padding: 10px 14px; border-radius: 6px; margin: 12px 0; }
.stop { background: #e3f5e1; border: 1px solid #8bc98a; } .go { background: #eef3fb; border: 1px solid #a9c1e8; }
.note { color: #8a5a00; } figure { margin: 0; } svg { max-width: 100%; height: auto; }
"""


def _summary(current: dict | None, report: dict) -> str:
    if current is None:
        return "<p id=\"summary\">No evaluation yet: the project has no head (set a prompt or rate a task).</p>"
    pool, head, stopping = current.get("pool"), current.get("head"), current["stopping"]
    confidence = current["confidence"]
    rows = [("model version", current["model_version"]), ("tasks rated or skipped", current["labels"]),
            ("audit draws complete / made", f"{current['audit']['complete_draws']} / {current['audit']['draws']}")]
    if pool:
        rows += [
            ("positives found", pool["positives_found"]),
            ("positives in the pool", _interval(pool["positives"], "{:.0f}")),
            ("prevalence", _interval(pool["prevalence"], "{:.1%}")),
            ("recall of the labeling so far", _interval(pool["labeling_recall"], "{:.0%}")),
            ("uniform picks still needed to certify the target recall", pool["uniform_to_certify"]),
        ]
    if head:
        rows.append(("tasks the head says yes to (score > 0.5)", head["predicted_positive"]))
        for key, name in (("precision", "head precision at 0.5"), ("recall", "head recall at 0.5"),
                          ("average_precision", "head average precision")):
            rows.append((name, _interval(head[key], "{:.2f}") if head.get(key) else _missing(key, head)))
    table = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    reached = stopping.get("recall_reached")
    if stopping["stop"]:
        advice = "Suggestion: stop labeling. " + " ".join(stopping["reasons"])
    else:
        advice = (f"Keep labeling: the target recall of {report['params']['target_recall']:.0%} is reached with "
                  f"probability {reached:.0%} (stop at {confidence:.0%}), and the head is still changing."
                  if reached is not None else "Keep labeling: no audit sample yet.")
    if stopping["stop"] and not stopping["target_reached"] and reached is not None:
        advice += (f" The target recall of {report['params']['target_recall']:.0%} is reached with probability "
                   f"{reached:.0%} only.")
    if pool and not stopping["target_reached"]:
        advice += (f" Certifying the target takes at least {pool['uniform_to_certify']} more uniform picks (tasks "
                   "drawn at random from the unseen ones), if none of them is positive: the random strategy draws "
                   "nothing else.")
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in current.get("notes", []))
    return (f'<table id="summary">{table}</table><p>Intervals: {confidence:.0%} credible intervals.</p>'
            f'<div id="suggestion" class="suggestion {"stop" if stopping["stop"] else "go"}">{html.escape(advice)}</div>'
            f"{notes}")


def _missing(key: str, head: dict) -> str:
    threshold = head["threshold"]
    if key == "precision" and head.get("precision_bounds"):  # defined, but too few audit picks above the threshold
        low, high = head["precision_bounds"]
        return (f"between {low:.2f} and {high:.2f} (what the ratings prove); an estimate needs {MIN_STRATUM_DRAWS} "
                f"audit picks above {threshold} (so far: {head['above_threshold_draws']})")
    if key == "average_precision" and head.get("fewest_stratum_draws", MIN_STRATUM_DRAWS) < MIN_STRATUM_DRAWS:
        return (f"not yet: needs {MIN_STRATUM_DRAWS} audit picks above and below {threshold} "
                f"(fewest so far: {head['fewest_stratum_draws']})")
    if key == "precision" and not head.get("predicted_positive"):
        return f"undefined: the head says yes to no task (no score above {threshold})"
    return "undefined"


def _interval(estimate: dict, fmt: str) -> str:
    return f"{fmt.format(estimate['value'])} ({fmt.format(estimate['low'])} to {fmt.format(estimate['high'])})"


def _empty() -> str:
    return "<p>Nothing to plot yet.</p>"


def _figure(draw, entries: Sequence[dict], report: dict) -> str:
    with _DRAWING:
        figure = Figure(figsize=(8.4, 3.2), dpi=100)
        axes = figure.add_subplot()
        draw(axes, entries, report)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return f"<figure>{svg[svg.index('<svg'):]}</figure>"


def _band(axes, x, estimates: Sequence[dict], color: str, label: str) -> None:
    axes.plot(x, [e["value"] for e in estimates], marker="o", ms=3, color=color, label=label)
    axes.fill_between(x, [e["low"] for e in estimates], [e["high"] for e in estimates], color=color, alpha=0.18, lw=0)


def _labels_axis(axes) -> None:
    axes.set_xlabel("tasks rated or skipped (one point per model version evaluated)")
    axes.legend(loc="best", fontsize=8)


def _positives_plot(axes, history: Sequence[dict], report: dict) -> None:
    x = [h["labels"] for h in history]
    _band(axes, x, [h["pool"]["positives"] for h in history], COLORS["estimate"], "positives in the pool (estimate)")
    axes.plot(x, [h["pool"]["positives_found"] for h in history], color=COLORS["found"], lw=2, label="positives found")
    target = report["params"]["target_recall"]
    axes.plot(x, [h["pool"]["positives_found"] / target for h in history], color=COLORS["target"], ls="--", lw=1,
              label=f"found / {target:.0%}: the pool may hold at most this many to stop")
    axes.set_ylabel("positives")
    _labels_axis(axes)


def _recall_plot(axes, history: Sequence[dict], report: dict) -> None:
    x = [h["labels"] for h in history]
    _band(axes, x, [h["pool"]["labeling_recall"] for h in history], COLORS["estimate"], "recall of the labeling")
    axes.axhline(report["params"]["target_recall"], color=COLORS["target"], ls="--", lw=1, label="target")
    stops = [h for h in history if h["stopping"]["stop"]]
    if stops:
        axes.scatter([h["labels"] for h in stops], [h["pool"]["labeling_recall"]["value"] for h in stops], marker="*",
                     s=90, color=COLORS["found"], zorder=3, label="stop suggested")
    axes.set_ylim(0, 1.02)
    axes.set_ylabel("positives found / in the pool")
    _labels_axis(axes)


def _head_plot(axes, history: Sequence[dict], report: dict) -> None:
    for key, name in HEAD_ESTIMATES.items():
        points = [h for h in history if h["head"].get(key)]
        if points:
            _band(axes, [h["labels"] for h in points], [h["head"][key] for h in points], COLORS[key], name)
    axes.set_ylim(0, 1.02)
    axes.set_ylabel("on the whole pool")
    _labels_axis(axes)


def _scores_plot(axes, entries: Sequence[dict], report: dict) -> None:
    scores = entries[0]["scores"]
    edges = scores["edges"]
    width = edges[1] - edges[0]
    bottom = [0] * (len(edges) - 1)
    for key, name, color in (("rated_not_positive", "rated: not positive", "#bbbbbb"),
                             ("rated_positive", "rated: positive", COLORS["found"]),
                             ("unseen", "not rated yet", COLORS["estimate"])):
        axes.bar(edges[:-1], scores[key], width=width, bottom=bottom, align="edge", color=color, label=name,
                 edgecolor="white", lw=0.5)
        bottom = [b + c for b, c in zip(bottom, scores[key])]
    axes.axvline(0.5, color=COLORS["target"], ls="--", lw=1, label="threshold")
    axes.set_yscale("symlog", linthresh=10)
    axes.set_xlabel(f"the head's score (P(yes)), {entries[0]['model_version']}")
    axes.set_ylabel("tasks")
    axes.legend(loc="best", fontsize=8)
