"""Admin calls never starve webhooks (issue 12, finding 5): a real backend process.

`POST /projects/<id>/next-batch` waits (up to 30 s) for the worker; while the worker backs
off (Label Studio unreachable), 20 such calls held all 16 request threads and a webhook
waited 27 s, where Label Studio gives it 1 s. Now a few may wait; the others answer at once.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from .e2e_support import post
from .support import LABEL_CONFIG, task_payload, tasks_created

pytestmark = pytest.mark.e2e

P = 1


def test_twenty_waiting_admin_calls_leave_webhooks_answering_within_a_second(start_backend):
    # Label Studio is unreachable (nothing listens on port 9), so the worker backs off and
    # next-batch cannot finish: each call waits as long as it is allowed to.
    backend = start_backend("http://127.0.0.1:9", "0" * 40, THREADS="16")
    assert post(backend, "/setup", {"project": f"{P}.1", "schema": LABEL_CONFIG, "extra_params": {}}).status_code == 200

    answers: list[int] = []

    def admin() -> None:
        try:
            answers.append(requests.post(f"{backend.url}/projects/{P}/next-batch", timeout=40).status_code)
        except requests.RequestException:
            answers.append(0)

    for _ in range(20):
        threading.Thread(target=admin, daemon=True).start()  # not joined: four of them wait 30 s
    time.sleep(1.0)  # all twenty are in: those that may wait are waiting
    seconds = []
    for task in range(1, 6):
        started = time.perf_counter()
        response = requests.post(f"{backend.url}/webhook", json=tasks_created(P, [task_payload(task)]), timeout=5)
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200
    assert max(seconds) < 1.0, seconds
    assert answers.count(202) >= 12, answers  # answered at once: the batch is requested, not waited for


@pytest.mark.parametrize("stalled_at", ["headers", "body"])
def test_forty_half_sent_requests_leave_every_endpoint_answering(start_backend, stalled_at):
    """Sixteen connections that sent part of a request and then nothing held all 16 request threads:
    /health, Label Studio's webhooks and /setup timed out until the clients let go (fuzz pass 5)."""
    backend = start_backend("http://127.0.0.1:9", "0" * 40, THREADS="16")
    host, port = backend.url.removeprefix("http://").split(":")
    partial = {"headers": b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Ty",
               "body": b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 1000\r\n\r\n{"}[stalled_at]
    stalled = []
    try:
        for _ in range(40):
            connection = socket.create_connection((host, int(port)), timeout=5)
            connection.sendall(partial)
            stalled.append(connection)
        time.sleep(1.0)
        started = time.perf_counter()
        assert requests.get(f"{backend.url}/health", timeout=5).status_code == 200
        assert post(backend, "/setup", {"project": f"{P}.1", "schema": LABEL_CONFIG, "extra_params": {}}).status_code == 200
        assert requests.post(f"{backend.url}/webhook", json=tasks_created(P, [task_payload(1)]), timeout=5).status_code == 200
        assert time.perf_counter() - started < 5.0
    finally:
        for connection in stalled:
            connection.close()
