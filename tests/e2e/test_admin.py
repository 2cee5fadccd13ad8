"""What a project admin meets in the first hour, against the real Label Studio 1.23 and backend process:
connecting twice, editing parameters, invalid parameters, restarting the demo, a second pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests
from label_studio_sdk.core.api_error import ApiError

from ml_backend.adapters.ls_admin import connect_backend, create_project, upload_images
from ml_backend.adapters.ml_connections import Hook, hooks_to
from scripts import demo

from .conftest import ROOT, backend_status, idle, make_images, wait_for

CONFIG = (ROOT / "label_config.xml").read_text()


@pytest.fixture(scope="module")
def backend(start_backend):
    return start_backend()


def loopback(backend, host: str) -> str:
    return f"http://{host}:{backend.port}"


def connections(client, project) -> list:
    return list(client.ml.list(project=project))


def hooks_to_backend(client, project, backend) -> list[Hook]:
    listed = [Hook.of(h) for h in client.webhooks.list(project=str(project))]
    return hooks_to([loopback(backend, "127.0.0.1")], listed)


def connect_project(label_studio, *args: str) -> subprocess.CompletedProcess:
    """The admin script as the README runs it."""
    env = {**os.environ, "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.api_token}
    return subprocess.run([sys.executable, "-m", "scripts.connect_project", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def current_scores(client, project, version: str, expected: int) -> dict[int, float] | None:
    """Task id -> the score of its `version` prediction, once all `expected` tasks have one."""
    scores = {}
    for task in client.tasks.list(project=project, fields="all"):
        for p in task.predictions:
            p = p if isinstance(p, dict) else p.model_dump()
            if p["model_version"] == version:
                scores[int(task.id)] = p["score"]
    return scores if len(scores) == expected else None


def test_connecting_again_under_another_spelling_keeps_one_connection_and_merges_params(label_studio, client, backend):
    project = create_project(client, "admin: connect twice", CONFIG)
    # The demo registers 127.0.0.1; the script's default spelling is localhost.
    connect_backend(client, project, loopback(backend, "127.0.0.1"), "CLIP vector queue", {"prompt": "a red square", "batch_size": 4})
    result = connect_project(label_studio, "--project", str(project), "--backend-url", loopback(backend, "localhost") + "/",
                             "--params", '{"strategy": "uncertainty"}')
    assert result.returncode == 0, result.stderr
    [connection] = connections(client, project)
    assert connection.url == loopback(backend, "127.0.0.1")
    assert json.loads(connection.extra_params) == {"prompt": "a red square", "batch_size": 4, "strategy": "uncertainty"}
    assert len(hooks_to_backend(client, project, backend)) == 1
    params = wait_for(lambda: (s := idle(backend, project)) and s["params"]["strategy"] == "uncertainty" and s["params"],
                      what="the merged params at the backend")
    assert (params["prompt"], params["batch_size"]) == ("a red square", 4)

    result = connect_project(label_studio, "--project", str(project), "--backend-url", loopback(backend, "localhost"),
                             "--replace", "--params", '{"batch_size": 6}')
    assert result.returncode == 0, result.stderr
    assert [json.loads(c.extra_params) for c in connections(client, project)] == [{"batch_size": 6}]


def test_a_second_connection_is_reported_counted_once_and_its_params_never_win(label_studio, client, backend, tmp_path):
    project = create_project(client, "admin: duplicate connection", CONFIG)
    primary = {"prompt": "a red square", "batch_size": 3}
    connect_backend(client, project, loopback(backend, "127.0.0.1"), "CLIP vector queue", primary)
    upload_images(label_studio.url, label_studio.api_token, project, make_images(tmp_path, 6, seed=7))
    wait_for(lambda: idle(backend, project, lambda s: s["tasks"]["embedded"] == 6), what="6 tasks embedded")
    # As an admin would in Label Studio's UI: a second connection to the same backend, other params.
    client.ml.create(project=project, url=loopback(backend, "localhost"), title="again",
                     extra_params={"prompt": "a blue circle", "batch_size": 7})

    status = wait_for(lambda: idle(backend, project, lambda s: len((s["connections"] or {}).get("connections", [])) == 2),
                      what="the second connection reported")
    assert "2 ML connections lead to this backend" in status["connections"]["warning"]
    assert str(project) in requests.get(f"{backend.url}/health", timeout=10).json()["project_warnings"]
    assert status["connections"]["repeated_actions"]["ANNOTATION_CREATED"] == 2
    assert (status["params"]["prompt"], status["params"]["batch_size"]) == ("a red square", 3)

    # Every listing of the connections makes Label Studio call /setup on both: the params hold still.
    version = status["model_version"]
    for _ in range(3):
        connections(client, project)
    status = wait_for(lambda: idle(backend, project), what="worker idle")
    assert (status["params"]["prompt"], status["model_version"]) == ("a red square", version)

    # A rating arrives twice (two webhooks) and counts once: one annotation, one refit.
    task = status["view"]["task_ids"][0]
    client.annotations.create(id=task, result=[{"from_name": "relevance", "to_name": "image", "type": "choices",
                                                "value": {"choices": ["+1"]}}], was_cancelled=False)
    status = wait_for(lambda: idle(backend, project, lambda s: s["rated_tasks"] == 1), what="the rating counted")
    assert status["annotations"] == 1
    assert status["head"]["version"] == int(version.rsplit("v", 1)[1]) + 1

    # The script removes the extra connection and its webhook; the backend then sees one.
    result = connect_project(label_studio, "--project", str(project), "--backend-url", loopback(backend, "127.0.0.1"))
    assert result.returncode == 0, result.stderr
    assert "removed duplicate connections" in result.stderr
    assert len(connections(client, project)) == 1 and len(hooks_to_backend(client, project, backend)) == 1
    wait_for(lambda: connections(client, project) and idle(backend, project, lambda s: s["connections"]["warning"] is None),
             timeout_s=60, what="the warning gone after the fix")


def test_invalid_params_show_their_reason_in_label_studio_and_in_the_script(label_studio, client, backend):
    project = create_project(client, "admin: invalid params", CONFIG)
    connect_backend(client, project, backend.url, "CLIP vector queue", {"prompt": "a red square"})
    [connection] = connections(client, project)
    # Label Studio's connection dialog shows this response's message.
    with pytest.raises(ApiError) as refused:
        client.ml.update(connection.id, url=connection.url, project=project, extra_params={"batchsize": 3})
    assert "batchsize: Extra inputs are not permitted" in str(refused.value.body)
    assert json.loads(connections(client, project)[0].extra_params) == {"prompt": "a red square"}

    result = connect_project(label_studio, "--project", str(project), "--backend-url", backend.url,
                             "--params", '{"batchsize": 3}')
    assert result.returncode == 2
    assert "batchsize: Extra inputs are not permitted" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_restarting_the_demo_keeps_the_admins_params(label_studio, client, backend):
    project, params = demo.bootstrap(label_studio, backend.url, {})
    assert params == demo.DEMO_PARAMS
    connect_project(label_studio, "--project", str(project), "--backend-url", backend.url,
                    "--params", '{"prompt": "a green square", "batch_size": 5}')
    again, params = demo.bootstrap(label_studio, backend.url, {})   # what a rerun of scripts/demo.sh does
    assert again == project and params == {"prompt": "a green square", "batch_size": 5}
    _, params = demo.bootstrap(label_studio, backend.url, {"batch_size": 9})  # --batch-size 9 on the rerun
    assert params == {"prompt": "a green square", "batch_size": 9}
    assert [json.loads(c.extra_params) for c in connections(client, project)] == [params]


def test_reset_seen_starts_a_second_pass_that_survives_a_sync(label_studio, client, start_backend, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("second-pass") / "model_dir"
    backend = start_backend(model_dir=model_dir, BULK_PREDICTION_DELAY_S="0")
    project = create_project(client, "admin: second pass", CONFIG)
    # nearest: the tab is then exactly the best-scored tasks (adaptive mixes in uniform picks)
    connect_backend(client, project, backend.url, "CLIP vector queue",
                    {"prompt": "a red square", "batch_size": 3, "strategy": "nearest"})
    upload_images(label_studio.url, label_studio.api_token, project, make_images(model_dir.parent / "images", 9, seed=11))
    first = wait_for(lambda: idle(backend, project, lambda s: s["tasks"]["embedded"] == 9 and s["view"]), what="a batch")
    rated = first["view"]["task_ids"]
    annotations = {}
    for task, choice in zip(rated, ["+1", "0", "-1"]):
        annotations[task] = client.annotations.create(id=task, result=[{
            "from_name": "relevance", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]).id
    wait_for(lambda: idle(backend, project, lambda s: s["rated_tasks"] == 3 and s["seen"] == 3), what="3 ratings")

    assert requests.post(f"{backend.url}/projects/{project}/reset-seen", timeout=30).json() == {"reset": 3}
    status = wait_for(lambda: idle(backend, project, lambda s: s["seen"] == 0), what="the second pass")
    # The tab now holds the best tasks of all, rated ones included (the scores Label Studio holds).
    scores = wait_for(lambda: current_scores(client, project, status["model_version"], 9), what="every task's score")
    best = sorted(scores, key=lambda t: -scores[t])[:3]
    assert sorted(status["view"]["task_ids"]) == sorted(best)

    # Changing a rating from the tab refits, and that task is done for this pass.
    changed = next((t for t in status["view"]["task_ids"] if t in annotations), rated[0])
    client.annotations.update(id=annotations[changed], result=[{
        "from_name": "relevance", "to_name": "image", "type": "choices", "value": {"choices": ["-1"]}}])
    after = wait_for(lambda: idle(backend, project, lambda s: s["seen"] == 1 and s["head"]["version"] > status["head"]["version"]),
                     what="the updated rating refitting")
    assert changed not in after["view"]["task_ids"]

    # A restart re-reads every annotation from Label Studio: the reset must survive it.
    backend.kill()
    backend = start_backend(model_dir=model_dir, port=backend.port)
    synced = wait_for(lambda: idle(backend, project, lambda s: s["rated_tasks"] == 3), what="the sync after a restart")
    assert synced["seen"] == 1


def test_edited_params_stick_in_label_studio_and_the_backend(label_studio, client, backend, tmp_path):
    # Listing ML connections makes Label Studio call /setup with the params it has stored and save
    # the connection again: a listing the backend starts while the admin's edit is in flight
    # writes the old params back (lost update). Edit repeatedly; every edit must hold on both sides.
    project = create_project(client, "admin: edits stick", CONFIG)
    upload_images(label_studio.url, label_studio.api_token, project, make_images(tmp_path, 6, seed=31))
    connect_backend(client, project, loopback(backend, "127.0.0.1"), "CLIP vector queue", {"batch_size": 3})
    wait_for(lambda: idle(backend, project, lambda s: s["vectors"] == 6), what="6 tasks embedded")
    for edit in range(8):
        wanted = {"batch_size": 3, "preselect_rating": edit % 2 == 0}
        connect_backend(client, project, loopback(backend, "127.0.0.1"), "CLIP vector queue", wanted)
        wait_for(lambda: idle(backend, project), what=f"the backend idle after edit {edit}")
        [connection] = connections(client, project)
        assert json.loads(connection.extra_params) == wanted, f"edit {edit} lost in Label Studio"
        assert backend_status(backend, project)["params"]["preselect_rating"] is wanted["preselect_rating"], edit
