"""The admin scripts (`scripts.next_batch`, `scripts.connect_project`) given bad arguments or odd
answers: a usage error or an `error: ...` line and a non-zero exit, never a traceback, and never a
request that changes something the admin did not ask for."""

from __future__ import annotations

import json

import pytest

from scripts import connect_project, next_batch
from tests.stubs import LocalServer, Reply

VIEW = {"id": 3, "title": "Next batch (ML)", "model_version": "clip-head-v2", "task_ids": [5, 2], "scores": [0.9, 0.4]}


@pytest.fixture
def backend():
    server = LocalServer()
    yield server
    server.close()


def unused_port_url() -> str:
    server = LocalServer()
    server.close()
    return server.origin


@pytest.mark.parametrize("script", [next_batch, connect_project])
@pytest.mark.parametrize("project", ["0", "-3", "three"])
def test_a_project_id_that_cannot_be_one_is_a_usage_error(script, project, capsys):
    with pytest.raises(SystemExit) as stopped:
        script.main(["--project", project, "--api-key", "k"] if script is connect_project else ["--project", project])
    assert stopped.value.code == 2 and "argument --project" in capsys.readouterr().err


def test_next_batch_prints_the_batch(backend, capsys):
    backend.routes["POST /projects/1/next-batch"] = Reply(body=json.dumps({"complete": True, "view": VIEW}).encode())
    assert next_batch.main(["--project", "1", "--backend-url", backend.origin]) == 0
    out = capsys.readouterr().out
    assert "view 3 (Next batch (ML)), model clip-head-v2" in out and "task        5  score 0.900" in out


def test_next_batch_takes_a_202_as_requested_with_the_backends_message(backend, capsys):
    body = {"complete": False, "view": VIEW, "message": "4 admin requests are already waiting: the new batch is requested"}
    backend.routes["POST /projects/1/next-batch"] = Reply(status=202, body=json.dumps(body).encode())
    assert next_batch.main(["--project", "1", "--backend-url", backend.origin]) == 0
    captured = capsys.readouterr()
    assert "already waiting" in captured.err and "task        2  score 0.400" in captured.out


@pytest.mark.parametrize("reply, reason", [
    (Reply(status=404, body=b'{"error": "unknown project"}'), "the backend answered 404"),
    (Reply(status=200, body=b"<html>a proxy page</html>"), "no answer from the backend"),
])
def test_next_batch_reports_an_answer_it_cannot_use(backend, capsys, reply, reason):
    backend.routes["POST /projects/1/next-batch"] = reply
    assert next_batch.main(["--project", "1", "--backend-url", backend.origin]) == 1
    assert reason in capsys.readouterr().err


@pytest.mark.parametrize("url", [unused_port_url(), "localhost:9090"])
def test_next_batch_without_a_backend_to_reach_says_so(url, capsys):
    assert next_batch.main(["--project", "1", "--backend-url", url]) == 1
    assert "error: no answer from the backend" in capsys.readouterr().err


@pytest.mark.parametrize("args, reason", [
    (["--project", "3", "--params", "[" * 100_000], "--params is not valid JSON"),
    (["--project", "3", "--ls-url", "http://[::1"], "cannot reach Label Studio at http://[::1"),
    (["--create", "T", "--label-config", "{bad_utf8}"], "cannot read --label-config"),
])
def test_connect_project_refuses_bad_arguments_before_changing_anything(backend, tmp_path, capsys, args, reason):
    bad_utf8 = tmp_path / "config.xml"
    bad_utf8.write_bytes(b"\xff\xfe<View/>")
    args = [a.replace("{bad_utf8}", str(bad_utf8)) for a in args]
    ls_url = [] if "--ls-url" in args else ["--ls-url", backend.origin]
    code = connect_project.main([*ls_url, "--api-key", "k", "--backend-url", "http://127.0.0.1:1", *args])
    assert code == 2 and reason in capsys.readouterr().err
    assert not any(path.startswith(("POST", "PATCH", "DELETE")) for path, _ in backend.requests)
