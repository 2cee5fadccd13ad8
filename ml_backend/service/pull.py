"""Pull: catch up with Label Studio, the source of truth for tasks and annotations.

Label Studio never retries a webhook, so whatever happened while this process was
down (or while a webhook went missing) is read back from its listing and recorded
through the same write path as the webhooks (`core.facts.Facts`). Also: which ML
connections and webhooks lead to this backend, and whether a project's task count
still matches Label Studio's.
"""

from __future__ import annotations

import logging
import time

from ..adapters.ls_config import ProjectSchema
from ..adapters.ls_gateway import LabelStudioGateway
from ..adapters.ls_payloads import is_id, read_rating
from ..adapters.ls_records import version_name, version_number
from ..adapters.ml_connections import BackendIdentity
from ..core.errors import BackendError, RemoteRejected, RemoteUnavailable
from .connections import ConnectionReport, find_connections
from .projects import ProjectRegistry

log = logging.getLogger(__name__)

SYNC_PAGE = 500


class IncompleteListing(RemoteUnavailable):
    """Label Studio listed fewer tasks than it counts: what the listing lacks cannot be taken as deleted."""

    code = "incomplete_listing"


class LabelStudioPull:
    """Reads Label Studio for one project at a time (from the worker thread)."""

    def __init__(self, gateway: LabelStudioGateway, projects: ProjectRegistry, backend_url: str | None = None,
                 identity: BackendIdentity | None = None):
        self.gateway, self.projects, self.backend_url = gateway, projects, backend_url
        self.facts, self.ledger, self.records = projects.facts, projects.ledger, projects.records
        # Without an instance id, a connection is recognised by BACKEND_URL alone.
        self.identity = identity or BackendIdentity("", backend_url, probe=lambda url: None)
        # Project -> Label Studio's annotation count minus the ledger's right after its last sync. Not 0 when
        # the listing holds annotations the ledger leaves out (one unreadable): a gap that moves means missed events.
        self._annotation_gap: dict[int, int] = {}

    def sync(self, project: int) -> None:
        """Record every task and annotation Label Studio has, and forget what it no longer has."""
        self._sync(project)
        # What the ledger and Label Studio count once in step (see in_step); not taken when the sync failed.
        remote = self.gateway.counts(project).annotations
        if remote is not None:
            self._annotation_gap[project] = remote - self.ledger.annotation_total(project)
        self._adopt_published_versions(project)
        # The next-batch tab may have been deleted or edited in Label Studio meanwhile, and no event says
        # so: the push that follows writes it again (one update; a new tab if it is gone).
        view = self.records.view(project)
        if view:
            self.records.set_view(project, {**view, "rewrite": True})

    def _adopt_published_versions(self, project: int) -> None:
        """Head versions Label Studio holds from an earlier ledger of this project (MODEL_DIR lost, moved aside
        or restored from a backup): numbering goes on above them, the current head is published again under a
        new name, and theirs are deleted as superseded. Numbered from the ledger alone, versions went back (v5 to
        v1) and a later v5 gave tasks two predictions of one name."""
        try:
            listed = self.gateway.model_versions(project)
        except RemoteRejected as exc:  # nothing to compare with; the sync itself went through
            log.warning("project %s: cannot list its model versions: %s", project, exc)
            return
        published = [n for n in map(version_number, listed) if n is not None]
        if not published or not self.facts.versions_published(project, max(published)):
            return
        log.warning("project %s: Label Studio holds head versions up to %s from an earlier ledger: new versions "
                    "are numbered above them", project, version_name(max(published)))
        for version in published:
            self.records.note_version_pushed(project, version)

    def _sync(self, project: int) -> None:
        loop, schema = self.projects.get_with_schema(project)
        self.check_connections(project)
        loop.retry_given_up()  # e.g. images that timed out in an outage (a restart retries every failed task)
        # Webhooks keep arriving while the listing is read: what they delete after this
        # instant must not come back from the (older) listing, and what they update is
        # protected by Label Studio's updated_at (see Ledger.record_annotation).
        started = time.monotonic()
        known_annotations = set(self.ledger.annotation_ids(project))
        known_tasks = set(self.ledger.task_ids(project))
        # Counted before and after the listing: a task deleted while the pages are read moves a later
        # one onto a page already read, and a count taken only after would match the short listing.
        counted_before = self.gateway.counts(project).tasks
        annotations: set[int] = set()
        tasks: set[int] = set()
        unlisted_annotations = 0  # tasks whose annotations the listing does not give
        page: list[dict] = []
        for task in self.gateway.iter_tasks(project):
            page.append(task)
            tasks.add(task["id"])
            unlisted_annotations += not task.get("annotations_listed", True)
            if len(page) == SYNC_PAGE:
                annotations |= self._record_page(project, schema, page, started)
                page = []
        annotations |= self._record_page(project, schema, page, started)
        gone_annotations, gone_tasks = known_annotations - annotations, known_tasks - tasks
        if unlisted_annotations and gone_annotations:
            log.warning("project %s: %d listed tasks came without their annotations: the %d annotations the "
                        "listing lacks are kept", project, unlisted_annotations, len(gone_annotations))
            gone_annotations = set()
        if not (gone_annotations or gone_tasks):
            return
        # What the listing lacks was deleted in Label Studio while no webhook reached us, but only
        # if the listing was complete: a page cut off or refused looks the same. Label Studio's own
        # count says which.
        counted = self.gateway.counts(project).tasks
        if counted != counted_before:
            raise IncompleteListing(f"Label Studio counted {counted_before} tasks before its listing and {counted} "
                                    "after: nothing was deleted, the sync will run again")
        if counted is None:
            log.warning("project %s: Label Studio does not say how many tasks it has, so its listing cannot be "
                        "checked: %d annotations and %d tasks it lacks are kept", project, len(gone_annotations),
                        len(gone_tasks))
            return
        if len(tasks) != counted:
            raise IncompleteListing(f"the task listing held {len(tasks)} tasks, Label Studio counts {counted}: "
                                    "nothing was deleted, the sync will run again")
        if gone_annotations:
            self.facts.delete_annotations(project, sorted(gone_annotations))
        if gone_tasks:
            self.facts.delete_tasks(project, sorted(gone_tasks))

    def _record_page(self, project: int, schema: ProjectSchema, tasks: list[dict], started: float) -> set[int]:
        """Record a page of Label Studio tasks and their annotations; returns the annotation ids listed."""
        deleted_tasks = self.records.deleted_since(project, "tasks", started)
        deleted_annotations = self.records.deleted_since(project, "annotations", started)
        tasks = [task for task in tasks if task["id"] not in deleted_tasks]
        self.facts.list_tasks(project, [(task["id"], task["data"], task.get("created_at")) for task in tasks])
        listed: set[int] = set()
        for task in tasks:
            for annotation in task["annotations"]:
                try:
                    rating = read_rating(annotation, schema.scale, fallback_task=task["id"])
                except BackendError as exc:  # one malformed annotation must not stop the sync
                    log.warning("project %s task %s: skipping an annotation: %s", project, task["id"], exc)
                    if is_id(annotation.get("id")):
                        listed.add(annotation["id"])  # listed, though unreadable: not deleted for it
                    continue
                listed.add(rating.annotation_id)
                if rating.annotation_id not in deleted_annotations:
                    self.facts.record_annotation(project, rating)
        return listed

    def check_connections(self, project: int) -> None:
        """Record which connections and webhooks lead here; with several, the oldest's params count."""
        before = ConnectionReport.from_state(self.records.connections(project))
        report = find_connections(self.gateway, self.identity, project, self.backend_url, before)
        self.records.set_connections(project, report.as_state())
        if len(report.connections) > 1:
            self.projects.apply_connection_params(project, report.primary_params)

    def in_step(self, project: int) -> bool:
        """Whether Label Studio has as many tasks as the ledger, and its annotations the same gap to the
        ledger's as after the last sync (one cheap call).

        Webhooks can go missing: Label Studio does not retry them, on SQLite a storage sync that
        fails part-way ("database is locked") creates tasks but never sends TASKS_CREATED, and an
        admin may delete the webhook (ratings then stop arriving). A project out of step needs a sync.
        """
        remote = self.gateway.counts(project)
        if remote.tasks is None:
            return True  # nothing to compare with; webhooks and /setup still trigger syncs
        local = self.ledger.task_total(project)
        if remote.tasks != local:
            log.info("project %s: Label Studio has %d tasks, the ledger %d: resyncing", project, remote.tasks, local)
            return False
        gap = self._annotation_gap.get(project)
        if gap is None or remote.annotations is None:
            return True  # no sync has measured it yet (one runs at every start), or nothing to compare with
        local = self.ledger.annotation_total(project)
        if remote.annotations - local != gap:
            log.info("project %s: Label Studio has %d annotations, the ledger %d (%+d after the last sync): resyncing",
                     project, remote.annotations, local, gap)
            return False
        return True
