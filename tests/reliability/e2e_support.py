"""Helpers for tests that run the backend as a real process: HTTP calls, waits, and reading
its files read-only (the backend may be running) to check them for consistency."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import requests

from scripts.servers import BackendServer


def wait_for(condition: Callable[[], Any], timeout_s: float = 120.0, every_s: float = 0.25, what: str = "condition"):
    """Poll until `condition()` is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except requests.RequestException as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what} (last value: {last!r})")


def status(backend: BackendServer, project: int, **kwargs) -> dict:
    response = requests.get(f"{backend.url}/projects/{project}/status", timeout=10, **kwargs)
    response.raise_for_status()
    return response.json()


def post(backend: BackendServer, path: str, body: Any, **kwargs) -> requests.Response:
    return requests.post(f"{backend.url}{path}", json=body, timeout=30, **kwargs)


def fire_concurrently(backend: BackendServer, bodies: list[dict], path: str = "/webhook") -> list[tuple[int, float]]:
    """POST all bodies at once (one thread each, released together); returns (status, seconds) per body."""
    barrier = threading.Barrier(len(bodies))

    def send(body: dict) -> tuple[int, float]:
        session = requests.Session()
        barrier.wait()
        started = time.perf_counter()
        response = session.post(f"{backend.url}{path}", json=body, timeout=30)
        return response.status_code, time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies))


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


# -- the backend's files, read-only -----------------------------------------------------------
def ledger_rows(model_dir: Path, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(f"file:{model_dir / 'ledger.sqlite'}?mode=ro", uri=True, timeout=30) as db:
        return db.execute(sql, args).fetchall()


def integrity(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def read_heads(model_dir: Path, project: int) -> list[tuple[int, bytes, int]]:
    """(version, raw W bytes, n_ratings) of every stored head."""
    return ledger_rows(model_dir, "SELECT version, coef, n_ratings FROM heads WHERE project = ? ORDER BY version", (project,))


def chroma_ids(model_dir: Path, project: int) -> set[int]:
    """The task ids with a vector, as Chroma's own SQLite holds them."""
    with sqlite3.connect(f"file:{model_dir / 'chroma' / 'chroma.sqlite3'}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute(
            """SELECT e.embedding_id FROM embeddings e
               JOIN segments s ON s.id = e.segment_id JOIN collections c ON c.id = s.collection
               WHERE c.name = ?""",
            (f"project-{project}",),
        ).fetchall()
    return {int(embedding_id) for (embedding_id,) in rows}


def assert_files_intact(model_dir: Path, project: int, dim: int = 32) -> None:
    """Both SQLite files pass integrity_check and every stored head is whole.

    Right after a kill -9 this is all that holds: Chroma may be a step ahead of the
    ledger (a vector stored but not recorded); reconcile_store closes that gap when the
    backend starts again.
    """
    assert integrity(model_dir / "ledger.sqlite") == "ok"
    assert integrity(model_dir / "chroma" / "chroma.sqlite3") == "ok"
    for version, coef, _ in read_heads(model_dir, project):
        weights = np.frombuffer(coef, dtype="<f4")
        assert weights.shape == (dim,) and np.isfinite(weights).all(), f"head v{version} is damaged"


def assert_files_consistent(model_dir: Path, project: int, dim: int = 32) -> dict[str, int]:
    """The ledger and Chroma are intact and agree: same embedded tasks, whole heads (`seen` is the ledger's alone)."""
    assert_files_intact(model_dir, project, dim)
    embedded = {t: bool(s) for t, s in ledger_rows(
        model_dir, "SELECT task_id, seen FROM tasks WHERE project = ? AND state = 'embedded'", (project,))}
    in_chroma = chroma_ids(model_dir, project)
    assert in_chroma == set(embedded), (
        f"Chroma and ledger disagree: {len(in_chroma - set(embedded))} vectors not embedded in the ledger, "
        f"{len(set(embedded) - in_chroma)} embedded tasks without a vector")
    return {"embedded": len(embedded), "seen": sum(embedded.values())}
