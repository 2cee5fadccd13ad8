"""Selection: top-k unseen nearest to W, through the project's own store and strategy.

For each pool size N, one process builds a `VectorStore` of N clustered 512-d vectors
(through `VectorStore.upsert`: this also gives the store's upsert rate and memory),
marks 0%, 10% and 50% of the tasks seen in its mirror (`VectorStore.set_seen`), and times
`VectorStore.pool()` + `NearestStrategy.select` (what `ActiveLoop.select_batch` runs)
against a bare exact scan (one matvec over a plain array, mask, argpartition),
interleaved query by query so both see the same machine load.

Seen tasks are not uniform in real use: annotators rate the batches nearest to W, so
half of the seen tasks are the nearest to the session's first head W0 and half are
uniform. Queries are later heads: W0 plus noise (cosine ~0.9 to W0). This is the case
that breaks a filtered approximate-nearest-neighbour query, whose nearest candidates
are exactly the seen ones.

At small N, the same queries also go to Chroma itself (its HNSW with default settings,
filtered by `where={"seen": False}`, and over-fetching 10k then filtering) so the
design choice rests on numbers.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass

import chromadb
import numpy as np

from ml_backend.core.head import LinearHead
from ml_backend.core.store import VectorStore
from ml_backend.core.strategies import NearestStrategy

from .common import clustered_unit_vectors, percentile_ms, query_vectors, rss_bytes

MODEL_ID = "benchmark-512d"
CHROMA_COMPARE_MAX_N = 10_000
OVERFETCH = 10
SMALL_N = 100_000


@dataclass
class SelectionSettings:
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    seen_fractions: tuple[float, ...] = (0.0, 0.1, 0.5)
    queries: int = 50
    small_n_queries: int = 200  # at N <= SMALL_N a query takes milliseconds: more of them steady the p95
    k: int = 10
    run_queries: bool = True  # False: build the stores only (the store section alone)


def exact_top_k(matrix: np.ndarray, w: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    """The reference: a bare masked exact scan, highest score first."""
    scores = matrix @ w
    scores[seen] = -np.inf
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def seen_mask(X: np.ndarray, w0: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Half of the seen tasks are the nearest to the first head w0, half uniform among the rest."""
    n = len(X)
    mask = np.zeros(n, dtype=bool)
    nearest = int(n * fraction / 2)
    if nearest:
        mask[np.argpartition(-(X @ w0), nearest - 1)[:nearest]] = True
    rest = np.flatnonzero(~mask)
    mask[rng.choice(rest, size=int(n * fraction) - nearest, replace=False)] = True
    return mask


def store_and_select(n: int, settings: SelectionSettings, workdir: str) -> dict:
    """Build a store of n vectors, then (optionally) time selections. Runs in its own process."""
    X = clustered_unit_vectors(n, seed=n)
    ids = [str(i) for i in range(n)]
    path = tempfile.mkdtemp(dir=workdir)
    try:
        client = chromadb.PersistentClient(path=path)
        rss_before = rss_bytes()
        store = VectorStore(client, "bench", MODEL_ID)
        start = time.perf_counter()
        batch = client.get_max_batch_size()
        for offset in range(0, n, batch):
            store.upsert(ids[offset : offset + batch], X[offset : offset + batch])
        upsert_s = time.perf_counter() - start
        rss_store = rss_bytes() - rss_before
        start = time.perf_counter()
        reloaded = VectorStore(client, "bench", MODEL_ID)  # what a restarted backend does
        load_s = time.perf_counter() - start
        assert len(reloaded) == n
        del reloaded
        report = {
            "n": n, "upsert_per_s": n / upsert_s, "upsert_s": upsert_s,
            "rss_bytes": rss_store, "rss_bytes_per_vector": rss_store / n,
            "mirror_bytes": store._matrix.nbytes if store._matrix is not None else 0,
            "mirror_load_s": load_s,
        }
        if settings.run_queries:
            report["selection"] = _time_queries(store, X, n, settings, client)
        return report
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _time_queries(store: VectorStore, X: np.ndarray, n: int, settings: SelectionSettings, client) -> list[dict]:
    rng = np.random.default_rng(n)
    count = max(settings.queries, settings.small_n_queries) if n <= SMALL_N else settings.queries
    heads = query_vectors(n, count + 1)
    w0, queries = heads[0], heads[1:]
    strategy = NearestStrategy()
    rows_out = []
    current = np.zeros(n, dtype=bool)
    compare = n <= CHROMA_COMPARE_MAX_N
    chroma = _default_chroma_collection(client, X) if compare else None
    for fraction in settings.seen_fractions:
        wanted = seen_mask(X, w0, fraction, rng)
        start = time.perf_counter()
        store.set_seen(np.flatnonzero(wanted & ~current).tolist(), True)
        store.set_seen(np.flatnonzero(current & ~wanted).tolist(), False)
        set_seen_s = time.perf_counter() - start
        changed = int((wanted != current).sum())
        current = wanted
        ours, exact, recalls = [], [], []
        for index, w in enumerate(np.concatenate([queries[:2], queries])):  # the first two warm caches up
            head = LinearHead.from_weights(w, 0.0)
            t0 = time.perf_counter()
            row_ids, pool = store.pool()
            rows = strategy.select(head, pool, settings.k, rng)
            picked = [row_ids[r] for r in rows]
            t1 = time.perf_counter()
            truth = exact_top_k(X, w, current, settings.k)
            t2 = time.perf_counter()
            if index >= 2:
                ours.append(t1 - t0)
                exact.append(t2 - t1)
                recalls.append(len(set(picked) & {str(t) for t in truth}) / settings.k)
        row = {
            "n": n, "seen_fraction": fraction, "k": settings.k, "queries": len(ours),
            "recall_at_k": float(np.mean(recalls)), "min_recall_at_k": float(np.min(recalls)),
            "p50_ms": percentile_ms(ours, 50), "p95_ms": percentile_ms(ours, 95),
            "exact_scan_p50_ms": percentile_ms(exact, 50), "exact_scan_p95_ms": percentile_ms(exact, 95),
            "set_seen_per_s": changed / set_seen_s if changed else None,
        }
        if chroma is not None:
            row["chroma_hnsw"] = _time_chroma(chroma, X, queries[:50], current, settings.k)
        rows_out.append(row)
    return rows_out


def _default_chroma_collection(client, X: np.ndarray):
    """The same vectors in a collection with Chroma's default HNSW settings, for comparison only."""
    collection = client.create_collection("chroma-default", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    batch = client.get_max_batch_size()
    for offset in range(0, len(X), batch):
        chunk = X[offset : offset + batch]
        collection.add(ids=[str(i) for i in range(offset, offset + len(chunk))], embeddings=chunk,
                       metadatas=[{"seen": False}] * len(chunk))
    return collection


def _time_chroma(collection, X: np.ndarray, queries: np.ndarray, seen: np.ndarray, k: int) -> dict:
    """Chroma serving the query: filtered HNSW, and HNSW over-fetch + filter on our side."""
    for offset in range(0, len(X), 5000):  # sync the comparison collection's flags
        flags = seen[offset : offset + 5000]
        collection.update(ids=[str(i) for i in range(offset, offset + len(flags))],
                          metadatas=[{"seen": bool(f)} for f in flags])
    filtered, overfetch, filtered_recall, overfetch_recall = [], [], [], []
    for w in queries:
        truth = {str(t) for t in exact_top_k(X, w, seen, k)}
        t0 = time.perf_counter()
        got = collection.query(query_embeddings=[w], n_results=k, where={"seen": False}, include=[])["ids"][0]
        t1 = time.perf_counter()
        many = collection.query(query_embeddings=[w], n_results=min(len(X), OVERFETCH * k), include=[])["ids"][0]
        kept = [i for i in many if not seen[int(i)]][:k]
        t2 = time.perf_counter()
        filtered.append(t1 - t0)
        overfetch.append(t2 - t1)
        filtered_recall.append(len(truth & set(got)) / k)
        overfetch_recall.append(len(truth & set(kept)) / k)
    return {
        "filtered_p95_ms": percentile_ms(filtered, 95), "filtered_recall_at_k": float(np.mean(filtered_recall)),
        "overfetch_p95_ms": percentile_ms(overfetch, 95), "overfetch_recall_at_k": float(np.mean(overfetch_recall)),
        "overfetch_factor": OVERFETCH,
    }
