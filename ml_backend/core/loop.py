"""One project's active-learning loop: ingest, rate, refit, select, score.

`ActiveLoop` holds no Label Studio code: tasks are (id, data dict) pairs, a rating
is a target in [-1, 1], and pushing results anywhere is the caller's business.
All durable state goes through the ledger and the vector store, so a fresh
`ActiveLoop` over the same files continues where the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .embedding import Embedder
from .errors import NotFittedError
from .head import LinearHead, Prior
from .ledger import Ledger
from .params import ProjectParams
from .store import VectorStore
from .strategies import Pool, RandomStrategy, make_strategy
from .training import prompt_prior, refit

log = logging.getLogger(__name__)

# Transient fetch failures (timeouts, 5xx) are retried this many times before a task is marked failed.
MAX_EMBED_ATTEMPTS = 3
CALIBRATION_SAMPLE = 2000

# Task data dict -> the decoded item the embedder takes (an RGB image, a text); raises MediaError.
ItemLoader = Callable[[dict], Any]


def version_name(version: int) -> str:
    """The model_version string Label Studio shows for head version `version`."""
    return f"clip-head-v{version}"


@dataclass(frozen=True)
class HeadVersion:
    """A fitted head and its version number (1, 2, ...)."""

    version: int
    head: LinearHead
    n_ratings: int


@dataclass(frozen=True)
class EmbedReport:
    embedded: list[int]
    failed: dict[int, str]


@dataclass(frozen=True)
class ScoredTask:
    task_id: int
    score: float


@dataclass(frozen=True)
class UniformTaskDraw:
    """The tasks of a batch drawn uniformly at random from all `n_available` unseen tasks
    (each unseen task had probability len(task_ids) / n_available), independent of the head."""

    task_ids: list[int]
    n_available: int


class ActiveLoop:
    """The loop for one project.

    Parameters
    ----------
    project : project id.
    params : validated project parameters.
    ledger, store : durable state (shared ledger; this project's vector store).
    embedder : the project's embedder (image or text; shared by the projects of that modality).
    load_item : task data dict -> what the embedder takes (RGB image or text); raises `MediaError`.
    on_images_ready : called with the project id when items left loading in the
        background (see `embed_pending(wait_s=...)`) are ready to embed.
    """

    def __init__(
        self, project: int, params: ProjectParams, ledger: Ledger, store: VectorStore,
        embedder: Embedder, load_item: ItemLoader, fetch_workers: int = 4,
        on_images_ready: Callable[[int], None] | None = None,
    ):
        self.project = project
        self.params = params
        self.ledger = ledger
        self.store = store
        self.embedder = embedder
        self.load_item = load_item
        self.fetch_workers = fetch_workers
        self._head: HeadVersion | None = None
        self.last_uniform_draw: UniformTaskDraw | None = None
        self._prompt_vector: np.ndarray | None = None
        self._refit_lock = threading.Lock()
        # Task id -> item load left running by a pass that would not wait for it.
        self._stragglers: dict[int, Future] = {}
        self._stragglers_lock = threading.Lock()
        self._on_images_ready = on_images_ready
        previous = store.stored_model_id
        if store.use_model(embedder.model_id):
            # Vectors of two models are not comparable: the collection started over.
            log.warning("project %s: store was embedded with %s, now %s: re-embedding all tasks",
                        project, previous, embedder.model_id)
            ledger.reset_embeddings(project)
        self.reconcile_store()

    # -- ingest --------------------------------------------------------------
    def add_tasks(self, tasks: Iterable[tuple[int, dict]]) -> int:
        """Queue tasks (id, data) for embedding; already-known ids are ignored. Returns how many were new."""
        return self.ledger.add_tasks(self.project, tasks)

    def embed_pending(self, limit: int = 256, wait_s: float | None = None) -> EmbedReport:
        """Embed up to `limit` queued tasks and store their vectors.

        With `wait_s`, images that take longer than that to arrive are not waited for:
        they finish loading in the background (within the fetch deadline), stay pending,
        and `on_images_ready` says when a batch of them can be embedded. A slow image
        source then holds the caller (the worker, shared by every project) for at most
        `wait_s` per call.
        """
        self._drop_stale_stragglers()
        # Tasks still loading in the background are skipped below: they must not fill the chunk.
        limit += len(self._stragglers)
        tasks = self.ledger.tasks_in_state(self.project, "pending", limit=limit, max_attempts=MAX_EMBED_ATTEMPTS)
        report = self._embed(tasks, wait_s)
        # Right away, not on the next pass: there may be none, and "pending" would then be a lie.
        self.ledger.give_up_pending(self.project, MAX_EMBED_ATTEMPTS)
        return report

    def ensure_embedded(self, task_ids: Sequence[int], task_data: dict[int, dict] | None = None) -> EmbedReport:
        """Embed the given tasks now if they are not in the store yet (the /predict path)."""
        missing = list(dict.fromkeys(t for t in task_ids if t not in self.store))  # a task listed twice is embedded once
        if not missing:
            return EmbedReport([], {})
        if task_data:
            self.add_tasks((t, task_data[t]) for t in missing if t in task_data)
        known = self.ledger.task_data(self.project, missing)
        # Failed tasks are the worker's to retry (after an outage), not every /predict's.
        failed = {t for t, state in self.ledger.task_states(self.project, list(known)).items() if state == "failed"}
        return self._embed([(t, known[t]) for t in missing if t in known and t not in failed])

    def has_images_to_embed(self) -> bool:
        """Whether a call to `embed_pending` now has work: pending tasks not loading in the
        background already, or a batch of loaded stragglers (or the last of them)."""
        with self._stragglers_lock:
            running = {t for t, f in self._stragglers.items() if not f.done()}
            loaded = len(self._stragglers) - len(running)
        if loaded and (loaded >= self.embedder.batch_size or not running):
            return True
        pending = self.ledger.tasks_in_state(self.project, "pending", limit=len(running) + 1, max_attempts=MAX_EMBED_ATTEMPTS)
        return any(task_id not in running for task_id, _ in pending)

    def has_images_loading(self) -> bool:
        """Whether images left loading in the background are still on their way."""
        with self._stragglers_lock:
            return bool(self._stragglers)

    def _embed(self, tasks: list[tuple[int, dict]], wait_s: float | None = None) -> EmbedReport:
        with self._stragglers_lock:
            # Loads still running are left alone unless the caller waits for everything.
            taken = {t: f for t, _ in tasks if (f := self._stragglers.get(t)) is not None and (wait_s is None or f.done())}
            for task_id in taken:
                del self._stragglers[task_id]
            tasks = [(t, data) for t, data in tasks if t in taken or t not in self._stragglers]
        if not tasks:
            return EmbedReport([], {})
        positions, vectors, errors = self.embedder.embed_sources(
            [data for _, data in tasks], self.load_item, workers=self.fetch_workers, wait_s=wait_s,
            in_flight={i: taken[t] for i, (t, _) in enumerate(tasks) if t in taken},
            on_straggler=lambda position, future: self._park(tasks[position][0], future),
        )
        embedded = [tasks[p][0] for p in positions]
        if embedded:
            seen = self.ledger.seen_task_ids(self.project)
            flags = [t in seen for t in embedded]
            # Store first, ledger second: a crash in between leaves vectors the ledger
            # does not know about, which reconcile_store adopts on the next start.
            self.store.upsert(embedded, vectors, seen=flags, model_id=self.embedder.model_id)
            self.ledger.mark_embedded(self.project, embedded, flags)
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
        if self._on_images_ready is not None and loaded and (loaded >= self.embedder.batch_size or not running):
            self._on_images_ready(self.project)

    def reconcile_store(self) -> dict[str, int]:
        """Make the vector store agree with the ledger; run whenever a loop is built.

        The two are separate files written one after the other, so a crash between
        the writes, or a lost Chroma collection, leaves them apart:
        - embedded in the ledger, no vector: back to pending (it is embedded again);
        - a vector the ledger does not count as embedded: adopted if the task is known
          (same model, same image), deleted if the task is not (it was being deleted);
        - `seen` in the store differing from the ledger: the ledger wins.
        Returns how many tasks each case touched.
        """
        tasks = self.ledger.task_index(self.project)
        stored_seen = self.store.seen_flags()
        missing = [t for t, record in tasks.items() if record.state == "embedded" and t not in stored_seen]
        adopted = [t for t in stored_seen if t in tasks and tasks[t].state != "embedded"]
        orphans = [t for t in stored_seen if t not in tasks]
        if missing:
            self.ledger.reset_embeddings(self.project, missing)
        if orphans:
            self.store.delete(orphans)
        if adopted:
            self.ledger.mark_embedded(self.project, adopted, [stored_seen[t] for t in adopted])
        # Record what the store really holds, so sync_seen rewrites every flag that differs.
        drifted = [t for t, flag in stored_seen.items() if t in tasks and t not in adopted and tasks[t].store_seen != flag]
        for flag in (True, False):
            ids = [t for t in drifted if stored_seen[t] == flag]
            if ids:
                self.ledger.mark_seen_synced(self.project, ids, flag)
        resynced = self.sync_seen()
        counts = {"re_embed": len(missing), "adopted": len(adopted), "orphans_deleted": len(orphans), "seen_fixed": resynced}
        if any(counts.values()):
            log.warning("project %s: vector store and ledger disagreed, repaired: %s", self.project, counts)
        return counts

    # -- ratings -------------------------------------------------------------
    def record_annotation(
        self, annotation_id: int, task_id: int, target: float | None,
        error: str | None = None, task_data: dict | None = None, source_updated_at: float | None = None,
    ) -> bool:
        """Record an annotation (target None: skipped or unreadable) and mark its task seen.

        Returns whether the task is known (False: it has no data yet, so it cannot be embedded).
        """
        return self.ledger.record_annotation(self.project, annotation_id, task_id, target, error=error,
                                             task_data=task_data, source_updated_at=source_updated_at)

    def delete_annotations(self, annotation_ids: Sequence[int]) -> int:
        return self.ledger.delete_annotations(self.project, annotation_ids)

    def reset_seen(self) -> int:
        """Make every task selectable again; ratings are kept."""
        count = self.ledger.reset_seen(self.project)
        self.sync_seen()
        return count

    def sync_seen(self) -> int:
        """Copy `seen` flags from the ledger (the record) to the vector store."""
        changes = self.ledger.unsynced_seen(self.project)
        for flag in (True, False):
            ids = [task_id for task_id, seen in changes if seen == flag]
            if ids:
                self.store.set_seen(ids, flag)
                self.ledger.mark_seen_synced(self.project, ids, flag)
        return len(changes)

    # -- the head ------------------------------------------------------------
    def current_head(self) -> HeadVersion | None:
        """The latest head version, or None before any prompt or rating."""
        if self._head is None:
            stored = self.ledger.latest_head(self.project, self.embedder.model_id)
            if stored is not None:
                self._head = HeadVersion(stored.version, LinearHead.from_weights(stored.coef, stored.intercept), stored.n_ratings)
        return self._head

    def model_version(self) -> str:
        head = self.current_head()
        return version_name(head.version if head else 0)

    def refit_if_needed(self, on_refit: Callable[[], None] | None = None) -> HeadVersion | None:
        """Refit from all current ratings if they, the prompt or the head params changed.

        `on_refit` is called just before fitting (progress reporting). Returns the new
        head version, or None when nothing changed (or nothing to fit yet).
        """
        with self._refit_lock:
            ratings = self.ledger.ratings(self.project)
            rated = [t for t in ratings if t in self.store]
            fit_key = self._fit_key(rated, ratings)
            stored = self.ledger.latest_head(self.project, self.embedder.model_id)
            if stored is not None and stored.fit_key == fit_key:
                return None
            if on_refit is not None:
                on_refit()
            prior = self._prompt_prior()
            if rated:
                head = self._fit(rated, ratings, prior)
            elif prior is not None:
                head = prior.head()
            else:
                return None
            version = self.ledger.save_head(
                self.project, head.coef_, head.intercept_, fit_key, len(rated), self.embedder.model_id
            )
            self._head = HeadVersion(version, head, len(rated))
            log.info("project %s: head v%d fitted on %d ratings", self.project, version, len(rated))
            return self._head

    def _fit(self, rated: list[int], ratings: dict[int, float], prior: Prior | None) -> LinearHead:
        X = self.store.vectors(rated)
        y = np.array([ratings[t] for t in rated])
        ids, pool = self.store.pool(exclude=rated)
        rng = np.random.default_rng([self.project, len(rated), len(pool.available)])
        previous = self.current_head()  # a start for the solver: same optimum, fewer iterations
        return refit(X, y, pool.vectors, pool.available, self.params.head, rng, prior=prior,
                     init=previous.head if previous else None)

    def _prompt_prior(self) -> Prior | None:
        if not self.params.prompt or not self.embedder.can_embed_text or len(self.store) == 0:
            return None
        if self._prompt_vector is None:
            self._prompt_vector = self.embedder.embed_texts([self.params.prompt])[0]
        _, pool = self.store.pool()
        rng = np.random.default_rng(self.project)
        sample = rng.choice(len(pool.vectors), size=min(CALIBRATION_SAMPLE, len(pool.vectors)), replace=False)
        return prompt_prior(self._prompt_vector, pool.vectors[np.sort(sample)], self.params.head)

    def _fit_key(self, rated: list[int], ratings: dict[int, float]) -> str:
        # What a head version and its predictions were made from; an identical key means a new
        # version would change nothing. `preselect_rating` changes only the predictions: a new
        # version re-pushes every task's prediction in the new form.
        digest = hashlib.sha256(json.dumps(
            [sorted((t, ratings[t]) for t in rated), self.params.prompt, self.params.head.model_dump(),
             self.params.preselect_rating],
        ).encode()).hexdigest()[:16]
        return f"{len(rated)}:{digest}"

    # -- selection and scores ------------------------------------------------
    def select_batch(self, k: int | None = None) -> list[ScoredTask]:
        """The next k unseen tasks chosen by the project's strategy, highest score first.

        Without a head, strategies that need one fall back to random selection. Tasks
        with equal scores keep the strategy's pick order, never row (import) order.
        `last_uniform_draw` then says which of them were drawn uniformly at random from
        all unseen tasks, and from how many (None: the strategy made no such draw).
        """
        self.sync_seen()
        ids, pool = self.store.pool()
        self.last_uniform_draw = None
        if not pool.available.any():
            return []
        current = self.current_head()
        strategy = make_strategy(self.params.strategy, self.params.selection)
        if current is None and strategy.requires_head:
            strategy = RandomStrategy()
        rng = np.random.default_rng([self.project, current.version if current else 0, int(pool.available.sum())])
        pool = self._with_ratings(ids, pool)
        rows = strategy.select(current.head if current else None, pool, k or self.params.batch_size, rng)
        scores = current.head.predict_proba(pool.vectors[rows]) if current else np.zeros(len(rows), np.float32)
        order = np.argsort(-scores, kind="stable")
        if strategy.last_draw is not None:
            drawn = [int(ids[r]) for r in strategy.last_draw.rows]
            self.last_uniform_draw = UniformTaskDraw(drawn, strategy.last_draw.n_available)
        return [ScoredTask(int(ids[rows[i]]), float(scores[i])) for i in order]

    def _with_ratings(self, ids: list[str], pool: Pool) -> Pool:
        """`pool` plus the rows and targets of the current ratings (what adaptive strategies react to)."""
        ratings = self.ledger.ratings(self.project)
        row_of = {task_id: row for row, task_id in enumerate(ids)}
        rated = [(row_of[str(t)], target) for t, target in ratings.items() if str(t) in row_of]
        rows = np.array([r for r, _ in rated], dtype=np.int64)
        return Pool(pool.vectors, pool.available, rows, np.array([t for _, t in rated], dtype=np.float64))

    def scores(self, task_ids: Sequence[int]) -> dict[int, float]:
        """P(relevant) for embedded tasks among `task_ids`; raises NotFittedError without a head."""
        current = self.current_head()
        if current is None:
            raise NotFittedError(f"project {self.project} has no head yet: set a prompt or rate some tasks")
        present = [t for t in task_ids if t in self.store]
        if not present:
            return {}
        probabilities = current.head.predict_proba(self.store.vectors(present))
        return dict(zip(present, map(float, probabilities)))

    def warnings(self) -> list[str]:
        """What the admin set that this project cannot use, and why (it runs without it)."""
        reason = self.embedder.prompt_unsupported_reason
        return [f"prompt ignored: {reason}"] if self.params.prompt and reason else []

    def status(self) -> dict:
        head = self.current_head()
        return {
            "project": self.project,
            "model_version": self.model_version(),
            "head": None if head is None else {"version": head.version, "ratings": head.n_ratings},
            "embedding_model": self.embedder.model_id,
            "modality": self.embedder.modality,
            "warnings": self.warnings(),
            "vectors": len(self.store),
            **self.ledger.counts(self.project),
            "params": self.params.model_dump(),
        }
