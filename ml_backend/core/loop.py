"""One project's active-learning loop: embed, refit, select, predict.

`ActiveLoop` puts together the steps, each in its module: `embed_tasks` (pending
tasks -> vectors), `refit` (ratings -> a new head version), `select` (the next
batch), `predict` (the head's scores). It holds no Label Studio code: tasks are
(id, data dict) pairs, a rating is a target in [-1, 1], and pushing results anywhere
is the caller's business. Facts (tasks, ratings, `seen`) reach the ledger through
`core.facts.Facts`; the loop reads them there and writes only what it derives
(embedding states, head versions). All durable state is in the ledger and the vector
store, so a fresh `ActiveLoop` over the same files continues where the last one stopped.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

import numpy as np

from .audit_log import AuditLog
from .embed_tasks import MAX_EMBED_ATTEMPTS, EmbedReport, ItemLoader, TaskEmbedding
from .embedding import Embedder
from .ledger import Ledger
from .params import ProjectParams
from .predict import Scoring
from .refit import HeadRefit, HeadVersion
from .select import BatchSelection, ScoredTask
from .store import VectorStore
from .strategies import Pool

log = logging.getLogger(__name__)

__all__ = ["ActiveLoop", "EmbedReport", "HeadVersion", "ItemLoader", "MAX_EMBED_ATTEMPTS", "ScoredTask"]


class ActiveLoop(TaskEmbedding, HeadRefit, BatchSelection, Scoring):
    """The loop for one project.

    Parameters
    ----------
    project : project id.
    params : validated project parameters.
    ledger, store : durable state (shared ledger; this project's vector store).
    embedder : the project's embedder (image or text; shared by the projects of that modality).
    load_item : (task data dict, task id) -> what the embedder takes (RGB image or text); raises `MediaError`.
    on_items_ready : called with the project id when items left loading in the
        background (see `embed_pending(wait_s=...)`) are ready to embed.
    audit : where each batch's uniform draw is recorded for the evaluation (`core.audit_log`).
    source : what `load_item` reads each item from (e.g. the task data field): when it differs from what
        the store's vectors were made from, every task is embedded again, as after a model change.
    """

    def __init__(
        self, project: int, params: ProjectParams, ledger: Ledger, store: VectorStore,
        embedder: Embedder, load_item: ItemLoader, fetch_workers: int = 4,
        on_items_ready: Callable[[int], None] | None = None, audit: AuditLog | None = None,
        source: str | None = None,
    ):
        self.project = project
        self.audit = audit
        self.params = params
        self.ledger = ledger
        self.store = store
        self.embedder = embedder
        self.load_item = load_item
        self.fetch_workers = fetch_workers
        self._start_embedding(on_items_ready)
        self._start_refits()
        previous = (store.stored_model_id, store.source)
        if store.use_model(embedder.model_id, source):
            # Vectors of two models (or of two fields) are not comparable: the collection started over.
            log.warning("project %s: store was embedded with %s from %s, now %s from %s: re-embedding all tasks",
                        project, *previous, embedder.model_id, source)
            ledger.reset_embeddings(project)
        self.reconcile_store()
        # A loop is built when the process starts and when the project's config changes: either may have fixed
        # what made tasks unreadable (IMAGE_HOSTS, LOCAL_FILES_DOCUMENT_ROOT, the data field), so they get one
        # more try; otherwise they would stay failed until deleted and imported again.
        self.retry_failed()

    def pool(self, exclude: Iterable[int] = ()) -> tuple[np.ndarray, Pool]:
        """The store's selection snapshot with `seen` as the ledger records it now: (task id of each row, Pool)."""
        self.store.follow_seen(self.ledger.seen_task_ids(self.project))
        ids, pool = self.store.pool(exclude=exclude)
        return np.array(ids, dtype=np.int64), pool  # Chroma's ids are strings: task ids from here on

    def warnings(self) -> list[str]:
        """What the admin set that this project cannot use, and why (it runs without it)."""
        reason = self.embedder.prompt_unsupported_reason
        return [f"prompt ignored: {reason}"] if self.params.prompt and reason else []

    def status(self) -> dict:
        head = self.current_head()
        return {
            "project": self.project,
            "head": None if head is None else {"version": head.version, "ratings": head.n_ratings},
            "embedding_model": self.embedder.model_id,
            "modality": self.embedder.modality,
            "warnings": self.warnings(),
            "vectors": len(self.store),
            **self.ledger.counts(self.project),
            "params": self.params.model_dump(),
        }
