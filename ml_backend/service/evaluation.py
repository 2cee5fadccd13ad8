"""Each project's evaluation, per head version: computed by the worker when a project is idle,
kept as history in the audit log's file, served by `GET /projects/<id>/evaluation` and its page.

The estimates come from `core.evaluation` (the audit sample only) and the stopping suggestion
from `core.stopping`; this module gathers their inputs from the loop and shapes the answer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from ..adapters.ls_records import version_name
from ..core.audit_log import AuditLog
from ..core.evaluation import (CROSS_FIT_FOLDS, MIN_STRATUM_DRAWS, POOL_PRIOR, PRIOR, PRIOR_COUNTS, HeadEstimate,
                               PoolEstimate, estimate_head, estimate_pool)
from ..core.head import LinearHead
from ..core.loop import ActiveLoop
from ..core.stopping import prediction_agreement, suggest

log = logging.getLogger(__name__)

THRESHOLD = 0.5  # the head says "yes" above this probability (logit 0), as its pre-annotations do
HISTOGRAM_BINS = 20

METHOD = (
    "Estimates use only the audit sample: the picks of each batch drawn uniformly at random from the tasks "
    "unseen at that moment (the adaptive strategy's uniform share; every pick of `random`), once every pick of "
    "a draw is rated or skipped. A skip counts as 'not positive'. Given the history, a draw's number of "
    "positives is hypergeometric, so the product over draws is the likelihood of the pool's positives; with a "
    f"Beta prior on the share of positives among the unseen tasks (Beta{PRIOR_COUNTS[POOL_PRIOR]} for the pool, "
    f"Beta{PRIOR_COUNTS[PRIOR]} per score stratum) it gives a posterior, and every interval is its shortest one "
    "holding the stated probability, but for the head's recall and average precision: on one score stratum with "
    "unseen tasks they take equal tails (the image of the count's own; the shortest interval of a quantity that "
    "falls fast with the first unseen positives cut off 'none left'), on two or more their range over the joint "
    "posterior's densest part (the chi-square share). The head's precision, recall "
    "and average precision are over the whole pool "
    "(rated tasks included, with their ratings), the unseen positives estimated per score stratum, in which a rated "
    f"task counts where a head refit without its rating scores it ({CROSS_FIT_FOLDS}-fold cross-fitting: the head "
    "ranks the tasks it "
    "learned from by their answers); for the average precision they are placed within a stratum by the rated tasks' "
    "share of positives at each score (isotonic regression on those cross-fitted scores); the precision "
    f"(the average precision) waits until the stratum above the threshold (every stratum) holds {MIN_STRATUM_DRAWS} "
    "audit picks, and until then the page gives the bounds the ratings prove. Coverage and width are measured by "
    "`python -m benchmarks.evaluation`."
)


def _cold_start_note(loop: ActiveLoop, ratings: dict) -> str | None:
    """Why a project rated with no positive and no prompt should give one (`benchmarks.cold_start`)."""
    if loop.prompt_usable() or not ratings or any(value > 0 for value in ratings.values()):
        return None
    return (f"no positive rating yet in {len(ratings)} ratings, and no prompt: until the first positive, no selection "
            "rule finds every rare concept sooner than random picks do (what it picks cannot depend on the concept). "
            "A prompt, or one task known to be positive rated +1, starts the head where the concept is")


class Evaluations:
    """Computes, stores and serves project evaluations; one instance per process."""

    def __init__(self, audit: AuditLog):
        self.audit = audit
        self._inputs: dict[int, tuple] = {}
        self._lock = threading.Lock()

    def refresh(self, loop: ActiveLoop) -> bool:
        """Evaluate the current head when anything the evaluation depends on changed since the last
        one; store it under the head's version. Returns True when a new evaluation was stored."""
        inputs = self._input_key(loop)
        with self._lock:
            if self._inputs.get(loop.project) == inputs:
                return False
        payload = self.compute(loop)
        if payload is None:
            return False
        self.audit.save_evaluation(loop.project, payload["version"], payload)
        with self._lock:
            self._inputs[loop.project] = inputs
        return True

    def _input_key(self, loop: ActiveLoop) -> tuple:
        epoch = self.audit.epoch(loop.project)
        head = loop.current_head()
        # a changed rating refits (a new head version); a skip changes only what is seen
        return (head.version if head else 0, len(loop.ledger.seen_task_ids(loop.project)),
                epoch["epoch"] if epoch else 0, len(self.audit.draws(loop.project, epoch["epoch"])) if epoch else 0,
                len(loop.store), loop.params.evaluation)

    def compute(self, loop: ActiveLoop) -> dict[str, Any] | None:
        """The current head's evaluation, or None before there is a head."""
        current = loop.current_head()
        if current is None:
            return None
        params = loop.params.evaluation
        task_ids, pool = loop.pool()
        ratings = loop.ledger.ratings(loop.project)
        seen = loop.ledger.seen_task_ids(loop.project)
        epoch = self.audit.epoch(loop.project)
        recorded = self.audit.draws(loop.project, epoch["epoch"]) if epoch else []
        sample = self.audit.sample(loop.project, task_ids, ratings, seen) if len(task_ids) else None
        scores = current.head.ranking_scores(pool.vectors) if len(task_ids) else np.empty(0)
        pool_estimate = head_estimate = None
        notes = []
        if sample is None:
            notes.append("no audit sample over the current pool yet: the pool changed (an import, a deletion, a second "
                         "pass) or no batch was selected since; the next batch starts one")
        else:
            pool_estimate = estimate_pool(sample, params.confidence, params.target_recall)
            head_estimate = estimate_head(sample, scores, THRESHOLD, params.confidence,
                                          held_out_scores=loop.held_out_scores(task_ids))
            if not sample.draws:
                notes.append("no complete audit draw yet: every estimate is the prior alone (rate the tab's tasks; the "
                             "strategy must draw uniform picks: `adaptive` with selection.uniform_share > 0, or `random`)")
        cold = _cold_start_note(loop, ratings)
        if cold:
            notes.append(cold)
        agreement, compared = self._agreement(loop, current.n_ratings, pool.vectors, scores, params.stable_labels)
        suggestion = suggest(pool_estimate, agreement, params.confidence, params.stable_kappa, params.stable_labels)
        rated_positive = np.array([ratings.get(int(t), 0.0) > 0 for t in task_ids], dtype=bool)
        seen_mask = np.array([int(t) in seen for t in task_ids], dtype=bool)
        edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
        return {
            "version": current.version,
            "model_version": version_name(current.version),
            "evaluated_at": time.time(),
            "ratings": current.n_ratings,
            "labels": len(seen),
            "confidence": params.confidence,
            "audit": {
                "epoch": epoch["epoch"] if epoch else None,
                "draws": len(recorded),
                "complete_draws": len(sample.draws) if sample is not None else 0,
                "pending_tasks": _pending(recorded, seen),
            },
            "pool": _pool_json(pool_estimate),
            "head": _head_json(head_estimate),
            "stopping": {**asdict(suggestion), "reasons": list(suggestion.reasons), "compared_with_ratings": compared},
            "scores": {
                "edges": np.round(edges, 4).tolist(),
                "unseen": np.histogram(scores[~seen_mask], edges)[0].tolist(),
                "rated_positive": np.histogram(scores[seen_mask & rated_positive], edges)[0].tolist(),
                "rated_not_positive": np.histogram(scores[seen_mask & ~rated_positive], edges)[0].tolist(),
            },
            "notes": notes,
        }

    def _agreement(self, loop: ActiveLoop, n_ratings: int, vectors: np.ndarray, scores: np.ndarray,
                   window: int) -> tuple[float | None, int | None]:
        """Kappa between the current head's predictions and those of the head of `window` ratings ago."""
        if n_ratings < window or not len(scores):
            return None, None
        earlier = loop.ledger.head_before(loop.project, n_ratings - window, loop.embedder.model_id)
        if earlier is None:
            return None, None
        head = LinearHead.from_weights(earlier.coef, earlier.intercept)
        return prediction_agreement(head.predict_proba(vectors) > THRESHOLD, scores > THRESHOLD), earlier.n_ratings

    def latest(self, project: int) -> dict | None:
        """The newest stored evaluation (of the newest head version evaluated), or None (also while the audit log
        is damaged: the tab and the status go on without it)."""
        return self.audit.unless_damaged(lambda: self.audit.latest_evaluation(project), None)

    def report(self, loop: ActiveLoop) -> dict[str, Any]:
        """What GET /projects/<id>/evaluation answers: the current evaluation (brought up to date
        first), every version's as history (without their score histograms), the settings and links."""
        self.refresh(loop)
        history = self.audit.evaluations(loop.project)
        current = history[-1] if history else None
        return {
            "project": loop.project,
            "model_version": version_name(loop.head_version()),
            "current": current,
            "history": [{k: v for k, v in entry.items() if k != "scores"} for entry in history],
            "params": loop.params.evaluation.model_dump(),
            "method": METHOD,
            "links": links(loop.project),
        }

    def status(self, project: int) -> dict[str, Any]:
        """The evaluation's line in /projects/<id>/status: the latest summary, the stop suggestion, the links."""
        latest = self.latest(project)
        return {
            "summary": summary_line(latest),
            "model_version": latest["model_version"] if latest else None,
            "stop": latest["stopping"]["stop"] if latest else False,
            "reasons": latest["stopping"]["reasons"] if latest else [],
            **links(project),
            **({"error": self.audit.damage} if self.audit.damage else {}),
        }


SEPARATOR = " · "


def _has_pool_estimate(evaluation: dict | None) -> bool:
    """Whether the evaluation holds a pool estimate from at least one complete audit draw."""
    return bool(evaluation and evaluation.get("pool") and evaluation["audit"]["complete_draws"])


def summary_line(evaluation: dict | None) -> str | None:
    """The evaluation in a few words, for the next-batch tab's title and the status, e.g.
    "found 62%-91% of yes · AP 0.81" or "stop? found >= 90% of yes"; None before an audit draw."""
    if not _has_pool_estimate(evaluation):
        return None
    stopping = evaluation["stopping"]
    recall = evaluation["pool"]["labeling_recall"]
    if stopping["target_reached"]:
        parts = [f"stop? found >= {evaluation['pool']['target_recall']:.0%} of yes"]
    else:
        parts = [f"found {recall['low']:.0%}-{recall['high']:.0%} of yes"]
        if stopping["head_stable"]:
            parts.append("head stable")
    average_precision = (evaluation.get("head") or {}).get("average_precision")
    if average_precision:
        parts.append(f"AP {average_precision['value']:.2f}")
    return SEPARATOR.join(parts)


def tab_lead(evaluation: dict | None) -> str | None:
    """What Label Studio's tab strip shows of the next-batch tab's title (1.23: its first ~100 px, about 12
    characters; the whole title is the tab's tooltip): the least share of the pool's yes found so far
    (the interval's lower end, the number the stop suggestion rests on), e.g. "found ≥62%", or "stop? ≥90%"
    once the target is reached. None before an audit draw. That it fits is checked in real Chromium
    (tests/browser/test_evaluation_page.py)."""
    if not _has_pool_estimate(evaluation):
        return None
    if evaluation["stopping"]["target_reached"]:
        word, low = "stop?", evaluation["pool"]["target_recall"]
    else:
        word, low = "found", evaluation["pool"]["labeling_recall"]["low"]
    return f"{word} ≥{math.floor(low * 100 + 1e-9)}%"  # a lower bound rounds down


def _pending(recorded: list, seen: set[int]) -> list[int]:
    if not recorded:
        return []
    return [t for t in recorded[-1].task_ids if t not in seen]


def _pool_json(estimate: PoolEstimate | None) -> dict | None:
    if estimate is None:
        return None
    out = asdict(estimate)
    for key in ("positives", "prevalence", "labeling_recall"):
        out[key] = getattr(estimate, key).rounded()
    out["recall_reached"] = round(estimate.recall_reached, 4)
    return out


def _head_json(estimate: HeadEstimate | None) -> dict | None:
    if estimate is None:
        return None
    out = {"threshold": estimate.threshold, "predicted_positive": estimate.predicted_positive,
           "fewest_stratum_draws": estimate.fewest_stratum_draws,
           "above_threshold_draws": estimate.above_threshold_draws,
           "precision_bounds": ([round(b, 4) for b in estimate.precision_bounds]
                                if estimate.precision_bounds is not None else None)}
    for key in ("precision", "recall", "average_precision"):
        value = getattr(estimate, key)
        out[key] = value.rounded() if value is not None else None
    return out


def links(project: int) -> dict[str, str]:
    return {"json": f"/projects/{project}/evaluation", "page": f"/projects/{project}/evaluation/page",
            "status": f"/projects/{project}/status"}
