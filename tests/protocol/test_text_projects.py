"""Text projects over the protocol, one backend serving image and text projects, and models that
cannot do everything: a model without a text tower, a model that cannot load."""

from __future__ import annotations

import numpy as np

from ml_backend.core.embedding import load_embedder
from tests.conftest import CHOICES_CONFIG, TEXT_CONFIG, image_uri

TEXTS = {11: "the first text task", 12: "a second, longer text about something else", 13: "third"}


def text_tasks_created(backend, project=2, texts=TEXTS):
    tasks = [{"id": t, "data": {"text": text}} for t, text in texts.items()]
    return backend.webhook("TASKS_CREATED", project, TEXT_CONFIG, tasks=tasks)


def test_a_text_project_is_embedded_rated_and_predicted(backend, text_embedder):
    assert backend.setup(project=2, schema=TEXT_CONFIG, extra_params={"prompt": "something else"}).status_code == 200
    assert text_tasks_created(backend).status_code == 200
    backend.wait(2)
    status = backend.status(2)
    assert (status["modality"], status["embedding_model"], status["vectors"]) == ("text", text_embedder.model_id, 3)
    loop = backend.loop(2)
    np.testing.assert_allclose(loop.store.vectors([11, 12, 13]), text_embedder.embed_texts(list(TEXTS.values())), atol=1e-5)
    assert status["model_version"] == "clip-head-v1"  # the prompt, embedded by the text model, started W

    result = [{"from_name": "relevance", "to_name": "txt", "type": "choices", "value": {"choices": ["+1"]}}]
    annotation = {"id": 500, "task": 12, "result": result, "was_cancelled": False}
    answer = backend.webhook("ANNOTATION_CREATED", 2, TEXT_CONFIG, task={"id": 12, "data": {"text": TEXTS[12]}},
                             annotation=annotation)
    assert answer.status_code == 200 and answer.get_json()["target"] == 1.0
    backend.wait(2)
    assert backend.status(2)["head"] == {"version": 2, "ratings": 1}

    response = backend.predict([(13, {"text": TEXTS[13]}), (14, {"text": "a task Label Studio asks about first"})],
                               project=2, schema=TEXT_CONFIG)
    results = response.get_json()["results"]
    assert [r["model_version"] for r in results] == ["clip-head-v2"] * 2
    assert all(0.0 <= r["score"] <= 1.0 and r["result"] == [] for r in results)  # score only: preselect_rating is off
    assert 14 in backend.loop(2).store  # /predict embedded the task it had not seen


def test_one_backend_serves_an_image_and_a_text_project_at_once(backend, embedder, text_embedder):
    backend.setup(project=1, schema=CHOICES_CONFIG)
    backend.setup(project=2, schema=TEXT_CONFIG)
    backend.tasks_created([1, 2, 3, 4])
    text_tasks_created(backend)
    backend.wait(1)
    backend.wait(2)
    image, text = backend.status(1), backend.status(2)
    assert (image["modality"], image["embedding_model"], image["vectors"]) == ("image", embedder.model_id, 4)
    assert (text["modality"], text["embedding_model"], text["vectors"]) == ("text", text_embedder.model_id, 3)
    assert (backend.loop(1).store.dim, backend.loop(2).store.dim) == (32, 24)


def test_a_project_switched_from_image_to_text_is_embedded_again_never_mixed(backend, text_embedder):
    # Tasks with a picture and a caption: the label config decides which one the project rates.
    tasks = [{"id": t, "data": {"image": image_uri(t), "text": f"caption of task {t}"}} for t in (21, 22)]
    backend.setup(project=3, schema=CHOICES_CONFIG)
    backend.webhook("TASKS_CREATED", 3, CHOICES_CONFIG, tasks=tasks)
    backend.wait(3)
    assert backend.status(3)["modality"] == "image" and backend.loop(3).store.dim == 32

    assert backend.setup(project=3, schema=TEXT_CONFIG).status_code == 200
    backend.wait(3)
    status = backend.status(3)
    assert (status["modality"], status["embedding_model"], status["vectors"]) == ("text", text_embedder.model_id, 2)
    store = backend.loop(3).store
    assert store.dim == 24 and store.stored_model_id == text_embedder.model_id
    np.testing.assert_allclose(store.vectors([21, 22]), text_embedder.embed_texts(["caption of task 21", "caption of task 22"]),
                               atol=1e-5)


def test_a_prompt_on_a_model_without_a_text_tower_is_reported_not_a_failure(make_backend, tiny_vit_dir):
    vit = load_embedder("image", str(tiny_vit_dir))
    backend = make_backend(embedders={"image": vit})
    response = backend.setup(project=6, extra_params={"prompt": "a red square"})
    assert response.status_code == 200
    [warning] = response.get_json()["warnings"]
    assert "prompt ignored" in warning and "no text tower" in warning and "more like this" in warning
    backend.tasks_created([1, 2, 3], project=6)
    backend.wait(6)
    status = backend.status(6)
    assert status["warnings"] == [warning] and status["vectors"] == 3 and status["worker"]["last_error"] is None
    assert backend.get("/health").get_json()["project_warnings"] == {"6": [warning]}


def test_a_model_that_cannot_load_stops_only_its_modality_and_says_why(make_backend, tmp_path, embedder):
    backend = make_backend(embedders={"image": embedder}, text_embedding_model=str(tmp_path / "no-such-text-model"))
    response = backend.setup(project=2, schema=TEXT_CONFIG)
    assert response.status_code == 503
    assert response.get_json()["error"] == "model_unavailable" and "TEXT_EMBEDDING_MODEL" in response.get_json()["message"]
    health = backend.get("/health").get_json()
    assert "TEXT_EMBEDDING_MODEL" in health["project_errors"]["2"]
    # Image projects are not affected.
    assert backend.setup(project=1).status_code == 200
    backend.tasks_created([1, 2])
    backend.wait(1)
    assert backend.status(1)["vectors"] == 2
