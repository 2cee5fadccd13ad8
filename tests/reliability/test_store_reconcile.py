"""The ledger and Chroma are two files written one after the other: a loop built over
them repairs whatever a crash or a lost collection left between them."""

from __future__ import annotations

import chromadb
import numpy as np
import pytest

from ml_backend.adapters.ls_media import TaskImageLoader
from ml_backend.core.images import FetchPolicy, ImageFetcher
from ml_backend.core.ledger import Ledger
from ml_backend.core.loop import ActiveLoop
from ml_backend.core.params import ProjectParams
from ml_backend.core.store import VectorStore

from .support import image_uri

P = 1
COLLECTION = f"project-{P}"


@pytest.fixture
def files(tmp_path, embedder):
    """Builds loops over one ledger file and one Chroma directory, as a restarted process would."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    loader = TaskImageLoader("image", "http://127.0.0.1:1", ImageFetcher(FetchPolicy()))

    def loop() -> ActiveLoop:
        store = VectorStore(chromadb.PersistentClient(path=str(tmp_path / "chroma")), COLLECTION, embedder.model_id)
        return ActiveLoop(P, ProjectParams.parse({"batch_size": 4}), ledger, store, embedder, loader, fetch_workers=2)

    yield loop, ledger, tmp_path / "chroma"
    ledger.close()


def raw_collection(path):
    return chromadb.PersistentClient(path=str(path)).get_collection(COLLECTION)


def test_every_kind_of_disagreement_is_repaired_when_a_loop_is_built(files):
    make_loop, ledger, chroma_path = files
    loop = make_loop()
    loop.add_tasks([(t, {"image": image_uri(t)}) for t in range(1, 11)])
    loop.embed_pending()
    loop.record_annotation(100, 3, 1.0)
    loop.sync_seen()

    raw = raw_collection(chroma_path)
    raw.delete(ids=["1"])                                                # a vector lost after the ledger said embedded
    ledger.reset_embeddings(P, [2])                                      # a vector stored, the ledger write lost
    raw.upsert(ids=["99"], embeddings=[np.full(32, 0.1767767, np.float32)], metadatas=[{"seen": False}])  # a deleted task's vector
    raw.update(ids=["4", "3"], metadatas=[{"seen": True}, {"seen": False}])  # seen flags that drifted

    repaired = make_loop()
    assert ledger.task_states(P, [1, 2]) == {1: "pending", 2: "embedded"}
    assert "99" not in repaired.store.ids()
    assert repaired.store.seen_ids() == {"3"}
    stored = raw_collection(chroma_path).get(ids=["3", "4"], include=["metadatas"])
    assert {i: m["seen"] for i, m in zip(stored["ids"], stored["metadatas"])} == {"3": True, "4": False}

    assert repaired.embed_pending().embedded == [1]  # what was lost is embedded again, nothing else
    assert sorted(map(int, repaired.store.ids())) == list(range(1, 11))
    assert repaired.reconcile_store() == {"re_embed": 0, "adopted": 0, "orphans_deleted": 0, "seen_fixed": 0}


def test_a_lost_collection_is_rebuilt_and_ratings_survive(files):
    make_loop, ledger, chroma_path = files
    loop = make_loop()
    loop.add_tasks([(t, {"image": image_uri(t)}) for t in range(1, 7)])
    loop.embed_pending()
    loop.record_annotation(100, 5, -1.0)
    chromadb.PersistentClient(path=str(chroma_path)).delete_collection(COLLECTION)

    rebuilt = make_loop()
    assert ledger.counts(P)["tasks"] == {"pending": 6, "embedded": 0, "failed": 0}
    rebuilt.embed_pending()
    assert len(rebuilt.store) == 6 and rebuilt.store.seen_ids() == {"5"}
    assert ledger.ratings(P) == {5: -1.0}
    assert 5 not in {t.task_id for t in rebuilt.select_batch()}


def test_a_rating_during_embedding_reaches_the_store(files):
    """The webhook lands between reading `seen` and writing the vectors: the store must still learn it."""
    make_loop, ledger, _ = files
    loop = make_loop()
    loop.add_tasks([(t, {"image": image_uri(t)}) for t in range(1, 5)])
    real_upsert = loop.store.upsert

    def upsert_while_a_webhook_lands(ids, vectors, seen=None, **kwargs):
        ledger.record_annotation(P, 100, 2, 1.0)
        real_upsert(ids, vectors, seen=seen, **kwargs)

    loop.store.upsert = upsert_while_a_webhook_lands
    loop.embed_pending()
    loop.store.upsert = real_upsert
    assert ledger.unsynced_seen(P) == [(2, True)]
    loop.sync_seen()
    assert loop.store.seen_ids() == {"2"} and 2 not in {t.task_id for t in loop.select_batch()}
