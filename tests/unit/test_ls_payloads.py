"""Label Studio JSON <-> core values."""

from __future__ import annotations

import pytest

from ml_backend.adapters.ls_config import parse_label_config
from ml_backend.adapters.ls_payloads import project_id, read_rating, task_id, tasks_from
from ml_backend.adapters.ls_predictions import prediction
from ml_backend.core.errors import BadRequestError
from ml_backend.core.facts import AnnotationRating
from tests.conftest import CHOICES_CONFIG, NUMBER_CONFIG, RATING_CONFIG

CHOICES = parse_label_config(CHOICES_CONFIG).scale
NUMBER = parse_label_config(NUMBER_CONFIG).scale
RATING = parse_label_config(RATING_CONFIG).scale


@pytest.mark.parametrize(
    "value, expected",
    [("12.1700000000", 12), ("12", 12), (12, 12), ({"id": 12}, 12), ({"id": "7.1"}, 7),
     ("9223372036854775807.1", 2**63 - 1)],
)
def test_project_id_forms(value, expected):
    assert project_id(value) == expected


@pytest.mark.parametrize("value", [None, "", "abc", "-1", " 12", "1e3", True, 12.5, [12], {"name": "x"}, {}])
def test_project_id_rejects_everything_else(value):
    with pytest.raises(BadRequestError, match="cannot read a project id"):
        project_id(value)


@pytest.mark.parametrize("value", ["0", 0, -3, 2**63, "9223372036854775808", "99999999999999999999999.1"])
def test_project_id_outside_sqlites_integers_is_a_bad_request(value):
    with pytest.raises(BadRequestError, match="project id must be between 1 and 2"):
        project_id(value)


def test_project_id_with_a_superscript_digit_is_a_bad_request():
    with pytest.raises(BadRequestError):
        project_id("²")


@pytest.mark.parametrize("task, expected", [({"id": 5}, 5), (5, 5)])
def test_task_id(task, expected):
    assert task_id(task) == expected


@pytest.mark.parametrize("task", [{"id": "5"}, {"id": True}, {}, None, 5.0])
def test_task_id_must_be_an_integer(task):
    with pytest.raises(BadRequestError, match="task id must be an integer"):
        task_id(task)


def test_tasks_from():
    tasks = [{"id": 1, "data": {"image": "a"}, "annotations": []}, {"id": 2, "data": {"image": "b"}}]
    assert tasks_from(tasks) == [(1, {"image": "a"}), (2, {"image": "b"})]
    assert tasks_from([]) == []


@pytest.mark.parametrize(
    "tasks, message",
    [
        ({"id": 1}, "must be a list"),
        (None, "must be a list"),
        ([{"id": 1}], "task 1 has no 'data' object"),
        ([{"id": 1, "data": "img.png"}], "task 1 has no 'data' object"),
        (["x"], "task 'x' has no 'data'"),
        ([{"id": "1", "data": {}}], "task id must be an integer"),
    ],
)
def test_tasks_from_errors(tasks, message):
    with pytest.raises(BadRequestError, match=message):
        tasks_from(tasks)


def annotation(scale, value, **extra):
    key = {"number": "number", "rating": "rating", "choices": "choices"}[scale.kind]
    item = {"from_name": scale.name, "to_name": "img", "type": scale.kind, "value": {key: value}}
    return {"id": 100, "task": 7, "result": [item], **extra}


@pytest.mark.parametrize(
    "scale, value, target",
    [
        (CHOICES, ["+1"], 1.0), (CHOICES, ["0"], 0.0), (CHOICES, ["-1"], -1.0),
        (NUMBER, 10, 1.0), (NUMBER, 2.5, -0.5), (NUMBER, 0, -1.0), (NUMBER, 15, 1.0),
        (RATING, 5, 1.0), (RATING, 2, -0.5),
    ],
)
def test_read_rating_per_control_type(scale, value, target):
    rating = read_rating(annotation(scale, value), scale)
    assert rating == AnnotationRating(100, 7, pytest.approx(target), None)


def test_read_rating_finds_the_control_among_other_results():
    other = {"from_name": "comment", "type": "textarea", "value": {"text": ["hi"]}}
    ann = annotation(NUMBER, 5)
    ann["result"] = [other, *ann["result"]]
    assert read_rating(ann, NUMBER).target == pytest.approx(0.0)


def test_a_result_for_another_object_or_two_values_for_the_control_is_no_rating():
    """API clients: a result with another to_name counted as a rating of this object, and of two values
    for the control the first won, both silently."""
    elsewhere = annotation(CHOICES, ["+1"])
    elsewhere["result"][0]["to_name"] = "title"
    assert read_rating(elsewhere, CHOICES).error == "annotation has no value for control 'relevance'"
    both = annotation(CHOICES, ["+1"])
    both["result"].append({**both["result"][0], "value": {"choices": ["-1"]}})
    assert read_rating(both, CHOICES).error == "annotation gives control 'relevance' 2 different values"
    same_twice = annotation(CHOICES, ["+1"])
    same_twice["result"].append(dict(same_twice["result"][0]))
    assert read_rating(same_twice, CHOICES).target == 1.0


def test_read_rating_takes_the_task_from_the_fallback():
    ann = annotation(RATING, 3)
    del ann["task"]
    assert read_rating(ann, RATING, fallback_task={"id": 9}).task_id == 9


def test_cancelled_annotation_is_not_a_rating_and_not_an_error():
    rating = read_rating(annotation(NUMBER, 7, was_cancelled=True), NUMBER)
    assert (rating.target, rating.error) == (None, None)


@pytest.mark.parametrize(
    "scale, ann, message",
    [
        (NUMBER, {"id": 100, "task": 7, "result": []}, "no value for control 'score'"),
        (NUMBER, {"id": 100, "task": 7}, "no value for control 'score'"),
        (NUMBER, {"id": 100, "task": 7, "result": [{"from_name": "other", "value": {"number": 1}}]}, "no value for control"),
        (NUMBER, {"id": 100, "task": 7, "result": "5"}, "not a list"),
        (NUMBER, annotation(NUMBER, "five"), "must be a number"),
        (NUMBER, annotation(NUMBER, None), "must be a number"),
        (NUMBER, annotation(NUMBER, float("nan")), "finite"),
        (NUMBER, {"id": 100, "task": 7, "result": [{"from_name": "score", "value": {"rating": 3}}]}, "no 'number' value"),
        (NUMBER, {"id": 100, "task": 7, "result": [{"from_name": "score", "value": 5}]}, "no 'number' value"),
        (RATING, annotation(RATING, True), "must be a number"),
        (CHOICES, annotation(CHOICES, ["+1", "-1"]), "exactly one choice"),
        (CHOICES, annotation(CHOICES, []), "exactly one choice"),
        (CHOICES, annotation(CHOICES, "+1"), "exactly one choice"),
        (CHOICES, annotation(CHOICES, ["maybe"]), "unknown choice 'maybe'"),
    ],
)
def test_unreadable_values_are_reported_not_raised(scale, ann, message):
    rating = read_rating(ann, scale)
    assert (rating.annotation_id, rating.task_id, rating.target) == (100, 7, None)
    assert message in rating.error


@pytest.mark.parametrize(
    "ann, message",
    [
        ({"task": 7, "result": []}, "annotation id"),
        ({"id": "100", "task": 7}, "annotation id"),
        ({"id": True, "task": 7}, "annotation id"),
        ({"id": 100, "result": []}, "task id"),
    ],
)
def test_annotations_without_ids_are_bad_requests(ann, message):
    with pytest.raises(BadRequestError, match=message):
        read_rating(ann, NUMBER)


@pytest.mark.parametrize(
    "scale, probability, value",
    [
        (CHOICES, 0.95, {"choices": ["+1"]}),
        (CHOICES, 0.5, {"choices": ["0"]}),
        (CHOICES, 0.3, {"choices": ["0"]}),      # target -0.4: nearer 0 than -1
        (CHOICES, 0.2, {"choices": ["-1"]}),     # target -0.6
        (NUMBER, 1.0, {"number": 10.0}),
        (NUMBER, 0.0, {"number": 0.0}),
        (NUMBER, 0.62, {"number": 6.0}),         # 6.2 rounded to the 0.5 step
        (NUMBER, 0.64, {"number": 6.5}),         # 6.4 -> 6.5
        (RATING, 0.0, {"rating": 1}),
        (RATING, 0.5, {"rating": 3}),
        (RATING, 0.9, {"rating": 5}),            # 4.6 -> 5
    ],
)
def test_prediction_result_shape_per_control(scale, probability, value):
    result = prediction(scale, probability, "clip-head-v3", preselect=True)
    assert result == {
        "result": [{"from_name": scale.name, "to_name": "img", "type": scale.kind, "value": value}],
        "score": pytest.approx(probability),
        "model_version": "clip-head-v3",
    }
    if scale.kind == "rating":
        assert isinstance(result["result"][0]["value"]["rating"], int)


def test_prediction_score_is_rounded():
    assert prediction(NUMBER, 0.123456789, "v", preselect=True)["score"] == 0.123457


@pytest.mark.parametrize("probability", [float("nan"), float("inf")])
def test_prediction_needs_a_finite_probability(probability):
    with pytest.raises(ValueError, match="finite"):
        prediction(NUMBER, probability, "v", preselect=False)


def test_score_only_prediction_preselects_nothing():
    # Automation bias: an empty result leaves the form blank; the score still sorts and shows in the Data Manager.
    assert prediction(CHOICES, 0.91, "clip-head-v3", preselect=False) == {
        "result": [], "score": pytest.approx(0.91), "model_version": "clip-head-v3",
    }


def test_an_updated_at_far_ahead_of_this_clock_is_not_trusted():
    """One version stamped years ahead (Label Studio's clock set wrong) made every later real edit look
    older, so none was ever applied (found by fuzzing, 2026-12-02). Such a stamp now orders nothing."""
    annotation = {"id": 1, "task": 2, "updated_at": "2999-01-01T00:00:00Z",
                  "result": [{"from_name": CHOICES.name, "value": {"choices": ["+1"]}}]}
    assert read_rating(annotation, CHOICES).updated_at is None
    annotation["updated_at"] = "2026-11-23T07:28:46.629865Z"
    assert read_rating(annotation, CHOICES).updated_at is not None
