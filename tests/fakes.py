"""Fast in-memory stand-ins for the unit layer: Label Studio, Chroma, an embedding model.

Each does what the real one does for the calls the backend makes, in memory and in
microseconds; the integration layer runs the same tests on the real components
(`tests/integration/test_real_components.py`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ml_backend.adapters.ls_client import LabelStudioUnavailable
from ml_backend.adapters.ls_gateway import ProjectCounts
from ml_backend.adapters.ml_connections import Connection, Hook
from ml_backend.core.embedding import Embedder

# -- Label Studio -------------------------------------------------------------------------


class FakeLabelStudio:
    """A `LabelStudioGateway` in memory: records what the worker pushes; `tasks` is what
    `iter_tasks` lists; `down` makes every call fail as an unreachable Label Studio does (asking to
    retry after `retry_after_s` when set); `refused` counts the calls that failed."""

    def __init__(self):
        self.tasks: list[dict] = []
        self.calls: list[tuple] = []
        self.predictions: list[dict] = []
        self.views: dict[int, list[int]] = {}
        self.model_version: str | None = None
        self.down = False
        self.retry_after_s: float | None = None
        self.refused = 0
        self.connections: list[Connection] = []
        self.hooks: list[Hook] = []

    def _record(self, *call):
        if self.down:
            self.refused += 1
            raise LabelStudioUnavailable("Label Studio answered 503", retry_after_s=self.retry_after_s)
        self.calls.append(call)

    def ml_connections(self, project: int) -> list[Connection]:
        self._record("ml_connections", project)
        return list(self.connections)

    def ensure_webhook(self, project: int, backend_urls: list[str]) -> list[Hook]:
        self._record("webhook", project, list(backend_urls))
        return list(self.hooks)

    def iter_tasks(self, project: int):
        self._record("iter_tasks", project)
        yield from self.tasks

    def counts(self, project: int) -> ProjectCounts:
        self._record("counts", project)
        return ProjectCounts(self.task_count(), sum(len(task.get("annotations") or []) for task in self.tasks))

    def model_versions(self, project: int) -> dict[str, int]:
        self._record("model_versions", project)
        versions: dict[str, int] = {}
        for prediction in self.predictions:
            versions[prediction["model_version"]] = versions.get(prediction["model_version"], 0) + 1
        return versions

    def task_count(self) -> int | None:
        """What `counts` says of the tasks: tests that need Label Studio to count otherwise override it."""
        return len(self.tasks)

    def push_view(self, project: int, title: str, task_ids: list[int], view_id: int | None) -> int:
        self._record("view", project, title, list(task_ids), view_id)
        view_id = view_id if view_id is not None else 500 + len(self.views)
        self.views[view_id] = list(task_ids)
        return view_id

    def push_predictions(self, project: int, predictions: list[dict[str, Any]]) -> None:
        self._record("predictions", project, [p["task"] for p in predictions])
        self.predictions.extend(predictions)

    def set_model_version(self, project: int, model_version: str) -> None:
        self._record("model_version", project, model_version)
        self.model_version = model_version

    def delete_model_version(self, project: int, model_version: str) -> None:
        self._record("delete_version", project, model_version)
        self.predictions = [p for p in self.predictions if p["model_version"] != model_version]

    def of(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]


# -- Chroma -------------------------------------------------------------------------------


class MemoryCollection:
    """The part of a Chroma collection `VectorStore` uses, in insertion order."""

    def __init__(self, name: str, metadata: dict | None):
        self.name = name
        self.metadata = dict(metadata or {})
        self._rows: dict[str, np.ndarray] = {}

    def modify(self, metadata: dict | None = None) -> None:
        if metadata is not None:
            self.metadata = dict(metadata)

    def upsert(self, ids: Sequence[str], embeddings: Any) -> None:
        for task_id, vector in zip(ids, np.asarray(embeddings, dtype=np.float32), strict=True):
            self._rows[task_id] = vector.copy()

    def get(self, ids: Sequence[str] | None = None, limit: int | None = None, offset: int = 0,
            include: Sequence[str] = ()) -> dict[str, list]:
        chosen = [i for i in ids if i in self._rows] if ids is not None else list(self._rows)
        chosen = chosen[offset : None if limit is None else offset + limit]
        return {"ids": chosen, "embeddings": [self._rows[i] for i in chosen] if "embeddings" in include else None}

    def delete(self, ids: Sequence[str]) -> None:
        for task_id in ids:
            self._rows.pop(task_id, None)

    def count(self) -> int:
        return len(self._rows)


class MemoryChroma:
    """The part of a Chroma client `VectorStore` uses. One instance is one "disk": stores
    opened on it later read what earlier ones wrote, as after a restart."""

    def __init__(self, max_batch_size: int = 5461):
        self.collections: dict[str, MemoryCollection] = {}
        self._max_batch_size = max_batch_size

    def get_or_create_collection(self, name: str, configuration: dict | None = None, metadata: dict | None = None,
                                 embedding_function: Any = None) -> MemoryCollection:
        if name not in self.collections:
            self.collections[name] = MemoryCollection(name, metadata)
        return self.collections[name]

    def get_collection(self, name: str) -> MemoryCollection:
        return self.collections[name]

    def delete_collection(self, name: str) -> None:
        del self.collections[name]

    def get_max_batch_size(self) -> int:
        return self._max_batch_size


# -- an embedding model ------------------------------------------------------------------------


class HashEmbedder(Embedder):
    """Unit vectors drawn from a hash of each item's bytes: equal items give equal vectors, others
    unrelated ones. Embeds images and texts (and prompts), through the same `embed_sources` pipeline."""

    def __init__(self, modality: str = "image", dim: int = 32, batch_size: int = 4, model_id: str = "hash-embedder"):
        self.modality = modality
        self.model_id = model_id
        self.dim = dim
        self.batch_size = batch_size

    @property
    def can_embed_text(self) -> bool:
        return True

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.forward([text.encode() for text in texts])

    def prepare(self, item: Any) -> bytes:
        return item.tobytes() if isinstance(item, Image.Image) else str(item).encode()

    def collate(self, prepared: Sequence[bytes]) -> list[bytes]:
        return list(prepared)

    def forward(self, batch: Sequence[bytes]) -> np.ndarray:
        rows = [np.random.default_rng(list(hashlib.sha256(item).digest()[:8])).normal(size=self.dim) for item in batch]
        matrix = np.array(rows, dtype=np.float32).reshape(len(rows), self.dim)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
