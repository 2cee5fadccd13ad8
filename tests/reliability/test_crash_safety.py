"""kill -9 during an import and during a refit, against a real Label Studio.

After each restart: the heads on disk are whole (the old ones byte for byte), the
ledger and Chroma are intact and agree, every task gets embedded, and every
annotation made in Label Studio (including while the backend was dead, whose
webhooks were lost) is counted as a rating exactly once.
"""

from __future__ import annotations

import time

import pytest

from ml_backend.adapters.ls_admin import admin_client, connect_backend, create_project, upload_images

from .e2e_support import assert_files_consistent, assert_files_intact, read_heads, status, wait_for
from .support import LABEL_CONFIG, choice_result, png_bytes

pytestmark = pytest.mark.e2e

IMPORT = 400
CHOICES = ["+1", "-1", "0"]


def write_images(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"crash-{i:04d}.png"
        path.write_bytes(png_bytes(10_000 + i, size=96))
        paths.append(path)
    return paths


def rated_in_label_studio(client, project: int) -> int:
    return sum(1 for t in client.tasks.list(project=project, fields="all") for a in t.annotations
               if not (a["was_cancelled"] if isinstance(a, dict) else a.was_cancelled))


def settled(backend, project: int, tasks: int, ratings: int):
    s = status(backend, project)
    return s if s["worker"]["idle"] and s["tasks"]["embedded"] == tasks and s["head"]["ratings"] == ratings else None


def test_kill_9_during_import_and_refit_loses_nothing(label_studio, start_backend, tmp_path):
    client = admin_client(label_studio.url, label_studio.api_token)
    project = create_project(client, "crash safety", LABEL_CONFIG)
    model_dir = tmp_path / "crash" / "model_dir"
    backend = start_backend(label_studio.url, label_studio.api_token, model_dir=model_dir, FETCH_WORKERS="2")
    port = backend.port
    connect_backend(client, project, backend.url, "CLIP vector queue", {"prompt": "a red square", "batch_size": 5})
    wait_for(lambda: status(backend, project)["worker"]["idle"], what="the backend connected")

    # -- 1. kill -9 in the middle of embedding an import --------------------------------------------
    task_ids = upload_images(label_studio.url, label_studio.api_token, project, write_images(tmp_path / "imgs", IMPORT))
    embedded = wait_for(lambda: 0 < (n := status(backend, project, )["tasks"]["embedded"]) and n, every_s=0.05,
                        what="embedding to start")
    backend.kill()
    print(f"\nkill -9 during the import: {embedded}/{IMPORT} tasks embedded")
    assert embedded < IMPORT, "the import finished before the kill: make it bigger"
    rated = task_ids[:3]
    for i, task in enumerate(rated):  # while the backend is dead: these webhooks are lost
        client.annotations.create(id=task, result=choice_result(CHOICES[i % 3]), was_cancelled=False)

    backend = start_backend(label_studio.url, label_studio.api_token, model_dir=model_dir, port=port, FETCH_WORKERS="2")
    after_import = wait_for(lambda: settled(backend, project, IMPORT, len(rated)), timeout_s=180,
                            what="all tasks embedded and the missed ratings synced")
    assert after_import["annotations"] == rated_in_label_studio(client, project) == len(rated)
    assert assert_files_consistent(model_dir, project) == {"embedded": IMPORT, "seen": len(rated)}

    # -- 2. kill -9 while a refit is running ----------------------------------------------------------
    # Each new rating triggers a refit; the first in a fresh process is the slowest (warm-up).
    caught = None
    for attempt, task in enumerate(task_ids[3:40]):
        heads_before = read_heads(model_dir, project)
        client.annotations.create(id=task, result=choice_result(CHOICES[attempt % 3]), was_cancelled=False)
        rated.append(task)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if status(backend, project)["activity"] == "refitting":
                backend.kill()
                caught = heads_before
                print(f"kill -9 during a refit (rating #{len(rated)}), {len(caught)} heads stored before it")
                break
            time.sleep(0.005)
        if caught is not None:
            break
        wait_for(lambda: status(backend, project)["worker"]["idle"], what="worker idle before the next try")
    assert caught is not None, "never caught the worker refitting"
    for i, task in enumerate(task_ids[100:104]):  # more ratings while dead
        client.annotations.create(id=task, result=choice_result(CHOICES[i % 3]), was_cancelled=False)
        rated.append(task)

    heads_at_kill = read_heads(model_dir, project)
    # The kill left either the old heads or the old heads plus the new one: never a partial row.
    assert heads_at_kill[: len(caught)] == caught and len(heads_at_kill) - len(caught) in (0, 1)
    assert_files_intact(model_dir, project)

    backend = start_backend(label_studio.url, label_studio.api_token, model_dir=model_dir, port=port, FETCH_WORKERS="2")
    final = wait_for(lambda: settled(backend, project, IMPORT, len(rated)), timeout_s=180,
                     what="every rating counted after the second restart")
    assert final["annotations"] == rated_in_label_studio(client, project) == len(rated)
    heads = read_heads(model_dir, project)
    assert heads[: len(heads_at_kill)] == heads_at_kill  # history kept byte for byte, new heads appended
    assert heads[-1][2] == len(rated) and final["head"]["version"] == heads[-1][0]
    assert assert_files_consistent(model_dir, project) == {"embedded": IMPORT, "seen": len(rated)}
    # And Label Studio got predictions of the final version for every task.
    versions = [[p["model_version"] if isinstance(p, dict) else p.model_version for p in t.predictions]
                for t in client.tasks.list(project=project, fields="all")]
    assert all(v == [final["model_version"]] for v in versions)
