"""The short evaluation summary Label Studio shows: the next-batch tab's title.

The tab is the backend's own view (the admin sets only `view_title`), and the 1.23 Data
Manager shows its title wherever the team works, so the current estimate goes there:

    Next batch (ML) · found 62%-91% of yes · AP 0.81
    Next batch (ML) · stop? found >= 90% of yes
"""

from __future__ import annotations

from typing import Any, Mapping

SEPARATOR = " · "


def tab_title(view_title: str, evaluation: Mapping[str, Any] | None) -> str:
    """`view_title` plus the summary of `evaluation` (a stored evaluation), or `view_title` alone."""
    if not evaluation or not evaluation.get("pool") or not evaluation["audit"]["complete_draws"]:
        return view_title
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
    return view_title + SEPARATOR + SEPARATOR.join(parts)
