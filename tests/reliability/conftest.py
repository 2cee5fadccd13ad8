"""Fixtures for the reliability tests.

In-process tests (bad input, untrusted URLs, auth) use a real Runtime and real HTTP
servers on loopback. Tests marked `e2e` start real processes: one Label Studio for
the whole session, and backend processes they can kill -9 and restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from ml_backend.service.settings import ServiceSettings
from scripts.fault_proxy import FaultProxy
from scripts.servers import LABEL_STUDIO_BIN, BackendServer, LabelStudioServer, free_port

from .support import ImageHost, InProcessBackend


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Settings are read from the environment too: nothing from the shell may leak into a test."""
    for name in ServiceSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_clip_path(tiny_clip_dir) -> Path:
    """The tiny random CLIP of tests/conftest.py (its `embedder` fixture loads the same folder)."""
    return Path(tiny_clip_dir)


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    host = ImageHost().start()
    yield host
    host.stop()


@pytest.fixture
def make_backend(tmp_path, tiny_clip_path, embedder) -> Iterator[Callable[..., InProcessBackend]]:
    """Factory for in-process backends (each with its own MODEL_DIR); all closed after the test."""
    made: list[InProcessBackend] = []

    def make(**settings) -> InProcessBackend:
        backend = InProcessBackend(tmp_path / f"model-{len(made)}", tiny_clip_path, embedder, **settings)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


# -- real processes (e2e) -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> Iterator[LabelStudioServer]:
    if not LABEL_STUDIO_BIN.exists():
        pytest.skip("Label Studio is not installed: run scripts/setup_env.sh")
    root = tmp_path_factory.mktemp("reliability-label-studio")
    server = LabelStudioServer(root / "data", free_port(), root / "files").start(log_path=root / "label-studio.log")
    yield server
    server.stop()


@pytest.fixture
def fault_proxy(label_studio) -> Iterator[FaultProxy]:
    """Label Studio behind a proxy that can go down or hang on demand."""
    proxy = FaultProxy("127.0.0.1", label_studio.port).start()
    yield proxy
    proxy.stop()


def backend_env(label_studio_url: str, api_key: str, model_dir: Path, clip: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        "LABEL_STUDIO_URL": label_studio_url, "LABEL_STUDIO_API_KEY": api_key, "MODEL_DIR": str(model_dir),
        "CLIP_MODEL": str(clip), "HF_HUB_OFFLINE": "1", "BACKEND_URL": f"http://127.0.0.1:{port}",
        "POLL_INTERVAL_S": "0.5", "MAX_BACKOFF_S": "4", "LABEL_STUDIO_TIMEOUT_S": "5", "LOG_LEVEL": "INFO",
        **extra,
    }


@pytest.fixture
def start_backend(tiny_clip_path, tmp_path) -> Iterator[Callable[..., BackendServer]]:
    """Factory: start a backend process (restartable on the same port and MODEL_DIR); all stopped after the test.

    start(label_studio_url, api_key, model_dir=None, port=None, **env) -> BackendServer; its log is
    model_dir.parent / "backend.log", appended to across restarts.
    """
    started: list[BackendServer] = []

    def start(label_studio_url: str, api_key: str, model_dir: Path | None = None, port: int | None = None,
              **extra: str) -> BackendServer:
        port = port or free_port()
        model_dir = model_dir or tmp_path / f"backend-{len(started)}" / "model_dir"
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        env = backend_env(label_studio_url, api_key, model_dir, tiny_clip_path, port, **extra)
        server = BackendServer(port, env, log_path=model_dir.parent / "backend.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()

