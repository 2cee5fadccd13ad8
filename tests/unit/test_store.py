"""VectorStore over a real embedded Chroma (PersistentClient in tmp_path)."""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend.core.store import VectorStore, open_chroma
from ml_backend.core.strategies import top_k
from tests.conftest import fresh_chroma, unit_rows

NAME = "project-1"
MODEL = "model-a"


def random_unit(rng, n, dim=8):
    return unit_rows(rng.normal(size=(n, dim)))


@pytest.fixture
def rng():
    return np.random.default_rng(99)


@pytest.fixture
def store(chroma):
    return VectorStore(chroma, NAME, MODEL)


def chroma_metadata(client, ids) -> dict[str, dict | None]:
    """The metadata Chroma itself holds for each id."""
    got = client.get_collection(NAME).get(ids=[str(i) for i in ids], include=["metadatas"])
    return dict(zip(got["ids"], got["metadatas"]))


def mirror_seen(store: VectorStore) -> set[str]:
    """The ids the mirror marks seen (not available to selection)."""
    ids, pool = store.pool()
    return {ids[row] for row in np.flatnonzero(~pool.available)}


def snapshot(store: VectorStore) -> tuple[dict[str, np.ndarray], set[str]]:
    """(id -> vector, seen ids): the mirror independent of row order."""
    ids, pool = store.pool()
    return {task_id: pool.vectors[row].copy() for row, task_id in enumerate(ids)}, mirror_seen(store)


def test_upsert_then_read_back(store, rng):
    vectors = random_unit(rng, 5)
    store.upsert([10, 11, 12, 13, 14], vectors)
    assert len(store) == 5 and store.dim == 8
    assert 12 in store and "12" in store and 99 not in store
    np.testing.assert_array_equal(store.vectors([14, 10]), vectors[[4, 0]])
    assert store.ids() == ["10", "11", "12", "13", "14"]


def test_re_upsert_is_idempotent_and_replaces(store, chroma, rng):
    first, second = random_unit(rng, 3), random_unit(rng, 3)
    store.upsert([1, 2, 3], first)
    store.upsert([1, 2, 3], first)
    assert len(store) == 3 and chroma.get_collection(NAME).count() == 3
    store.upsert([2], second[:1])
    assert len(store) == 3
    np.testing.assert_array_equal(store.vectors([1, 2, 3]), np.stack([first[0], second[0], first[2]]))
    stored = chroma.get_collection(NAME).get(ids=["2"], include=["embeddings"])["embeddings"][0]
    np.testing.assert_allclose(stored, second[0], rtol=1e-6)


@pytest.mark.parametrize(
    "ids, shape, message",
    [([1, 2], (3, 8), "2 ids but 3 vectors"), ([1], (1, 5), "5 dims, the store holds 8")],
)
def test_upsert_rejects_mismatched_input(store, rng, ids, shape, message):
    store.upsert([100], random_unit(rng, 1))
    with pytest.raises(ValueError, match=message):
        store.upsert(ids, rng.normal(size=shape))
    assert len(store) == 1


def test_seen_flags_reach_the_pool_and_stay_out_of_chroma(store, chroma, rng):
    """`seen` has one record, the ledger: the mirror follows it and Chroma keeps no copy."""
    store.upsert([1, 2, 3, 4], random_unit(rng, 4))
    store.set_seen([2], True)
    store.set_seen([3, 4, 777], True)  # 777 is not stored: ignored
    store.set_seen([4], False)
    ids, pool = store.pool()
    assert {i for i, a in zip(ids, pool.available) if a} == {"1", "4"}
    assert mirror_seen(store) == {"2", "3"}
    assert not any(meta and "seen" in meta for meta in chroma_metadata(chroma, [1, 2, 3, 4]).values())
    assert 777 not in store
    assert store.follow_seen([1, 3, 777]) == 2  # 1 becomes seen, 2 unseen, 3 stays
    assert mirror_seen(store) == {"1", "3"}
    assert store.follow_seen({1, 3}) == 0


def test_pool_excludes_and_is_read_only(store, rng):
    store.upsert([1, 2, 3], random_unit(rng, 3))
    ids, pool = store.pool(exclude=[2, 999])
    assert dict(zip(ids, pool.available.tolist())) == {"1": True, "2": False, "3": True}
    with pytest.raises(ValueError):
        pool.vectors[0, 0] = 5.0
    assert store.pool()[1].available.all()  # exclusion is per snapshot


# [3, 3]: Chroma refuses a delete naming an id twice; a TASKS_DELETED webhook can
@pytest.mark.parametrize("victims", [[3], [5], [1], [1, 5], [2, 3, 4], [1, 2, 3, 4, 5], [42], [3, 3]])
def test_delete_swap_remove_keeps_ids_and_rows_paired(store, chroma, rng, victims):
    vectors = random_unit(rng, 5)
    original = {str(t): vectors[i] for i, t in enumerate([1, 2, 3, 4, 5])}
    store.upsert([1, 2, 3, 4, 5], vectors)
    store.set_seen([1, 3], True)
    store.delete(victims)
    kept = [t for t in [1, 2, 3, 4, 5] if t not in victims]
    assert len(store) == len(kept) == chroma.get_collection(NAME).count()
    assert sorted(store.ids(), key=int) == [str(t) for t in kept]
    for t in kept:
        np.testing.assert_array_equal(store.vectors([t])[0], original[str(t)])
    assert mirror_seen(store) == {str(t) for t in kept if t in (1, 3)}
    for t in victims:
        assert t not in store


def test_rows_added_after_a_delete_are_stored_correctly(store, rng):
    vectors = random_unit(rng, 4)
    store.upsert([1, 2, 3], vectors[:3])
    store.delete([1])
    store.upsert([4], vectors[3:])
    np.testing.assert_array_equal(store.vectors([2, 3, 4]), vectors[1:])


def test_a_pool_snapshot_is_not_changed_by_a_later_delete(store, rng):
    vectors = random_unit(rng, 3)
    store.upsert([1, 2, 3], vectors)
    ids, pool = store.pool()
    store.delete([ids[0]])
    np.testing.assert_array_equal(pool.vectors[0], vectors[0])


def test_reload_from_disk_gives_the_same_mirror(tmp_path, rng):
    path = tmp_path / "reload"
    store = VectorStore(fresh_chroma(path), NAME, MODEL)
    store.upsert(range(50), random_unit(rng, 50))
    store.set_seen([i for i in range(50) if i % 3 == 0], True)
    store.set_seen([1, 2], True)
    store.delete([7, 8])
    vectors_before, seen_before = snapshot(store)

    reopened = VectorStore(fresh_chroma(path), NAME, MODEL)
    assert mirror_seen(reopened) == set()  # nothing on disk says what is seen: the ledger does
    reopened.follow_seen(seen_before)
    vectors_after, seen_after = snapshot(reopened)
    assert len(reopened) == 48
    assert seen_after == seen_before
    assert vectors_after.keys() == vectors_before.keys()
    for task_id, vector in vectors_before.items():
        # Chroma re-normalises cosine-space vectors: unit rows come back within an ulp.
        np.testing.assert_allclose(vectors_after[task_id], vector, atol=1e-6)
    assert reopened.stored_model_id == MODEL


def test_upserts_above_chromas_max_batch_size(store, chroma, rng):
    n = chroma.get_max_batch_size() + 37
    vectors = random_unit(rng, n, dim=4)
    store.upsert(range(n), vectors)
    assert len(store) == n and chroma.get_collection(NAME).count() == n
    store.follow_seen(range(n))
    assert mirror_seen(store) == {str(i) for i in range(n)}
    store.delete(range(n - 5))
    assert len(store) == 5 and chroma.get_collection(NAME).count() == 5
    np.testing.assert_array_equal(store.vectors(range(n - 5, n)), vectors[n - 5 :])


def test_mirror_top_k_is_exact_and_chroma_recall_is_reported(store, chroma, rng, record_property):
    """Selection scans the mirror: it must equal a brute-force scan. Chroma's HNSW is only reported."""
    n, k = 600, 20
    vectors = random_unit(rng, n, dim=16)
    seen = rng.random(n) < 0.3
    store.upsert(range(n), vectors)
    store.follow_seen(np.flatnonzero(seen).tolist())
    query = unit_rows(rng.normal(size=(1, 16)))[0]

    ids, pool = store.pool()
    picked = {ids[r] for r in top_k(pool.vectors @ query, pool.available, k, np.random.default_rng(0))}
    scores = vectors @ query
    brute = {str(i) for i in sorted(np.flatnonzero(~seen), key=lambda i: -scores[i])[:k]}
    assert picked == brute

    # Chroma's own filtered query, for the report: with `seen` written into its metadata (the store keeps none).
    collection = chroma.get_collection(NAME)
    collection.update(ids=[str(i) for i in range(n)], metadatas=[{"seen": bool(flag)} for flag in seen])
    answer = collection.query(query_embeddings=[query], n_results=k, where={"seen": False})
    recall = len(set(answer["ids"][0]) & brute) / k
    record_property("chroma_hnsw_recall_at_20", recall)
    print(f"Chroma HNSW recall@{k} with a seen filter: {recall:.2f} (mirror: 1.00)")


def test_model_change_is_detected(chroma, rng):
    VectorStore(chroma, NAME, "model-a").upsert([1], random_unit(rng, 1))
    other = VectorStore(chroma, NAME, "model-b")
    assert (other.model_id, other.stored_model_id) == ("model-b", "model-a")
    assert len(other) == 1  # detection only: dropping is the caller's decision
    other.drop()
    assert (len(other), other.stored_model_id, other.dim) == (0, "model-b", None)
    assert chroma.get_collection(NAME).count() == 0
    assert VectorStore(chroma, NAME, "model-b").stored_model_id == "model-b"


def test_a_store_from_before_sources_were_recorded_keeps_its_vectors_and_learns_its_source(chroma, rng):
    VectorStore(chroma, NAME, "model-a").upsert([1, 2], random_unit(rng, 2))  # metadata: the model only
    store = VectorStore(chroma, NAME, "model-a")
    assert store.source is None and store.use_model("model-a", "$image") is False and len(store) == 2
    reopened = VectorStore(chroma, NAME, "model-a")
    assert (reopened.source, reopened.generation) == ("$image", 0)
    assert reopened.use_model("model-a", "$picture") is True and len(reopened) == 0  # another field: started over
    again = VectorStore(chroma, NAME, "model-a")
    assert (again.source, again.generation) == ("$picture", 1)  # a head fitted before the drop is stale


def test_empty_store(store):
    ids, pool = store.pool()
    assert ids == [] and len(pool.available) == 0 and len(store) == 0
    assert store.dim is None and mirror_seen(store) == set()
    store.delete([1])
    store.set_seen([1], True)
    assert len(store) == 0


def test_open_chroma_needs_a_path_or_host():
    with pytest.raises(ValueError, match="path or host"):
        open_chroma()
