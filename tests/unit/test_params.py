"""ProjectParams.parse: layered, validated per-project parameters."""

from __future__ import annotations

import json

import pytest

from ml_backend.core.errors import ConfigError
from ml_backend.core.params import MAX_BATCH_SIZE, HeadParams, ProjectParams
from ml_backend.core.strategies import DEFAULT_STRATEGY


def test_defaults():
    params = ProjectParams.parse()
    assert (params.prompt, params.batch_size, params.strategy) == (None, 10, DEFAULT_STRATEGY)
    assert params.head == HeadParams()


def test_later_layers_win():
    params = ProjectParams.parse({"batch_size": 5, "prompt": "cats"}, {"batch_size": 7}, None, "")
    assert (params.batch_size, params.prompt) == (7, "cats")


def test_head_is_merged_key_by_key():
    params = ProjectParams.parse(
        {"head": {"l2": 3.0, "max_iter": 50}},
        {"head": {"max_iter": 20}},
        {"strategy": "random"},
    )
    assert (params.head.l2, params.head.max_iter, params.strategy) == (3.0, 20, "random")
    assert params.head.background_weight == HeadParams().background_weight


def test_json_string_layer():
    params = ProjectParams.parse('{"prompt": "  red cars  ", "head": {"l2": 0.5}}')
    assert params.prompt == "red cars"
    assert params.head.l2 == 0.5


@pytest.mark.parametrize("prompt", ["", "   ", None])
def test_blank_prompt_is_none(prompt):
    assert ProjectParams.parse({"prompt": prompt}).prompt is None


def test_every_problem_is_listed():
    with pytest.raises(ConfigError) as info:
        ProjectParams.parse({"batch_size": 0, "head": {"l2": -1, "max_iter": 0}, "view_title": ""})
    message = str(info.value)
    for location in ("batch_size", "head.l2", "head.max_iter", "view_title"):
        assert location in message


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ConfigError, match=r"unknown strategy 'best'.*\['adaptive', 'hybrid', 'nearest', 'random', 'uncertainty'\]"):
        ProjectParams.parse({"strategy": "best"})


@pytest.mark.parametrize("layer", [{"batchsize": 5}, {"head": {"l3": 1}}])
def test_extra_keys_are_forbidden(layer):
    with pytest.raises(ConfigError, match="Extra inputs are not permitted"):
        ProjectParams.parse(layer)


@pytest.mark.parametrize(
    "layer, message",
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), (42, "JSON object"),
     ("[" * 100_000 + "]" * 100_000, "nested too deeply")],  # RecursionError, a 500, before
)
def test_layers_that_are_not_objects(layer, message):
    with pytest.raises(ConfigError, match=message):
        ProjectParams.parse(layer)


@pytest.mark.parametrize("head", [5, [], "l2=1"])
def test_a_head_that_is_not_an_object_is_a_config_error(head):
    with pytest.raises(ConfigError, match="head"):
        ProjectParams.parse(json.dumps({"head": head}))


@pytest.mark.parametrize("head", [{"prompt_role": "both"}, {"prompt_weight": 0}, {"prompt_weight": -1}])
def test_an_unknown_prompt_role_or_a_non_positive_prompt_weight_is_refused(head):
    with pytest.raises(ConfigError, match="head.prompt_"):
        ProjectParams.parse({"head": head})


def test_params_are_frozen():
    params = ProjectParams.parse({"batch_size": 3})
    with pytest.raises(Exception):
        params.batch_size = 4  # type: ignore[misc]
    assert params.batch_size == 3


def test_batch_size_stops_below_what_label_studio_on_sqlite_can_filter():
    """A tab of 997 or more tasks made Label Studio on SQLite answer its listing with a 500 ("Expression tree is
    too large"), and the Data Manager showed no rows; 1000 was allowed (fuzz pass 4, 2026-12-02)."""
    assert ProjectParams.parse({"batch_size": MAX_BATCH_SIZE}).batch_size == MAX_BATCH_SIZE < 997
    with pytest.raises(ConfigError, match="batch_size"):
        ProjectParams.parse({"batch_size": MAX_BATCH_SIZE + 1})


@pytest.mark.parametrize("title, message", [
    ("   ", "visible text"), ("\u200b", r"U\+200B \(ZERO WIDTH SPACE\)"), ("Next batch\u202e (ML)", r"U\+202E"),
    ("two\nlines", r"U\+000A"),
])
def test_the_tab_title_is_plain_visible_text(title, message):
    """A blank or zero-width title gave a tab with no label; a right-to-left override showed it reversed
    (fuzz pass 4, 2026-12-02)."""
    with pytest.raises(ConfigError, match=f"view_title: Value error, .*{message}"):
        ProjectParams.parse({"view_title": title})
    assert ProjectParams.parse({"view_title": "  Chiens · 犬 · كلاب  "}).view_title == "Chiens · 犬 · كلاب"
