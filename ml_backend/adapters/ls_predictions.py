"""Predict: the current head's scores for tasks, as the predictions Label Studio stores.

The one place predictions are made: `/predict` answers with them, and the worker's
push (`service.push`) sends them for every task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ..core.errors import NotFittedError
from ..core.loop import ActiveLoop
from ..core.targets import RatingScale
from .ls_payloads import VALUE_KEYS
from .ls_records import version_name


@dataclass(frozen=True)
class Predictions:
    """Predictions of head `version` (0: no head yet) for the tasks it could score, in the order asked."""

    version: int
    model_version: str
    by_task: dict[int, dict[str, Any]]

    def answer(self, task_ids: Sequence[int]) -> list[dict[str, Any] | list]:
        """One entry per task, in order: its prediction, or an empty list of predictions when it has none (no
        head yet, or a broken image). Label Studio stores nothing for the latter; a placeholder with score 0
        was stored, and read as a confident "no"."""
        return [self.by_task.get(t) or [] for t in task_ids]


def predictions_for(loop: ActiveLoop, scale: RatingScale, task_ids: Sequence[int]) -> Predictions:
    """The loop's current head on the embedded tasks among `task_ids` (none before any head)."""
    version = loop.head_version()
    try:
        scores = loop.scores(task_ids)
    except NotFittedError:
        scores = {}
    name = version_name(version)
    preselect = loop.params.preselect_rating
    return Predictions(version, name, {
        t: prediction(scale, scores[t], name, preselect=preselect) for t in dict.fromkeys(task_ids) if t in scores})


def prediction(scale: RatingScale, probability: float, model_version: str, *, preselect: bool) -> dict[str, Any]:
    """A Label Studio prediction scored by `probability`.

    With `preselect`, its result is the control value matching the probability, which
    Label Studio pre-fills in the labeling form; without, the result is empty and the
    prediction carries the score alone.
    """
    if not math.isfinite(probability):
        raise ValueError(f"probability must be finite, got {probability}")
    result = []
    if preselect:
        value = scale.from_target(2.0 * probability - 1.0)
        result_value = {"choices": [value]} if scale.kind == "choices" else {VALUE_KEYS[scale.kind]: value}
        result = [{"from_name": scale.name, "to_name": scale.to_name, "type": scale.kind, "value": result_value}]
    return {"result": result, "score": round(float(probability), 6), "model_version": model_version}
