"""Secure by default: a backend reachable beyond loopback requires credentials, and the demo
registers the ones it generates in the project's ML connection (issue 12).

The backend binds 0.0.0.0 by default, which made every hostile input of issue 12 reachable
by anyone who could reach the port, with no authentication.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from ml_backend.adapters.ls_admin import admin_client, upload_images
from ml_backend.service.settings import ServiceSettings
from scripts.demo import BACKEND_USER, DEMO_TITLE, bootstrap, make_shape_images
from scripts.servers import ROOT

from .e2e_support import status, wait_for


@pytest.mark.parametrize("host, settings, refused", [
    ("0.0.0.0", {}, True),
    ("::", {}, True),
    ("", {}, True),
    ("10.1.2.3", {}, True),
    ("backend.internal", {}, True),
    ("0.0.0.0", {"basic_auth_user": "u"}, True),  # a user without a password is no credential
    ("0.0.0.0", {"basic_auth_user": "u", "basic_auth_pass": "p4ss-word"}, False),
    ("0.0.0.0", {"allow_unauthenticated": True}, False),
    ("127.0.0.1", {}, False),
    ("127.0.0.2", {}, False),
    ("::1", {}, False),
    ("localhost", {}, False),
])
def test_an_open_port_needs_credentials_unless_the_admin_opts_out(host, settings, refused):
    problem = ServiceSettings(host=host, **settings).exposure_problem()
    assert (problem is not None) is refused
    if refused:
        assert f"HOST={host}" in problem and "BASIC_AUTH_USER and BASIC_AUTH_PASS" in problem


@pytest.mark.parametrize("user, password, refused", [
    ("ml-backend", "p4ss-word", None),
    ("ml-backend", "pass:with:colons", None),  # only the first colon separates
    (None, None, None),
    ("ml:backend", "p4ss-word", "holds ':'"),  # the backend started, then refused every request
    ("ml-backend", "pässwörd", "must be ASCII"),  # Label Studio's connect failed with 401
    ("ml-backend", None, "without BASIC_AUTH_PASS"),  # Label Studio's connect answered 500
    (None, "p4ss-word", "without BASIC_AUTH_USER"),
])
def test_credentials_label_studio_could_never_send_are_refused_at_start(user, password, refused):
    problem = ServiceSettings(host="127.0.0.1", basic_auth_user=user, basic_auth_pass=password).credentials_problem()
    assert (problem is None) if refused is None else (refused in problem)
    if problem:
        assert "p4ss-word" not in problem and "pässwörd" not in problem


def test_the_service_refuses_to_start_on_all_interfaces_without_credentials(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASIC_AUTH", "ALLOW_UNAUTH"))}
    env.update({"HOST": "0.0.0.0", "PORT": "1", "MODEL_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)})
    done = subprocess.run([sys.executable, "-m", "ml_backend.service"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "HOST=0.0.0.0 makes the backend reachable beyond this machine" in done.stderr
    assert not any(tmp_path.iterdir())  # refused before opening anything


@pytest.mark.e2e
def test_the_demo_gives_the_backend_credentials_and_registers_them_in_the_connection(label_studio, start_backend, tmp_path):
    auth = (BACKEND_USER, "demo-generated-pa55")
    backend = start_backend(label_studio.url, label_studio.api_token, BASIC_AUTH_USER=auth[0], BASIC_AUTH_PASS=auth[1])
    project, _ = bootstrap(label_studio, backend.url, {}, basic_auth=auth)

    client = admin_client(label_studio.url, label_studio.api_token)
    [connection] = [c for c in client.ml.list(project=project) if c.url == backend.url]
    assert connection.auth_method == "BASIC_AUTH" and connection.basic_auth_user == BACKEND_USER
    assert client.projects.get(id=project).title == DEMO_TITLE
    # Label Studio reached /setup with the credentials; without them, nothing is served.
    assert requests.get(f"{backend.url}/projects/{project}/status", timeout=10).status_code == 401
    before = wait_for(lambda: (s := status(backend, project, auth=auth))["worker"]["idle"] and s["tasks"]["embedded"],
                      timeout_s=180, what="the demo project embedded")
    # A new import arrives by webhook, which carries the credentials (the next task count check is 30 s away).
    upload_images(label_studio.url, label_studio.api_token, project, make_shape_images(tmp_path / "more", per_kind=1)[:3])
    wait_for(lambda: status(backend, project, auth=auth)["tasks"]["embedded"] == before + 3, timeout_s=20,
             what="the new images embedded through a webhook that carries the credentials")
