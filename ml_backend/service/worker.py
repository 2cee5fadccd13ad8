"""The background worker: schedules each project's passes, with backoff; no Label Studio inside.

Webhooks only record facts in the ledger and wake this thread. A pass then compares
what should be with what is and does the difference: its local part embeds pending
tasks and refits the head (`core.loop`); its remote part pulls from and pushes to the
far side (Label Studio: `service.pull`, `service.push`). Because it works from state
rather than from a queue of events, a duplicate webhook changes nothing, a restart
resumes, and an outage of the far side only delays the remote part: it is retried
with backoff until it succeeds, while embedding and refits go on.

A project's evaluation, computed once it is idle, runs on a thread of its own: on a pool of 10,000 tasks
it takes about a second, and a rating that arrived meanwhile would wait that long for its refit and its
new batch. The project counts as idle only once its evaluation is done too.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from ..core.errors import (BackendError, ConfigError, LedgerCorruptError, RemoteRejected, RemoteUnavailable,
                           StaleVectorsError, UnknownProjectError)
from .evaluation import Evaluations
from .projects import ProjectRegistry

log = logging.getLogger(__name__)

EMBED_CHUNK = 256
# How long a pass waits for an item (an image, or a text file a task points at) before leaving it to load in
# the background: this thread serves every project, so a slow source may hold it no longer than this, and
# not at all once another webhook or request needs the thread (`Worker._hurry`).
ITEM_WAIT_S = 0.25
MAX_BACKOFF_S = 60.0
# The longest Retry-After the worker obeys: a Label Studio asking for more is asked again after this.
RETRY_AFTER_MAX_S = 300.0
# What the status says of a project deleted in Label Studio.
GONE = ("project {project} no longer exists in Label Studio (404): nothing more is asked about it until a /setup "
        "or a webhook for it arrives")
# A pass's `due` that means "once the backoff its failure sets is over" (computed in one place: _finish_pass).
AFTER_BACKOFF = None


class Pull(Protocol):
    """Reads the far side (`service.pull.LabelStudioPull`)."""

    def sync(self, project: int) -> None: ...
    def check_connections(self, project: int) -> None: ...
    def in_step(self, project: int) -> bool: ...


class Push(Protocol):
    """Writes to the far side (`service.push.LabelStudioPush`)."""

    def push(self, project: int) -> float: ...


@dataclass
class _ProjectWork:
    due: float = 0.0                # monotonic time of the next pass
    remote_due: float = 0.0         # earliest next call to the far side (backoff after failures)
    settle_until: float = 0.0       # no call to the far side before this either (see notify's settle_s)
    failures: int = 0               # consecutive failed passes, for backoff
    needs_sync: bool = True         # check connections, backfill tasks and annotations from the far side
    needs_connection_check: bool = False  # only look at the ML connections and webhooks again
    loading: bool = False           # images still loading in the background (not idle, nothing to do yet)
    gave_up: bool = False           # items given up after transient failures since the last retry of them
    retried_given_up: bool = False  # they were retried once since the project was last idle (no endless loop)
    evaluating: bool = False        # an evaluation queued or running on the evaluation thread (not idle yet)
    in_pass: bool = False           # the worker thread is in a pass over the project
    last_error: str | None = None
    activity: str = "idle"          # what the pass is doing now, for the status endpoint
    done: threading.Event = field(default_factory=threading.Event)


class Worker:
    """One thread per process; `notify(project)` schedules a pass.

    A pass has a local part (embed, refit) and a remote part (`pull`, then `push`); once a
    project has nothing left to do, its head is evaluated on a second thread, and a new
    evaluation schedules one more push (the next-batch tab's title carries the summary).
    Only the remote part backs off when the far side is unreachable: an outage must not
    slow down embedding an import or refitting on new ratings. Without `pull` and
    `push` (tests, benchmarks) passes are local only.
    """

    def __init__(self, projects: ProjectRegistry, pull: Pull | None = None, push: Push | None = None,
                 poll_interval_s: float = 2.0, max_backoff_s: float = MAX_BACKOFF_S, task_check_interval_s: float = 30.0,
                 evaluations: Evaluations | None = None):
        if (pull is None) != (push is None):
            raise ValueError("a worker has both a pull and a push, or neither")
        self.projects = projects
        self.pull = pull
        self.push = push
        self.poll_interval_s = poll_interval_s
        self.max_backoff_s = max_backoff_s
        self.task_check_interval_s = task_check_interval_s
        self.evaluations = evaluations
        self._next_count_check = time.monotonic() + task_check_interval_s
        self._work: dict[int, _ProjectWork] = {}
        self._absent: set[int] = set()  # projects the far side answered 404 for: left out of the count check
        self._to_evaluate: list[int] = []  # projects waiting for the evaluation thread, in order
        # Set when work comes in during a pass: the pass stops waiting for slow items (a rating's new batch
        # must not wait for another project's images; those finish loading in the background).
        self._hurry = threading.Event()
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="worker", daemon=True)
        self._evaluator = threading.Thread(target=self._run_evaluations, name="evaluator", daemon=True)

    @property
    def remote(self) -> bool:
        """Whether passes talk to the far side."""
        return self.pull is not None

    # -- control -------------------------------------------------------------
    def start(self) -> None:
        try:
            for project in self.projects.project_ids():
                self.notify(project, sync=True)
        except LedgerCorruptError as exc:
            log.error("not resuming any project: %s", exc)  # /health says so
        self._thread.start()
        if self.evaluations is not None:
            self._evaluator.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        for thread in (self._thread, self._evaluator):
            if thread.is_alive():
                thread.join(timeout)

    def notify(self, project: int, sync: bool = False, check_connections: bool = False, settle_s: float = 0.0) -> None:
        """Schedule a pass for `project` now; `sync` also re-reads the far side's tasks and annotations,
        `check_connections` only its ML connections and webhooks (a sync does both). With `settle_s` the pass's
        calls to the far side wait that long (the local part, e.g. a refit, does not); repeated
        notifies never push them back further, so a stream of /setup calls cannot starve them."""
        with self._wake:
            if sync:
                self._absent.discard(project)
            work = self._work.setdefault(project, _ProjectWork())
            work.due = 0.0
            if settle_s and work.settle_until <= time.monotonic():  # a settle already pending is not extended
                work.settle_until = time.monotonic() + settle_s
            work.needs_sync = work.needs_sync or sync
            work.needs_connection_check = work.needs_connection_check or check_connections
            work.done.clear()
            self._hurry.set()
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
        """What the worker is doing for `project` right now: idle, syncing, embedding, refitting, pushing,
        waiting, "loading images" (items, text files too, left loading in the background) or evaluating."""
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
            if self.remote and time.monotonic() >= self._next_count_check:
                self._next_count_check = time.monotonic() + self.task_check_interval_s
                try:
                    self._check_counts()
                except LedgerCorruptError:
                    pass  # reported by /health; nothing to compare with

    def _check_counts(self) -> None:
        """Resync idle projects whose tasks or annotations are out of step with Label Studio's (a webhook went
        missing)."""
        for project in self.projects.project_ids():
            with self._wake:
                work = self._work.get(project)
                if project in self._absent or (work is not None and not work.done.is_set()):
                    continue
            try:
                in_step = self.pull.in_step(project)
            except RemoteUnavailable as exc:
                # one timeout per round is enough: the other projects would wait on it too
                self._next_count_check = max(self._next_count_check, time.monotonic() + _asked_wait(exc))
                break
            except RemoteRejected as exc:
                if exc.status_code == 404:  # gone from the far side: not asked again until it is set up again
                    self._mark_gone(project)
                continue
            except BackendError:
                continue
            except Exception:  # noqa: BLE001 - the worker thread must survive anything
                log.exception("project %s: count check failed", project)
                continue
            if not in_step:
                self.notify(project, sync=True)

    def _due_projects(self) -> list[int]:
        now = time.monotonic()
        return [p for p, w in self._work.items() if not w.done.is_set() and w.due <= now]

    def _sleep_time(self) -> float:
        # Projects waiting for images loading in the background have no due time: they are notified.
        pending = [w.due for w in self._work.values() if not w.done.is_set() and w.due != float("inf")]
        wake_at = min(pending + [self._next_count_check]) if self.remote else min(pending, default=None)
        return max(0.0, wake_at - time.monotonic()) if wake_at is not None else self.poll_interval_s

    def _pass(self, project: int) -> None:
        """One pass over a project, in this order: (1) when the far side may be called, a full sync
        or, if only that is due, a check of the project's connections; (2) local: embed a chunk of
        pending tasks and refit; (3) push; (4) when nothing is left to do, evaluate, and push once
        more for the tab's title; (5) `_finish_pass`: record the outcome and when the next pass is due."""
        with self._wake:
            work = self._work[project]
            work.due = float("inf")  # a notify() during the pass resets this to 0
            work.in_pass = True
            # other projects' passes are due already (webhooks that came in before this pass): no waiting
            if any(p != project for p in self._due_projects()):
                self._hurry.set()
            else:
                self._hurry.clear()
            work.loading = False
            # A full pass talks to the far side (or has none); otherwise it waits out a backoff or a settle.
            full = not self.remote or max(work.remote_due, work.settle_until) <= time.monotonic()
            sync = full and work.needs_sync and self.remote
            connections_only = full and work.needs_connection_check and not sync and self.remote
            if full:
                work.needs_sync = work.needs_connection_check = False
        if connections_only:
            self._check_connections(project, work)
        sync_failure = self._sync(project, work) if sync else None
        sync_error = f"sync: {type(sync_failure).__name__}: {sync_failure}" if sync_failure else None
        # Unreachable for the sync means unreachable for the pushes: do not wait on it twice.
        push = full and self.remote and not isinstance(sync_failure, RemoteUnavailable)
        push_failure = None
        try:
            local_more = self._local(project, work)
            push_due = float("inf")
            if push:
                push_due, push_failure = self._push(project, work)
        except (ConfigError, UnknownProjectError, LedgerCorruptError) as exc:
            # Nothing to retry until the admin fixes the project (or the ledger); /setup or a webhook notifies again.
            log.error("project %s: %s", project, exc)
            self._finish_pass(work, error=str(exc), due=float("inf"), resync=sync_error is not None)
            return
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything and retry later
            self._log_failure(project, exc, "the pass")
            self._finish_pass(work, error=f"{type(exc).__name__}: {exc}", resync=sync_error is not None,
                         due=AFTER_BACKOFF, remote_failed=True)
            return
        push_error = f"{type(push_failure).__name__}: {push_failure}" if push_failure else None
        probe_failure = None
        if full and self.remote and sync_failure is None and push_failure is None:
            local_more, probe_failure = self._retry_given_up(project, work, local_more)
        probe_error = f"asking Label Studio: {type(probe_failure).__name__}: {probe_failure}" if probe_failure else None
        remote_failed = sync_error is not None or push_error is not None or probe_error is not None
        # A 4xx usually means our picture of the project is stale (e.g. a task deleted
        # while no webhook reached us): resync before trying again.
        resync = sync_error is not None or isinstance(push_failure, RemoteRejected)
        if remote_failed and self._gone_from_far_side(project, sync_failure, push_failure, probe_failure):
            self._finish_pass(work, error=GONE.format(project=project), due=float("inf"))
            return
        asked_wait = _asked_wait(sync_failure, push_failure, probe_failure)
        if remote_failed:
            due = 0.0 if local_more else AFTER_BACKOFF
        elif full:
            if not local_more and push_due == float("inf"):
                self._queue_evaluation(project, work)
            # Predictions held back while ratings arrive come due on their own.
            due = 0.0 if local_more else push_due
        else:
            due = 0.0 if local_more else max(work.remote_due, work.settle_until)
        error = "; ".join(e for e in (sync_error, push_error, probe_error) if e) or None
        self._finish_pass(work, error=error, due=due, resync=resync, remote_failed=remote_failed, full=full,
                     remote_wait_s=asked_wait)

    def _retry_given_up(self, project: int, work: _ProjectWork, local_more: bool) -> tuple[bool, Exception | None]:
        """After a pass whose calls to the far side all went through: queue again the items given up after
        transient failures, when the far side is back after an outage, or when items were given up while it
        answered (an outage between two of our calls, too short for any of them to see). The latter only once
        the far side answers one more call, and once per busy spell: an item it keeps failing to serve must not
        loop. Returns (local work left, that call's failure: the outage goes on, and its backoff takes over)."""
        if not work.failures:  # no outage our own calls saw: only items given up meanwhile, once
            if not work.gave_up or work.retried_given_up:
                return local_more, None
            try:
                if not self.pull.in_step(project):
                    with self._wake:
                        work.needs_sync = True  # a sync retries them too
            except Exception as exc:  # noqa: BLE001 - down again, or refusing: retried with backoff
                self._log_failure(project, exc, "asking Label Studio whether it is back")
                return local_more, exc
        work.gave_up, work.retried_given_up = False, True
        return self.projects.get(project).retry_given_up() > 0 or local_more, None

    def _gone_from_far_side(self, project: int, *failures: Exception | None) -> bool:
        """Whether a pass's 404 means the project itself was deleted (its own record answers 404 too), not
        one of its tasks or views: retrying with backoff would ask about it for ever."""
        if not any(isinstance(f, RemoteRejected) and f.status_code == 404 for f in failures):
            return False
        try:
            self.pull.in_step(project)
        except RemoteRejected as exc:
            if exc.status_code == 404:
                self._mark_gone(project)
                return True
        except Exception:  # noqa: BLE001 - only a question; the pass's own failure is reported
            pass
        return False

    def _mark_gone(self, project: int) -> None:
        """The far side answered 404 for the project's own record: say so in its status, ask nothing more."""
        log.warning("project %s: %s", project, GONE.format(project=project))
        with self._wake:
            self._absent.add(project)
            work = self._work.get(project)
            if work is not None:
                work.last_error = GONE.format(project=project)

    def _queue_evaluation(self, project: int, work: _ProjectWork) -> None:
        """Hand the project to the evaluation thread (once: a queued evaluation reads the state it finds)."""
        if self.evaluations is None:
            return
        with self._wake:
            work.evaluating = True
            if project not in self._to_evaluate:
                self._to_evaluate.append(project)
            self._wake.notify_all()

    def _run_evaluations(self) -> None:
        while True:
            with self._wake:
                while not self._stop and not self._to_evaluate:
                    self._wake.wait()
                if self._stop:
                    return
                project = self._to_evaluate.pop(0)
            stored = self._evaluate(project)
            with self._wake:
                work = self._work[project]
                work.evaluating = project in self._to_evaluate  # a pass queued it again meanwhile
                if stored and self.remote:
                    work.due = 0.0  # one more push: the tab's title carries the new summary
                self._settle(work)
                self._wake.notify_all()

    def _evaluate(self, project: int) -> bool:
        """Idle: refresh the project's evaluation (`service.evaluation`); True when a new one was stored."""
        if self.evaluations is None:
            return False
        try:
            return self.evaluations.refresh(self.projects.get(project))
        except (ConfigError, UnknownProjectError, LedgerCorruptError, StaleVectorsError) as exc:
            # a state the admin fixes (a config changed meanwhile), reported by every other pass too; or the
            # model switched during the evaluation's refits, and the next idle pass evaluates again
            log.warning("project %s: no evaluation: %s", project, exc)
            return False
        except Exception:  # noqa: BLE001 - an evaluation must never stop the loop
            log.exception("project %s: evaluation failed", project)
            return False

    def _local(self, project: int, work: _ProjectWork) -> bool:
        """Embed a chunk and refit; True if tasks are left to embed."""
        loop = self.projects.get(project)
        self._set_activity(work, "embedding")
        if loop.embed_pending(EMBED_CHUNK, wait_s=ITEM_WAIT_S, hurry=self._hurry).given_up:
            work.gave_up = True
        loop.refit_if_needed(on_refit=lambda: self._set_activity(work, "refitting"))
        work.loading = loop.has_items_loading()  # they wake this thread when ready (on_items_ready)
        return loop.has_items_to_embed()

    def _push(self, project: int, work: _ProjectWork) -> tuple[float, Exception | None]:
        """The remote part of a pass: (when the next push is due, the failure or None)."""
        try:
            self._set_activity(work, "pushing")
            return self.push.push(project), None
        except (ConfigError, UnknownProjectError, LedgerCorruptError):
            raise
        except Exception as exc:  # noqa: BLE001 - the far side down or refusing: retry with backoff
            self._log_failure(project, exc, "pushing")
            return float("inf"), exc

    def _sync(self, project: int, work: _ProjectWork) -> Exception | None:
        """Catch up with the far side; returns the failure, if any (the rest of the pass still runs)."""
        try:
            self._set_activity(work, "syncing")
            self.pull.sync(project)
            return None
        except (ConfigError, UnknownProjectError, LedgerCorruptError):
            return None  # reported by the local step that follows
        except Exception as exc:  # noqa: BLE001
            self._log_failure(project, exc, "sync")
            return exc

    def _check_connections(self, project: int, work: _ProjectWork) -> None:
        """Look at the project's ML connections again; a failure only waits for the next sync."""
        try:
            self._set_activity(work, "syncing")
            self.pull.check_connections(project)
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything
            self._log_failure(project, exc, "checking ML connections")

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

    def _finish_pass(self, work: _ProjectWork, error: str | None, due: float | None, resync: bool = False,
                remote_failed: bool = False, full: bool = False, remote_wait_s: float = 0.0) -> None:
        """Record a pass's outcome; `due` is when the next pass is (AFTER_BACKOFF: when the far side may
        be called again, after the backoff this failure sets and any Retry-After)."""
        with self._wake:
            work.needs_sync = work.needs_sync or resync
            if full or error is not None:
                work.last_error = error  # a pass that only waits out a backoff keeps the last error
            if error is not None:
                work.failures += 1
                if remote_failed:
                    work.remote_due = time.monotonic() + max(self._backoff(work.failures), remote_wait_s)
            elif full:
                work.failures, work.remote_due = 0, 0.0
            if due is AFTER_BACKOFF:
                due = work.remote_due
            work.due = min(work.due, due)  # keep a notify() that came in during the pass
            work.in_pass = False
            self._settle(work)

    @staticmethod
    def _settle(work: _ProjectWork) -> None:
        """Idle when nothing is due, pending or being evaluated; otherwise say what it waits for (under _wake).
        During a pass the pass says what it does (an evaluation may end meanwhile)."""
        if work.in_pass:
            return
        if work.due == float("inf") and not (work.needs_sync or work.needs_connection_check or work.loading
                                             or work.evaluating):
            work.done.set()
            work.activity = "idle"
            work.gave_up = work.retried_given_up = False
        elif work.due == float("inf"):
            work.activity = "loading images" if work.loading else "evaluating" if work.evaluating else "waiting"
        else:
            work.activity = "waiting"


def _asked_wait(*failures: Exception | None) -> float:
    """The longest wait the far side asked for (Retry-After) among a pass's failures, capped; 0 if none."""
    asked = [f.retry_after_s for f in failures if isinstance(f, RemoteUnavailable) and f.retry_after_s is not None]
    return min(max(asked, default=0.0), RETRY_AFTER_MAX_S)
