"""The one write path for facts: what annotators and admins did, as the ledger records it.

Facts are tasks, annotations (ratings, skips, unreadable ones), deletions, batch
requests, project parameters, second passes (`reset_seen`) and head versions published
by an earlier ledger (`versions_published`). The webhook, /train,
/setup, /predict, the admin endpoints and the catch-up sync with Label Studio all
record them here, and only here; what the loop derives from them (embeddings, head
versions, what was pushed) is written by the loop's own steps.

A new kind of fact gets a method here (and its table or column in `core.ledger`).
`on_deleted` listeners hear of every deletion, after it is recorded: the vector
store drops the vectors, Label Studio's records remember it for the sync.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .ledger import Ledger, RecordedAnnotation

log = logging.getLogger(__name__)

# (project, "tasks" | "annotations", ids)
DeletionListener = Callable[[int, str, list[int]], None]


@dataclass(frozen=True)
class AnnotationRating:
    """One annotation read against the project's rating scale: target None means it is not a rating
    (skipped, or unreadable: then `error` says why)."""

    annotation_id: int
    task_id: int
    target: float | None
    error: str | None = None
    updated_at: float | None = None  # the source's time of this version (epoch seconds), when it says


class Facts:
    """Records facts in the ledger, each in one transaction. Thread-safe (the ledger is)."""

    def __init__(self, ledger: Ledger):
        self._ledger = ledger
        self._deletion_listeners: list[DeletionListener] = []

    def on_deleted(self, listener: DeletionListener) -> None:
        """Call `listener(project, kind, ids)` after tasks or annotations are deleted."""
        self._deletion_listeners.append(listener)

    def set_params(self, project: int, params: dict | None = None) -> None:
        """Create the project (setting it up is the only way), or replace its parameters (the admin's own
        layer, as given; validated before)."""
        self._ledger.upsert_project(project, params=params)

    def add_tasks(self, project: int, tasks: Iterable[tuple[int, dict]]) -> int:
        """Record tasks (id, data) to embed; known ids are left as they are. Returns how many were new."""
        return self._ledger.add_tasks(project, tasks)

    def list_tasks(self, project: int, tasks: Sequence[tuple[int, dict, str | None]]) -> list[int]:
        """Record tasks (id, data, creation time) as the source lists them. A known id whose creation time
        changed is a new task under an old id (deleted and imported again while no webhook reached us): the
        old one is deleted, with its annotations and vector, and the new one recorded. Returns those ids."""
        created = {int(t): at for t, _, at in tasks if at is not None}
        recreated = self._ledger.recreated_tasks(project, created) if created else []
        if recreated:
            log.warning("project %s: %d tasks were deleted and imported again under the same ids; their old "
                        "data, ratings and vectors are dropped: %s", project, len(recreated), recreated[:10])
            self.delete_tasks(project, recreated)
        self._ledger.add_tasks(project, [(t, data) for t, data, _ in tasks])
        if created:
            self._ledger.note_created(project, created)
        return recreated

    def record_annotation(self, project: int, annotation: AnnotationRating,
                          task_data: dict | None = None) -> RecordedAnnotation:
        """Record an annotation and mark its task seen (when it is news; see `Ledger.record_annotation`).

        `task_data` registers a task not known yet. Returns whether the task is known
        (False: the rating waits for the task's data) and whether this version was applied.
        """
        return self._ledger.record_annotation(
            project, annotation.annotation_id, annotation.task_id, annotation.target, error=annotation.error,
            task_data=task_data, source_updated_at=annotation.updated_at,
        )

    def delete_annotations(self, project: int, annotation_ids: Sequence[int]) -> int:
        """Forget annotations (a task with none left is unseen again); returns how many there were."""
        ids = [int(i) for i in annotation_ids]
        deleted = self._ledger.delete_annotations(project, ids) if ids else 0
        self._deleted(project, "annotations", ids)
        return deleted

    def delete_tasks(self, project: int, task_ids: Sequence[int]) -> None:
        """Forget tasks, their annotations and (through the listeners) their vectors."""
        ids = [int(i) for i in task_ids]
        self._ledger.delete_tasks(project, ids)
        self._deleted(project, "tasks", ids)

    def request_batch(self, project: int) -> int:
        """Ask for the next batch to be selected and pushed again; returns the request counter."""
        return self._ledger.request_batch(project)

    def versions_published(self, project: int, highest: int) -> bool:
        """Head versions up to `highest` are published (in Label Studio) by an earlier ledger of this project:
        the next ones are numbered above them. True when that changed the numbering."""
        return self._ledger.raise_version_floor(project, highest)

    def reset_seen(self, project: int) -> int:
        """A second pass: every task selectable again, ratings kept. Returns how many tasks were seen."""
        return self._ledger.reset_seen(project)

    def _deleted(self, project: int, kind: str, ids: list[int]) -> None:
        for listener in self._deletion_listeners:
            listener(project, kind, ids)
