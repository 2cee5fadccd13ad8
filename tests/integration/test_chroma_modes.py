"""Selection and the loop give the same, exact answers with embedded and client/server Chroma.

Selection is served from the store's in-memory mirror of Chroma; these tests check that
the mirror agrees with a plain exact scan, and that what comes back from Chroma after a
restart (a fresh store reading the collection, `seen` given again by the ledger's record)
selects exactly the same tasks.
"""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend.adapters.ls_media import TaskImageLoader
from ml_backend.core.facts import AnnotationRating, Facts
from ml_backend.core.head import LinearHead
from ml_backend.core.fetch import FetchPolicy, ImageFetcher
from ml_backend.core.ledger import Ledger
from ml_backend.core.loop import ActiveLoop
from ml_backend.core.params import ProjectParams
from ml_backend.core.store import VectorStore
from ml_backend.core.strategies import NearestStrategy, UncertaintyStrategy
from tests.conftest import image_uri, unit_rows

N, DIM, K = 600, 32, 10


def mirror_seen(store: VectorStore) -> set[str]:
    ids, pool = store.pool()
    return {ids[row] for row in np.flatnonzero(~pool.available)}


def exact_top_k(X: np.ndarray, priority: np.ndarray, seen: np.ndarray, k: int) -> list[int]:
    """The reference: rows by priority, seen rows excluded, ties to the lower row."""
    order = np.lexsort((np.arange(len(X)), -priority))
    return [int(r) for r in order if not seen[r]][:k]


def clustered(rng: np.random.Generator, n: int = N) -> np.ndarray:
    centres = unit_rows(rng.normal(size=(8, DIM)))
    return unit_rows(centres[rng.integers(8, size=n)] + 0.3 * rng.normal(size=(n, DIM)))


def selected_ids(store: VectorStore, strategy, head: LinearHead) -> list[int]:
    ids, pool = store.pool()
    rows = strategy.select(head, pool, K, np.random.default_rng(0))
    return [int(ids[r]) for r in rows]


@pytest.mark.parametrize("strategy", [NearestStrategy(), UncertaintyStrategy()], ids=["nearest", "uncertainty"])
def test_selection_is_the_exact_top_k_of_unseen_tasks(chroma_mode, collection_name, strategy):
    rng = np.random.default_rng(1)
    X = clustered(rng)
    ids = np.arange(100, 100 + N)  # task ids are not row numbers
    seen = rng.random(N) < 0.3
    store = VectorStore(chroma_mode.client(), collection_name, "test-model")
    for chunk in np.array_split(np.arange(N), 4):  # several upserts, as the worker makes them
        store.upsert(ids[chunk].tolist(), X[chunk])
    store.follow_seen(ids[seen].tolist())
    # The tasks nearest to a head are the ones annotators rate: mark the first head's top 20 seen.
    w0 = X[:5].mean(axis=0)
    nearest = np.argsort(-(X @ w0))[:20]
    store.set_seen(ids[nearest].tolist(), True)
    seen[nearest] = True

    for trial in range(5):
        w = w0 + 0.5 * rng.normal(size=DIM) / np.sqrt(DIM)
        head = LinearHead.from_weights(w.astype(np.float32), float(rng.normal()))
        priority = head.decision_function(X)
        if isinstance(strategy, UncertaintyStrategy):
            priority = -np.abs(priority)
        expected = [int(ids[r]) for r in exact_top_k(X, priority, seen, K)]
        assert selected_ids(store, strategy, head) == expected
        assert not set(expected) & set(ids[seen].tolist())

    # Chroma is the store of record for vectors, the ledger for `seen`: a fresh store (a restarted
    # backend) given the same record selects the same.
    reopened = VectorStore(chroma_mode.client(), collection_name, "test-model")
    reopened.follow_seen(ids[seen].tolist())
    assert len(reopened) == N and mirror_seen(reopened) == {str(t) for t in ids[seen]}
    assert selected_ids(reopened, strategy, head) == expected


def test_replaced_and_deleted_vectors_reach_chroma(chroma_mode, collection_name):
    rng = np.random.default_rng(2)
    X = clustered(rng, 50)
    store = VectorStore(chroma_mode.client(), collection_name, "test-model")
    store.upsert(list(range(50)), X)
    target = X[7]
    head = LinearHead.from_weights(target, 0.0)
    assert selected_ids(store, NearestStrategy(), head)[0] == 7

    store.upsert([3], target[None, :])  # task 3 re-embedded onto task 7's vector
    store.delete([7])
    store.set_seen([3], True)
    store.set_seen([3], False)
    for current in (store, VectorStore(chroma_mode.client(), collection_name, "test-model")):
        picked = selected_ids(current, NearestStrategy(), head)
        assert picked[0] == 3 and 7 not in picked and len(current) == 49


def test_the_loop_runs_and_resumes_on_either_chroma(chroma_mode, collection_name, tmp_path, embedder):
    """Embed, rate, refit, select; then a new loop over the same ledger and Chroma picks up the same state."""
    loader = TaskImageLoader("image", "http://127.0.0.1:1", ImageFetcher(FetchPolicy()))

    def open_loop(ledger: Ledger) -> ActiveLoop:
        store = VectorStore(chroma_mode.client(), collection_name, embedder.model_id)
        params = ProjectParams.parse({"prompt": "a red square", "batch_size": 5, "strategy": "nearest"})
        return ActiveLoop(1, params, ledger, store, embedder, loader, fetch_workers=2)

    ledger = Ledger(tmp_path / "ledger.sqlite")
    loop = open_loop(ledger)
    facts = Facts(ledger)
    facts.add_tasks(1, [(t, {"image": image_uri(t)}) for t in range(1, 41)])
    assert loop.embed_pending().failed == {}
    assert loop.refit_if_needed().version == 1
    first = [t.task_id for t in loop.select_batch()]
    for annotation, (task, target) in enumerate(zip(first[:3], (1.0, -1.0, 0.0))):
        facts.record_annotation(1, AnnotationRating(annotation + 1, task, target))
    head = loop.refit_if_needed()
    assert head.version == 2 and head.n_ratings == 3
    batch = loop.select_batch()
    assert not {t.task_id for t in batch} & set(first[:3])
    # The batch is the exact top-k by the head's score among unseen tasks.
    ids, pool = loop.store.pool()
    scores = head.head.decision_function(pool.vectors)
    expected = exact_top_k(pool.vectors, scores, ~pool.available, 5)
    assert [t.task_id for t in batch] == [int(ids[r]) for r in expected]
    ledger.close()

    resumed = open_loop(Ledger(tmp_path / "ledger.sqlite"))
    resumed.pool()  # the mirror's `seen` follows the ledger at every read
    assert len(resumed.store) == 40 and mirror_seen(resumed.store) == {str(t) for t in first[:3]}
    assert resumed.current_head().version == 2
    assert resumed.refit_if_needed() is None  # nothing changed: no new version
    assert [t.task_id for t in resumed.select_batch()] == [t.task_id for t in batch]
    resumed.ledger.close()


def test_chroma_keeps_every_vector_exactly_with_the_small_hnsw_graph(chroma_mode, collection_name):
    """The store's HNSW settings (a tiny graph nobody queries) lose nothing Chroma stores.

    More rows than one Chroma batch, so upserts span several calls; some rows replaced,
    some deleted, some marked seen: a fresh store reading the collection back has exactly
    the vectors and flags written, and selects exactly what the exact scan selects.
    """
    rng = np.random.default_rng(3)
    n = 6_000
    X = unit_rows(rng.normal(size=(n, 16))).astype(np.float32)
    store = VectorStore(chroma_mode.client(), collection_name, "test-model")
    assert n > store._max_batch
    store.upsert(list(range(n)), X)
    replaced = rng.choice(n, 300, replace=False)
    X[replaced] = unit_rows(rng.normal(size=(300, 16)))
    store.upsert(replaced.tolist(), X[replaced])
    deleted = set(rng.choice(n, 200, replace=False).tolist())
    store.delete(sorted(deleted))
    seen = {int(t) for t in rng.choice(n, 1000, replace=False) if int(t) not in deleted}
    store.set_seen(sorted(seen), True)

    reopened = VectorStore(chroma_mode.client(), collection_name, "test-model")
    reopened.follow_seen(sorted(seen))  # the ledger's record
    kept = [t for t in range(n) if t not in deleted]
    assert len(reopened) == len(kept) and sorted(int(i) for i in reopened.ids()) == kept
    # Chroma's cosine space re-normalises what it stores: equal up to float32 rounding.
    np.testing.assert_allclose(reopened.vectors(kept), X[kept], rtol=0, atol=1e-6)
    assert mirror_seen(reopened) == {str(t) for t in seen}
    w = X[0] + 0.5 * X[1]  # not X[0] + X[1]: rows 0 and 1 would tie exactly, and ties go at random
    head = LinearHead.from_weights(w, 0.0)
    mask = np.array([t in seen for t in kept])
    expected = [kept[r] for r in exact_top_k(X[kept], X[kept] @ w, mask, K)]
    assert selected_ids(reopened, NearestStrategy(), head) == expected
