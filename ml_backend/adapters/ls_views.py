"""The "Next batch (ML)" Data Manager view, in the form Label Studio 1.23's browser UI accepts.

Label Studio's API accepts more than its frontend does. The Data Manager frontend
validates every saved view against its own operator list (mobx-state-tree), and one
unknown operator leaves the whole project page loading forever. Its Number filters
know `equal`, `not_equal`, `less`, `greater`, `less_or_equal`, `greater_or_equal`,
`in` and `not_in` (ranges); `in_list`, which the API understands, is not among them
(`libs/datamanager/src/components/Filters/types/*.jsx` in the 1.23 frontend). So a
batch is an `or` of one `equal` item per task id.

Hidden columns are references to column ids the frontend builds from `/api/dm/columns`;
an id it does not know breaks the page too, so they are computed from that listing.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

# Bump when the view's shape changes: the worker then rewrites views saved in an older shape.
VIEW_FORMAT = 2
# Annotators open the view with "Label Tasks As Displayed": highest score first.
BATCH_ORDERING = ["-tasks:predictions_score"]
# An id no task has: the view must hold a filter item even when the batch is empty,
# or it would list every task.
NO_TASK = 0
# Shown in the batch view although Label Studio hides it by default.
SHOWN_COLUMNS = frozenset({"predictions_score"})


def batch_filters(task_ids: Iterable[int]) -> dict[str, Any]:
    """A filter matching exactly `task_ids` (none: no task at all)."""
    ids = list(task_ids) or [NO_TASK]
    return {
        "conjunction": "or",
        "items": [{"filter": "filter:tasks:id", "operator": "equal", "type": "Number", "value": int(i)} for i in ids],
    }


def is_batch_view(view_data: Any) -> bool:
    """Whether a view's `data` is one `batch_view` wrote: ordered by score and filtered on task ids alone (an
    admin's own tab is not built like that)."""
    if not isinstance(view_data, Mapping) or view_data.get("ordering") != BATCH_ORDERING:
        return False
    filters = view_data.get("filters")
    items = filters.get("items") if isinstance(filters, Mapping) else None
    return (isinstance(items, list) and bool(items) and filters.get("conjunction") == "or"
            and all(isinstance(item, Mapping) and item.get("filter") == "filter:tasks:id"
                    and item.get("operator") == "equal" for item in items))


def filtered_task_ids(view_data: Mapping[str, Any]) -> list[int]:
    """The task ids a batch view's filter matches (the inverse of `batch_filters`)."""
    items = (view_data.get("filters") or {}).get("items") or []
    return [int(item["value"]) for item in items if item.get("filter") == "filter:tasks:id" and item["value"] != NO_TASK]


def hidden_columns(columns: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Label Studio's default hidden columns for the table ("explore") and the labeling
    side list ("labeling"), minus SHOWN_COLUMNS.

    Only top-level task columns are listed: their ids do not depend on the label config,
    so a config change cannot leave the view pointing at a column that is gone.
    """
    hidden: dict[str, list[str]] = {"explore": [], "labeling": []}
    for column in columns:
        if not isinstance(column, Mapping) or not isinstance(column.get("id"), str):
            continue  # not a column as Label Studio lists them
        if column.get("parent") or column.get("target") != "tasks" or column["id"] in SHOWN_COLUMNS:
            continue
        defaults = column.get("visibility_defaults")
        for mode, visible in (defaults.items() if isinstance(defaults, Mapping) else ()):
            if mode in hidden and not visible:
                hidden[mode].append(f"tasks:{column['id']}")
    return hidden


def batch_view(title: str, task_ids: Iterable[int], hidden: dict[str, list[str]] | None) -> dict[str, Any]:
    """The view's `data`: the batch, sorted by score, with the score column visible when `hidden` is known."""
    data: dict[str, Any] = {"title": title, "filters": batch_filters(task_ids), "ordering": BATCH_ORDERING}
    if hidden is not None:
        data["hiddenColumns"] = hidden
    return data
