"""The embedding model of each modality, loaded once per process on first use.

A backend serves image and text projects at once: each project's label config says
which modality it is (`adapters.ls_config`), and every project of a modality shares
that modality's model. A model is loaded when the first project needs it, so a
backend that only ever sees image projects never loads a text model. A model that
cannot be loaded is reported (for /health and the projects that need it) and tried
again after `retry_after_s`, not on every request.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Mapping

from ..core.embedding import MODALITIES, Embedder, load_embedder
from ..core.errors import ModelUnavailableError

log = logging.getLogger(__name__)

Loader = Callable[[str, str], Embedder]  # (modality, model spec) -> embedder


class EmbedderRegistry:
    """Modality -> its embedder, built lazily and shared by every project of that modality.

    Parameters
    ----------
    models : modality -> model spec (hub id, folder, or a packaged model's name).
    loaded : embedders already built (tests pass tiny models here).
    load : how to build one; defaults to `core.embedding.load_embedder` on `device`.
    """

    def __init__(self, models: Mapping[str, str], loaded: Mapping[str, Embedder] | None = None,
                 load: Loader | None = None, device: str = "cpu", batch_size: int = 32, retry_after_s: float = 300.0):
        self.models = dict(models)
        self._embedders: dict[str, Embedder] = dict(loaded or {})
        for modality, embedder in self._embedders.items():
            self.models[modality] = embedder.model_id
        self._load = load or (lambda modality, model: load_embedder(modality, model, device, batch_size))
        self._retry_after_s = retry_after_s
        self._failures: dict[str, tuple[float, ModelUnavailableError]] = {}
        self._locks = {modality: threading.Lock() for modality in MODALITIES}

    def get(self, modality: str) -> Embedder:
        """The embedder for `modality`; raises ModelUnavailableError (with what to do) if it cannot load."""
        if modality not in self._locks:
            raise ValueError(f"unknown modality {modality!r}")
        embedder = self._embedders.get(modality)
        if embedder is not None:
            return embedder
        with self._locks[modality]:  # one load per modality, however many projects ask at once
            if modality in self._embedders:
                return self._embedders[modality]
            failed = self._failures.get(modality)
            if failed is not None and time.monotonic() - failed[0] < self._retry_after_s:
                raise failed[1]
            model = self.models[modality]
            log.info("loading the %s embedding model %s", modality, model)
            try:
                embedder = self._load(modality, model)
            except ModelUnavailableError as exc:
                log.error("%s embedding model unavailable: %s", modality, exc)
                self._failures[modality] = (time.monotonic(), exc)
                raise
            self._failures.pop(modality, None)
            self._embedders[modality] = embedder
            return embedder

    def loaded(self) -> dict[str, Embedder]:
        return dict(self._embedders)

    def describe(self) -> dict[str, dict]:
        """Per modality: the model, whether it is loaded, whether prompts work, the load error if any."""
        described = {}
        for modality in MODALITIES:
            embedder = self._embedders.get(modality)
            failed = self._failures.get(modality)
            described[modality] = {
                "model": self.models.get(modality),
                "loaded": embedder is not None,
                "dim": embedder.dim if embedder else None,
                "prompts": embedder.can_embed_text if embedder else None,
                "random_test_model": bool(embedder and embedder.is_random_test_model),
                "error": str(failed[1]) if failed and embedder is None else None,
            }
        return described
