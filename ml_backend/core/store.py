"""Embeddings in Chroma (the store of record for vectors) with an in-memory mirror for selection.

Chroma's HNSW index, queried with a `seen` filter, returned only part of the true
top-k and was slower than a masked exact scan (see the performance benchmark). So
Chroma holds the vectors durably, and selection scans a float32 matrix mirrored from
it: exact by construction. Which tasks are seen is the ledger's to say (its one
record): the mirror's flags follow it (`follow_seen`), and Chroma stores none.
"""

from __future__ import annotations

import threading
from typing import Iterable, Sequence

import chromadb
import numpy as np

from .errors import StaleVectorsError
from .strategies.base import Pool

# Nothing queries Chroma's HNSW index (selection scans the mirror), but Chroma builds one on
# every insert, and at its own settings that is most of an upsert's cost: 512-d upserts ran
# at ~370/s with ef_construction 200 / max_neighbors 32, ~740/s with Chroma's defaults and
# ~3,500/s with the smallest graph below (10k vectors, same run; see the benchmark). The
# price: Chroma's own `query` on these collections has poor recall. A deployment that must
# serve queries from Chroma (no mirror) needs a collection created with a real index; these
# two settings cannot be changed after creation.
HNSW_CONFIGURATION = {"hnsw": {"space": "cosine", "ef_construction": 2, "max_neighbors": 2}}


def open_chroma(path: str | None = None, host: str | None = None, port: int = 8000) -> chromadb.api.ClientAPI:
    """An embedded client at `path`, or a client of a Chroma server at host:port."""
    if host:
        return chromadb.HttpClient(host=host, port=port)
    if not path:
        raise ValueError("need a Chroma path or host")
    return chromadb.PersistentClient(path=path)


class VectorStore:
    """One project's embeddings, keyed by task id.

    Rows are unit-norm float32 vectors of one embedding model. The collection metadata
    records the model, so a model change is detected instead of mixing two embedding
    spaces. The mirror's `seen` flags are not stored anywhere: the loop sets them from
    the ledger before each read (`follow_seen`).
    """

    def __init__(self, client: chromadb.api.ClientAPI, name: str, model_id: str, page_size: int = 5000,
                 hnsw: dict | None = None):
        self._client = client
        self._name = name
        self._page_size = page_size
        self._configuration = {"hnsw": hnsw} if hnsw is not None else HNSW_CONFIGURATION
        self._lock = threading.RLock()
        self._collection = client.get_or_create_collection(
            name, configuration=self._configuration, metadata={"embedding_model": model_id}, embedding_function=None
        )
        self.model_id = model_id
        metadata = self._collection.metadata or {}
        self.stored_model_id = metadata.get("embedding_model", model_id)
        self.source: str | None = metadata.get("embedding_source")
        # Times the collection started over (a model or source change); a head fitted before is stale.
        self.generation = int(metadata.get("generation", 0))
        self._max_batch = client.get_max_batch_size()
        self._load_mirror()

    # -- reads ---------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __contains__(self, task_id: object) -> bool:
        return str(task_id) in self._row

    @property
    def dim(self) -> int | None:
        return None if self._matrix is None else self._matrix.shape[1]

    def vectors(self, task_ids: Sequence[int | str]) -> np.ndarray:
        """Rows for `task_ids` (all must be present), shape (len(ids), d)."""
        with self._lock:
            return self._matrix[[self._row[str(t)] for t in task_ids]].copy()

    def present_vectors(self, task_ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
        """(the ids among `task_ids` that have a vector, their rows (n, d)), read at one moment: a
        membership check and a later read may straddle a store reset."""
        with self._lock:
            present = [t for t in task_ids if str(t) in self._row]
            if not present:
                return [], np.empty((0, self.dim or 0), np.float32)
            return present, self._matrix[[self._row[str(t)] for t in present]].copy()

    def ids(self) -> list[str]:
        """The task ids that have a vector."""
        with self._lock:
            return list(self._ids)

    def pool(self, exclude: Iterable[int | str] = ()) -> tuple[list[str], Pool]:
        """A snapshot for selection: (row ids, Pool of all rows, available = unseen and not excluded).

        The matrix is a read-only view, not a copy: new rows added later are not in it.
        """
        with self._lock:
            available = ~self._seen[: self._n].copy()
            for task_id in exclude:
                row = self._row.get(str(task_id))
                if row is not None:
                    available[row] = False
            if self._matrix is None:
                matrix = np.empty((0, 0), np.float32)
            else:
                matrix = self._matrix[: self._n].view()
                self._shared_snapshot = True
            matrix.flags.writeable = False
            return list(self._ids), Pool(vectors=matrix, available=available)

    # -- writes --------------------------------------------------------------
    def upsert(self, task_ids: Sequence[int | str], vectors: np.ndarray, model_id: str | None = None) -> None:
        """Insert or replace rows; idempotent. `vectors` (n, d) must be unit-norm float32. New rows are unseen.

        `model_id`, when given, is the model the vectors came from: if the store has
        switched to another model meanwhile (`use_model`), they are refused with
        `StaleVectorsError` rather than mixed into the new model's space.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = [str(t) for t in task_ids]
        if vectors.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} ids but {vectors.shape[0]} vectors")
        with self._lock:
            # the model first: another model's vectors (often of another size) are stale, not malformed
            if model_id is not None and model_id != self.model_id:
                raise StaleVectorsError(f"vectors of {model_id!r} refused: the store now holds {self.model_id!r}")
            if self.dim is not None and vectors.shape[1] != self.dim:
                raise ValueError(f"vectors have {vectors.shape[1]} dims, the store holds {self.dim}")
            for start in range(0, len(ids), self._max_batch):
                stop = start + self._max_batch
                self._collection.upsert(ids=ids[start:stop], embeddings=vectors[start:stop])
            self._mirror_upsert(ids, vectors)

    def set_seen(self, task_ids: Iterable[int | str], seen: bool) -> None:
        """Set the mirror's `seen` flag of stored rows (ids not in the store are ignored)."""
        with self._lock:
            for task_id in task_ids:
                row = self._row.get(str(task_id))
                if row is not None:
                    self._seen[row] = seen

    def follow_seen(self, seen_task_ids: Iterable[int | str]) -> int:
        """Make exactly `seen_task_ids` (the ledger's record) seen in the mirror; returns how many flags changed."""
        with self._lock:
            wanted = {str(t) for t in seen_task_ids} & self._row.keys()
            current = {self._ids[row] for row in np.flatnonzero(self._seen[: self._n])}
            self.set_seen(wanted - current, True)
            self.set_seen(current - wanted, False)
            return len(wanted ^ current)

    def delete(self, task_ids: Sequence[int | str]) -> None:
        with self._lock:
            # once each: Chroma refuses a delete that names an id twice
            ids = [t for t in dict.fromkeys(str(t) for t in task_ids) if t in self._row]
            for start in range(0, len(ids), self._max_batch):
                self._collection.delete(ids=ids[start : start + self._max_batch])
            if ids:
                self._copy_if_shared()
            for task_id in ids:
                self._mirror_remove(task_id)

    def use_model(self, model_id: str, source: str | None = None) -> bool:
        """Hold vectors of `model_id` made from each task's `source` (the field the project reads) from now
        on; drops every stored vector if they came from another model or another field (returns True then).
        Vectors of two models, or of two fields, are never mixed. A store that never recorded its source
        (written before it was) takes `source` as its own."""
        with self._lock:
            self.model_id = model_id
            if self.stored_model_id == model_id and (self.source is None or source is None or self.source == source):
                if source is not None and self.source is None:
                    self.source = source
                    self._collection.modify(metadata=self._metadata())
                return False
            self.source = source
            self.drop()
            return True

    def drop(self) -> None:
        """Delete the whole collection (used when the embedding model or source changed)."""
        with self._lock:
            self._client.delete_collection(self._name)
            self.generation += 1
            self._collection = self._client.get_or_create_collection(
                self._name, configuration=self._configuration, metadata=self._metadata(), embedding_function=None,
            )
            self.stored_model_id = self.model_id
            self._reset_mirror()

    def _metadata(self) -> dict:
        extra = {"embedding_source": self.source} if self.source is not None else {}
        return {"embedding_model": self.model_id, **extra, **({"generation": self.generation} if self.generation else {})}

    # -- the mirror ----------------------------------------------------------
    def _reset_mirror(self) -> None:
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._matrix: np.ndarray | None = None
        self._seen = np.zeros(0, dtype=bool)
        self._n = 0
        self._shared_snapshot = False

    def _load_mirror(self) -> None:
        self._reset_mirror()
        offset = 0
        while True:
            page = self._collection.get(limit=self._page_size, offset=offset, include=["embeddings"])
            if not page["ids"]:
                break
            self._mirror_upsert(page["ids"], np.asarray(page["embeddings"], dtype=np.float32))
            offset += len(page["ids"])

    def _copy_if_shared(self) -> None:
        # A pool() snapshot views this buffer: copy before changing existing rows in place,
        # so a batch being scored never pairs an id with another task's vector.
        if self._shared_snapshot and self._matrix is not None:
            self._matrix = self._matrix.copy()
            self._shared_snapshot = False

    def _mirror_upsert(self, ids: list[str], vectors: np.ndarray) -> None:
        new = [i for i, task_id in enumerate(ids) if task_id not in self._row]
        if len(new) < len(ids):
            self._copy_if_shared()
        self._reserve(self._n + len(new), vectors.shape[1])
        for i, task_id in enumerate(ids):
            row = self._row.get(task_id)
            if row is None:
                row = self._row[task_id] = self._n
                self._ids.append(task_id)
                self._n += 1
                self._seen[row] = False
            self._matrix[row] = vectors[i]

    def _reserve(self, rows: int, dim: int) -> None:
        # Grow geometrically so n single-row upserts cost O(n) copies, not O(n^2).
        capacity = 0 if self._matrix is None else self._matrix.shape[0]
        if rows <= capacity:
            return
        new_capacity = max(rows, 2 * capacity, 1024)
        matrix = np.zeros((new_capacity, dim), dtype=np.float32)
        seen = np.zeros(new_capacity, dtype=bool)
        if self._matrix is not None:
            matrix[: self._n] = self._matrix[: self._n]
            seen[: self._n] = self._seen[: self._n]
        self._matrix, self._seen = matrix, seen
        self._shared_snapshot = False  # old snapshots keep the old buffer

    def _mirror_remove(self, task_id: str) -> None:
        # Swap the last row into the hole so rows stay contiguous.
        row, last = self._row.pop(task_id), self._n - 1
        if row != last:
            moved = self._ids[last]
            self._ids[row], self._row[moved] = moved, row
            self._matrix[row] = self._matrix[last]
            self._seen[row] = self._seen[last]
        self._ids.pop()
        self._n -= 1
