"""`python -m ml_backend.service`: a missing model disables its kind of project; with no model at all it exits."""

from __future__ import annotations

import os
import subprocess
import sys

import requests

from scripts.servers import ROOT, BackendServer, free_port


def env(tmp_path, image_model: str, text_model: str) -> dict[str, str]:
    return {"MODEL_DIR": str(tmp_path / "model_dir"), "IMAGE_EMBEDDING_MODEL": image_model,
            "TEXT_EMBEDDING_MODEL": text_model, "HF_HUB_OFFLINE": "1", "LABEL_STUDIO_URL": "http://127.0.0.1:9",
            "PYTHONPATH": str(ROOT), "HOST": "127.0.0.1"}


def test_no_usable_model_at_all_stops_the_service_with_the_reasons(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ml_backend.service"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, **env(tmp_path, str(tmp_path / "no-image"), str(tmp_path / "no-text"))})
    assert result.returncode == 2
    assert "image projects cannot run" in result.stderr and "text projects cannot run" in result.stderr
    assert "no embedding model is available" in result.stderr


def test_a_missing_text_model_leaves_image_projects_running(tmp_path, tiny_clip_dir):
    server = BackendServer(free_port(), env(tmp_path, str(tiny_clip_dir), str(tmp_path / "no-text")),
                           log_path=tmp_path / "backend.log")
    try:
        server.start(timeout_s=120)
        health = requests.get(f"{server.url}/health", timeout=10).json()
        assert health["embedding_models"]["image"]["model"] == str(tiny_clip_dir)
        assert health["embedding_models"]["text"]["loaded"] is False
    finally:
        server.stop()
    assert "text projects cannot run" in (tmp_path / "backend.log").read_text()
