"""What the worker asks of Label Studio: the gateway protocol.

`ls_client.LabelStudioClient` implements it over the SDK; the tests' in-memory
`tests.fakes.FakeLabelStudio` implements it too (a test checks both keep to it).
Failures surface as `core.errors.RemoteUnavailable` (no answer, 5xx: retried with
backoff) or `RemoteRejected` (4xx).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol

from .ml_connections import Connection, Hook


@dataclass(frozen=True)
class ProjectCounts:
    """What Label Studio counts for a project, all from one answer; None where it does not say."""

    tasks: int | None
    annotations: int | None  # skipped ones included: a skip is an annotation the ledger keeps too


class LabelStudioGateway(Protocol):
    # -- pull ------------------------------------------------------------------------
    def ml_connections(self, project: int) -> list[Connection]:
        """The project's ML connections (listing them makes Label Studio call each one's /setup)."""

    def ensure_webhook(self, project: int, backend_urls: list[str]) -> list[Hook]:
        """Make sure imports, task deletions and ratings reach this backend, known by any of `backend_urls`;
        returns its hooks."""

    def iter_tasks(self, project: int) -> Iterator[dict[str, Any]]:
        """Every task of the project as {"id", "data", "annotations": [dict, ...], "annotations_listed": bool}
        ("annotations_listed" False: the entry did not give its annotations, so none is taken as deleted)."""

    def counts(self, project: int) -> ProjectCounts:
        """How many tasks and annotations the project has (one cheap call)."""

    def model_versions(self, project: int) -> dict[str, int]:
        """The model versions the project's predictions carry, with how many each."""

    # -- push ------------------------------------------------------------------------
    def push_view(self, project: int, title: str, task_ids: list[int], view_id: int | None) -> int:
        """Point the next-batch tab at `task_ids`, ordered by score; returns the view id."""

    def push_predictions(self, project: int, predictions: list[dict[str, Any]]) -> None:
        """Create predictions ({"task", "result", "score", "model_version"}) in one call."""

    def set_model_version(self, project: int, model_version: str) -> None:
        """Make `model_version` the project's (the Data Manager shows and sorts by its scores)."""

    def delete_model_version(self, project: int, model_version: str) -> None:
        """Delete all predictions of an old version."""
