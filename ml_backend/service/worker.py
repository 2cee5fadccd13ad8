"""The background worker: brings each project's Label Studio side up to date.

Webhooks only record facts in the ledger and wake this thread. The worker then
compares what should be (embedded tasks, a head fitted on all ratings, a next-batch
view, one prediction per task for the current version) with what is, and does the
difference. Because it works from state rather than from a queue of events, a
duplicate webhook changes nothing, a restart resumes, and a Label Studio outage
only delays the pushes: they are retried with backoff until they succeed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from ..adapters.ls_client import LabelStudioGateway, LabelStudioRejected
from ..adapters.ls_payloads import prediction, read_rating
from ..core.errors import BackendError, ConfigError, UnknownProjectError
from ..core.loop import MAX_EMBED_ATTEMPTS, version_name
from .projects import ProjectRegistry

log = logging.getLogger(__name__)

EMBED_CHUNK = 256
MAX_BACKOFF_S = 60.0


@dataclass
class _ProjectWork:
    due: float = 0.0                # monotonic time of the next attempt
    failures: int = 0               # consecutive failures, for backoff
    needs_sync: bool = True         # register webhook, backfill tasks and annotations from Label Studio
    last_error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Worker:
    """One thread per process; `notify(project)` schedules a reconcile pass."""

    def __init__(self, projects: ProjectRegistry, gateway: LabelStudioGateway | None, backend_url: str | None = None,
                 poll_interval_s: float = 2.0, prediction_chunk: int = 500, keep_old_predictions: bool = False,
                 task_check_interval_s: float = 30.0, bulk_prediction_delay_s: float = 0.0):
        self.projects = projects
        self.gateway = gateway
        self.backend_url = backend_url
        self.poll_interval_s = poll_interval_s
        self.prediction_chunk = prediction_chunk
        self.keep_old_predictions = keep_old_predictions
        self.task_check_interval_s = task_check_interval_s
        self.bulk_prediction_delay_s = bulk_prediction_delay_s
        self._head_changed_at: dict[int, float] = {}   # project -> when its latest refit's batch was pushed
        self._bulk_not_before: dict[int, float] = {}   # project -> when deferred bulk predictions may start
        self._next_count_check = time.monotonic() + task_check_interval_s
        self._work: dict[int, _ProjectWork] = {}
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    # -- control -------------------------------------------------------------
    def start(self) -> None:
        for project in self.projects.project_ids():
            self.notify(project, sync=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def notify(self, project: int, sync: bool = False) -> None:
        """Schedule a pass for `project` now; `sync` also re-reads Label Studio's tasks and annotations."""
        with self._wake:
            work = self._work.setdefault(project, _ProjectWork())
            work.due = 0.0
            work.needs_sync = work.needs_sync or sync
            work.done.clear()
            self._wake.notify_all()

    def wait_idle(self, project: int, timeout: float) -> bool:
        """Block until `project` has nothing left to do (True) or `timeout` passes (False)."""
        with self._wake:
            work = self._work.get(project)
        return True if work is None else work.done.wait(timeout)

    def status(self, project: int) -> dict:
        with self._wake:
            work = self._work.get(project)
            if work is None:
                return {"idle": True, "last_error": None}
            return {"idle": work.done.is_set(), "last_error": work.last_error, "failures": work.failures}

    # -- the loop ------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._stop and not self._due_projects():
                    self._wake.wait(self._sleep_time())
                if self._stop:
                    return
                due = self._due_projects()
            for project in due:
                self._pass(project)
            if self.gateway is not None and time.monotonic() >= self._next_count_check:
                self._next_count_check = time.monotonic() + self.task_check_interval_s
                self._check_task_counts()

    def _check_task_counts(self) -> None:
        """Resync projects whose task count differs from Label Studio's.

        Webhooks can go missing: Label Studio does not retry them, and on SQLite a storage
        sync that fails part-way ("database is locked") creates tasks but never sends
        TASKS_CREATED. One cheap call per idle project finds such tasks.
        """
        for project in self.projects.project_ids():
            with self._wake:
                work = self._work.get(project)
                if work is not None and not work.done.is_set():
                    continue
            try:
                remote = self.gateway.task_count(project)
            except BackendError:
                continue  # Label Studio unreachable: nothing to compare now
            except Exception:  # noqa: BLE001 - the worker thread must survive anything
                log.exception("project %s: task count check failed", project)
                continue
            local = self.projects.ledger.task_total(project)
            if remote != local:
                log.info("project %s: Label Studio has %d tasks, the ledger %d: resyncing", project, remote, local)
                self.notify(project, sync=True)

    def _due_projects(self) -> list[int]:
        now = time.monotonic()
        return [p for p, w in self._work.items() if not w.done.is_set() and w.due <= now]

    def _sleep_time(self) -> float:
        pending = [w.due for w in self._work.values() if not w.done.is_set()]
        wake_at = min(pending + [self._next_count_check]) if self.gateway is not None else min(pending, default=None)
        return max(0.0, wake_at - time.monotonic()) if wake_at is not None else self.poll_interval_s

    def _pass(self, project: int) -> None:
        with self._wake:
            work = self._work[project]
            sync, work.needs_sync = work.needs_sync, False
            work.due = float("inf")  # a notify() during the pass resets this to 0
            self._bulk_not_before.pop(project, None)
        sync_error = self._sync(project) if sync else None
        try:
            more = self.reconcile(project)
        except (ConfigError, UnknownProjectError) as exc:
            # Nothing to retry until the admin fixes the project; /setup or a webhook notifies again.
            log.error("project %s: %s", project, exc)
            self._settle(work, sync, error=str(exc), retry=False)
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything and retry later
            if isinstance(exc, BackendError):
                log.warning("project %s: %s (will retry)", project, exc)
            else:
                log.exception("project %s: reconcile failed (will retry)", project)
            # A 4xx usually means our picture of the project is stale (e.g. a task deleted
            # while no webhook reached us): resync before trying again.
            resync = sync or isinstance(exc, LabelStudioRejected)
            self._settle(work, resync, error=f"{type(exc).__name__}: {exc}", retry=True)
        else:
            if sync_error is not None:
                self._settle(work, sync, error=sync_error, retry=True)
            else:
                self._settle(work, sync=False, error=None, retry=more, wake_at=self._bulk_not_before.pop(project, None))

    def _sync(self, project: int) -> str | None:
        """Catch up with Label Studio; returns the error text on failure (the rest of the pass still runs)."""
        if self.gateway is None:
            return None
        try:
            loop, schema = self.projects.get_with_schema(project)
            self.sync_from_label_studio(project, loop, schema)
            return None
        except (ConfigError, UnknownProjectError):
            return None  # reported by the reconcile step that follows
        except Exception as exc:  # noqa: BLE001
            log.warning("project %s: sync with Label Studio failed: %s (will retry)", project, exc)
            return f"sync: {type(exc).__name__}: {exc}"

    def _settle(self, work: _ProjectWork, sync: bool, error: str | None, retry: bool, wake_at: float | None = None) -> None:
        with self._wake:
            work.needs_sync = work.needs_sync or (sync and error is not None and retry)
            work.last_error = error
            if error is None:
                work.failures = 0
                if retry:
                    work.due = 0.0
                elif wake_at is not None and work.due == float("inf"):
                    work.due = wake_at  # deferred work: not idle, come back then
            elif retry:
                work.failures += 1
                work.due = time.monotonic() + min(MAX_BACKOFF_S, 0.5 * 2 ** min(work.failures, 8))
            if work.due == float("inf") and not work.needs_sync:
                work.done.set()

    # -- one pass --------------------------------------------------------------
    def reconcile(self, project: int) -> bool:
        """Do one round of outstanding work for `project`; True if more remains."""
        loop, schema = self.projects.get_with_schema(project)
        loop.embed_pending(EMBED_CHUNK)
        refit = loop.refit_if_needed()
        more = bool(self.projects.ledger.tasks_in_state(project, "pending", limit=1, max_attempts=MAX_EMBED_ATTEMPTS))
        if self.gateway is None:
            return more
        self._push_batch(project, loop, schema)
        if refit is not None:
            self._head_changed_at[project] = time.monotonic()  # counted from when its batch is out
        return self._push_predictions(project, loop, schema) or more

    def sync_from_label_studio(self, project, loop, schema) -> None:
        """Label Studio is the source of truth for tasks and annotations: catch up on
        whatever happened while this process was down (webhooks are not retried)."""
        self.gateway.ensure_task_webhook(project, self.backend_url)
        ledger = self.projects.ledger
        known_annotations = set(ledger.annotation_ids(project))
        known_tasks = set(ledger.task_ids(project))
        annotations: set[int] = set()
        tasks: set[int] = set()
        for task in self.gateway.iter_tasks(project):
            tasks.add(task["id"])
            loop.add_tasks([(task["id"], task["data"])])
            for annotation in task["annotations"]:
                rating = read_rating(annotation, schema.scale, fallback_task=task["id"])
                annotations.add(rating.annotation_id)
                loop.record_annotation(rating.annotation_id, rating.task_id, rating.target, rating.error)
        if known_annotations - annotations:
            loop.delete_annotations(sorted(known_annotations - annotations))
        # Tasks deleted in Label Studio while no webhook reached us; deleting is only safe
        # when the listing was complete, so check it against Label Studio's own count.
        if known_tasks - tasks and len(tasks) == self.gateway.task_count(project):
            gone = sorted(known_tasks - tasks)
            loop.store.delete(gone)
            ledger.delete_tasks(project, gone)

    def _push_batch(self, project, loop, schema) -> None:
        """Point the next-batch view at the strategy's current pick, if it changed."""
        ledger = self.projects.ledger
        batch = loop.select_batch()
        task_ids = [t.task_id for t in batch]
        wanted = {
            "task_ids": task_ids, "title": loop.params.view_title,
            "model_version": loop.model_version(), "batch_rev": ledger.project(project).batch_rev,
        }
        pushed = ledger.get_state(project, "view") or {}
        if pushed.get("id") and all(pushed.get(key) == value for key, value in wanted.items()) and pushed.get("ordered", True):
            return
        # Which tasks first: annotators need the new batch, and the view update is one fast
        # call. Its score order follows: the view sorts by the score of the project's model
        # version, so the batch's predictions of the new version go next, then the version
        # switch, a PATCH of the whole project that Label Studio answers slowly on big
        # projects (1.5-2.5 s at 100k tasks on SQLite, measured). Until it lands, the view
        # lists the new batch in the previous version's order.
        view_id = self.gateway.push_view(project, loop.params.view_title, task_ids, pushed.get("id"))
        state = {"id": view_id, **wanted, "scores": [round(t.score, 6) for t in batch], "pushed_at": time.time()}
        ledger.set_state(project, "view", {**state, "ordered": False})
        log.info("project %s: next batch %s in view %s", project, task_ids, view_id)
        current = loop.current_head()
        if current is not None and task_ids:
            self._predict(project, loop, schema, ledger.not_predicted(project, task_ids, current.version))
            self._set_model_version(project, loop.model_version())
        ledger.set_state(project, "view", {**state, "ordered": True, "ordered_at": time.time()})

    def _push_predictions(self, project, loop, schema) -> bool:
        """Push one chunk of predictions of the current version; True if more remain."""
        ledger = self.projects.ledger
        current = loop.current_head()
        if current is None:
            return False
        hold_until = self._head_changed_at.get(project, float("-inf")) + self.bulk_prediction_delay_s
        if time.monotonic() < hold_until:
            # Ratings are arriving: the next one will replace this head long before every
            # task has its prediction, and a chunk in flight when it arrives delays that
            # rating's batch by the whole chunk. Push the rest once the annotator pauses.
            self._bulk_not_before[project] = hold_until
            return False
        task_ids = ledger.tasks_to_predict(project, current.version, self.prediction_chunk)
        if task_ids:
            self._predict(project, loop, schema, task_ids)
            return True
        self._set_model_version(project, loop.model_version())
        if not self.keep_old_predictions:
            # Every task now has a prediction of this version: older ones only clutter Label Studio.
            for old in ledger.versions_pushed(project):
                if old != current.version:
                    self.gateway.delete_model_version(project, version_name(old))
                    ledger.forget_version_pushed(project, old)
        return False

    def _predict(self, project, loop, schema, task_ids: list[int]) -> None:
        current = loop.current_head()
        if not task_ids or current is None:
            return
        self.projects.ledger.note_version_pushed(project, current.version)
        scores = loop.scores(task_ids)
        version = version_name(current.version)
        self.gateway.push_predictions(project, [
            {"task": task_id, **prediction(schema.scale, scores[task_id], version)} for task_id in task_ids if task_id in scores
        ])
        self.projects.ledger.mark_predicted(project, task_ids, current.version)

    def _set_model_version(self, project: int, version: str) -> None:
        ledger = self.projects.ledger
        if ledger.get_state(project, "project_model_version") != version:
            self.gateway.set_model_version(project, version)
            ledger.set_state(project, "project_model_version", version)
