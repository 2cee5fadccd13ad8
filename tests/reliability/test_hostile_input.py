"""Hostile input found by an adversarial test of main (issue 12): no stalls, no unbounded state.

Findings 1 and 9 (URLs, addresses) are in test_url_confusion.py and test_untrusted_urls.py,
finding 4 (/setup tokens, real Label Studio) in test_setup_tokens.py and finding 5 (admin
calls starving webhooks, a real backend process) in test_admin_load.py. The rest are here,
against the Flask app over a real runtime and real HTTP servers on loopback.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.conftest import wait_until

from .support import InProcessBackend, Reply, annotation_created, choice_result, png_bytes, task_payload, tasks_created

A, B = 1, 2


def head_version(backend, project: int) -> int:
    head = backend.status(project)["head"]
    return head["version"] if head else 0


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


# -- finding 6: wrong errors and one data loss -----------------------------------------------------------
HUGE = 2**63


@pytest.fixture
def backend(make_backend):
    backend = make_backend()
    assert backend.setup(A).status_code == 200
    return backend


def annotation(annotation_id, task_id):
    return {"action": "ANNOTATION_CREATED", "project": {"id": A},
            "annotation": {"id": annotation_id, "task": task_id, "result": choice_result("+1")}}


@pytest.mark.parametrize("path, body, message", [
    ("/setup", {"project": f"{HUGE}.1700000000", "schema": ""}, "project id must be between 1 and 2**63-1"),
    ("/webhook", {"action": "START_TRAINING", "project": {"id": HUGE}}, "project id must be between 1 and 2**63-1"),
    ("/webhook", annotation(HUGE, 1), "annotation id must be between 1 and 2**63-1"),
    ("/webhook", annotation(1, HUGE), "task id must be between 1 and 2**63-1"),
    ("/webhook", annotation(1, -5), "task id must be between 1 and 2**63-1"),
    ("/predict", {"project": f"{A}.1", "tasks": [{"id": HUGE, "data": {"image": "x"}}]}, "task id must be between"),
    ("/webhook", {"action": "ANNOTATIONS_DELETED", "project": {"id": A}, "annotations": 5}, "'annotations' must be a list"),
    ("/webhook", {"action": "TASKS_DELETED", "project": {"id": A}, "tasks": "1,2"}, "'tasks' must be a list"),
    ("/webhook", {"action": "TASKS_CREATED", "project": {"id": A}, "tasks": {"id": 1}}, "'tasks' must be a list"),
], ids=["setup-project", "webhook-project", "annotation-id", "task-id", "negative-task-id", "predict-task-id",
        "annotations-not-a-list", "deleted-tasks-not-a-list", "created-tasks-not-a-list"])
def test_ids_out_of_range_and_lists_that_are_not_lists_are_400s(backend, path, body, message):
    response = backend.post(path, body)
    assert response.status_code == 400, response.get_json()
    assert message in response.get_json()["message"]


def test_one_task_id_out_of_range_does_not_cost_the_rest_of_its_batch(backend):
    tasks = [task_payload(1), task_payload(HUGE), task_payload(3)]
    response = backend.webhook(tasks_created(A, tasks))
    assert response.status_code == 200
    assert response.get_json()["new_tasks"] == 2
    assert response.get_json()["invalid_tasks"] == [{"index": 1, "error": f"task id must be between 1 and 2**63-1, got {HUGE}"}]
    backend.wait(A)
    assert backend.status(A)["tasks"]["embedded"] == 2


def test_deletions_with_one_bad_id_delete_the_others(backend):
    backend.webhook(tasks_created(A, [task_payload(1), task_payload(2)]))
    backend.webhook(annotation_created(A, 7, task_payload(1), choice_result("+1")))
    response = backend.webhook({"action": "ANNOTATIONS_DELETED", "project": {"id": A},
                                "annotations": [{"id": HUGE}, {"id": 7}, "x"]})
    assert response.status_code == 200 and response.get_json()["deleted"] == 1
    assert [entry["index"] for entry in response.get_json()["invalid_annotations"]] == [0, 2]
    response = backend.webhook({"action": "TASKS_DELETED", "project": {"id": A}, "tasks": [{"id": 2}, {"id": HUGE}]})
    assert response.status_code == 200 and [e["index"] for e in response.get_json()["invalid_tasks"]] == [1]
    assert backend.runtime.projects.ledger.task_ids(A) == [1]


NUMBER = '<View><Image name="img" value="$image"/><Number name="score" toName="img" min="{low}" max="{high}"{extra}/></View>'
RATING = '<View><Image name="img" value="$image"/><Rating name="stars" toName="img" maxRating="{top}"/></View>'


@pytest.mark.parametrize("config, message", [
    (NUMBER.format(low="-inf", high="inf", extra=""), "finite min and max"),
    (NUMBER.format(low="0", high="inf", extra=""), "finite min and max"),
    (NUMBER.format(low="-1e308", high="1e308", extra=""), "finite min and max"),
    (NUMBER.format(low="0", high="nan", extra=""), "max > min"),
    (NUMBER.format(low="0", high="1", extra=' step="nan"'), "finite step"),
    (RATING.format(top="inf"), "whole maxRating from 2 to 100"),
    (RATING.format(top="1e9"), "whole maxRating from 2 to 100"),
], ids=["number-inf", "number-max-inf", "number-1e308", "number-nan", "step-nan", "rating-inf", "rating-1e9"])
def test_rating_scales_that_cannot_give_finite_targets_are_refused_at_setup(make_backend, config, message):
    backend = make_backend()
    response = backend.setup(A, label_config=config)
    assert response.status_code == 422, response.get_json()
    assert message in response.get_json()["message"]


@pytest.mark.parametrize("head", [{"l2": float("inf")}, {"l2": "inf"}, {"prior_l2": float("nan")}, {"l2": 1e300},
                                  {"background_weight": float("nan")}])
def test_head_parameters_that_break_every_refit_are_refused_at_setup(make_backend, head):
    backend = make_backend()
    response = backend.setup(A, extra_params={"head": head})
    assert response.status_code == 422, response.get_json()
    assert "invalid project parameters: head." in response.get_json()["message"]


def test_a_prompt_longer_than_the_text_towers_context_still_gives_a_head(make_backend):
    """The tiny CLIP reads 77 tokens; a 600-character prompt used to break every refit."""
    backend = make_backend()
    prompt = " ".join(["a red square on a plain background"] * 17)
    assert len(prompt) > 500 and backend.setup(A, extra_params={"prompt": prompt}).status_code == 200
    backend.webhook(tasks_created(A, [task_payload(t) for t in (1, 2, 3)]))
    backend.wait(A)
    assert head_version(backend, A) == 1
    assert backend.status(A)["worker"]["last_error"] is None
    too_long = backend.setup(A, extra_params={"prompt": "x" * 1001})
    assert too_long.status_code == 422 and "prompt" in too_long.get_json()["message"]


# -- finding 7: corruption reported as health --------------------------------------------------------------
def zero_page(path, table: str) -> None:
    """Overwrite the root page of `table` in the SQLite file with zeros (WAL folded in first)."""
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    with open(path, "r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\0" * page_size)


def test_a_damaged_ledger_makes_health_say_so_and_nothing_retries_forever(make_backend, tiny_clip_path, embedder, request):
    first = make_backend()
    assert first.setup(A).status_code == 200
    first.webhook(tasks_created(A, [task_payload(t) for t in range(1, 40)]))
    first.wait(A)
    first.close()
    first.runtime.projects.ledger.close()
    ledger_path = first.settings.ledger_path
    zero_page(ledger_path, "tasks")

    backend = InProcessBackend(first.settings.model_dir, tiny_clip_path, embedder)  # a restart on the damaged file
    request.addfinalizer(backend.close)
    health = backend.get("/health")
    assert health.status_code == 503 and health.get_json()["status"] == "ERROR"
    assert "ledger" in health.get_json()["ledger_error"] and str(ledger_path) in health.get_json()["ledger_error"]
    status = backend.get(f"/projects/{A}/status")
    assert status.status_code == 503 and status.get_json()["error"] == "ledger_corrupt"
    webhook = backend.webhook(annotation_created(A, 1, task_payload(1), choice_result("+1")))
    assert webhook.status_code == 503 and "move the file aside" in webhook.get_json()["message"]
    # The worker does not spin on it: at most one failed pass per notification.
    time.sleep(1.0)
    assert all(work.failures <= 1 for work in backend.runtime.worker._work.values())


# -- finding 8: unbounded task data ---------------------------------------------------------------------
def test_oversized_task_data_is_refused_per_task_and_not_kept(make_backend):
    """12 tasks with ~27 MB data: URIs added ~340 MB to the ledger; now each is a failed task with its reason."""
    backend = make_backend(max_task_data_bytes=100_000, max_request_bytes=10 * 2**20)
    assert backend.setup(A).status_code == 200
    ledger_path = backend.settings.ledger_path
    big = "data:image/png;base64," + "A" * 600_000  # well-formed enough; never decoded
    tasks = [task_payload(t, {"image": big}) for t in range(1, 7)] + [task_payload(7)]
    response = backend.webhook(tasks_created(A, tasks))
    assert response.status_code == 200 and response.get_json()["new_tasks"] == 7
    # ...also when the data comes with an annotation, and through /predict.
    backend.webhook(annotation_created(A, 1, task_payload(8, {"image": big}), choice_result("+1")))
    predicted = backend.post("/predict", {"project": f"{A}.1", "tasks": [{"id": 9, "data": {"image": big}}]})
    assert predicted.status_code == 200 and predicted.get_json()["results"] == [[]]
    backend.wait(A)

    status = backend.status(A)
    assert status["tasks"] == {"pending": 0, "embedded": 1, "failed": 8}
    for error in status["task_errors"]:
        assert "over the limit of 100000 (MAX_TASK_DATA_BYTES)" in error["error"], error
    ledger = backend.runtime.projects.ledger
    assert max(len(str(data)) for data in ledger.task_data(A, list(range(1, 10))).values()) < 1_000
    db = sqlite3.connect(ledger_path)  # fold the write-ahead log into the file
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    assert ledger_path.stat().st_size < 2 * 2**20  # 8 x 600 KB would be ~5 MB
