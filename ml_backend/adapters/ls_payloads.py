"""Label Studio JSON -> core values: project ids, tasks, ratings (predictions: `ls_predictions`)."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any, Mapping

from ..core.errors import BadRatingError, BadRequestError
from ..core.facts import AnnotationRating
from ..core.targets import RatingScale

# The value key inside a result item, by control type.
VALUE_KEYS = {"number": "number", "rating": "rating", "choices": "choices"}


# Label Studio's ids are positive and fit SQLite's 64-bit integers; anything else is not an id.
MAX_ID = 2**63 - 1
# An annotation's updated_at further ahead of this clock is not trusted: the newest version wins by it, and
# one stamp from a clock set years ahead would make every later real edit look older, for good.
MAX_CLOCK_AHEAD_S = 24 * 3600.0


def project_id(value: Any) -> int:
    """Project id from "12.1700000000" (ML API form), 12, "12" or {"id": 12}."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        return checked_id(value, "project")
    head = value.split(".", 1)[0] if isinstance(value, str) else ""
    if head.isascii() and head.isdigit():  # str.isdigit alone accepts "²", which int() refuses
        if len(head) > 19:  # cannot be an id (and int() of a long enough string raises)
            raise BadRequestError(f"project id must be between 1 and 2**63-1, got {_short(value)}")
        return checked_id(int(head), "project")
    raise BadRequestError(f"cannot read a project id from {_short(value)}")


def project_id_argument(text: str) -> int:
    """`project_id` as an argparse type (the scripts' --project): a bad id is a usage error, not a traceback."""
    try:
        return project_id(text)
    except BadRequestError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def label_config(value: Any) -> str | None:
    """A payload's label config: the XML text, or None when absent. Label Studio always sends a
    string; anything else is a `BadRequestError`, never stored (it would fail every later call)."""
    if value is None or isinstance(value, str):
        return value
    raise BadRequestError(f"label config must be the config's XML text, got {type(value).__name__} {_short(value)}")


def task_id(task: Any) -> int:
    if isinstance(task, Mapping):
        task = task.get("id")
    if isinstance(task, int) and not isinstance(task, bool):
        return checked_id(task, "task")
    raise BadRequestError(f"task id must be an integer, got {_short(task)}")


def is_id(value: Any) -> bool:
    """Whether `value` can be a Label Studio id: an integer (not a bool) from 1 to 2**63-1."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def checked_id(value: int, kind: str) -> int:
    """`value` if it can be a Label Studio id (1 .. 2**63-1); else `BadRequestError`."""
    if not is_id(value):
        raise BadRequestError(f"{kind} id must be between 1 and 2**63-1, got {_short(value)}")
    return value


def id_list(payload: Any, key: str) -> tuple[list[int], list[dict[str, Any]]]:
    """Ids of the objects in `payload[key]` (a list of {"id": ...}), and {"index", "error"} for unusable entries.

    One bad entry must not cost the others: Label Studio never resends a webhook.
    """
    items = payload.get(key) if isinstance(payload, Mapping) else None
    if items is None:
        return [], []
    if not isinstance(items, list):
        raise BadRequestError(f"'{key}' must be a list of objects with an 'id', got {_short(items)}")
    ids, invalid = [], []
    kind = key.rstrip("s")
    for index, item in enumerate(items):
        value = item.get("id") if isinstance(item, Mapping) else None
        try:
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadRequestError(f"{kind} id must be an integer, got {_short(value)}")
            ids.append(checked_id(value, kind))
        except BadRequestError as exc:
            invalid.append({"index": index, "error": str(exc)})
    return ids, invalid


def tasks_from(payload_tasks: Any) -> list[tuple[int, dict]]:
    """(id, data) pairs from a list of task objects; raises on malformed entries."""
    if not isinstance(payload_tasks, list):
        raise BadRequestError("'tasks' must be a list")
    pairs = []
    for task in payload_tasks:
        data = task.get("data") if isinstance(task, Mapping) else None
        if not isinstance(data, Mapping):
            raise BadRequestError(f"task {_short(task.get('id') if isinstance(task, Mapping) else task)} has no 'data' object")
        pairs.append((task_id(task), dict(data)))
    return pairs


def valid_tasks(payload_tasks: Any) -> tuple[list[tuple[int, dict]], list[dict[str, Any]]]:
    """(id, data) pairs of the usable tasks, and {"index", "error"} for each unusable one.

    For webhooks: Label Studio never resends a delivery, so one bad entry must not
    cost the other tasks of the import.
    """
    if not isinstance(payload_tasks, list):
        raise BadRequestError("'tasks' must be a list")
    pairs, invalid = [], []
    for index, task in enumerate(payload_tasks):
        try:
            pairs.extend(tasks_from([task]))
        except BadRequestError as exc:
            invalid.append({"index": index, "error": str(exc)})
    return pairs, invalid


def read_rating(annotation: Mapping[str, Any], scale: RatingScale, fallback_task: Any = None) -> AnnotationRating:
    """Read an annotation's rating for `scale`.

    Skipped annotations (was_cancelled) give target None and no error. An annotation with no
    value for the control, or an unreadable one, gives target None and an `error` (the webhook
    answers 422).
    """
    annotation_id = annotation.get("id")
    if not isinstance(annotation_id, int) or isinstance(annotation_id, bool):
        raise BadRequestError(f"annotation id must be an integer, got {_short(annotation_id)}")
    checked_id(annotation_id, "annotation")
    task = task_id(annotation.get("task", fallback_task))
    when = timestamp(annotation.get("updated_at"))
    if when is not None and when > time.time() + MAX_CLOCK_AHEAD_S:
        when = None  # unordered: applied as it comes
    if annotation.get("was_cancelled"):
        return AnnotationRating(annotation_id, task, None, updated_at=when)
    results = annotation.get("result") or []
    if not isinstance(results, list):
        return AnnotationRating(annotation_id, task, None, "annotation result is not a list", when)
    # The control's results; one for another object (an API client's to_name) is not a rating of this one.
    items = [item for item in results if isinstance(item, Mapping) and item.get("from_name") == scale.name
             and item.get("to_name", scale.to_name) == scale.to_name]
    if not items:
        return AnnotationRating(annotation_id, task, None, f"annotation has no value for control {scale.name!r}", when)
    try:
        targets = {scale.to_target(_raw_value(item, scale)) for item in items}
    except BadRatingError as exc:
        return AnnotationRating(annotation_id, task, None, str(exc), when)
    if len(targets) > 1:  # the first one used to win, silently
        return AnnotationRating(annotation_id, task, None, f"annotation gives control {scale.name!r} {len(targets)} "
                                "different values", when)
    return AnnotationRating(annotation_id, task, targets.pop(), updated_at=when)


def timestamp(value: Any) -> float | None:
    """Epoch seconds from Label Studio's "2026-11-23T07:28:46.629865Z" (or a datetime); None if absent or unreadable."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def _short(value: Any, limit: int = 60) -> str:
    """repr of a client-sent value for an error message, cut short: bodies can be large."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _raw_value(item: Mapping[str, Any], scale: RatingScale) -> Any:
    value = item.get("value")
    if not isinstance(value, Mapping) or VALUE_KEYS[scale.kind] not in value:
        raise BadRatingError(f"{scale.name}: result has no {VALUE_KEYS[scale.kind]!r} value")
    raw = value[VALUE_KEYS[scale.kind]]
    if scale.kind == "choices":
        if not isinstance(raw, list) or len(raw) != 1:
            raise BadRatingError(f"{scale.name}: expected exactly one choice, got {_short(raw)}")
        return raw[0]
    return raw
