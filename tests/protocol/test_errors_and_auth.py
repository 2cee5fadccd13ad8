"""Malformed requests, unknown projects, basic auth, body size, and secrets never echoed."""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.conftest import CHOICES_CONFIG, image_uri

POST_ROUTES = ["/setup", "/predict", "/webhook", "/train"]


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize(
    "data, content_type",
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ('"text"', "application/json"),
     ("5", "application/json"), ("", "application/json"), ('{"project": 1}', "text/plain")],
    ids=["malformed", "array", "string", "number", "empty", "not-json-content-type"],
)
def test_bodies_that_are_not_json_objects_are_a_400(backend, path, data, content_type):
    response = backend.post(path, data=data, content_type=content_type)
    assert response.status_code == 400
    assert response.get_json() == {"error": "bad_request", "message": "request body must be a JSON object"}


@pytest.mark.parametrize(
    "method, path",
    [("get", "/projects/77/status"), ("post", "/projects/77/next-batch"), ("post", "/projects/77/reset-seen"),
     ("post", "/projects/77/retry-failed")],
)
def test_unknown_project_is_a_404(backend, method, path):
    response = getattr(backend, method)(path)
    assert response.status_code == 404
    assert response.get_json() == {"error": "unknown_project", "message": "project 77 is not connected to this backend"}


@pytest.mark.parametrize("digit", ["\u0662", "\uff12"])  # Arabic-Indic and fullwidth 2
def test_project_ids_in_paths_are_ascii_digits(backend, digit):
    assert backend.get(f"/projects/{digit}/status").status_code == 404


def test_unknown_route_is_a_json_404(backend):
    response = backend.get("/nope")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_wrong_method_is_a_json_405(backend):
    response = backend.get("/predict")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"


def test_train_for_an_unknown_project_is_a_404(backend):
    response = backend.post("/train", {"project": "77.1"})
    assert response.status_code == 404 and response.get_json()["error"] == "unknown_project"


@pytest.fixture
def guarded(make_backend):
    return make_backend(basic_auth_user="ls", basic_auth_pass="pa55word")


PROTECTED = [
    ("post", "/setup"), ("post", "/predict"), ("post", "/webhook"), ("post", "/train"),
    ("get", "/projects/1/status"), ("post", "/projects/1/next-batch"), ("post", "/projects/1/reset-seen"),
    ("post", "/projects/1/retry-failed"),
]


@pytest.mark.parametrize("method, path", PROTECTED)
@pytest.mark.parametrize("headers", [{}, basic("ls", "wrong"), basic("other", "pa55word"), {"Authorization": "Bearer pa55word"}],
                         ids=["none", "wrong-password", "wrong-user", "bearer"])
def test_basic_auth_guards_every_endpoint_but_health(guarded, method, path, headers):
    response = getattr(guarded.client, method)(path, json={"project": "1.1"}, headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"error": "unauthorized", "message": "basic auth required"}
    assert response.headers["WWW-Authenticate"] == 'Basic realm="ml-backend"'


def test_health_needs_no_credentials(guarded):
    response = guarded.get("/health")
    assert response.status_code == 200 and response.get_json()["status"] == "UP"


def test_basic_auth_with_the_right_credentials(guarded):
    auth = basic("ls", "pa55word")
    assert guarded.setup(headers=auth).get_json() == {"model_version": "clip-head-v0"}
    predicted = guarded.predict([(1, {"image": image_uri(1)})], headers=auth)
    assert predicted.status_code == 200 and len(predicted.get_json()["results"]) == 1
    assert guarded.get("/projects/1/status", headers=auth).get_json()["project"] == 1
    hook = guarded.client.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 1}, "tasks": []},
                               headers=auth)
    assert hook.get_json() == {"status": "ok", "action": "TASKS_CREATED", "new_tasks": 0}


def test_an_oversized_body_is_a_413(make_backend):
    small = make_backend(max_request_bytes=4096)
    small.setup()
    big = json.dumps({"tasks": [{"id": 1, "data": {"image": "x" * 8000}}], "project": "1.1"})
    response = small.post("/predict", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"
    assert small.predict([(1, {"image": image_uri(1)})]).status_code == 200  # a small body still passes


def test_the_api_key_and_tokens_never_appear_in_a_response(make_backend):
    secret, setup_token = "sk-SECRET-4f9a1c", "setup-token-XYZ"
    backend = make_backend(label_studio_api_key=secret, basic_auth_user="ls", basic_auth_pass="pa55word")
    auth = basic("ls", "pa55word")
    backend.get("/health")
    backend.setup(headers=auth)
    backend.setup(project=2, schema="<View><Image name='i' value='$image'/></View>", headers=auth)
    backend.setup(extra_params='{"strategy": "nope"}', headers=auth)
    backend.setup(extra_params={"prompt": "a red square"}, headers=auth)
    backend.post("/webhook", {"action": "TASKS_CREATED", "project": {"id": 1, "label_config": CHOICES_CONFIG},
                              "tasks": [{"id": t, "data": {"image": image_uri(t)}} for t in (1, 2, 3)]}, headers=auth)
    backend.runtime.worker.wait_idle(1, 30)
    backend.predict([(1, {"image": image_uri(1)}), (9, {"image": "http://10.0.0.1/x.png"})], headers=auth)
    annotation = {"id": 5, "task": 1, "result": [{"from_name": "relevance", "value": {"choices": ["??"]}}]}
    backend.post("/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 1}, "task": {"id": 1, "data": {}},
                              "annotation": annotation}, headers=auth)
    backend.post("/train", {"project": "1.1"}, headers=auth)
    backend.get("/projects/1/status", headers=auth)
    backend.post("/projects/1/next-batch", headers=auth)
    backend.post("/projects/1/reset-seen", headers=auth)
    backend.get("/projects/1/status")
    backend.post("/predict", data="{", content_type="application/json", headers=auth)

    assert len(backend.responses) >= 14
    assert {r.status_code for r in backend.responses} >= {200, 400, 401, 422}
    for response in backend.responses:
        text = response.get_data(as_text=True) + json.dumps(dict(response.headers))
        assert secret not in text, response.request.path
        assert setup_token not in text, response.request.path
        assert "pa55word" not in text, response.request.path


def test_each_request_is_logged_on_one_line_with_its_duration(backend, caplog):
    """gunicorn wrote the access log; the app does now, and a decoded %0A must not forge a second line."""
    with caplog.at_level("INFO", logger="ml_backend.access"):
        backend.get("/health")
        backend.get("/nope%0A127.0.0.1%20%22GET%20/forged")
    lines = [r.getMessage() for r in caplog.records if r.name == "ml_backend.access"]
    assert re.fullmatch(r'\S+ "GET /health HTTP/1.1" 200 \d+ "[^"]*" \d+\.\d{6}', lines[0])
    assert "\n" not in lines[1] and '"GET /nope\\x0a127.0.0.1 \\"GET /forged HTTP/1.1" 404' in lines[1]
