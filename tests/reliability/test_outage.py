"""A Label Studio outage: the backend stays healthy, keeps learning, and catches up afterwards.

The backend reaches Label Studio through a fault proxy that refuses connections
("down") or accepts and never answers ("hang"); Label Studio's webhooks still reach
the backend directly, so ratings keep coming in during the outage. Checked against
the real Label Studio afterwards: the view and one prediction of the current version
on every task.
"""

from __future__ import annotations

import time

import pytest
import requests

from ml_backend.adapters.ls_admin import admin_client, connect_backend, create_project
from ml_backend.adapters.ls_views import filtered_task_ids

from .e2e_support import status, wait_for
from .support import LABEL_CONFIG, choice_result, image_uri

pytestmark = pytest.mark.e2e

TASKS = 20
K = 5


def predictions_by_task(client, project: int) -> dict[int, list[str]]:
    return {int(t.id): [p["model_version"] if isinstance(p, dict) else p.model_version for p in t.predictions]
            for t in client.tasks.list(project=project, fields="all")}


def test_pushes_retry_through_an_outage_and_catch_up(label_studio, fault_proxy, start_backend):
    client = admin_client(label_studio.url, label_studio.api_token)
    project = create_project(client, "outage", LABEL_CONFIG)
    backend = start_backend(fault_proxy.url, label_studio.api_token, LABEL_STUDIO_TIMEOUT_S="2", MAX_BACKOFF_S="4")
    connect_backend(client, project, backend.url, "CLIP vector queue", {"prompt": "a red square", "batch_size": K})
    client.projects.import_tasks(id=project, request=[{"image": image_uri(seed)} for seed in range(TASKS)])
    before = wait_for(lambda: (s := status(backend, project))["worker"]["idle"] and s["tasks"]["embedded"] == TASKS and s,
                      what="import embedded and pushed")
    assert all(versions == [before["model_version"]] for versions in predictions_by_task(client, project).values())

    fault_proxy.set_mode("down")
    rated = before["view"]["task_ids"][:3]
    for task in rated:  # webhooks go straight to the backend: ratings keep arriving
        client.annotations.create(id=task, result=choice_result("+1"), was_cancelled=False)
    during = wait_for(lambda: (s := status(backend, project))["head"]["ratings"] == len(rated)
                      and s["worker"]["failures"] >= 2 and s, what="refit on the new ratings while pushes fail")
    assert "LabelStudioUnavailable" in during["worker"]["last_error"]
    assert not during["worker"]["idle"]

    fault_proxy.set_mode("hang")  # accepted, never answered: every call times out
    health_times = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        started = time.perf_counter()
        assert requests.get(f"{backend.url}/health", timeout=5).json()["status"] == "UP"
        health_times.append(time.perf_counter() - started)
        time.sleep(0.2)
    assert max(health_times) < 0.5, "the backend stopped answering while Label Studio hung"
    # Another rating during the hang: the webhook is answered at once.
    started = time.perf_counter()
    client.annotations.create(id=before["view"]["task_ids"][3], result=choice_result("-1"), was_cancelled=False)
    assert time.perf_counter() - started < 2.0
    assert status(backend, project)["annotations"] == len(rated) + 1
    assert client.projects.get(project).model_version == before["model_version"]  # nothing got through

    fault_proxy.set_mode("up")
    after = wait_for(lambda: (s := status(backend, project))["worker"]["idle"] and s["head"]["ratings"] == len(rated) + 1 and s,
                     timeout_s=90, what="catch-up after Label Studio returned")
    assert after["model_version"] != before["model_version"] and after["worker"]["last_error"] is None
    # Label Studio now holds exactly what the backend says: the current version everywhere, the new batch.
    assert client.projects.get(project).model_version == after["model_version"]
    assert all(versions == [after["model_version"]] for versions in predictions_by_task(client, project).values())
    view = client.views.get(str(after["view"]["id"])).data
    assert sorted(filtered_task_ids(view)) == sorted(after["view"]["task_ids"])
    assert set(after["view"]["task_ids"]).isdisjoint(rated)
