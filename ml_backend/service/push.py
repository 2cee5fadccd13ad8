"""Push: bring Label Studio's side of a project up to date with the loop.

The next-batch view (the strategy's current pick), one prediction per task of the
current head version, the project's `model_version`, and no predictions of older
versions. It compares what should be with what `LabelStudioRecords` says was sent
and sends the difference, so a repeated push sends nothing and a restart resumes.
"""

from __future__ import annotations

import logging
import time

from ..adapters.ls_config import ProjectSchema
from ..adapters.ls_gateway import LabelStudioGateway
from ..adapters.ls_predictions import predictions_for
from ..adapters.ls_records import version_name, version_number
from ..adapters.ls_views import VIEW_FORMAT
from ..core.errors import RemoteRejected
from ..core.loop import ActiveLoop
from .connections import ConnectionReport
from .evaluation import SEPARATOR, Evaluations, summary_line, tab_lead
from .projects import ProjectRegistry

log = logging.getLogger(__name__)

NOW, NEVER = 0.0, float("inf")


class LabelStudioPush:
    """Pushes one project at a time (from the worker thread).

    prediction_chunk : predictions per Label Studio call.
    keep_old_predictions : leave superseded versions' predictions in Label Studio.
    bulk_prediction_delay_s : after a new head's batch is out, hold the other tasks'
        predictions this long, for the next rating to arrive first.
    evaluations : whose latest summary the next-batch view's title carries (`evaluation.tab_summary`).
    """

    def __init__(self, gateway: LabelStudioGateway, projects: ProjectRegistry, prediction_chunk: int = 200,
                 keep_old_predictions: bool = False, bulk_prediction_delay_s: float = 0.0,
                 evaluations: Evaluations | None = None):
        self.gateway, self.projects = gateway, projects
        self.ledger, self.records = projects.ledger, projects.records
        self.prediction_chunk = prediction_chunk
        self.keep_old_predictions = keep_old_predictions
        self.bulk_prediction_delay_s = bulk_prediction_delay_s
        self.evaluations = evaluations
        self._batch_version_at: dict[int, tuple[int, float]] = {}  # project -> (head version, when its batch went out)

    def push(self, project: int) -> float:
        """Push the view and a chunk of predictions. Returns when the next push is due:
        0 (more to push now), a time.monotonic() (predictions held back until then) or inf (all sent)."""
        connections = ConnectionReport.from_state(self.records.connections(project))
        if connections is not None and connections.detached:
            return float("inf")  # its admin deleted the connection: the project is theirs alone
        loop, schema = self.projects.get_with_schema(project)
        try:
            self._push_batch(project, loop, schema)
        except RemoteRejected:
            # Refused, not unreachable: the predictions (pre-annotations) do not need the view, so
            # they go on; the refusal still ends the pass, for the worker to report and resync.
            self._push_predictions(project, loop, schema)
            raise
        return self._push_predictions(project, loop, schema)

    def _push_batch(self, project: int, loop: ActiveLoop, schema: ProjectSchema) -> None:
        """Point the next-batch view at the strategy's current pick, if it changed."""
        batch = loop.select_batch()
        task_ids = [t.task_id for t in batch]
        title = self._title(project, loop)
        wanted = {
            "task_ids": task_ids, "title": title,
            "model_version": version_name(loop.head_version()), "batch_rev": self.ledger.project(project).batch_rev,
            "format": VIEW_FORMAT,
        }
        pushed = self.records.view(project) or {}
        if (pushed.get("id") and all(pushed.get(key) == value for key, value in wanted.items())
                and pushed.get("ordered", True) and not pushed.get("rewrite")):
            return
        # Which tasks first: annotators need the new batch, and the view update is one fast
        # call. Its score order follows: the view sorts by the score of the project's model
        # version, so the batch's predictions of the new version go next, then the version
        # switch, a PATCH of the whole project that Label Studio answers slowly on big
        # projects (1.5-2.5 s at 100k tasks on SQLite, measured). Until it lands, the view
        # lists the new batch in the previous version's order.
        view_id = self.gateway.push_view(project, title, task_ids, pushed.get("id"))
        state = {"id": view_id, **wanted, "scores": [round(t.score, 6) for t in batch], "pushed_at": time.time()}
        self.records.set_view(project, {**state, "ordered": False})
        log.info("project %s: next batch %s in view %s", project, task_ids, view_id)
        version = self._publishable_version(project, loop)
        if version and task_ids:
            self._predict(project, loop, schema, self.records.not_predicted(project, task_ids, version))
            self._set_model_version(project, version_name(version))
        self.records.set_view(project, {**state, "ordered": True, "ordered_at": time.time()})
        if version and self._batch_version_at.get(project, (None,))[0] != version:
            self._batch_version_at[project] = (version, time.monotonic())

    def _title(self, project: int, loop: ActiveLoop) -> str:
        """The next-batch view's title: the admin's `view_title`, led by the evaluation's few words (what
        Label Studio's tab strip shows) and followed by its whole summary (the tab's tooltip), then by how
        many tasks the backend could not read, if any: the one place in Label Studio an admin learns that a
        batch is short because images failed (an allow-list, a storage setting)."""
        parts = [loop.params.view_title]
        if self.evaluations is not None and loop.params.evaluation.tab_summary:
            evaluation = self.evaluations.latest(project)
            lead, summary = tab_lead(evaluation), summary_line(evaluation)
            if lead and summary:
                parts = [lead, loop.params.view_title, summary]
        failed = loop.ledger.state_counts(project).get("failed", 0)
        if failed:
            parts.append(f"{failed} task{'s' if failed > 1 else ''} unreadable: the backend's /projects/{project}/status "
                         "says why")
        return SEPARATOR.join(parts)

    def _push_predictions(self, project: int, loop: ActiveLoop, schema: ProjectSchema) -> float:
        """Push one chunk of predictions of the current version; returns when the next push is due."""
        version = self._publishable_version(project, loop)
        if not version:
            return NEVER
        batch_version, batch_out_at = self._batch_version_at.get(project, (None, float("-inf")))
        hold_until = batch_out_at + self.bulk_prediction_delay_s if batch_version == version else float("-inf")
        if time.monotonic() < hold_until:
            # Ratings are arriving: the next one replaces this head long before every task has
            # its prediction, and a chunk in flight when it arrives delays that rating's batch
            # by the whole chunk. Push the rest once the annotator pauses.
            return hold_until
        task_ids = self.records.tasks_to_predict(project, version, self.prediction_chunk)
        if task_ids:
            self._predict(project, loop, schema, task_ids)
            return NOW
        if self.records.has_predictions(project, version):
            # With no task holding one (every task deleted), Label Studio refuses the version: 400, pass after pass.
            self._set_model_version(project, version_name(version))
        if not self.keep_old_predictions:
            # Every task now has a prediction of this version: older ones only clutter Label Studio.
            for old in self.records.versions_pushed(project):
                if old != version:
                    self.gateway.delete_model_version(project, version_name(old))
                    self.records.forget_version_pushed(project, old)
        return NEVER

    def _predict(self, project: int, loop: ActiveLoop, schema: ProjectSchema, task_ids: list[int]) -> None:
        if not task_ids:
            return
        predictions = predictions_for(loop, schema.scale, task_ids)
        if not predictions.version:
            return
        self._settle_in_flight(project)
        # Noted before the call: a crash after Label Studio stored them must not leave a version nobody deletes.
        self.records.note_version_pushed(project, predictions.version)
        self.records.note_in_flight(project, predictions.version)
        try:
            self.gateway.push_predictions(project, [{"task": t, **p} for t, p in predictions.by_task.items()])
        except RemoteRejected:  # refused, so not stored: nothing to undo
            self.records.note_in_flight(project, None)
            raise
        self.records.mark_predicted(project, task_ids, predictions.version)
        self.records.note_in_flight(project, None)

    def _settle_in_flight(self, project: int) -> None:
        """A chunk whose answer never came (timed out, or the process was killed while waiting) may be stored in
        Label Studio: sending it again gave its tasks two predictions of one version. Its version is deleted
        there instead, and every task's prediction of it is sent again."""
        version = self.records.in_flight(project)
        if version is None:
            return
        log.warning("project %s: a chunk of %s's predictions got no answer; that version is deleted in Label "
                    "Studio and sent again whole, so that no task holds it twice", project, version_name(version))
        self.gateway.delete_model_version(project, version_name(version))
        self.records.forget_predicted(project, version)
        self.records.note_in_flight(project, None)

    def _publishable_version(self, project: int, loop: ActiveLoop) -> int:
        """The head version to publish, or 0 when there is none or it is older than Label Studio's model_version.
        After a restart that switched the embedding model back (A, then B, then A again), the current head is A's
        older one until the re-embedded vectors give a refit: published, it took model_version back (v4 to v3)."""
        version = loop.head_version()
        published = version_number(self.records.project_model_version(project))
        return version if published is None or version >= published else 0

    def _set_model_version(self, project: int, version: str) -> None:
        if self.records.project_model_version(project) != version:
            self.gateway.set_model_version(project, version)
            self.records.set_project_model_version(project, version)
