"""The catch-up sync reads Label Studio's listing while webhooks keep arriving.

Found by the soak: a sync whose listing was taken just before an annotation was
deleted recorded the annotation again after its ANNOTATIONS_DELETED webhook had
removed it. The same window can put an older value over a newer update. Here the
listing is served by a stand-in whose iteration lets a webhook land mid-sync.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ml_backend.adapters.ls_gateway import ProjectCounts
from ml_backend.service.pull import LabelStudioPull

from .support import annotation_created, choice_result, task_payload, tasks_created

P = 1
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def annotation(annotation_id: int, task: int, choice: str, at: float) -> dict:
    return {"id": annotation_id, "task": task, "result": choice_result(choice), "was_cancelled": False, "updated_at": iso(at)}


class ListingWithAWebhookInTheMiddle:
    """Stands in for the Label Studio gateway: the listing is a snapshot, and `during`
    runs after the first task is handed out, as a webhook would while the sync works."""

    def __init__(self, tasks: list[dict], during):
        self.tasks, self.during = tasks, during

    def ml_connections(self, project):
        return []

    def ensure_webhook(self, project, backend_urls):
        return []

    def counts(self, project):
        return ProjectCounts(len(self.tasks), sum(len(task["annotations"]) for task in self.tasks))

    def model_versions(self, project):
        return {}

    def iter_tasks(self, project):
        for i, task in enumerate(self.tasks):
            yield task
            if i == 0:
                self.during()


@pytest.fixture
def backend(make_backend):
    backend = make_backend()
    backend.setup(P)
    backend.webhook(tasks_created(P, [task_payload(1), task_payload(2)]))
    backend.wait(P)
    return backend


def sync(backend, gateway) -> None:
    projects = backend.runtime.projects
    LabelStudioPull(gateway, projects).sync(P)


def test_an_annotation_deleted_during_a_sync_stays_deleted(backend):
    backend.webhook(annotation_created(P, 60, task_payload(1), choice_result("+1")))
    listing = [{"id": 1, "data": {"image": "x"}, "annotations": [annotation(60, 1, "+1", 1)]},
               {"id": 2, "data": {"image": "y"}, "annotations": []}]
    sync(backend, ListingWithAWebhookInTheMiddle(
        listing, lambda: backend.webhook({"action": "ANNOTATIONS_DELETED", "project": {"id": P}, "annotations": [{"id": 60}]})))
    assert backend.runtime.projects.ledger.annotation_ids(P) == []


def test_an_update_during_a_sync_is_not_overwritten_by_the_older_listing(backend):
    listing = [{"id": 1, "data": {"image": "x"}, "annotations": [annotation(61, 1, "+1", 1)]},
               {"id": 2, "data": {"image": "y"}, "annotations": []}]

    def update():
        body = annotation_created(P, 61, task_payload(1), choice_result("-1"), action="ANNOTATION_UPDATED")
        body["annotation"]["updated_at"] = iso(5)
        backend.webhook(body)

    sync(backend, ListingWithAWebhookInTheMiddle(listing, update))
    assert backend.runtime.projects.ledger.ratings(P) == {1: -1.0}


def test_a_reused_annotation_id_is_recorded(backend):
    """Label Studio on SQLite can give a new annotation the id of a deleted one."""
    backend.webhook(annotation_created(P, 62, task_payload(1), choice_result("+1")))
    backend.webhook({"action": "ANNOTATIONS_DELETED", "project": {"id": P}, "annotations": [{"id": 62}]})
    backend.webhook(annotation_created(P, 62, task_payload(2), choice_result("-1")))
    assert backend.runtime.projects.ledger.ratings(P) == {2: -1.0}
    # A sync that starts after the deletion takes the listing as it is.
    sync(backend, ListingWithAWebhookInTheMiddle(
        [{"id": 1, "data": {"image": "x"}, "annotations": []},
         {"id": 2, "data": {"image": "y"}, "annotations": [annotation(62, 2, "0", 9)]}], lambda: None))
    assert backend.runtime.projects.ledger.ratings(P) == {2: 0.0}
