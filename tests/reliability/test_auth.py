"""Basic auth guards every endpoint but /health; secrets stay out of logs and bodies (in process).

The end-to-end version of the secrets check, against a real backend process and a
real Label Studio, is in test_secrets_e2e.py.
"""

from __future__ import annotations

import base64
import logging

import pytest

from ml_backend.service.redaction import MASK, SecretRedactor

from .support import LABEL_CONFIG, annotation_created, choice_result, task_payload

USER, PASSWORD = "ls-backend", "pa55-w0rd-9c1e"
API_KEY = "0123456789abcdef0123456789abcdef01234567"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def guarded(make_backend):
    return make_backend(basic_auth_user=USER, basic_auth_pass=PASSWORD, label_studio_api_key=API_KEY)


def every_route(app) -> list[tuple[str, str]]:
    """(method, path) for every rule of the app, so an endpoint added later is covered too."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<int:project>", "1")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return routes


@pytest.mark.parametrize("headers", [{}, basic(USER, "wrong"), basic("someone", PASSWORD), {"Authorization": f"Bearer {PASSWORD}"},
                                     {"Authorization": f"Token {API_KEY}"}],
                         ids=["none", "wrong-password", "wrong-user", "bearer", "label-studio-token"])
def test_every_endpoint_but_health_requires_basic_auth(guarded, headers):
    routes = every_route(guarded.app)
    assert ("POST", "/webhook") in routes and ("GET", "/projects/1/status") in routes
    for method, path in routes + [("GET", "/no-such-route"), ("POST", "/setup/../health")]:
        response = guarded.client.open(path, method=method, json={"project": "1.1"}, headers=headers)
        if path == "/health":
            assert response.status_code == 200
            continue
        assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
        assert response.get_json() == {"error": "unauthorized", "message": "basic auth required"}
        assert response.headers["WWW-Authenticate"] == 'Basic realm="ml-backend"'


def test_the_right_credentials_open_every_endpoint(guarded):
    auth = basic(USER, PASSWORD)
    setup = guarded.client.post("/setup", json={"project": "1.1", "schema": LABEL_CONFIG}, headers=auth)
    assert setup.status_code == 200
    hook = guarded.client.post("/webhook", json=annotation_created(1, 5, task_payload(3), choice_result("+1")), headers=auth)
    assert hook.status_code == 200
    assert guarded.client.get("/projects/1/status", headers=auth).status_code == 200


def test_webhooks_are_told_to_carry_the_basic_auth_header(guarded):
    """Label Studio's webhooks carry no auth by default: the gateway adds this header to them."""
    assert guarded.settings.webhook_auth_headers == basic(USER, PASSWORD)
    assert guarded.runtime.gateway._webhook_headers == basic(USER, PASSWORD)


def test_secrets_never_reach_a_response_body(guarded):
    auth = basic(USER, PASSWORD)
    bodies = [
        guarded.client.post("/setup", json={"project": "1.1", "schema": "<View/>", "access_token": "setup-tok-77aa"},
                            headers=auth),
        guarded.client.post("/webhook", data="{bad", content_type="application/json", headers=auth),
        guarded.client.post("/webhook", json={"action": "X", "project": {"id": "Token " + API_KEY}}, headers=auth),
        guarded.client.post("/predict", json={"project": API_KEY}, headers=auth),
        guarded.client.get("/projects/9/status", headers=auth),
        guarded.client.post("/webhook", json={}, headers=basic(USER, "nope")),
    ]
    for response in bodies:
        text = response.get_data(as_text=True)
        for secret in (API_KEY, PASSWORD, "setup-tok-77aa"):
            assert secret not in text, f"{response.status_code}: {text}"


def test_the_redactor_masks_known_secrets_and_authorization_values_in_logs(caplog):
    redactor = SecretRedactor()
    redactor.add_secrets([API_KEY, PASSWORD, "short", None])
    handler = logging.StreamHandler()
    handler.addFilter(redactor)
    logger = logging.getLogger("reliability.redaction")
    logger.addHandler(handler)
    caplog.handler.addFilter(redactor)
    try:
        logger.warning("calling with key %s", API_KEY)
        logger.warning("header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig")
        try:
            raise RuntimeError(f"Illegal header value b'Token {API_KEY}' and password {PASSWORD}")
        except RuntimeError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
        caplog.handler.removeFilter(redactor)
    text = caplog.text
    assert API_KEY not in text and PASSWORD not in text and "eyJhbGciOiJIUzI1NiJ9" not in text
    assert text.count(MASK) >= 4
    assert redactor.redact("short words stay") == "short words stay"  # secrets under 6 characters are not masked

