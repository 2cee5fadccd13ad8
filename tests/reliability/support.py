"""Real servers and Label Studio-shaped payloads for the reliability tests.

`LocalServer` (tests/stubs.py) is a real HTTP server on loopback whose routes misbehave
on request (404, slow, dripping, huge, redirecting); `InProcessBackend` is the Flask app over
a real Runtime (ledger, Chroma, worker thread) that never talks to Label Studio.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.stubs import LocalServer, Reply, data_uri  # noqa: F401 - the reliability tests' host and replies

from ml_backend.service.app import create_app
from ml_backend.service.runtime import Runtime
from ml_backend.service.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
LABEL_CONFIG = (ROOT / "label_config.xml").read_text()
NUMBER_CONFIG = """<View><Image name="image" value="$image"/>
<Number name="score" toName="image" min="-1" max="1" step="0.1"/></View>"""
NO_RATING_CONFIG = """<View><Image name="image" value="$image"/>
<TextArea name="comment" toName="image"/></View>"""
# Every Label Studio webhook payload carries the project's token: it must never be logged.
PROJECT_TOKEN = "project-token-5e1f0c9a7b3d"


# -- images ----------------------------------------------------------------------------
def png_bytes(seed: int, size: int = 48) -> bytes:
    """A distinct small PNG (random colour blocks) per seed."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blocks).resize((size, size), Image.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def image_uri(seed: int) -> str:
    return data_uri(png_bytes(seed))


def png_bomb(width: int, height: int) -> bytes:
    """A well-formed PNG claiming width x height whose pixel data is a few bytes: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def gzip_bomb(expanded_bytes: int) -> bytes:
    """gzip data a few KB long that inflates to `expanded_bytes` of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * 2**20
    out = [compressor.compress(chunk) for _ in range(expanded_bytes // len(chunk))]
    return b"".join(out) + compressor.flush()


# -- Label Studio-shaped payloads -----------------------------------------------------------
def project_payload(project: int, label_config: str = LABEL_CONFIG) -> dict[str, Any]:
    return {"id": project, "title": f"project {project}", "label_config": label_config, "token": PROJECT_TOKEN,
            "model_version": "", "task_number": 0}


def task_payload(task_id: int, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": task_id, "data": data if data is not None else {"image": image_uri(task_id)}, "meta": {},
            "is_labeled": False, "total_annotations": 0}


def tasks_created(project: int, tasks: list[dict], label_config: str = LABEL_CONFIG) -> dict[str, Any]:
    return {"action": "TASKS_CREATED", "tasks": tasks, "project": project_payload(project, label_config)}


def choice_result(choice: str) -> list[dict]:
    return [{"from_name": "relevance", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]


def number_result(value: Any) -> list[dict]:
    return [{"from_name": "score", "to_name": "image", "type": "number", "value": {"number": value}}]


def annotation_created(project: int, annotation_id: int, task: dict | int, result: list[dict],
                       label_config: str = LABEL_CONFIG, action: str = "ANNOTATION_CREATED") -> dict[str, Any]:
    task_id = task["id"] if isinstance(task, dict) else task
    body = {"action": action, "project": project_payload(project, label_config),
            "annotation": {"id": annotation_id, "task": task_id, "result": result, "was_cancelled": False,
                           "ground_truth": False, "completed_by": 1, "project": project}}
    if isinstance(task, dict):
        body["task"] = task
    return body


# -- the app in this process --------------------------------------------------------------
class InProcessBackend:
    """The Flask app over a real Runtime whose worker never talks to Label Studio."""

    def __init__(self, model_dir: Path, clip_path: Path, embedder, **settings: Any):
        self.settings = ServiceSettings(model_dir=model_dir, clip_model=str(clip_path),
                                        label_studio_url="http://127.0.0.1:9", fetch_workers=2, **settings)
        self.runtime = Runtime.build(self.settings, embedders={"image": embedder}, talk_to_label_studio=False)
        self.app = create_app(self.settings, self.runtime)
        self.client = self.app.test_client()
        self.responses: list = []

    def post(self, path: str, body: Any = None, **kwargs):
        response = self.client.post(path, json=body, **kwargs) if body is not None else self.client.post(path, **kwargs)
        self.responses.append(response)
        return response

    def get(self, path: str, **kwargs):
        response = self.client.get(path, **kwargs)
        self.responses.append(response)
        return response

    def setup(self, project: int, label_config: str = LABEL_CONFIG, extra_params: dict | None = None):
        return self.post("/setup", {"project": f"{project}.1700000000", "schema": label_config,
                                    "hostname": "http://127.0.0.1:9", "access_token": "setup-access-token-123",
                                    "extra_params": extra_params or {}})

    def webhook(self, body: dict):
        return self.post("/webhook", body)

    def raw(self, path: str, data: bytes | str, content_type: str = "application/json"):
        response = self.client.post(path, data=data, content_type=content_type)
        self.responses.append(response)
        return response

    def wait(self, project: int, timeout_s: float = 60.0) -> None:
        assert self.runtime.worker.wait_idle(project, timeout_s), "the worker did not finish in time"

    def status(self, project: int) -> dict:
        response = self.get(f"/projects/{project}/status")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def close(self) -> None:
        self.runtime.close()


def dumps(body: Any) -> str:
    return json.dumps(body)
