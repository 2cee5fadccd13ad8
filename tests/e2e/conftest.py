"""A real Label Studio 1.23 server and a real backend process, for end-to-end tests.

Both are started by these fixtures (scripts/setup_env.sh installs Label Studio into
.venv-ls); nothing is mocked. Label Studio's first start runs its migrations (~1 min).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import requests
from PIL import Image

from scripts.make_tiny_clip import build_tiny_clip
from scripts.servers import BackendServer, LabelStudioServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def backend_env(label_studio: LabelStudioServer, model_dir: Path, clip: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.api_token,
        "MODEL_DIR": str(model_dir), "CLIP_MODEL": str(clip), "HF_HUB_OFFLINE": "1",
        "BACKEND_URL": f"http://127.0.0.1:{port}", "POLL_INTERVAL_S": "0.5", "TASK_CHECK_INTERVAL_S": "5",
        "LOG_LEVEL": "INFO", **extra,
    }


@pytest.fixture(scope="module")
def client(label_studio):
    """The SDK as Label Studio's admin (creating projects, importing, rating)."""
    from ml_backend.adapters.ls_admin import admin_client

    return admin_client(label_studio.url, label_studio.api_token)


@pytest.fixture(scope="module")
def start_backend(label_studio, tiny_clip_path, tmp_path_factory) -> Callable[..., BackendServer]:
    """Factory: start a backend process on a port and MODEL_DIR (restartable); all stop after the module."""
    started: list[BackendServer] = []

    def start(model_dir: Path | None = None, port: int | None = None, **extra: str) -> BackendServer:
        port = port or free_port()
        model_dir = model_dir or tmp_path_factory.mktemp("backend") / "model_dir"
        server = BackendServer(port, backend_env(label_studio, model_dir, tiny_clip_path, port, **extra),
                               log_path=model_dir.parent / "backend.log")
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def wait_for(condition: Callable[[], object], timeout_s: float = 120.0, every_s: float = 0.5, what: str = "condition"):
    """Poll until `condition()` is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what} (last value: {last!r})")


def backend_status(backend: BackendServer, project: int) -> dict:
    response = requests.get(f"{backend.url}/projects/{project}/status", timeout=10)
    response.raise_for_status()
    return response.json()


def idle(backend: BackendServer, project: int, where: Callable[[dict], object] = lambda status: True) -> dict | None:
    """The backend's status of the project once its worker is idle and `where(status)` holds, else None (for
    `wait_for`)."""
    status = backend_status(backend, project)
    return status if status["worker"]["idle"] and where(status) else None


def settled_view(backend: BackendServer, project: int, k: int, ratings: int = 0) -> dict:
    """The backend's next-batch view once its worker is idle, `ratings` are counted and a batch
    of `k` tasks is out in score order for the current model version."""
    def ready():
        status = backend_status(backend, project)
        view = status.get("view") or {}
        done = (status["worker"]["idle"] and status["rated_tasks"] == ratings and view.get("ordered")
                and view.get("model_version") == status["model_version"] and len(view.get("task_ids", [])) == k)
        return view if done else None
    return wait_for(ready, what=f"the backend's batch with {ratings} ratings")


def make_images(folder: Path, count: int, seed: int) -> list[Path]:
    """Distinct small PNGs: random blocks of color, so no two tasks share an embedding."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(blocks).resize((64, 64), Image.NEAREST)
        path = folder / f"img-{seed}-{i:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


def read_heads(model_dir: Path, project: int) -> list[tuple[int, np.ndarray]]:
    """(version, W) of every stored head, read from the ledger without the backend's help."""
    with sqlite3.connect(f"file:{model_dir / 'ledger.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT version, coef FROM heads WHERE project = ? ORDER BY version", (project,)).fetchall()
    return [(version, np.frombuffer(coef, dtype="<f4")) for version, coef in rows]


def stored_ids_and_seen(model_dir: Path, project: int) -> dict[str, bool]:
    """Task id -> `seen`, for every task with a vector: the ids as stored in Chroma's own SQLite, `seen`
    as the ledger records it (its one record), both read-only (the backend may be running)."""
    with sqlite3.connect(f"file:{model_dir / 'chroma' / 'chroma.sqlite3'}?mode=ro", uri=True) as db:
        ids = [row[0] for row in db.execute(
            """SELECT e.embedding_id FROM embeddings e
               JOIN segments s ON s.id = e.segment_id JOIN collections c ON c.id = s.collection
               WHERE c.name = ?""",
            (f"project-{project}",),
        )]
    with sqlite3.connect(f"file:{model_dir / 'ledger.sqlite'}?mode=ro", uri=True) as db:
        seen = {str(row[0]) for row in db.execute("SELECT task_id FROM tasks WHERE project = ? AND seen = 1", (project,))}
    return {task_id: task_id in seen for task_id in ids}
