"""The whole loop against a real Label Studio 1.23 server and a real backend process.

One scenario, in order: import -> embeddings (a) -> predictions (b) -> ratings refit
the head (c) -> the next-batch view serves exactly the selected tasks (d) -> kill -9,
restart, nothing lost and the loop continues (e). The steps share one project.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
from label_studio_sdk import LabelStudio

from ml_backend.adapters.ls_admin import admin_client, connect_backend, create_project, import_local_folder, upload_images
from ml_backend.adapters.ls_views import filtered_task_ids

from .conftest import ROOT, backend_status, make_images, read_heads, stored_ids_and_seen, wait_for

K = 5
PROMPT = "a photo of a red square"
UPLOADED, LOCAL = 12, 12


class Scenario:
    """State shared by the ordered steps below."""

    client: LabelStudio
    project: int
    backend = None
    model_dir = None
    task_ids: list[int]
    snapshot: dict


@pytest.fixture(scope="module")
def scenario(label_studio, tiny_clip_path, tmp_path_factory):
    state = Scenario()
    state.client = admin_client(label_studio.url, label_studio.api_token)
    state.project = create_project(state.client, "e2e vector queue", (ROOT / "label_config.xml").read_text())
    state.model_dir = tmp_path_factory.mktemp("backend") / "model_dir"
    return state


@pytest.fixture
def backend(scenario, start_backend):
    """The scenario's backend process: started on first use, restarted (same port, same MODEL_DIR) after a kill."""
    if scenario.backend is None or scenario.backend.process.poll() is not None:
        port = scenario.backend.port if scenario.backend else None
        scenario.backend = start_backend(model_dir=scenario.model_dir, port=port)
    return scenario.backend


def rate(client: LabelStudio, task_id: int, choice: str) -> int:
    result = [{"from_name": "relevance", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
    return int(client.annotations.create(id=task_id, result=result, was_cancelled=False).id)


def idle_status(backend, project: int, where=lambda status: True) -> dict | None:
    """The backend's status once its worker is idle and `where(status)` holds, else None."""
    status = backend_status(backend, project)
    return status if status["worker"]["idle"] and where(status) else None


def test_a_import_embeds_every_task_without_predict(scenario, backend, label_studio):
    connect_backend(scenario.client, scenario.project, backend.url, "CLIP vector queue",
                    {"prompt": PROMPT, "batch_size": K, "strategy": "nearest", "preselect_rating": True})
    uploaded = upload_images(label_studio.url, label_studio.api_token, scenario.project,
                             make_images(scenario.model_dir.parent / "uploads", UPLOADED, seed=1))
    local_folder = label_studio.local_files_root / "e2e"
    make_images(local_folder, LOCAL, seed=2)
    import_local_folder(scenario.client, scenario.project, local_folder)
    scenario.task_ids = sorted(int(t.id) for t in scenario.client.tasks.list(project=scenario.project))
    assert len(scenario.task_ids) == UPLOADED + LOCAL and set(uploaded) <= set(scenario.task_ids)

    wait_for(lambda: idle_status(backend, scenario.project, lambda s: s["tasks"]["embedded"] == UPLOADED + LOCAL),
             what="all tasks embedded")
    stored = stored_ids_and_seen(scenario.model_dir, scenario.project)
    assert sorted(map(int, stored)) == scenario.task_ids
    assert not any(stored.values())
    # Nobody asked for predictions: the embeddings came from the TASKS_CREATED webhook alone.
    assert "POST /predict" not in (scenario.model_dir.parent / "backend.log").read_text()


def test_b_every_task_has_a_prediction_of_the_current_version(scenario, backend):
    status = wait_for(lambda: idle_status(backend, scenario.project), what="worker idle")
    version = status["model_version"]
    assert version == "clip-head-v1" and status["head"]["ratings"] == 0  # the prompt alone started W
    tasks = list(scenario.client.tasks.list(project=scenario.project, fields="all"))
    for task in tasks:
        versions = [p["model_version"] if isinstance(p, dict) else p.model_version for p in task.predictions]
        assert versions.count(version) == 1, f"task {task.id} has predictions {versions}"
        prediction = next(p for p in task.predictions if (p["model_version"] if isinstance(p, dict) else p.model_version) == version)
        result = prediction["result"] if isinstance(prediction, dict) else prediction.result
        assert result[0]["from_name"] == "relevance" and result[0]["value"]["choices"][0] in {"-1", "0", "+1"}
    assert scenario.client.projects.get(scenario.project).model_version == version


def test_c_ratings_bump_the_version_and_move_w(scenario, backend):
    before = read_heads(scenario.model_dir, scenario.project)
    view = backend_status(backend, scenario.project)["view"]
    top, *rest = view["task_ids"]
    rate(scenario.client, top, "+1")
    rate(scenario.client, rest[0], "-1")
    status = wait_for(lambda: idle_status(backend, scenario.project, lambda s: s["rated_tasks"] == 2),
                      what="two ratings counted")
    after = read_heads(scenario.model_dir, scenario.project)
    assert status["head"]["version"] > before[-1][0] and status["head"]["ratings"] == 2
    w_old, w_new = before[-1][1], after[-1][1]
    moved = float(np.abs(w_new - w_old).max() / np.abs(w_old).max())
    assert moved > 1e-3, f"refitting on two ratings left W unchanged (largest relative change {moved:.2e})"
    assert status["seen"] == 2
    assert set(status["view"]["task_ids"]).isdisjoint({top, rest[0]}), "rated tasks came back in a batch"


def test_d_next_batch_view_serves_exactly_the_selected_tasks_in_score_order(scenario, backend, label_studio):
    response = requests.post(f"{backend.url}/projects/{scenario.project}/next-batch", timeout=60)
    assert response.status_code == 200 and response.json()["complete"]
    view = response.json()["view"]
    batch, scores = view["task_ids"], view["scores"]
    seen = {int(t) for t, s in stored_ids_and_seen(scenario.model_dir, scenario.project).items() if s}
    assert len(batch) == K and seen.isdisjoint(batch)
    assert scores == sorted(scores, reverse=True)
    # The batch is the true top-k of the current head among unseen tasks (nearest strategy).
    all_scores = {int(t.id): t.predictions_score for t in scenario.client.tasks.list(project=scenario.project, fields="all")}
    unseen = sorted((t for t in all_scores if t not in seen), key=lambda t: -all_scores[t])
    assert [round(all_scores[t], 4) for t in batch] == [round(all_scores[t], 4) for t in unseen[:K]]
    stored_view = scenario.client.views.get(str(view["id"])).data
    assert sorted(filtered_task_ids(stored_view)) == sorted(batch)

    # Freeze the queue: with the backend down the view cannot move while we walk it.
    scenario.snapshot = {
        "heads": read_heads(scenario.model_dir, scenario.project),
        "status": backend_status(backend, scenario.project),
        "chroma": stored_ids_and_seen(scenario.model_dir, scenario.project),
    }
    backend.kill()
    served = []
    headers = {"Authorization": f"Token {label_studio.api_token}"}
    for _ in range(K + 1):
        answer = requests.get(f"{label_studio.url}/api/projects/{scenario.project}/next/",
                              params={"view": view["id"]}, headers=headers, timeout=30)
        if answer.status_code == 404:
            break
        assert answer.status_code == 200
        task = answer.json()["id"]
        served.append(task)
        rate(scenario.client, task, "+1" if len(served) == 1 else "0")  # its webhook fails: the backend is down
    assert served == batch


def test_e_restart_keeps_state_and_catches_up(scenario, backend):
    before = scenario.snapshot
    status = wait_for(lambda: idle_status(backend, scenario.project, lambda s: s["rated_tasks"] == 2 + K),
                      what="annotations made while down synced from Label Studio")
    heads = read_heads(scenario.model_dir, scenario.project)
    # The heads stored before the crash are intact, byte for byte, and the loop went on from them.
    assert [(v, w.tobytes()) for v, w in heads[: len(before["heads"])]] == [(v, w.tobytes()) for v, w in before["heads"]]
    assert status["head"]["version"] > before["status"]["head"]["version"]
    assert status["head"]["ratings"] == 2 + K
    assert status["tasks"]["embedded"] == UPLOADED + LOCAL and status["vectors"] == UPLOADED + LOCAL
    chroma = stored_ids_and_seen(scenario.model_dir, scenario.project)
    assert set(chroma) == set(before["chroma"])
    walked = set(before["status"]["view"]["task_ids"])
    assert {int(t) for t, s in chroma.items() if s} == {int(t) for t, s in before["chroma"].items() if s} | walked
    assert walked.isdisjoint(status["view"]["task_ids"]) and len(status["view"]["task_ids"]) == K
    # Every task carries a prediction of the new version, and only that version is left.
    for task in scenario.client.tasks.list(project=scenario.project, fields="all"):
        versions = [p["model_version"] if isinstance(p, dict) else p.model_version for p in task.predictions]
        assert versions == [status["model_version"]], f"task {task.id}: {versions}"
