"""Admin calls never starve webhooks (issue 12, finding 5): a real gunicorn process.

`POST /projects/<id>/next-batch` waits (up to 30 s) for the worker; while the worker backs
off (Label Studio unreachable), 20 such calls held all 16 request threads and a webhook
waited 27 s, where Label Studio gives it 1 s. Now a few may wait; the others answer at once.
"""

from __future__ import annotations

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
