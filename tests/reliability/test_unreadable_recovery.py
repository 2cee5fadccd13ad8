"""Tasks that could not be read are read again once what made them fail is fixed.

A failure that is not an outage (a host not in IMAGE_HOSTS, a missing file) marks the task
failed at once, and the status says why. The admin then fixes it: restarts the backend with a
new setting, or fixes the file in Label Studio. Before, the task stayed failed until it was
deleted and imported again. Real runtimes, a real image server on loopback.
"""

from __future__ import annotations

from .support import InProcessBackend, Reply, png_bytes, task_payload, tasks_created

P = 1


def states(backend) -> dict:
    return backend.status(P)["tasks"]


def test_a_host_allowed_after_a_restart_lets_its_images_be_read(tmp_path, tiny_clip_path, embedder, image_host):
    image_host.routes["/a.png"] = Reply(body=png_bytes(1))
    model_dir = tmp_path / "model"
    backend = InProcessBackend(model_dir, tiny_clip_path, embedder)
    try:
        assert backend.setup(P).status_code == 200
        assert backend.webhook(tasks_created(P, [task_payload(1), task_payload(2, {"image": image_host.url("/a.png")})])).status_code == 200
        backend.wait(P)
        assert states(backend) == {**states(backend), "embedded": 1, "failed": 1}
        assert "IMAGE_HOSTS" in backend.status(P)["task_errors"][0]["error"]
        assert not image_host.requests
    finally:
        backend.close()

    restarted = InProcessBackend(model_dir, tiny_clip_path, embedder, image_hosts="127.0.0.0/8")
    try:
        restarted.wait(P)
        assert states(restarted) == {**states(restarted), "embedded": 2, "failed": 0, "pending": 0}
        assert restarted.status(P)["task_errors"] == []
    finally:
        restarted.close()


def test_retry_failed_reads_a_file_fixed_meanwhile_and_leaves_data_too_big_to_keep_failed(make_backend, image_host):
    backend = make_backend(image_hosts="127.0.0.0/8", max_task_data_bytes=2_000)
    assert backend.setup(P).status_code == 200
    too_big = task_payload(3, {"image": "data:image/png;base64," + "A" * 3_000})
    assert backend.webhook(tasks_created(P, [task_payload(1, {"image": image_host.url("/late.png")}), too_big])).status_code == 200
    backend.wait(P)
    errors = {e["task"]: e["error"] for e in backend.status(P)["task_errors"]}
    assert "HTTP 404" in errors[1] and "MAX_TASK_DATA_BYTES" in errors[3]

    image_host.routes["/late.png"] = Reply(body=png_bytes(2))  # the file is back
    response = backend.post(f"/projects/{P}/retry-failed")
    assert response.status_code == 200 and response.get_json() == {"retried": 1}
    backend.wait(P)
    assert states(backend) == {**states(backend), "embedded": 1, "failed": 1}
    # The task whose data was not kept keeps its own reason (retrying it would only say "no image").
    assert [e["task"] for e in backend.status(P)["task_errors"]] == [3]
    assert "MAX_TASK_DATA_BYTES" in backend.status(P)["task_errors"][0]["error"]
