"""The ledger and Chroma are two files written one after the other: a loop built over
them repairs whatever a crash or a lost collection left between them."""

from __future__ import annotations

import chromadb
import numpy as np
import pytest

from ml_backend.adapters.ls_media import TaskImageLoader
from ml_backend.core.facts import AnnotationRating, Facts
from ml_backend.core.fetch import FetchPolicy, ImageFetcher
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


def seen_in_selection(loop) -> set[int]:
    ids, pool = loop.pool()
    return {int(ids[row]) for row in np.flatnonzero(~pool.available)}


def test_every_kind_of_disagreement_is_repaired_when_a_loop_is_built(files):
    make_loop, ledger, chroma_path = files
    loop = make_loop()
    facts = Facts(ledger)
    facts.add_tasks(P, [(t, {"image": image_uri(t)}) for t in range(1, 11)])
    loop.embed_pending()
    facts.record_annotation(P, AnnotationRating(100, 3, 1.0))

    raw = raw_collection(chroma_path)
    raw.delete(ids=["1"])                                                # a vector lost after the ledger said embedded
    ledger.reset_embeddings(P, [2])                                      # a vector stored, the ledger write lost
    raw.upsert(ids=["99"], embeddings=[np.full(32, 0.1767767, np.float32)], metadatas=[{"seen": False}])  # a deleted task's vector
    raw.update(ids=["4", "3"], metadatas=[{"seen": True}, {"seen": False}])  # an older backend's seen flags: not read

    repaired = make_loop()
    assert ledger.task_states(P, [1, 2]) == {1: "pending", 2: "embedded"}
    assert "99" not in repaired.store.ids()
    assert seen_in_selection(repaired) == {3}  # the ledger's record, whatever Chroma's metadata says

    assert repaired.embed_pending().embedded == [1]  # what was lost is embedded again, nothing else
    assert sorted(map(int, repaired.store.ids())) == list(range(1, 11))
    assert repaired.reconcile_store() == {"re_embed": 0, "adopted": 0, "orphans_deleted": 0}


def test_a_lost_collection_is_rebuilt_and_ratings_survive(files):
    make_loop, ledger, chroma_path = files
    loop = make_loop()
    facts = Facts(ledger)
    facts.add_tasks(P, [(t, {"image": image_uri(t)}) for t in range(1, 7)])
    loop.embed_pending()
    facts.record_annotation(P, AnnotationRating(100, 5, -1.0))
    chromadb.PersistentClient(path=str(chroma_path)).delete_collection(COLLECTION)

    rebuilt = make_loop()
    assert ledger.counts(P)["tasks"] == {"pending": 6, "embedded": 0, "failed": 0}
    rebuilt.embed_pending()
    assert len(rebuilt.store) == 6 and seen_in_selection(rebuilt) == {5}
    assert ledger.ratings(P) == {5: -1.0}
    assert 5 not in {t.task_id for t in rebuilt.select_batch()}


def test_a_rating_during_embedding_reaches_the_store(files):
    """The webhook lands while the vectors are written: selection must still know the task is seen."""
    make_loop, ledger, _ = files
    loop = make_loop()
    Facts(ledger).add_tasks(P, [(t, {"image": image_uri(t)}) for t in range(1, 5)])
    real_upsert = loop.store.upsert

    def upsert_while_a_webhook_lands(ids, vectors, **kwargs):
        ledger.record_annotation(P, 100, 2, 1.0)
        real_upsert(ids, vectors, **kwargs)

    loop.store.upsert = upsert_while_a_webhook_lands
    loop.embed_pending()
    loop.store.upsert = real_upsert
    assert ledger.seen_task_ids(P) == {2}
    assert seen_in_selection(loop) == {2} and 2 not in {t.task_id for t in loop.select_batch()}
