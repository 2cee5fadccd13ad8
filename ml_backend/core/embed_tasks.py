"""Embed: a project's pending tasks become vectors in its store.

The loop's first step. Each pending task's data is loaded (`load_item`: fetch and
decode an image, read a text) and embedded in batches by the project's embedder
(`core.embedding.Embedder.embed_sources`), then upserted into the vector store and
marked embedded in the ledger. A bad task fails alone, with its reason; transient
failures are retried. Items that load slowly are left to finish in the background
(stragglers), so one slow source never holds the worker that serves every project.
`reconcile_store` makes the store agree with the ledger after a crash between the two.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .embedding import Embedder
from .ledger import Ledger
from .store import VectorStore

log = logging.getLogger(__name__)

# Transient fetch failures (timeouts, 5xx) are retried this many times before a task is marked failed.
MAX_EMBED_ATTEMPTS = 3

# (task data dict, task id) -> the decoded item the embedder takes (an RGB image, a text); raises MediaError.
# The id is for sources that resolve a reference per task (Label Studio's cloud storage).
ItemLoader = Callable[[dict, int], Any]


@dataclass(frozen=True)
class EmbedReport:
    embedded: list[int]
    failed: dict[int, str]
    given_up: int = 0  # tasks marked failed by this call after their last transient failure


class TaskEmbedding:
    """The embed step of `ActiveLoop` (a mixin: the loop holds `project`, `ledger`, `store`,
    `embedder`, `load_item` and `fetch_workers`, and calls `_start_embedding` once)."""

    project: int
    ledger: Ledger
    store: VectorStore
    embedder: Embedder
    load_item: ItemLoader
    fetch_workers: int

    def _start_embedding(self, on_items_ready: Callable[[int], None] | None) -> None:
        # Task id -> item load left running by a pass that would not wait for it.
        self._stragglers: dict[int, Future] = {}
        self._stragglers_lock = threading.Lock()
        self._on_items_ready = on_items_ready

    def embed_pending(self, limit: int = 256, wait_s: float | None = None,
                      hurry: threading.Event | None = None) -> EmbedReport:
        """Embed up to `limit` queued tasks and store their vectors.

        With `wait_s`, items (images, text files) that take longer than that to arrive are not waited for:
        they finish loading in the background (within the fetch deadline), stay pending,
        and `on_items_ready` says when a batch of them can be embedded. A slow image
        source then holds the caller (the worker, shared by every project) for at most
        `wait_s` per call, and not at all once `hurry` is set (a webhook or a request came in meanwhile).
        """
        self._drop_stale_stragglers()
        # Tasks still loading in the background are skipped below: they must not fill the chunk.
        limit += len(self._stragglers)
        tasks = self.ledger.tasks_in_state(self.project, "pending", limit=limit, max_attempts=MAX_EMBED_ATTEMPTS)
        report = self._embed(tasks, wait_s, hurry)
        # Right away, not on the next pass: there may be none, and "pending" would then be a lie.
        given_up = self.ledger.give_up_pending(self.project, MAX_EMBED_ATTEMPTS)
        return EmbedReport(report.embedded, report.failed, given_up)

    def ensure_embedded(self, task_ids: Sequence[int]) -> EmbedReport:
        """Embed the given tasks now if they are not in the store yet (the /predict path).

        Only tasks the ledger knows (recorded through `Facts.add_tasks`) can be embedded.
        """
        missing = list(dict.fromkeys(t for t in task_ids if t not in self.store))  # a task listed twice is embedded once
        if not missing:
            return EmbedReport([], {})
        known = self.ledger.task_data(self.project, missing)
        # Failed tasks are the worker's to retry (after an outage), not every /predict's.
        failed = {t for t, state in self.ledger.task_states(self.project, list(known)).items() if state == "failed"}
        return self._embed([(t, known[t]) for t in missing if t in known and t not in failed])

    def has_items_to_embed(self) -> bool:
        """Whether a call to `embed_pending` now has work: pending tasks not loading in the
        background already, or a batch of loaded stragglers (or the last of them)."""
        with self._stragglers_lock:
            running = {t for t, f in self._stragglers.items() if not f.done()}
            loaded = len(self._stragglers) - len(running)
        if loaded and (loaded >= self.embedder.batch_size or not running):
            return True
        pending = self.ledger.tasks_in_state(self.project, "pending", limit=len(running) + 1, max_attempts=MAX_EMBED_ATTEMPTS)
        return any(task_id not in running for task_id, _ in pending)

    def has_items_loading(self) -> bool:
        """Whether items left loading in the background are still on their way."""
        with self._stragglers_lock:
            return bool(self._stragglers)

    def retry_given_up(self) -> int:
        """Queue again the tasks given up after transient failures (the source is back); returns how many."""
        retried = self.ledger.retry_given_up(self.project, MAX_EMBED_ATTEMPTS)
        if retried:
            log.info("project %s: retrying %d tasks whose images failed to load during an outage", self.project, retried)
        return retried

    def retry_failed(self) -> int:
        """Queue again every task that failed, whatever the reason: what made it unreadable may have been fixed
        (an image host allowed, storage credentials, the data field, a file replaced). Returns how many."""
        retried = self.ledger.retry_failed(self.project)
        if retried:
            log.info("project %s: reading %d tasks that failed before once more", self.project, retried)
        return retried

    def _embed(self, tasks: list[tuple[int, dict]], wait_s: float | None = None,
               hurry: threading.Event | None = None) -> EmbedReport:
        with self._stragglers_lock:
            # Loads still running are left alone unless the caller waits for everything.
            taken = {t: f for t, _ in tasks if (f := self._stragglers.get(t)) is not None and (wait_s is None or f.done())}
            for task_id in taken:
                del self._stragglers[task_id]
            tasks = [(t, data) for t, data in tasks if t in taken or t not in self._stragglers]
        if not tasks:
            return EmbedReport([], {})
        positions, vectors, errors = self.embedder.embed_sources(
            tasks, lambda task: self.load_item(task[1], task[0]), workers=self.fetch_workers, wait_s=wait_s,
            in_flight={i: taken[t] for i, (t, _) in enumerate(tasks) if t in taken},
            on_straggler=lambda position, future: self._park(tasks[position][0], future), hurry=hurry,
        )
        embedded = [tasks[p][0] for p in positions]
        if embedded:
            # Store first, ledger second: a crash in between leaves vectors the ledger
            # does not know about, which reconcile_store adopts on the next start.
            self.store.upsert(embedded, vectors, model_id=self.embedder.model_id)
            self.ledger.mark_embedded(self.project, embedded)
            # A task deleted while it was embedded had its vector dropped before this upsert put it
            # back: drop it again. (Deleted after this check: its own drop follows the upsert.)
            deleted = set(embedded) - set(self.ledger.task_states(self.project, embedded))
            if deleted:
                self.store.delete(sorted(deleted))
                embedded = [t for t in embedded if t not in deleted]
        failed = {}
        for position, error in errors.items():
            task_id = tasks[position][0]
            failed[task_id] = str(error)
            self.ledger.mark_failed(self.project, task_id, str(error), transient=error.transient)
            log.warning("project %s task %s: %s", self.project, task_id, error)
        return EmbedReport(embedded, failed)

    def _drop_stale_stragglers(self) -> None:
        """Forget loaded stragglers whose task is no longer pending (embedded by /predict meanwhile, or deleted)."""
        with self._stragglers_lock:
            loaded = [t for t, f in self._stragglers.items() if f.done()]
        if not loaded:
            return
        states = self.ledger.task_states(self.project, loaded)
        with self._stragglers_lock:
            for task_id in loaded:
                if states.get(task_id) != "pending":
                    self._stragglers.pop(task_id, None)

    def _park(self, task_id: int, future: Future) -> None:
        with self._stragglers_lock:
            self._stragglers[task_id] = future
        future.add_done_callback(self._straggler_done)

    def _straggler_done(self, _future: Future) -> None:
        # Wake the caller for a full batch, or for the last straggler: not one pass per image.
        with self._stragglers_lock:
            running = sum(not f.done() for f in self._stragglers.values())
            loaded = len(self._stragglers) - running
        if self._on_items_ready is not None and loaded and (loaded >= self.embedder.batch_size or not running):
            self._on_items_ready(self.project)

    def reconcile_store(self) -> dict[str, int]:
        """Make the vector store agree with the ledger; run whenever a loop is built.

        The two are separate files written one after the other, so a crash between
        the writes, or a lost Chroma collection, leaves them apart:
        - embedded in the ledger, no vector: back to pending (it is embedded again);
        - a vector the ledger does not count as embedded: adopted if the task is known
          (same model, same image), deleted if the task is not (it was being deleted).
        (`seen` cannot disagree: only the ledger holds it.) Returns how many tasks each case touched.
        """
        states = self.ledger.task_states(self.project)
        stored = {int(t) for t in self.store.ids()}
        missing = [t for t, state in states.items() if state == "embedded" and t not in stored]
        adopted = [t for t in stored if t in states and states[t] != "embedded"]
        orphans = [t for t in stored if t not in states]
        if missing:
            self.ledger.reset_embeddings(self.project, missing)
        if orphans:
            self.store.delete(orphans)
        if adopted:
            self.ledger.mark_embedded(self.project, adopted)
        counts = {"re_embed": len(missing), "adopted": len(adopted), "orphans_deleted": len(orphans)}
        if any(counts.values()):
            log.warning("project %s: vector store and ledger disagreed, repaired: %s", self.project, counts)
        return counts
