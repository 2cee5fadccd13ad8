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

from ..adapters.ls_client import LabelStudioGateway, LabelStudioRejected, LabelStudioUnavailable
from ..adapters.ls_payloads import prediction, read_rating
from ..adapters.ls_views import VIEW_FORMAT
from ..adapters.ml_connections import BackendIdentity
from ..core.errors import BackendError, ConfigError, LedgerCorruptError, UnknownProjectError
from ..core.loop import MAX_EMBED_ATTEMPTS, version_name
from .connections import audit_connections
from .projects import ProjectRegistry

log = logging.getLogger(__name__)

EMBED_CHUNK = 256
# How long a pass waits for an image it needs before leaving it to load in the background:
# this thread serves every project, so a slow image source may hold it no longer than this.
IMAGE_WAIT_S = 0.25
SYNC_PAGE = 500
MAX_BACKOFF_S = 60.0


@dataclass
class _ProjectWork:
    due: float = 0.0                # monotonic time of the next pass
    remote_due: float = 0.0         # earliest next call to Label Studio (backoff after failures)
    settle_until: float = 0.0       # no call to Label Studio before this either (see notify's settle_s)
    failures: int = 0               # consecutive failed passes, for backoff
    needs_sync: bool = True         # audit connections, backfill tasks and annotations from Label Studio
    needs_audit: bool = False       # only look at the ML connections and webhooks again
    loading: bool = False           # images still loading in the background (not idle, nothing to do yet)
    last_error: str | None = None
    activity: str = "idle"          # what the pass is doing now, for the status endpoint
    done: threading.Event = field(default_factory=threading.Event)


class Worker:
    """One thread per process; `notify(project)` schedules a reconcile pass.

    A pass has a local part (embed, refit, copy `seen` to the store) and a remote part
    (sync from Label Studio, push the view and predictions). Only the remote part
    backs off when Label Studio is unreachable: an outage must not slow down embedding
    an import or refitting on new ratings.
    """

    def __init__(self, projects: ProjectRegistry, gateway: LabelStudioGateway | None, backend_url: str | None = None,
                 poll_interval_s: float = 2.0, prediction_chunk: int = 500, keep_old_predictions: bool = False,
                 max_backoff_s: float = MAX_BACKOFF_S, task_check_interval_s: float = 30.0,
                 bulk_prediction_delay_s: float = 0.0, identity: BackendIdentity | None = None):
        self.projects = projects
        self.gateway = gateway
        self.backend_url = backend_url
        # Without an instance id, a connection is recognised by BACKEND_URL alone.
        self.identity = identity or BackendIdentity("", backend_url, probe=lambda url: None)
        self.poll_interval_s = poll_interval_s
        self.prediction_chunk = prediction_chunk
        self.keep_old_predictions = keep_old_predictions
        self.max_backoff_s = max_backoff_s
        self.task_check_interval_s = task_check_interval_s
        self.bulk_prediction_delay_s = bulk_prediction_delay_s
        self._batch_version_at: dict[int, tuple[int, float]] = {}  # project -> (head version, when its batch went out)
        self._bulk_not_before: dict[int, float] = {}  # project -> when held-back bulk predictions may start
        self._next_count_check = time.monotonic() + task_check_interval_s
        self._work: dict[int, _ProjectWork] = {}
        self._absent: set[int] = set()  # projects Label Studio answered 404 for: left out of the task count check
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    # -- control -------------------------------------------------------------
    def start(self) -> None:
        try:
            for project in self.projects.project_ids():
                self.notify(project, sync=True)
        except LedgerCorruptError as exc:
            log.error("not resuming any project: %s", exc)  # /health says so
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def notify(self, project: int, sync: bool = False, audit: bool = False, settle_s: float = 0.0) -> None:
        """Schedule a pass for `project` now; `sync` also re-reads Label Studio's tasks and annotations,
        `audit` only its ML connections and webhooks (a sync does both). With `settle_s` the pass's
        calls to Label Studio wait that long (the local part, e.g. a refit, does not); repeated
        notifies never push them back further, so a stream of /setup calls cannot starve them."""
        with self._wake:
            if sync:
                self._absent.discard(project)
            work = self._work.setdefault(project, _ProjectWork())
            work.due = 0.0
            if settle_s and work.settle_until <= time.monotonic():  # a settle already pending is not extended
                work.settle_until = time.monotonic() + settle_s
            work.needs_sync = work.needs_sync or sync
            work.needs_audit = work.needs_audit or audit
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

    def activity(self, project: int) -> str:
        """What the worker is doing for `project` right now: idle, syncing, embedding, refitting, pushing, waiting."""
        with self._wake:
            work = self._work.get(project)
            return "idle" if work is None else work.activity

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
                try:
                    self._check_task_counts()
                except LedgerCorruptError:
                    pass  # reported by /health; nothing to compare with

    def _check_task_counts(self) -> None:
        """Resync projects whose task count differs from Label Studio's.

        Webhooks can go missing: Label Studio does not retry them, and on SQLite a storage
        sync that fails part-way ("database is locked") creates tasks but never sends
        TASKS_CREATED. One cheap call per idle project finds such tasks.
        """
        for project in self.projects.project_ids():
            with self._wake:
                work = self._work.get(project)
                if project in self._absent or (work is not None and not work.done.is_set()):
                    continue
            try:
                remote = self.gateway.task_count(project)
            except LabelStudioUnavailable:
                break  # one timeout per round is enough: the other projects would wait on it too
            except LabelStudioRejected as exc:
                if exc.status_code == 404:  # gone from Label Studio: not asked again until it is set up again
                    with self._wake:
                        self._absent.add(project)
                continue
            except BackendError:
                continue
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
        # Projects waiting for images loading in the background have no due time: they are notified.
        pending = [w.due for w in self._work.values() if not w.done.is_set() and w.due != float("inf")]
        wake_at = min(pending + [self._next_count_check]) if self.gateway is not None else min(pending, default=None)
        return max(0.0, wake_at - time.monotonic()) if wake_at is not None else self.poll_interval_s

    def _pass(self, project: int) -> None:
        with self._wake:
            work = self._work[project]
            work.due = float("inf")  # a notify() during the pass resets this to 0
            work.loading = False
            # A full pass talks to Label Studio (or has none); otherwise it waits out a backoff.
            full = self.gateway is None or max(work.remote_due, work.settle_until) <= time.monotonic()
            sync = full and work.needs_sync and self.gateway is not None
            audit_only = full and work.needs_audit and not sync and self.gateway is not None
            if full:
                work.needs_sync = work.needs_audit = False
        if audit_only:
            self._audit(project, work)
        sync_failure = self._sync(project, work) if sync else None
        sync_error = f"sync: {type(sync_failure).__name__}: {sync_failure}" if sync_failure else None
        # Unreachable for the sync means unreachable for the pushes: do not wait on it twice.
        push = full and self.gateway is not None and not isinstance(sync_failure, LabelStudioUnavailable)
        push_failure = None
        try:
            local_more = self._reconcile_local(project, work)
            remote_more = False
            if push:
                remote_more, push_failure = self._push(project, work)
        except (ConfigError, UnknownProjectError, LedgerCorruptError) as exc:
            # Nothing to retry until the admin fixes the project (or the ledger); /setup or a webhook notifies again.
            log.error("project %s: %s", project, exc)
            self._settle(work, error=str(exc), due=float("inf"), resync=sync_error is not None)
            return
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything and retry later
            self._log_failure(project, exc, "reconcile")
            self._settle(work, error=f"{type(exc).__name__}: {exc}", resync=sync_error is not None,
                         due=time.monotonic() + self._backoff(work.failures + 1), remote_failed=True)
            return
        push_error = f"{type(push_failure).__name__}: {push_failure}" if push_failure else None
        remote_failed = sync_error is not None or push_error is not None
        # A 4xx usually means our picture of the project is stale (e.g. a task deleted
        # while no webhook reached us): resync before trying again.
        resync = sync_error is not None or isinstance(push_failure, LabelStudioRejected)
        if full and not remote_failed and work.failures and self.gateway is not None:
            # Label Studio is back after an outage: images it serves that failed meanwhile get another try.
            local_more = self._retry_given_up(project) or local_more
        if remote_failed:
            due = 0.0 if local_more else time.monotonic() + self._backoff(work.failures + 1)
        elif full:
            # Bulk predictions held back while ratings arrive come due on their own.
            due = 0.0 if (local_more or remote_more) else self._bulk_not_before.pop(project, float("inf"))
        else:
            due = 0.0 if local_more else max(work.remote_due, work.settle_until)
        error = "; ".join(e for e in (sync_error, push_error) if e) or None
        self._settle(work, error=error, due=due, resync=resync, remote_failed=remote_failed, full=full)

    def _retry_given_up(self, project: int) -> bool:
        retried = self.projects.ledger.retry_given_up(project, MAX_EMBED_ATTEMPTS)
        if retried:
            log.info("project %s: retrying %d tasks whose images failed to load during the outage", project, retried)
        return retried > 0

    def _push(self, project: int, work: _ProjectWork) -> tuple[bool, Exception | None]:
        """The remote part of a pass: (more to push, the failure or None)."""
        try:
            self._set_activity(work, "pushing")
            return self._reconcile_remote(project), None
        except (ConfigError, UnknownProjectError, LedgerCorruptError):
            raise
        except Exception as exc:  # noqa: BLE001 - Label Studio down or refusing: retry with backoff
            self._log_failure(project, exc, "pushing to Label Studio")
            return False, exc

    def _sync(self, project: int, work: _ProjectWork) -> Exception | None:
        """Catch up with Label Studio; returns the failure, if any (the rest of the pass still runs)."""
        try:
            self._set_activity(work, "syncing")
            loop, schema = self.projects.get_with_schema(project)
            self.sync_from_label_studio(project, loop, schema)
            return None
        except (ConfigError, UnknownProjectError, LedgerCorruptError):
            return None  # reported by the reconcile step that follows
        except Exception as exc:  # noqa: BLE001
            self._log_failure(project, exc, "sync with Label Studio")
            return exc

    def _audit(self, project: int, work: _ProjectWork) -> None:
        """Look at the project's ML connections again; a failure only waits for the next sync."""
        try:
            self._set_activity(work, "syncing")
            self.audit_connections(project)
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything
            self._log_failure(project, exc, "checking ML connections")

    def audit_connections(self, project: int) -> None:
        """Record which connections and webhooks lead here; with several, the oldest's params count."""
        report = audit_connections(self.gateway, self.identity, project, self.backend_url)
        self.projects.ledger.set_state(project, "connections", report.as_state())
        if len(report.connections) > 1:
            self.projects.apply_connection_params(project, report.primary_params)

    def _set_activity(self, work: _ProjectWork, activity: str) -> None:
        with self._wake:
            work.activity = activity

    def _backoff(self, failures: int) -> float:
        return min(self.max_backoff_s, 0.5 * 2 ** min(failures, 8))

    @staticmethod
    def _log_failure(project: int, exc: Exception, doing: str) -> None:
        if isinstance(exc, BackendError):
            log.warning("project %s: %s failed: %s (will retry)", project, doing, exc)
        else:
            log.exception("project %s: %s failed (will retry)", project, doing)

    def _settle(self, work: _ProjectWork, error: str | None, due: float, resync: bool = False,
                remote_failed: bool = False, full: bool = False) -> None:
        with self._wake:
            work.needs_sync = work.needs_sync or resync
            if full or error is not None:
                work.last_error = error  # a pass that only waits out a backoff keeps the last error
            if error is not None:
                work.failures += 1
                if remote_failed:
                    work.remote_due = time.monotonic() + self._backoff(work.failures)
            elif full:
                work.failures, work.remote_due = 0, 0.0
            work.due = min(work.due, due)  # keep a notify() that came in during the pass
            if work.due == float("inf") and not work.needs_sync and not work.needs_audit and not work.loading:
                work.done.set()
                work.activity = "idle"
            else:
                work.activity = "loading images" if work.loading and work.due == float("inf") else "waiting"

    # -- one pass --------------------------------------------------------------
    def reconcile(self, project: int) -> bool:
        """Do one round of outstanding work for `project`; True if more remains."""
        more = self._reconcile_local(project)
        if self.gateway is None:
            return more
        return self._reconcile_remote(project) or more

    def _reconcile_local(self, project: int, work: _ProjectWork | None = None) -> bool:
        """Embed a chunk, refit, copy `seen` flags to the store; True if tasks are left to embed."""
        loop, _ = self.projects.get_with_schema(project)
        if work is not None:
            self._set_activity(work, "embedding")
        loop.embed_pending(EMBED_CHUNK, wait_s=IMAGE_WAIT_S)
        loop.refit_if_needed(on_refit=None if work is None else lambda: self._set_activity(work, "refitting"))
        loop.sync_seen()
        if work is not None:
            work.loading = loop.has_images_loading()  # they wake this thread when ready (on_images_ready)
        return loop.has_images_to_embed()

    def _reconcile_remote(self, project: int) -> bool:
        """Push the view and a chunk of predictions; True if predictions are left to push."""
        loop, schema = self.projects.get_with_schema(project)
        self._push_batch(project, loop, schema)
        return self._push_predictions(project, loop, schema)

    def sync_from_label_studio(self, project, loop, schema) -> None:
        """Label Studio is the source of truth for tasks and annotations: catch up on
        whatever happened while this process was down (webhooks are not retried)."""
        self.audit_connections(project)
        self._retry_given_up(project)  # e.g. images that timed out before a restart
        # Webhooks keep arriving while the listing is read: what they delete after this
        # instant must not come back from the (older) listing, and what they update is
        # protected by Label Studio's updated_at (see Ledger.record_annotation).
        started = time.monotonic()
        ledger = self.projects.ledger
        known_annotations = set(ledger.annotation_ids(project))
        known_tasks = set(ledger.task_ids(project))
        annotations: set[int] = set()
        tasks: set[int] = set()
        page: list[dict] = []
        for task in self.gateway.iter_tasks(project):
            page.append(task)
            tasks.add(task["id"])
            if len(page) == SYNC_PAGE:
                annotations |= self._sync_page(project, loop, schema, page, started)
                page = []
        annotations |= self._sync_page(project, loop, schema, page, started)
        if known_annotations - annotations:
            loop.delete_annotations(sorted(known_annotations - annotations))
        # Tasks deleted in Label Studio while no webhook reached us; deleting is only safe
        # when the listing was complete, so check it against Label Studio's own count.
        if known_tasks - tasks and len(tasks) == self.gateway.task_count(project):
            gone = sorted(known_tasks - tasks)
            loop.store.delete(gone)
            ledger.delete_tasks(project, gone)

    def _sync_page(self, project, loop, schema, tasks: list[dict], started: float) -> set[int]:
        """Record a page of Label Studio tasks and their annotations; returns the annotation ids seen."""
        ledger = self.projects.ledger
        deleted_tasks = ledger.deleted_since(project, "tasks", started)
        deleted_annotations = ledger.deleted_since(project, "annotations", started)
        tasks = [task for task in tasks if task["id"] not in deleted_tasks]
        loop.add_tasks([(task["id"], task["data"]) for task in tasks])
        seen: set[int] = set()
        for task in tasks:
            for annotation in task["annotations"]:
                try:
                    rating = read_rating(annotation, schema.scale, fallback_task=task["id"])
                except BackendError as exc:  # one malformed annotation must not stop the sync
                    log.warning("project %s task %s: skipping an annotation: %s", project, task["id"], exc)
                    continue
                seen.add(rating.annotation_id)
                if rating.annotation_id in deleted_annotations:
                    continue
                loop.record_annotation(rating.annotation_id, rating.task_id, rating.target, rating.error,
                                       source_updated_at=rating.updated_at)
        return seen

    def _push_batch(self, project, loop, schema) -> None:
        """Point the next-batch view at the strategy's current pick, if it changed."""
        ledger = self.projects.ledger
        batch = loop.select_batch()
        task_ids = [t.task_id for t in batch]
        wanted = {
            "task_ids": task_ids, "title": loop.params.view_title,
            "model_version": loop.model_version(), "batch_rev": ledger.project(project).batch_rev,
            "format": VIEW_FORMAT,
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
        if current is not None and self._batch_version_at.get(project, (None,))[0] != current.version:
            self._batch_version_at[project] = (current.version, time.monotonic())

    def _push_predictions(self, project, loop, schema) -> bool:
        """Push one chunk of predictions of the current version; True if more remain."""
        ledger = self.projects.ledger
        current = loop.current_head()
        if current is None:
            return False
        version, batch_out_at = self._batch_version_at.get(project, (None, float("-inf")))
        hold_until = batch_out_at + self.bulk_prediction_delay_s if version == current.version else float("-inf")
        if time.monotonic() < hold_until:
            # Ratings are arriving: the next one replaces this head long before every task has
            # its prediction, and a chunk in flight when it arrives delays that rating's batch
            # by the whole chunk. Push the rest once the annotator pauses.
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
            {"task": task_id, **prediction(schema.scale, scores[task_id], version, preselect=loop.params.preselect_rating)}
            for task_id in task_ids if task_id in scores
        ])
        self.projects.ledger.mark_predicted(project, task_ids, current.version)

    def _set_model_version(self, project: int, version: str) -> None:
        ledger = self.projects.ledger
        if ledger.get_state(project, "project_model_version") != version:
            self.gateway.set_model_version(project, version)
            ledger.set_state(project, "project_model_version", version)
