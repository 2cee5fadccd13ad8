"""The bad-input catalogue: each bad input gets a clear error, and nothing else is lost.

A clear error is either a 4xx with a message, or the task recorded as failed with
its reason in the log and in /projects/<id>/status. After each, the service keeps
embedding, rating and refitting the good input around it.
"""

from __future__ import annotations

import gzip
import logging

import pytest

from .support import (
    NO_RATING_CONFIG, NUMBER_CONFIG, Reply, annotation_created, choice_result, data_uri, dumps,
    gzip_bomb, image_uri, number_result, png_bytes, png_bomb, task_payload, tasks_created,
)

P = 1


@pytest.fixture
def backend(make_backend, image_host):
    backend = make_backend(image_hosts="127.0.0.1", fetch_timeout_s=0.5, max_image_bytes=200_000,
                           max_image_pixels=10_000_000)
    assert backend.setup(P).status_code == 200
    return backend


def test_every_bad_image_fails_alone_with_its_reason(backend, image_host, caplog):
    host = image_host
    host.routes.update({
        "/good.png": Reply(body=png_bytes(17)),
        "/notes.txt": Reply(body=b"these are not the pixels you are looking for", headers={"Content-Type": "text/plain"}),
        "/slow.png": Reply(body=png_bytes(5), delay_s=3.0),
        "/drip.png": Reply(body=png_bytes(6)[:200], drip_s=0.02),
        "/huge.png": Reply(body=b"\x89PNG" + b"\0" * 300_000),
        "/redirect.png": Reply(status=302, headers={"Location": "http://10.0.0.1/internal.png"}),
        "/gzip.png": Reply(body=gzip_bomb(20 * 2**20), headers={"Content-Encoding": "gzip"}),
        # Sent compressed though the fetcher asks for identity: a browser shows it, so it embeds.
        "/gzipped.png": Reply(body=gzip.compress(png_bytes(23)), headers={"Content-Encoding": "gzip"}),
    })
    cases = {
        1: (image_uri(1), None),
        17: (host.url("/good.png"), None),
        23: (host.url("/gzipped.png"), None),
        2: (data_uri(png_bytes(2)[:120] + b"garbage" * 20), "corrupt image"),
        3: (host.url("/notes.txt"), "not a readable image"),
        4: (host.url("/missing.png"), "HTTP 404"),
        5: (host.url("/slow.png"), "timed out"),
        6: (host.url("/drip.png"), "timed out"),
        7: (data_uri(png_bomb(5_000, 5_000)), "5000x5000 pixels, limit 10000000"),
        22: (data_uri(png_bomb(100_000, 100_000)), "too large to decode safely"),
        8: ("data:image/png;base64", "malformed data: URI (no comma)"),
        9: ("data:image/png;base64,%%%", "malformed data: URI (bad base64: '%' at position 0"),
        11: ("file:///etc/passwd", "unsupported reference scheme 'file'"),
        12: ("ftp://example.com/a.png", "unsupported reference scheme 'ftp'"),
        13: ("gopher://example.com/", "unsupported reference scheme 'gopher'"),
        14: (host.url("/huge.png"), "limit 200000"),
        15: ("http://169.254.169.254/latest/meta-data/", "not in the image host allow-list (IMAGE_HOSTS: add it there to allow it)"),
        16: (host.url("/redirect.png"), "'10.0.0.1' is not Label Studio and not in the image host allow-list"),
        18: (host.url("/gzip.png"), "inflates (gzip) to more than 200000 bytes"),
        20: ("data:,", "not a readable image"),
        21: ("http://[::1/a.png", "malformed"),
    }
    tasks = [task_payload(t, {"image": ref}) for t, (ref, _) in cases.items()]
    tasks += [task_payload(10, {"picture": image_uri(10)}), task_payload(19, {"image": 12345})]
    with caplog.at_level(logging.WARNING, logger="ml_backend"):
        response = backend.webhook(tasks_created(P, tasks))
        assert response.status_code == 200 and response.get_json()["new_tasks"] == len(tasks)
        backend.wait(P)

    status = backend.status(P)
    errors = {e["task"]: e["error"] for e in status["task_errors"]}
    expected = {t: message for t, (_, message) in cases.items() if message}
    expected.update({10: "task has no image in field 'image'", 19: "task has no image in field 'image'"})
    assert status["tasks"] == {"pending": 0, "embedded": 3, "failed": len(expected)}
    for task, message in expected.items():
        assert message in errors[task], f"task {task}: {errors.get(task)!r}"
        assert f"task {task}: " in caplog.text  # the reason is in the log too
    # Transient failures (timeouts) were retried before giving up; permanent ones were not.
    assert sum(1 for path, _ in image_host.requests if path == "/slow.png") == 3
    assert sum(1 for path, _ in image_host.requests if path == "/missing.png") == 1

    # The service keeps working: a new good task embeds and a rating refits the head.
    assert backend.webhook(tasks_created(P, [task_payload(30)])).status_code == 200
    assert backend.webhook(annotation_created(P, 900, task_payload(30), choice_result("+1"))).status_code == 200
    backend.wait(P)
    status = backend.status(P)
    assert status["tasks"]["embedded"] == 4 and status["head"]["ratings"] == 1


@pytest.mark.parametrize(
    "value, message",
    [("NaN", "must be finite"), ("Infinity", "must be finite"), ('"high"', "must be a number, got str"),
     ("true", "must be a number, got bool"), ("null", "must be a number")],
    ids=["nan", "infinity", "string", "bool", "null"],
)
def test_a_rating_that_is_not_a_number_is_a_422_and_still_marks_the_task_seen(make_backend, value, message):
    backend = make_backend()
    backend.setup(P, NUMBER_CONFIG)
    backend.webhook(tasks_created(P, [task_payload(1), task_payload(2)], NUMBER_CONFIG))
    # Raw JSON: NaN, Infinity and 400-digit integers are what a hostile or broken client can send.
    body = dumps(annotation_created(P, 100, task_payload(1), number_result("__VALUE__"), NUMBER_CONFIG))
    response = backend.raw("/webhook", body.replace('"__VALUE__"', value))
    assert response.status_code == 422
    assert response.get_json()["error"] == "bad_rating" and message in response.get_json()["message"]
    assert backend.webhook(annotation_created(P, 101, task_payload(2), number_result(0.5), NUMBER_CONFIG)).status_code == 200
    backend.wait(P)
    status = backend.status(P)
    assert [e["annotation_id"] for e in status["annotation_errors"]] == [100]
    assert (status["seen"], status["rated_tasks"], status["annotations"]) == (2, 1, 2)
    assert status["head"]["ratings"] == 1


@pytest.mark.parametrize("value, target", [("25", 1.0), ("-3.5", -1.0), ("1" + "0" * 400, 1.0), ("-" + "9" * 400, -1.0)],
                         ids=["above", "below", "400-digit-int", "400-digit-negative-int"])
def test_an_out_of_range_rating_is_clamped_and_logged(make_backend, caplog, value, target):
    backend = make_backend()
    backend.setup(P, NUMBER_CONFIG)
    body = dumps(annotation_created(P, 100, task_payload(1), number_result("__VALUE__"), NUMBER_CONFIG))
    with caplog.at_level(logging.WARNING):
        response = backend.raw("/webhook", body.replace('"__VALUE__"', value))
    assert response.status_code == 200 and response.get_json()["target"] == target
    assert "outside -1.0..1.0, clamped" in caplog.text


@pytest.mark.parametrize("choices, message", [(["banana"], "unknown choice 'banana'"), (["+1", "-1"], "exactly one choice"),
                                              ([], "exactly one choice")])
def test_a_bad_choice_is_a_422(make_backend, choices, message):
    backend = make_backend()
    backend.setup(P)
    result = [{"from_name": "relevance", "to_name": "image", "type": "choices", "value": {"choices": choices}}]
    response = backend.webhook(annotation_created(P, 100, task_payload(1), result))
    assert response.status_code == 422 and message in response.get_json()["message"]


def test_an_annotation_for_an_unknown_task_is_recorded_and_the_task_embedded(backend):
    response = backend.webhook(annotation_created(P, 100, task_payload(41), choice_result("+1")))
    assert response.status_code == 200 and response.get_json()["target"] == 1.0
    backend.wait(P)
    status = backend.status(P)
    assert status["tasks"]["embedded"] == 1 and status["head"]["ratings"] == 1 and status["seen"] == 1


def test_an_annotation_without_task_data_waits_for_its_task(backend):
    response = backend.webhook(annotation_created(P, 100, 42, choice_result("-1")))
    assert response.status_code == 200
    assert "task 42 is unknown here" in response.get_json()["note"]
    backend.wait(P)
    assert backend.status(P)["annotations"] == 1  # recorded, not lost
    # When the task arrives (import webhook or the sync from Label Studio), it is seen and its rating counts.
    backend.webhook(tasks_created(P, [task_payload(42), task_payload(43)]))
    backend.wait(P)
    status = backend.status(P)
    assert status["seen"] == 1 and status["head"]["ratings"] == 1
    assert 42 not in [t.task_id for t in backend.runtime.projects.get(P).select_batch()]


@pytest.mark.parametrize("path", ["/setup", "/predict", "/webhook", "/train"])
@pytest.mark.parametrize(
    "data, content_type",
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ("", "application/json"),
     ('{"action": "TASKS_CREATED"}', "text/plain"), ("[" * 100_000, "application/json"),
     (b"\xff\xfe\x00garbage", "application/json")],
    ids=["malformed", "array", "empty", "wrong-content-type", "nested-100k-deep", "binary"],
)
def test_malformed_bodies_are_a_400(backend, path, data, content_type):
    response = backend.raw(path, data, content_type)
    assert response.status_code == 400
    assert response.get_json() == {"error": "bad_request", "message": "request body must be a JSON object"}


def test_an_oversized_body_is_a_413_and_small_ones_still_pass(make_backend):
    backend = make_backend(max_request_bytes=4096)
    backend.setup(P)
    big = tasks_created(P, [task_payload(t) for t in range(1, 30)])
    response = backend.raw("/webhook", dumps(big))
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"
    assert "limit of 4096 bytes" in response.get_json()["message"]
    assert backend.webhook(tasks_created(P, [task_payload(1)])).status_code == 200


@pytest.mark.parametrize(
    "body, message",
    [({"project": {"id": P}}, "no 'action'"),
     ({"action": "ANNOTATION_CREATED", "project": {"id": P}}, "no 'annotation' object"),
     ({"action": "ANNOTATION_CREATED", "project": {"id": P}, "annotation": {"id": "7", "task": 1}}, "annotation id"),
     ({"action": "ANNOTATION_CREATED", "project": {"id": P}, "annotation": {"id": 7}}, "task id"),
     ({"action": "TASKS_CREATED", "project": {"id": P}, "tasks": {"id": 1}}, "'tasks' must be a list"),
     ({"action": "TASKS_CREATED", "project": {"id": "2²"}, "tasks": []}, "cannot read a project id")],
    ids=["no-action", "no-annotation", "string-annotation-id", "no-task", "tasks-not-a-list", "superscript-project"],
)
def test_malformed_webhooks_are_a_400_with_the_reason(backend, body, message):
    response = backend.webhook(body)
    assert response.status_code == 400 and message in response.get_json()["message"]


def test_one_bad_task_in_an_import_does_not_cost_the_others(backend):
    tasks = [task_payload(1), {"id": 2}, "nonsense", task_payload(3), {"id": "4", "data": {}}]
    response = backend.webhook(tasks_created(P, tasks))
    assert response.status_code == 200
    body = response.get_json()
    assert body["new_tasks"] == 2 and [i["index"] for i in body["invalid_tasks"]] == [1, 2, 4]
    backend.wait(P)
    assert backend.status(P)["tasks"]["embedded"] == 2


def test_a_label_config_without_a_rating_control_is_a_clear_error(backend):
    response = backend.setup(2, NO_RATING_CONFIG)
    assert response.status_code == 422
    assert response.get_json()["error"] == "bad_config"
    assert "no usable rating control" in response.get_json()["message"]
    assert "no usable rating control" in backend.get("/health").get_json()["project_errors"]["2"]
    hook = backend.webhook(annotation_created(2, 5, task_payload(1), choice_result("+1"), NO_RATING_CONFIG))
    assert hook.status_code == 422 and "no usable rating control" in hook.get_json()["message"]
    # The other project is unaffected.
    assert backend.webhook(annotation_created(P, 6, task_payload(1), choice_result("+1"))).status_code == 200


@pytest.mark.parametrize("method, path, body", [
    ("get", "/projects/999/status", None), ("post", "/projects/999/next-batch", None),
    ("post", "/projects/999/reset-seen", None), ("post", "/projects/999/retry-failed", None),
    ("post", "/train", {"project": "999.1700000000"}),
])
def test_an_unknown_project_is_a_404(backend, method, path, body):
    response = getattr(backend.client, method)(path, json=body)
    assert response.status_code == 404
    assert response.get_json() == {"error": "unknown_project", "message": "project 999 is not connected to this backend"}


def test_a_webhook_for_a_project_without_a_label_config_is_a_422(backend):
    setup = backend.post("/setup", {"project": "77.1700000000", "extra_params": {}})  # connected, no config yet
    assert setup.status_code == 422 and "no label config yet" in setup.get_json()["message"]
    response = backend.webhook({"action": "ANNOTATION_CREATED", "project": {"id": 77},
                                "annotation": {"id": 1, "task": 1, "result": choice_result("+1")}})
    assert response.status_code == 422 and "no label config yet" in response.get_json()["message"]

