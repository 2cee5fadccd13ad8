"""/setup tokens are checked with a real Label Studio before use (issue 12, findings 3 and 4).

Without LABEL_STUDIO_API_KEY the backend uses the token Label Studio sends in /setup. Anyone
who can reach /setup can send one: the first caller used to pin its token until restart, and
every token went into the log redactor unchecked, so a caller could make any string vanish
from the logs. The backend here is the Flask app over a real runtime whose Label Studio is
the real one the fixtures start.
"""

from __future__ import annotations

import pytest

from ml_backend.adapters.ls_admin import admin_client, create_project
from ml_backend.service.app import create_app
from ml_backend.service.redaction import MASK, redactor
from ml_backend.service.runtime import Runtime
from ml_backend.service.settings import ServiceSettings

from .support import LABEL_CONFIG

pytestmark = pytest.mark.e2e

CALLER_IP = "203.0.113.77"


@pytest.fixture
def backend(label_studio, tmp_path, tiny_clip_path, embedder):
    """No LABEL_STUDIO_API_KEY: the backend depends on the token /setup sends."""
    settings = ServiceSettings(model_dir=tmp_path / "model", clip_model=str(tiny_clip_path),
                               label_studio_url=label_studio.url)
    runtime = Runtime.build(settings, embedders={"image": embedder}, start_worker=False)
    yield runtime, create_app(settings, runtime).test_client()
    runtime.close()


def setup(client, project: int, token: str):
    return client.post("/setup", json={"project": f"{project}.1700000000", "schema": LABEL_CONFIG,
                                       "access_token": token, "hostname": "http://127.0.0.1:1", "extra_params": {}})


def test_a_setup_token_is_used_and_redacted_only_once_label_studio_accepts_it(label_studio, backend):
    runtime, client = backend
    project = create_project(admin_client(label_studio.url, label_studio.api_token), "setup tokens", LABEL_CONFIG)

    # First caller, a made-up token (here: the caller's own IP, to hide it from the logs).
    refused = setup(client, project, CALLER_IP)
    assert refused.status_code == 403 and refused.get_json()["error"] == "token_refused"
    assert not runtime.gateway.has_credentials
    assert redactor.redact(f"request from {CALLER_IP}") == f"request from {CALLER_IP}"

    # Label Studio's own token: used, and from now on masked in logs.
    assert setup(client, project, label_studio.api_token).status_code == 200
    assert runtime.gateway.uses_key(label_studio.api_token)
    assert redactor.redact(f"token {label_studio.api_token}") == f"token {MASK}"

    # A later bogus token does not replace it.
    assert setup(client, project, "f" * 40).status_code == 403
    assert runtime.gateway.uses_key(label_studio.api_token)
    assert runtime.gateway.project_exists(project)  # the token in use works


def test_setup_for_a_project_label_studio_does_not_have_creates_nothing(label_studio, backend):
    runtime, client = backend
    response = setup(client, 987_654, label_studio.api_token)
    assert response.status_code == 404
    assert f"Label Studio at {label_studio.url} has no project 987654" in response.get_json()["message"]
    assert runtime.projects.project_ids() == []
