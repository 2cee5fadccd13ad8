"""Store: Chroma upsert throughput under HNSW settings, embedded and client/server.

The big builds (10k ... 1M vectors, with resident memory) happen in `selection.py`,
which needs those stores anyway. Here, side by side on the same vectors:
- `VectorStore.upsert` with the HNSW settings the store used before this benchmark,
  with Chroma's defaults, and with the settings it uses now (`HNSW_CONFIGURATION`);
- the same store over `chromadb.HttpClient` against `chroma run` on loopback.
Variants alternate within each repeat so machine load hits them alike.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import chromadb
import numpy as np

from ml_backend.core.store import HNSW_CONFIGURATION, VectorStore

from .common import clustered_unit_vectors, median

HNSW_VARIANTS = {
    "before (ef_construction 200, max_neighbors 32)": {"space": "cosine", "ef_construction": 200, "ef_search": 200, "max_neighbors": 32},
    "chroma defaults": {"space": "cosine"},
    "now (HNSW_CONFIGURATION)": HNSW_CONFIGURATION["hnsw"],
}


@dataclass
class StoreSettings:
    vectors: int = 10_000
    repeats: int = 2
    server_vectors: int = 20_000


def _upsert_rate(client, name: str, X: np.ndarray, hnsw: dict | None = None) -> float:
    store = VectorStore(client, name, "benchmark-512d", hnsw=hnsw)
    ids = [str(i) for i in range(len(X))]
    batch = client.get_max_batch_size()
    start = time.perf_counter()
    for offset in range(0, len(X), batch):
        store.upsert(ids[offset : offset + batch], X[offset : offset + batch])
    return len(X) / (time.perf_counter() - start)


def measure(settings: StoreSettings, workdir: str) -> dict:
    from scripts.servers import ChromaServer, free_port

    X = clustered_unit_vectors(settings.vectors, seed=3)
    root = Path(tempfile.mkdtemp(dir=workdir))
    try:
        rates: dict[str, list[float]] = {name: [] for name in HNSW_VARIANTS}
        for repeat in range(settings.repeats):
            for index, (name, hnsw) in enumerate(HNSW_VARIANTS.items()):
                client = chromadb.PersistentClient(path=str(root / f"variant-{repeat}-{index}"))
                rates[name].append(_upsert_rate(client, "bench", X, hnsw))
        server_X = clustered_unit_vectors(settings.server_vectors, seed=4)
        server = ChromaServer(root / "server", free_port()).start()
        try:
            http = chromadb.HttpClient(host=server.host, port=server.port)
            server_rate = _upsert_rate(http, "bench-server", server_X)
            start = time.perf_counter()
            reloaded = VectorStore(http, "bench-server", "benchmark-512d")
            server_load_s = time.perf_counter() - start
            assert len(reloaded) == len(server_X)
        finally:
            server.stop()
        embedded_rate = _upsert_rate(chromadb.PersistentClient(path=str(root / "embedded-twin")), "bench", server_X)
        return {
            "hnsw_variants": [{"hnsw": name, "settings": HNSW_VARIANTS[name], "upsert_per_s": median(values),
                               "runs_per_s": values, "vectors": settings.vectors} for name, values in rates.items()],
            "client_server": {"vectors": settings.server_vectors, "upsert_per_s": server_rate,
                              "embedded_upsert_per_s_same_vectors": embedded_rate, "mirror_load_s": server_load_s},
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
