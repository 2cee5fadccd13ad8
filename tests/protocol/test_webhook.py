"""POST /webhook: task imports, annotations and deletions reach the ledger, the store and the head."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import NUMBER_CONFIG

PROMPT = {"prompt": "a red square"}


@pytest.fixture
def project(backend):
    """Project 1 with a prompt and tasks 1..6 embedded: head v1."""
    assert backend.setup(extra_params=PROMPT).status_code == 200
    assert backend.tasks_created([1, 2, 3, 4, 5, 6]).get_json()["new_tasks"] == 6
    backend.wait()
    assert backend.status()["head"] == {"version": 1, "ratings": 0}
    return backend


def ratings(backend):
    return backend.runtime.projects.ledger.ratings(1)


def test_tasks_created_answers_at_once_and_the_worker_embeds(backend, monkeypatch):
    """The embedder is held shut while the webhook is answered: the answer cannot wait for embedding."""
    backend.setup()
    embedder = backend.runtime.embedders.get("image")
    gate, entered = threading.Event(), threading.Event()
    real = embedder.embed_sources

    def gated(*args, **kwargs):
        entered.set()
        gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(embedder, "embed_sources", gated)
    try:
        start = time.monotonic()
        response = backend.tasks_created([1, 2, 3])
        elapsed = time.monotonic() - start
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok", "action": "TASKS_CREATED", "new_tasks": 3}
        assert elapsed < 2.0
        assert entered.wait(10), "the worker never started embedding"
        assert backend.status()["vectors"] == 0
    finally:
        gate.set()
    backend.wait()
    status = backend.status()
    assert status["vectors"] == 3 and status["tasks"] == {"pending": 0, "embedded": 3, "failed": 0}
    assert status["worker"] == {"idle": True, "last_error": None, "failures": 0}


def test_a_repeated_import_changes_nothing(project):
    response = project.tasks_created([5, 6, 7])
    assert response.get_json()["new_tasks"] == 1
    project.wait()
    status = project.status()
    assert status["vectors"] == 7 and status["head"]["version"] == 1


def test_a_broken_image_in_an_import_is_reported(project):
    project.webhook("TASKS_CREATED", tasks=[{"id": 20, "data": {"image": "data:image/png;base64,%%%"}}])
    project.wait()
    status = project.status()
    assert status["tasks"]["failed"] == 1
    assert status["task_errors"] == [{"task": 20, "error": "malformed data: URI (bad base64: '%' at position 0 is not a base64 character)"}]


def test_annotation_created_updated_deleted_drive_ratings_and_the_head(project):
    created = project.annotate(100, 2, ["+1"])
    assert created.status_code == 200
    assert created.get_json() == {"status": "ok", "action": "ANNOTATION_CREATED", "target": 1.0}
    project.wait()
    assert ratings(project) == {2: 1.0}
    status = project.status()
    assert status["head"] == {"version": 2, "ratings": 1}
    assert (status["seen"], status["rated_tasks"], status["annotations"]) == (1, 1, 1)

    updated = project.annotate(100, 2, ["-1"], action="ANNOTATION_UPDATED")
    assert updated.get_json()["target"] == -1.0
    project.wait()
    assert ratings(project) == {2: -1.0}
    assert project.status()["head"] == {"version": 3, "ratings": 1}

    deleted = project.webhook("ANNOTATIONS_DELETED", annotations=[{"id": 100}, {"id": 555}])
    assert deleted.get_json() == {"status": "ok", "action": "ANNOTATIONS_DELETED", "deleted": 1}
    project.wait()
    status = project.status()
    assert ratings(project) == {}
    assert (status["seen"], status["annotations"]) == (0, 0)
    assert status["head"] == {"version": 4, "ratings": 0}  # back to the prompt-only head


def test_two_annotators_on_one_task_are_averaged(project):
    project.annotate(100, 3, ["+1"])
    project.wait()
    project.annotate(101, 3, ["0"])
    project.wait()
    assert ratings(project) == {3: 0.5}
    assert project.status()["head"] == {"version": 3, "ratings": 1}


def test_a_skipped_annotation_marks_seen_but_is_not_a_rating(project):
    response = project.annotate(100, 4, None, cancelled=True)
    assert response.status_code == 200 and response.get_json()["target"] is None
    project.wait()
    status = project.status()
    assert (status["seen"], status["rated_tasks"], status["annotations"]) == (1, 0, 1)
    assert status["head"]["version"] == 1
    assert 4 not in [t.task_id for t in project.loop().select_batch(k=6)]


@pytest.mark.parametrize("value, message", [(["maybe"], "unknown choice 'maybe'"), (["+1", "-1"], "exactly one choice")])
def test_a_bad_rating_is_a_422_and_listed_in_status(project, value, message):
    response = project.annotate(100, 5, value)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "bad_rating" and message in body["message"]
    assert body["recorded_as"] == "not a rating"
    status = project.status()
    [error] = status["annotation_errors"]
    assert (error["annotation_id"], error["task_id"]) == (100, 5) and message in error["error"]
    assert status["seen"] == 1 and status["rated_tasks"] == 0


def test_a_number_rating_outside_the_range_is_clamped(backend):
    backend.setup(schema=NUMBER_CONFIG)
    response = backend.annotate(100, 1, 25, schema=NUMBER_CONFIG, control=("score", "number"))
    assert response.get_json()["target"] == 1.0


def test_a_huge_integer_rating_is_not_a_server_error(backend):
    backend.setup(schema=NUMBER_CONFIG)
    response = backend.annotate(100, 1, 10**400, schema=NUMBER_CONFIG, control=("score", "number"))
    assert response.status_code in (200, 422)


def test_a_bad_rating_still_wakes_the_worker(project, monkeypatch):
    notified = []
    monkeypatch.setattr(project.runtime.worker, "notify", lambda p, sync=False: notified.append(p))
    assert project.annotate(100, 5, ["maybe"]).status_code == 422
    assert notified == [1]


def test_an_annotation_without_an_annotation_object_is_a_400(project):
    response = project.webhook("ANNOTATION_CREATED", task={"id": 1, "data": {}})
    assert response.status_code == 400
    assert "no 'annotation' object" in response.get_json()["message"]


def test_tasks_deleted_forgets_vectors_and_ratings(project):
    project.annotate(100, 2, ["+1"])
    response = project.webhook("TASKS_DELETED", tasks=[{"id": 2}, {"id": 3}])
    assert response.status_code == 200
    project.wait()
    status = project.status()
    assert status["vectors"] == 4 and ratings(project) == {}
    assert 2 not in project.loop().store and 3 not in project.loop().store


def test_start_training_requests_a_new_batch(project):
    before = project.runtime.projects.ledger.project(1).batch_rev
    assert project.webhook("START_TRAINING").status_code == 200
    assert project.post("/train", {"project": "1.1"}).get_json() == {"status": "ok"}
    assert project.runtime.projects.ledger.project(1).batch_rev == before + 2


@pytest.mark.parametrize(
    "body, status, expected",
    [
        ({"project": {"id": 1}}, 400, {"error": "bad_request", "message": "webhook body has no 'action'"}),
        ({"action": "PROJECT_UPDATED"}, 200, {"status": "ignored", "reason": "no project in payload"}),
        ({"action": "LABEL_LINK_CREATED", "project": {"id": 1}}, 200,
         {"status": "ok", "action": "LABEL_LINK_CREATED", "ignored": True}),
    ],
)
def test_webhooks_that_are_not_for_us(project, body, status, expected):
    response = project.post("/webhook", body)
    assert response.status_code == status
    assert response.get_json() == expected


def test_reset_seen_endpoint(project):
    project.annotate(100, 1, ["+1"])
    project.annotate(101, 2, None, cancelled=True)
    response = project.post("/projects/1/reset-seen")
    assert response.get_json() == {"reset": 2}
    assert project.status()["seen"] == 0 and ratings(project) == {1: 1.0}


def test_next_batch_endpoint_without_label_studio(project):
    response = project.post("/projects/1/next-batch")
    assert response.status_code == 200
    body = response.get_json()
    assert body["complete"] is True and body["view"] == {}
    assert body["worker"]["last_error"] is None


def test_status_reports_when_each_webhook_arrived(project):
    before = time.time()
    project.annotate(100, 1, ["+1"])
    project.webhook("START_TRAINING")
    arrivals = project.status()["last_webhooks"]
    assert set(arrivals) >= {"ANNOTATION_CREATED", "START_TRAINING"}
    assert before <= arrivals["ANNOTATION_CREATED"] <= arrivals["START_TRAINING"] <= time.time()


def test_ignored_events_do_not_wake_the_worker(project, monkeypatch):
    woken = []
    monkeypatch.setattr(project.runtime.worker, "notify", lambda p, sync=False: woken.append((p, sync)))
    project.webhook("PROJECT_UPDATED")  # Label Studio sends one after every model version switch
    assert woken == []
    project.annotate(100, 1, ["+1"])
    assert woken == [(1, False)]
