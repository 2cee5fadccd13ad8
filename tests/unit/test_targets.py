"""RatingScale: annotator values <-> training targets in [-1, 1]."""

from __future__ import annotations

import math

import pytest

from ml_backend.core.errors import BadRatingError, ConfigError
from ml_backend.core.targets import RatingScale, numeric_choice_targets

NUMBER = RatingScale("number", "score", "img", minimum=0.0, maximum=10.0)
NUMBER_STEP = RatingScale("number", "score", "img", minimum=0.0, maximum=10.0, step=0.5)
RATING = RatingScale("rating", "stars", "img", minimum=1.0, maximum=5.0)
CHOICES = RatingScale("choices", "rel", "img", choices={"No": -1.0, "Maybe": 0.0, "Yes": 1.0})


@pytest.mark.parametrize(
    "scale, value, target",
    [
        (NUMBER, 0, -1.0),
        (NUMBER, 10, 1.0),
        (NUMBER, 5, 0.0),
        (NUMBER, 7.5, 0.5),
        (NUMBER, -3, -1.0),       # clamped below
        (NUMBER, 1e6, 1.0),       # clamped above
        (RATING, 1, -1.0),
        (RATING, 3, 0.0),
        (RATING, 5, 1.0),
        (RATING, 4, 0.5),
        (RATING, 9, 1.0),         # clamped
        (RATING, 0, -1.0),        # clamped
        (CHOICES, "No", -1.0),
        (CHOICES, "Maybe", 0.0),
        (CHOICES, "Yes", 1.0),
    ],
)
def test_to_target_maps_values_into_minus_one_plus_one(scale, value, target):
    assert scale.to_target(value) == pytest.approx(target)


@pytest.mark.parametrize(
    "scale, value, message",
    [
        (NUMBER, float("nan"), "finite"),
        (NUMBER, float("inf"), "finite"),
        (NUMBER, float("-inf"), "finite"),
        (NUMBER, True, "number"),
        (NUMBER, False, "number"),
        (NUMBER, "5", "number"),
        (NUMBER, None, "number"),
        (NUMBER, [5], "number"),
        (RATING, "3", "number"),
        (CHOICES, "Definitely", "unknown choice"),
        (CHOICES, 1, "string"),
        (CHOICES, None, "string"),
        (CHOICES, "yes", "unknown choice"),  # case matters: Label Studio sends the exact value
    ],
)
def test_to_target_rejects_unreadable_values(scale, value, message):
    with pytest.raises(BadRatingError, match=message):
        scale.to_target(value)


def test_to_target_on_an_integer_too_large_for_a_float_clamps_or_raises_bad_rating():
    """JSON allows arbitrarily long integers (json.loads gives a Python int); one must not crash the webhook."""
    try:
        target = NUMBER.to_target(10**400)
    except BadRatingError:
        return
    assert target == 1.0


@pytest.mark.parametrize("value, shown", [(-3, "value -3 outside"), (25.5, "value 25.5 outside"),
                                          (10**400, "value 100000000000000000000... outside")])
def test_a_clamped_value_is_logged_as_the_annotator_gave_it(caplog, value, shown):
    with caplog.at_level("WARNING", logger="ml_backend.core.targets"):
        NUMBER.to_target(value)
    assert shown in caplog.text and "clamped to" in caplog.text


@pytest.mark.parametrize("target", [-1.0, -0.5, 0.0, 0.5, 1.0])
@pytest.mark.parametrize("scale", [NUMBER, NUMBER_STEP], ids=["number", "number-step"])
def test_number_from_target_round_trips(scale, target):
    assert scale.to_target(scale.from_target(target)) == pytest.approx(target)


@pytest.mark.parametrize("value", [1, 2, 3, 4, 5])
def test_rating_round_trips_every_star(value):
    assert RATING.from_target(RATING.to_target(value)) == value
    assert isinstance(RATING.from_target(RATING.to_target(value)), int)


@pytest.mark.parametrize("choice", ["No", "Maybe", "Yes"])
def test_choice_round_trips(choice):
    assert CHOICES.from_target(CHOICES.to_target(choice)) == choice


@pytest.mark.parametrize(
    "scale, target, value",
    [
        (CHOICES, 0.7, "Yes"),      # nearest choice target
        (CHOICES, -0.4, "Maybe"),
        (CHOICES, -0.6, "No"),
        (NUMBER_STEP, 0.13, 5.5),   # 5.65 rounded to the 0.5 step
        (NUMBER, 0.13, 5.65),
        (RATING, 0.3, 4),           # 3.6 -> 4
        (NUMBER, 5.0, 10.0),        # target clamped first
        (RATING, -7.0, 1),
    ],
)
def test_from_target_gives_the_nearest_control_value(scale, target, value):
    expected = value if isinstance(value, str) else pytest.approx(value)
    assert scale.from_target(target) == expected


def test_a_range_near_the_float_limit_maps_without_overflow():
    """2 * (value - min) overflowed for max=1e308 (a range that is itself finite): the rating was stored
    as target inf, and every later refit refused the project's targets (found by fuzzing, 2026-12-02)."""
    scale = RatingScale("number", "score", "img", minimum=0.0, maximum=1e308)
    assert [scale.to_target(v) for v in (0, 5e307, 1e308)] == [-1.0, 0.0, 1.0]
    assert scale.from_target(1.0) == 1e308


def test_a_step_too_fine_to_count_leaves_the_predicted_value_unrounded():
    """step=1e-320 is finite and > 0, but (value - min) / step is inf: round(inf) raised OverflowError in
    every pre-annotation of such a project (found by fuzzing, 2026-12-02)."""
    scale = RatingScale("number", "score", "img", minimum=0.0, maximum=10.0, step=1e-320)
    assert scale.from_target(0.2) == pytest.approx(6.0)


@pytest.mark.parametrize("values, expected", [(["0", "1e308"], [-1.0, 1.0]), (["-1e308", "0", "1e308"], [-1.0, 0.0, 1.0])])
def test_numeric_choices_near_the_float_limits_map_without_overflow(values, expected):
    """The choice 1e308 mapped to inf, and a valid config was refused (found by fuzzing, 2026-12-02)."""
    assert list(numeric_choice_targets(values).values()) == expected


def test_number_from_target_stays_inside_min_max_when_step_does_not_divide_the_range():
    scale = RatingScale("number", "score", "img", minimum=0.0, maximum=10.0, step=6.0)
    assert 0.0 <= scale.from_target(1.0) <= 10.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "number", "minimum": 5.0, "maximum": 5.0}, "max > min"),
        ({"kind": "rating", "minimum": 1.0, "maximum": 0.0}, "max > min"),
        ({"kind": "choices", "choices": {}}, "no choices"),
        ({"kind": "choices", "choices": {"a": 2.0, "b": -1.0}}, r"\[-1, 1\]"),
        ({"kind": "choices", "choices": {"a": 0.5, "b": 0.5}}, "same target"),
    ],
)
def test_invalid_scales_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RatingScale(name="c", to_name="img", **kwargs)


@pytest.mark.parametrize(
    "values, expected",
    [
        (["-1", "0", "+1"], {"-1": -1.0, "0": 0.0, "+1": 1.0}),         # in [-1, 1] with a "no": as they are
        (["-1", "1"], {"-1": -1.0, "1": 1.0}),
        (["-0.5", "0.5"], {"-0.5": -0.5, "0.5": 0.5}),
        # No / Yes as 0 / 1: "0" was kept as "unsure" and no choice said no (fuzz pass 4, 2026-12-02)
        (["0", "1"], {"0": -1.0, "1": 1.0}),
        (["0", "0.5", "1"], {"0": -1.0, "0.5": 0.0, "1": 1.0}),
        (["1", "2", "3", "4", "5"], {"1": -1.0, "2": -0.5, "3": 0.0, "4": 0.5, "5": 1.0}),  # scaled
        (["0", "10"], {"0": -1.0, "10": 1.0}),
        (["Yes", "No"], None),
        (["1", "two"], None),
        (["nan", "1"], None),
        (["inf", "1"], None),
        (["7", "7"], {"7": 0.0}),                                        # no spread: RatingScale refuses it
    ],
)
def test_numeric_choice_targets(values, expected):
    result = numeric_choice_targets(values)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)
        assert all(-1.0 <= t <= 1.0 and math.isfinite(t) for t in result.values())
