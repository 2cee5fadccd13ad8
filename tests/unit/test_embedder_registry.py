"""EmbedderRegistry: one model per modality, loaded once on first use; a failed load is reported and retried later."""

from __future__ import annotations

import threading
import time

import pytest

from ml_backend.core.errors import ModelUnavailableError
from ml_backend.service.embedders import EmbedderRegistry


def test_each_modality_loads_once_however_many_projects_ask_at_once(embedder, text_embedder):
    loads = []

    def load(modality, model):
        loads.append((modality, model))
        time.sleep(0.2)  # long enough for every thread to be waiting on the same load
        return {"image": embedder, "text": text_embedder}[modality]

    registry = EmbedderRegistry({"image": "clip-spec", "text": "text-spec"}, load=load)
    assert registry.describe()["text"]["loaded"] is False and registry.loaded() == {}
    got = []
    threads = [threading.Thread(target=lambda: got.append(registry.get("text"))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [("text", "text-spec")] and all(e is text_embedder for e in got)
    assert registry.get("image") is embedder and loads[-1] == ("image", "clip-spec")
    described = registry.describe()
    assert described["text"] == {"model": "text-spec", "loaded": True, "dim": 24, "prompts": True,
                                 "random_test_model": True, "error": None}


def test_a_failed_load_is_reported_and_not_retried_on_every_request():
    calls = []

    def load(modality, model):
        calls.append(model)
        raise ModelUnavailableError(f"cannot load {model}")

    registry = EmbedderRegistry({"image": "a", "text": "missing"}, load=load, retry_after_s=0.3)
    for _ in range(3):
        with pytest.raises(ModelUnavailableError, match="cannot load missing"):
            registry.get("text")
    assert calls == ["missing"]
    assert registry.describe()["text"]["error"] == "cannot load missing"
    time.sleep(0.35)
    with pytest.raises(ModelUnavailableError):
        registry.get("text")
    assert calls == ["missing", "missing"]


def test_an_unknown_modality_is_a_programming_error(embedder):
    with pytest.raises(ValueError, match="unknown modality"):
        EmbedderRegistry({"image": "x"}, loaded={"image": embedder}).get("audio")
