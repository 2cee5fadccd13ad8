"""Round latency: an annotation is submitted -> the new batch is visible in Label Studio's view.

Everything is real: Label Studio 1.23 (its own process, SQLite), this backend (its own
backend process, its reconciler thread, embedded Chroma, a tiny random CLIP with
512-d embeddings, so 100k images embed in minutes while selection and refits cost what
they cost with ViT-B/32), the SDK calls an annotator's browser would make.

One round: read the view's current batch, rate its top task through the SDK (Label
Studio then sends ANNOTATION_CREATED to the backend before the call returns), and poll
the view (`views.get`, every 20 ms plus its own ~70 ms) until its task list changes and
no longer holds the rated task. The round is timed from the webhook's arrival at the
backend (the backend's /status reports it) to the poll that sees the new batch. The
backend updates the view first and then switches the project's model version, which
makes the view's score order the new head's; the time until that switch is done (from
the backend's /status) and the time from the start of the annotation POST (which adds
Label Studio saving the annotation) are reported beside it.
Between rounds the annotator "thinks" for `think_s`; meanwhile the backend pushes the
new head's predictions to every other task, as it would in real use.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from label_studio_sdk import LabelStudio

from ml_backend.adapters.ls_admin import connect_backend, create_project
from ml_backend.adapters.ls_views import filtered_task_ids
from scripts.make_tiny_clip import build_tiny_clip
from scripts.servers import BackendServer, LabelStudioServer, free_port

from .common import percentile_ms

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
IMPORT_CHUNK = 5_000
CLIENT_TIMEOUT_S = 600.0  # a big import competes with the backend's prediction pushes
BATCH_SIZE = 10
VIEW_POLL_S = 0.02
ROUND_TIMEOUT_S = 30.0
RATINGS = ("+1", "-1", "-1", "0")
EMBEDDING_DIM = 512  # mostly "no", as when positives are rare


@dataclass
class RoundSettings:
    task_counts: tuple[int, ...] = (10_000, 100_000)
    rounds: int = 30
    think_s: float = 1.0
    setup_timeout_s: float = 3600.0


def tiny_data_uri(rng: np.random.Generator) -> str:
    """A distinct 8x8 PNG as a data: URI (~150 bytes): cheap to import, decode and embed."""
    image = Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def backend_status(backend: BackendServer, project: int) -> dict:
    response = requests.get(f"{backend.url}/projects/{project}/status", timeout=30)
    response.raise_for_status()
    return response.json()


def wait_until_settled(backend: BackendServer, project: int, tasks: int, timeout_s: float) -> dict:
    """Wait until every task is embedded and the worker has nothing left (all predictions pushed)."""
    deadline = time.monotonic() + timeout_s
    status: dict = {}
    while time.monotonic() < deadline:
        status = backend_status(backend, project)
        if status["tasks"]["embedded"] + status["tasks"]["failed"] >= tasks and status["worker"]["idle"] and status.get("view"):
            return status
        time.sleep(1.0)
    raise TimeoutError(f"project {project} not settled after {timeout_s:.0f} s: {status.get('tasks')} {status.get('worker')}")


def view_task_ids(client, view_id: int) -> list[int]:
    return filtered_task_ids(client.views.get(str(view_id)).data)


def run_rounds(client, backend: BackendServer, project: int, rounds: int, think_s: float) -> dict:
    """Rate `rounds` tasks one after another; returns per-round timings.

    Clocks: from the webhook's arrival at the backend (its wall time, from the backend's
    status; same machine) to the batch visible, and to the view's score order final (the
    backend's model-version switch done); and from the start of the annotation POST.
    """
    from_webhook, ordered, from_post, annotate_calls, timeouts = [], [], [], [], 0
    for index in range(rounds):
        view = backend_status(backend, project)["view"]
        view_id, top = view["id"], view["task_ids"][0]
        before = set(view_task_ids(client, view_id))
        result = [{"from_name": "relevance", "to_name": "image", "type": "choices",
                   "value": {"choices": [RATINGS[index % len(RATINGS)]]}}]
        start, posted_at = time.perf_counter(), time.time()
        client.annotations.create(id=top, result=result, was_cancelled=False)
        annotated = time.perf_counter()
        while True:
            ids = view_task_ids(client, view_id)
            if top not in ids and set(ids) != before:
                break
            if time.perf_counter() - start > ROUND_TIMEOUT_S:
                timeouts += 1
                break
            time.sleep(VIEW_POLL_S)
        visible, visible_at = time.perf_counter(), time.time()
        status = wait_until_ordered(backend, project, ids)
        received_at = status["last_webhooks"].get("ANNOTATION_CREATED", posted_at)
        from_webhook.append(visible_at - received_at)
        ordered.append(status["view"]["ordered_at"] - received_at)
        from_post.append(visible - start)
        annotate_calls.append(annotated - start)
        time.sleep(think_s)
    return {
        "p50_ms": percentile_ms(from_webhook, 50), "p95_ms": percentile_ms(from_webhook, 95),
        "max_ms": percentile_ms(from_webhook, 100),
        "ordered_p50_ms": percentile_ms(ordered, 50), "ordered_p95_ms": percentile_ms(ordered, 95),
        "from_annotation_post_p50_ms": percentile_ms(from_post, 50), "from_annotation_post_p95_ms": percentile_ms(from_post, 95),
        "annotation_post_p50_ms": percentile_ms(annotate_calls, 50), "rounds": rounds, "timeouts": timeouts,
        "latencies_ms": [round(x * 1000, 1) for x in from_webhook],
    }


def wait_until_ordered(backend: BackendServer, project: int, ids: list[int]) -> dict:
    """The backend's status once it has also switched the model version for the batch `ids`."""
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    while True:
        status = backend_status(backend, project)
        view = status["view"] or {}
        if (view.get("ordered") and set(view["task_ids"]) == set(ids)) or time.monotonic() > deadline:
            return status
        time.sleep(VIEW_POLL_S)


def import_tasks(client, project: int, count: int, seed: int) -> float:
    """Import `count` tasks with tiny data: URIs in chunks; returns seconds taken."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for offset in range(0, count, IMPORT_CHUNK):
        tasks = [{"image": tiny_data_uri(rng)} for _ in range(min(IMPORT_CHUNK, count - offset))]
        client.projects.import_tasks(id=project, request=tasks)
    return time.perf_counter() - start


def measure(settings: RoundSettings, workdir: Path) -> list[dict]:
    """Start Label Studio and the backend, then for each task count: set up a project and run rounds."""
    workdir.mkdir(parents=True, exist_ok=True)
    # 512-d like ViT-B/32, so selection and refit cost what they cost with the real model.
    clip = build_tiny_clip(workdir / "tiny-clip", projection_dim=EMBEDDING_DIM)
    studio = LabelStudioServer(workdir / "label-studio", free_port(), workdir / "files")
    results = []
    started = time.perf_counter()
    studio.start(log_path=workdir / "label-studio.log")
    log.info("Label Studio up in %.0f s", time.perf_counter() - started)
    port = free_port()
    backend = BackendServer(port, {
        "LABEL_STUDIO_URL": studio.url, "LABEL_STUDIO_API_KEY": studio.api_token,
        "MODEL_DIR": str(workdir / "model_dir"), "CLIP_MODEL": str(clip), "HF_HUB_OFFLINE": "1",
        "BACKEND_URL": f"http://127.0.0.1:{port}", "LOG_LEVEL": "INFO",
        # The tiny model's ops are too small to split across threads (4x faster embedding
        # with one); the round itself runs no multi-threaded torch (the refit uses one thread).
        "TORCH_THREADS": "1",
    }, log_path=workdir / "backend.log")
    try:
        backend.start()
        client = LabelStudio(base_url=studio.url, api_key=studio.api_token, timeout=CLIENT_TIMEOUT_S)
        for count in settings.task_counts:
            project = create_project(client, f"round benchmark {count}", (ROOT / "label_config.xml").read_text())
            connect_backend(client, project, backend.url, "CLIP vector queue",
                            {"prompt": "a photo of a dog", "batch_size": BATCH_SIZE})
            import_s = import_tasks(client, project, count, seed=count)
            log.info("project %s: %d tasks imported in %.0f s", project, count, import_s)
            settle_start = time.perf_counter()
            wait_until_settled(backend, project, count, settings.setup_timeout_s)
            settle_s = time.perf_counter() - settle_start
            log.info("project %s: embedded and predicted %.0f s after import", project, settle_s)
            timings = run_rounds(client, backend, project, settings.rounds, settings.think_s)
            log.info("project %s: rounds p50 %.0f ms p95 %.0f ms", project, timings["p50_ms"], timings["p95_ms"])
            results.append({"tasks": count, **timings, "think_s": settings.think_s,
                            "setup": {"import_s": round(import_s, 1), "embed_and_predict_s": round(settle_s, 1)}})
            if count != settings.task_counts[-1]:
                # Let the backend finish this project's predictions before the next project loads Label Studio.
                wait_until_settled(backend, project, count, settings.setup_timeout_s)
    finally:
        backend.stop()
        studio.stop()
    return results
