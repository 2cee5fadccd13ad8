"""POST /predict: one result per task, in order, in the rating control's format."""

from __future__ import annotations

import pytest

from tests.conftest import CHOICES_CONFIG, NUMBER_CONFIG, RATING_CONFIG, image_uri

PROMPT = {"prompt": "a red square"}


def tasks(*ids):
    return [(t, {"image": image_uri(t)}) for t in ids]


def with_prompt_head(backend, schema=CHOICES_CONFIG, ids=range(1, 9), preselect=True):
    """Set the project up with a prompt, import tasks, and let the worker fit head v1."""
    assert backend.setup(schema=schema, extra_params={**PROMPT, "preselect_rating": preselect}).status_code == 200
    assert backend.tasks_created(list(ids), schema=schema).status_code == 200
    backend.wait()
    assert backend.status()["model_version"] == "clip-head-v1"


def test_without_a_head_no_task_gets_a_prediction(backend):
    """A placeholder with score 0 was stored by Label Studio, and read as a confident "no"."""
    backend.setup()
    response = backend.predict(tasks(3, 1, 2))
    assert response.status_code == 200
    assert response.get_json() == {"model_version": "clip-head-v0", "results": [[], [], []]}
    assert backend.status()["vectors"] == 3  # embedded on the way, ready for the first head


@pytest.mark.parametrize(
    "schema, name, kind, allowed",
    [
        (CHOICES_CONFIG, "relevance", "choices", lambda v: v in (["-1"], ["0"], ["+1"])),
        (NUMBER_CONFIG, "score", "number", lambda v: 0.0 <= v <= 10.0 and (2 * v) == int(2 * v)),
        (RATING_CONFIG, "stars", "rating", lambda v: isinstance(v, int) and 1 <= v <= 5),
    ],
    ids=["choices", "number", "rating"],
)
def test_results_in_order_in_the_controls_format(backend, schema, name, kind, allowed):
    with_prompt_head(backend, schema=schema)
    order = [5, 2, 8, 1, 7]
    response = backend.predict(tasks(*order), schema=schema)
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_version"] == "clip-head-v1"
    assert len(body["results"]) == len(order)
    expected = backend.loop().scores(order)
    for task_id, result in zip(order, body["results"]):
        assert result["model_version"] == "clip-head-v1"
        assert result["score"] == pytest.approx(expected[task_id], abs=1e-6)
        [item] = result["result"]
        assert (item["from_name"], item["to_name"], item["type"]) == (name, "img", kind)
        assert set(item["value"]) == {kind}
        assert allowed(item["value"][kind]), item


def test_score_only_by_default_the_form_is_not_prefilled(backend):
    assert backend.setup(extra_params=PROMPT).status_code == 200
    backend.tasks_created([1, 2, 3])
    backend.wait()
    body = backend.predict(tasks(1, 2, 3)).get_json()
    expected = backend.loop().scores([1, 2, 3])
    assert [r["result"] for r in body["results"]] == [[], [], []]
    assert [r["score"] for r in body["results"]] == pytest.approx([expected[t] for t in (1, 2, 3)], abs=1e-6)


def test_switching_preselect_makes_a_new_version_whose_predictions_preselect(backend):
    with_prompt_head(backend, preselect=False)
    assert backend.predict(tasks(1)).get_json()["results"][0]["result"] == []
    assert backend.setup(extra_params={**PROMPT, "preselect_rating": True}).status_code == 200
    backend.wait()
    body = backend.predict(tasks(1)).get_json()
    assert body["model_version"] == "clip-head-v2"
    assert body["results"][0]["result"][0]["from_name"] == "relevance"


def test_scores_follow_the_head(backend):
    with_prompt_head(backend, schema=NUMBER_CONFIG)
    body = backend.predict(tasks(*range(1, 9)), schema=NUMBER_CONFIG).get_json()
    scores = [r["score"] for r in body["results"]]
    values = [r["result"][0]["value"]["number"] for r in body["results"]]
    assert all(0.0 <= s <= 1.0 for s in scores) and len(set(scores)) > 1
    # A higher probability never maps to a lower number on the scale.
    pairs = sorted(zip(scores, values))
    assert [v for _, v in pairs] == sorted(v for _, v in pairs)


def test_a_broken_image_gets_no_prediction_while_the_others_score(backend):
    with_prompt_head(backend)
    batch = tasks(1, 2) + [(50, {"image": "data:image/png;base64,!!!"}), (51, {"picture": image_uri(51)})] + tasks(3)
    body = backend.predict(batch).get_json()
    assert [r["result"] != [] if r else None for r in body["results"]] == [True, True, None, None, True]
    errors = {e["task"]: e["error"] for e in backend.status()["task_errors"]}
    assert "bad base64" in errors[50] and "no image in field 'image'" in errors[51]


def test_new_tasks_in_predict_are_embedded_and_scored_at_once(backend):
    with_prompt_head(backend, ids=range(1, 6))
    body = backend.predict(tasks(1, 40, 41)).get_json()
    assert all(r["result"] for r in body["results"])
    assert backend.status()["vectors"] == 7


def test_predicted_tasks_are_not_pushed_again_by_the_worker(backend):
    with_prompt_head(backend)
    backend.predict(tasks(1, 2, 3))
    records = backend.runtime.records
    assert records.not_predicted(1, [1, 2, 3, 4], 1) == [4]
    assert records.versions_pushed(1) == [1]


def test_predict_for_a_project_never_set_up_is_a_404_and_records_nothing(backend):
    """Only /setup (Label Studio connecting the backend) creates a project (issue 12, finding 3)."""
    response = backend.predict(tasks(1, 2), project=9, schema=RATING_CONFIG)
    assert response.status_code == 404
    assert "project 9 is not connected to this backend" in response.get_json()["message"]
    assert backend.runtime.projects.project_ids() == []


def test_predict_uses_the_label_config_it_carries(backend):
    backend.setup(project=9)
    response = backend.predict(tasks(1, 2), project=9, schema=RATING_CONFIG)
    assert response.status_code == 200
    assert response.get_json()["model_version"] == "clip-head-v0"
    assert backend.status(9)["vectors"] == 2
    assert backend.runtime.projects.schema(9).scale.kind == "rating"


def test_predict_with_an_unusable_label_config_is_a_422(backend):
    backend.setup(project=9)
    response = backend.predict(tasks(1), project=9, schema="<View><Image name='i' value='$image'/></View>")
    assert response.status_code == 422
    assert response.get_json()["error"] == "bad_config"


@pytest.mark.parametrize("bad_tasks, message", [(None, "'tasks' must be a list"), ({"id": 1}, "'tasks' must be a list"),
                                               ([{"id": 1}], "has no 'data' object")])
def test_predict_with_malformed_tasks_is_a_400(backend, bad_tasks, message):
    backend.setup()
    response = backend.post("/predict", {"tasks": bad_tasks, "project": "1.1", "label_config": CHOICES_CONFIG})
    assert response.status_code == 400
    assert message in response.get_json()["message"]


def test_predict_with_a_repeated_task(backend):
    backend.setup()
    response = backend.predict(tasks(1, 1))
    assert response.status_code == 200 and len(response.get_json()["results"]) == 2


def test_when_every_predict_slot_is_busy_predict_answers_at_once_and_the_worker_embeds(make_backend, http_server):
    """/predict embeds unseen tasks first; with THREADS=4 one request may do so at a time (a quarter),
    so slow images in one /predict cannot hold the threads webhooks need (issue 12, finding 5)."""
    import threading
    import time

    from tests.stubs import Reply

    http_server.routes["/slow.png"] = Reply(body=b"x", delay_s=3.0)
    backend = make_backend(threads=4, image_hosts="127.0.0.0/8", fetch_timeout_s=5.0)
    backend.setup()
    slow = threading.Thread(target=backend.predict, args=([(50, {"image": http_server.url("/slow.png")})],))
    slow.start()
    while not http_server.requests:
        time.sleep(0.01)
    started = time.monotonic()
    response = backend.predict(tasks(1, 2))
    assert time.monotonic() - started < 1.0
    assert response.status_code == 200 and response.get_json()["results"] == [[], []]  # not embedded yet: none
    slow.join()
    backend.wait()
    assert backend.status()["vectors"] == 2  # recorded by the busy /predict, embedded by the worker
