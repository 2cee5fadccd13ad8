"""CLIP image and text embeddings, L2-normalised."""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

from .errors import BackendError, ImageError, ModelUnavailableError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
# How to save a hub CLIP to a folder that loads offline (the README gives the same line).
SAVE_CLIP_HINT = (
    "`python -c \"from transformers import CLIPModel, CLIPProcessor as P; m='openai/clip-vit-base-patch32'; "
    "CLIPModel.from_pretrained(m).save_pretrained('clip'); P.from_pretrained(m).save_pretrained('clip')\"`"
)
TINY_MODEL_MARKER = "TINY_RANDOM_CLIP.json"


class ClipEmbedder:
    """Embeds images and texts with a CLIP model from the HuggingFace hub or a local folder.

    Parameters
    ----------
    model : hub id (e.g. "openai/clip-vit-base-patch32") or a local folder.
    device : torch device string, "cpu" or "cuda".
    batch_size : images per forward pass.
    """

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu", batch_size: int = 32):
        self.model_id = model
        self.device = torch.device(device)
        self.batch_size = batch_size
        loaded = load_clip(model)
        self._model = loaded.model.to(self.device).eval()
        self._processor, self._tokenizer = loaded.processor, loaded.tokenizer
        if self._tokenizer is None:
            log.warning("CLIP model %s has no tokenizer: prompts cannot start W", model)
        self.is_random_test_model = Path(model, TINY_MODEL_MARKER).exists()
        if self.is_random_test_model:
            log.warning("CLIP model %s is a tiny RANDOM model: scores are meaningless (smoke runs only)", model)
        self.dim = int(self._model.config.projection_dim)

    @property
    def can_embed_text(self) -> bool:
        return self._tokenizer is not None

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Resize, crop and normalise images to pixel values (n, 3, H, W) float32."""
        return self._processor(images=list(images), return_tensors="pt")["pixel_values"]

    def embed_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        """Unit-norm embeddings (n, dim) float32 for preprocessed pixel values."""
        with torch.inference_mode():
            features = self._model.get_image_features(pixel_values=pixel_values.to(self.device))
        return _unit_rows(_pooled(features))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Unit-norm embeddings (n, dim) float32 for decoded RGB images."""
        if not images:
            return np.empty((0, self.dim), dtype=np.float32)
        chunks = [
            self.embed_pixels(self.preprocess(images[i : i + self.batch_size]))
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(chunks)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm text embeddings (n, dim) float32, in the same space as the images."""
        if self._tokenizer is None:
            raise ModelUnavailableError(f"CLIP model {self.model_id!r} has no tokenizer")
        # The tokenizer's own limit may exceed the text tower's positions (a hand-built tokenizer
        # says "no limit"): truncate at what the model can read, or a long prompt breaks every refit.
        limit = min(self._tokenizer.model_max_length, self._model.config.text_config.max_position_embeddings)
        tokens = self._tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt")
        with torch.inference_mode():
            features = self._model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()})
        return _unit_rows(_pooled(features))

    def embed_sources(
        self, sources: Sequence[object], load: Callable[[object], Image.Image], workers: int = 4,
        wait_s: float | None = None, in_flight: Mapping[int, Future] | None = None,
        on_straggler: Callable[[int, Future], None] | None = None,
    ) -> tuple[list[int], np.ndarray, dict[int, ImageError]]:
        """Fetch, decode and embed many images; a bad image fails alone.

        `load(source)` returns an RGB image or raises `ImageError`. Loading and
        preprocessing run in `workers` threads ahead of the forward pass (torch and
        PIL release the GIL), so I/O overlaps compute.

        wait_s : None waits for every image. Otherwise an image still loading `wait_s`
            seconds after the forward pass needs it is left to finish in the background:
            it and the other unfinished loads go to `on_straggler(position, future)` (the
            future's result is pixels or an `ImageError`), and no further source is started.
            A slow source then costs the caller at most `wait_s`, not its own timeout.
        in_flight : {position: future} of loads already running (stragglers of an earlier call).

        Returns (positions of sources embedded, their vectors (m, dim), {position: error}).
        Positions in neither were not finished (handed to `on_straggler`) or not started.
        """
        if wait_s is not None and on_straggler is None:
            raise ValueError("wait_s needs on_straggler: unfinished loads must go somewhere")
        in_flight = dict(in_flight or {})
        done: list[int] = []
        vectors: list[np.ndarray] = []
        errors: dict[int, ImageError] = {}
        batch_positions: list[int] = []
        batch_pixels: list[torch.Tensor] = []

        def prepare(position: int) -> torch.Tensor | ImageError:
            return self.load_pixels(load, sources[position])

        def flush() -> None:
            if batch_pixels:
                vectors.append(self.embed_pixels(torch.stack(batch_pixels)))
                done.extend(batch_positions)
                batch_positions.clear()
                batch_pixels.clear()

        def take(position: int, result: torch.Tensor | ImageError) -> None:
            if isinstance(result, ImageError):
                errors[position] = result
                return
            batch_positions.append(position)
            batch_pixels.append(result)
            if len(batch_pixels) == self.batch_size:
                flush()

        def take_oldest() -> bool:
            position, future = pending[0]
            try:
                result = future.result(timeout=wait_s)
            except FuturesTimeout:
                return False
            pending.popleft()
            take(position, result)
            return True

        # A bounded window of futures: prefetch ahead of the forward pass without
        # holding every preprocessed image in memory at once.
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
                pending.append((position, pool.submit(prepare, position)))
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

    def load_pixels(self, load: Callable[[object], Image.Image], source: object) -> torch.Tensor | ImageError:
        """Load and preprocess one image; any failure comes back as an `ImageError` (never raised)."""
        try:
            return self.preprocess([load(source)])[0]
        except ImageError as exc:
            return exc
        except BackendError as exc:  # e.g. Label Studio unreachable while fetching: retry later
            return ImageError(str(exc), transient=exc.http_status >= 500)
        except Exception as exc:  # noqa: BLE001 - one bad task must never sink the batch
            log.exception("unexpected error loading an image")
            return ImageError(f"cannot load image: {type(exc).__name__}")


@dataclass(frozen=True)
class LoadedClip:
    model: CLIPModel
    processor: Any
    tokenizer: Any | None  # None: the folder has none, and prompts cannot start W


def load_clip(model: str) -> LoadedClip:
    """Load a CLIP model with its image processor (both required) and tokenizer (optional).

    Raises ModelUnavailableError saying what is missing and what to do.
    """
    try:
        clip = CLIPModel.from_pretrained(model)
    except Exception as exc:  # hub, network and format errors all mean "no usable model"
        raise _unavailable(model, exc) from None
    try:
        processor = AutoImageProcessor.from_pretrained(model)
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(model, exc, missing="its image processor") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except Exception:  # noqa: BLE001
        tokenizer = None
    return LoadedClip(clip, processor, tokenizer)


def check_model_available(model: str) -> None:
    """Raise ModelUnavailableError (with what to do) unless `model` loads as the backend loads it:
    weights and image processor. Takes as long as loading the model once."""
    load_clip(model)


def _unavailable(model: str, exc: Exception, missing: str | None = None) -> ModelUnavailableError:
    first_line = (str(exc).splitlines() or [""])[0][:200]
    if missing is not None:
        return ModelUnavailableError(
            f"CLIP model {model!r} loads, but {missing} does not ({type(exc).__name__}: {first_line}). "
            "A folder needs the processor saved beside the model: save both, e.g. "
            f"{SAVE_CLIP_HINT}"
        )
    return ModelUnavailableError(
        f"cannot load CLIP model {model!r} ({type(exc).__name__}: {first_line}). "
        "Without internet the hub cannot be reached: set CLIP_MODEL to a local folder holding a "
        f"saved CLIP model and its processor ({SAVE_CLIP_HINT} on a machine with internet), or for an "
        "offline smoke run build a tiny random one with `python -m scripts.make_tiny_clip models/tiny-clip` "
        "(its scores are meaningless)."
    )


def _pooled(features) -> torch.Tensor:
    # transformers 5 returns an output object whose pooler_output is the projected embedding.
    return features.pooler_output if hasattr(features, "pooler_output") else features


def _unit_rows(features: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32)
