"""Hostile input found by an adversarial test of main (issue 12): no stalls, no unbounded state.

Findings 1 and 9 (URLs, addresses) are in test_url_confusion.py and test_untrusted_urls.py,
finding 4 (/setup tokens, real Label Studio) in test_setup_tokens.py and finding 5 (admin
calls starving webhooks, a real gunicorn process) in test_admin_load.py. The rest are here,
against the Flask app over a real runtime and real HTTP servers on loopback.
"""

from __future__ import annotations

import time

import pytest

from .support import NUMBER_CONFIG, Reply, annotation_created, choice_result, image_uri, png_bytes, task_payload, tasks_created

A, B = 1, 2


def head_version(backend, project: int) -> int:
    head = backend.status(project)["head"]
    return head["version"] if head else 0


def wait_until(condition, timeout_s: float, every_s: float = 0.02):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    return condition()


# -- finding 2: a slow image source stalls every project ------------------------------------------------
def test_a_dripping_image_source_does_not_hold_up_another_projects_refit(make_backend, image_host):
    """Project A's images drip their headers (each fetch runs into the 3 s deadline); project B
    is rated meanwhile. The worker thread serves both: B's refit must not wait for A's fetches."""
    image_host.routes["/drip.png"] = Reply(body=png_bytes(1), headers={"X-Padding": "p" * 60}, header_drip_s=0.3)
    backend = make_backend(image_hosts="127.0.0.0/8", fetch_timeout_s=3.0)
    for project in (A, B):
        assert backend.setup(project).status_code == 200
    assert backend.webhook(tasks_created(B, [task_payload(t) for t in (21, 22, 23)])).status_code == 200
    backend.wait(B)
    before = head_version(backend, B)

    dripping = [task_payload(t, {"image": image_host.url("/drip.png")}) for t in (11, 12)]
    assert backend.webhook(tasks_created(A, dripping)).status_code == 200
    assert wait_until(lambda: image_host.requests, 5.0), "A's fetches never started"
    rated_at = time.monotonic()
    assert backend.webhook(annotation_created(B, 1, task_payload(21), choice_result("+1"))).status_code == 200
    refitted = wait_until(lambda: head_version(backend, B) > before, timeout_s=15.0)
    waited = time.monotonic() - rated_at
    assert refitted, "B was never refitted"
    assert waited < 1.5, f"B's refit waited {waited:.1f} s behind A's dripping images (deadline 3 s)"

    # A's images are not forgotten: each attempt hits the deadline, and after the retries they fail.
    backend.wait(A, timeout_s=60)
    status = backend.status(A)
    assert status["tasks"]["failed"] == 2
    assert all("timed out" in error["error"] for error in status["task_errors"])


# -- finding 3: unknown project ids become permanent state ------------------------------------------------
def test_webhooks_for_made_up_projects_are_refused_and_leave_nothing_behind(make_backend):
    backend = make_backend()
    assert backend.setup(A).status_code == 200
    actions = [("TASKS_CREATED", {"tasks": [task_payload(1)]}), ("START_TRAINING", {}), ("PROJECT_UPDATED", {}),
               ("ANNOTATION_CREATED", {"annotation": {"id": 1, "task": 1, "result": choice_result("+1")}})]
    worker = backend.runtime.worker
    for made_up in range(1000, 2500):
        action, payload = actions[made_up % len(actions)]
        response = backend.post("/webhook", {"action": action, "project": {"id": made_up, "label_config": ""}, **payload})
        assert response.status_code == 404, response.get_json()
        assert f"project {made_up} is not connected to this backend" in response.get_json()["message"]
    assert backend.runtime.projects.project_ids() == [A]  # so the periodic checks ask about A only
    assert set(worker._work) <= {A}
    assert backend.get("/projects/1500/status").status_code == 404
    # The real project is served as before.
    assert backend.webhook(tasks_created(A, [task_payload(1)])).get_json()["new_tasks"] == 1
    backend.wait(A)
    assert backend.status(A)["tasks"]["embedded"] == 1
