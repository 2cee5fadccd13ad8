"""MODEL_DIR damaged, shared, full or deleted (fuzz pass 4, 2026-12-02): one clear sentence, never a
traceback from the forked worker, two processes drifting apart, or a /health that says UP while writes fail."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np

from ml_backend.core.store import open_chroma
from ml_backend.service import model_dir
from ml_backend.service.model_dir import MIN_FREE_BYTES, hold, startup_problems

from .support import InProcessBackend, task_payload, tasks_created

A = 7
Usage = namedtuple("Usage", "free")  # what shutil.disk_usage answers, as far as the checks read it
ROOT = Path(__file__).resolve().parents[2]


def test_damaged_files_in_model_dir_are_named_one_sentence_each(tmp_path):
    """Each of these made the worker exit with a traceback ("Worker exited with code 3") and no /health."""
    (tmp_path / "chroma").mkdir()
    (tmp_path / "chroma" / "chroma.sqlite3").write_bytes(b"garbage" * 1000)
    (tmp_path / "instance_id").write_bytes(b"\xff\xfe\x00garbage\n")
    (tmp_path / "ledger.sqlite").mkdir()
    problems = startup_problems(tmp_path)
    assert len(problems) == 3
    assert "ledger.sqlite should be a file: move it aside" in problems[0]
    assert "instance_id is damaged (UnicodeDecodeError): delete it" in problems[1]
    assert "chroma.sqlite3 is damaged (file is not a database)" in problems[2]
    assert "every vector is embedded again from the ledger" in problems[2]


def test_a_chroma_file_cut_short_is_found_before_the_server_forks(tmp_path):
    client = open_chroma(path=str(tmp_path / "chroma"))
    client.get_or_create_collection("project-1").add(ids=[str(i) for i in range(2000)],
                                                      embeddings=np.random.default_rng(0).random((2000, 32)).tolist())
    del client
    assert startup_problems(tmp_path) == []
    file = tmp_path / "chroma" / "chroma.sqlite3"
    with open(file, "r+b") as handle:
        handle.truncate(file.stat().st_size // 2)
    [problem] = startup_problems(tmp_path)
    assert "malformed" in problem


def test_a_full_disk_at_start_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(model_dir.shutil, "disk_usage", lambda path: Usage(free=40 * 1024))
    [problem] = startup_problems(tmp_path)
    assert problem == f"MODEL_DIR={tmp_path} has 40 KB free; the backend needs at least 10 MB to record tasks and vectors"


def test_a_second_backend_on_the_same_model_dir_refuses_to_start(tmp_path):
    """Two processes on one MODEL_DIR started silently and drifted apart (540 and 500 vectors of 800, heads
    fitted on 27 and 25 of 40 ratings, different scores for the same task)."""
    held = hold(tmp_path)
    assert held is not None and hold(tmp_path) is None  # the lock is per open file: a second one is refused
    env = {**os.environ, "MODEL_DIR": str(tmp_path), "LABEL_STUDIO_URL": "http://127.0.0.1:9", "HOST": "127.0.0.1",
           "HF_HUB_OFFLINE": "1"}
    started = subprocess.run([sys.executable, "-m", "ml_backend.service"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert started.returncode == 2
    assert f"ERROR: another backend process (pid {os.getpid()}) uses MODEL_DIR={tmp_path}" in started.stderr
    held.close()
    again = hold(tmp_path)
    assert again is not None  # released with its holder
    again.close()


def test_health_says_so_when_the_ledger_is_deleted_or_the_disk_fills(tmp_path, tiny_clip_path, embedder, request,
                                                                    monkeypatch):
    """rm -rf MODEL_DIR while running: webhooks answered 200 and /health UP; after a restart everything was gone."""
    backend = InProcessBackend(tmp_path / "model", tiny_clip_path, embedder)
    request.addfinalizer(backend.close)
    assert backend.setup(A).status_code == 200
    assert backend.get("/health").status_code == 200
    monkeypatch.setattr(model_dir.shutil, "disk_usage", lambda path: Usage(free=MIN_FREE_BYTES - 1))
    health = backend.get("/health")
    assert health.status_code == 503 and "KB free: new tasks and ratings may be refused" in health.get_json()["storage_error"]
    # a low disk still records what fits: the ledger is the one the next start reads
    assert backend.webhook(tasks_created(A, [task_payload(1)])).status_code == 200
    monkeypatch.undo()
    backend.settings.ledger_path.unlink()
    health = backend.get("/health")
    assert health.status_code == 503 and health.get_json()["status"] == "ERROR"
    assert "was deleted or replaced while the backend ran" in health.get_json()["storage_error"]
    # what the ledger would record now is lost at the next start: Label Studio's webhook log says so
    refused = backend.webhook(tasks_created(A, [task_payload(2)]))
    assert refused.status_code == 503
    assert "was deleted or replaced while the backend ran" in refused.get_json()["storage_error"]


def test_a_foreign_sqlite_file_as_the_ledger_is_reported_as_damaged(tmp_path, tiny_clip_path, embedder, request):
    """Another program's database as ledger.sqlite crashed the start ("no such column: project")."""
    (tmp_path / "model").mkdir()
    with sqlite3.connect(tmp_path / "model" / "ledger.sqlite") as db:
        db.execute("CREATE TABLE tasks (name TEXT, colour TEXT)")
    backend = InProcessBackend(tmp_path / "model", tiny_clip_path, embedder)
    request.addfinalizer(backend.close)
    health = backend.get("/health")
    assert health.status_code == 503
    assert "is damaged (not a file of this backend: " in health.get_json()["ledger_error"]


def test_a_damaged_audit_log_stops_the_evaluation_not_the_labeling(make_backend, tiny_clip_path, embedder, request):
    """A damaged evaluation.sqlite stopped every push (no new batch, no predictions) while /health said UP, and
    the status answered 503 calling it "the ledger", with the ledger's recovery advice."""
    first = make_backend()
    assert first.setup(A, extra_params={"batch_size": 4}).status_code == 200
    first.webhook(tasks_created(A, [task_payload(t) for t in range(1, 30)]))
    first.wait(A)
    first.close()
    audit = first.settings.model_dir / "evaluation.sqlite"
    first.runtime.evaluations.audit.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{audit}{suffix}").unlink(missing_ok=True)
    audit.write_bytes(b"garbage" * 4096)

    backend = InProcessBackend(first.settings.model_dir, tiny_clip_path, embedder)  # a restart on the damaged file
    request.addfinalizer(backend.close)
    assert backend.get("/health").status_code == 200  # the ledger is fine: tasks and ratings are recorded
    status = backend.get(f"/projects/{A}/status")
    assert status.status_code == 200
    error = status.get_json()["evaluation"]["error"]
    assert error.startswith("the evaluation's audit log ") and "Selection, training and pre-annotations go on" in error
    batch = backend.runtime.projects.get(A).select_batch()
    assert len(batch) == 4
