"""Rating scales: an annotator's value <-> a training target in [-1, +1].

A scale knows nothing of Label Studio's XML or JSON; `adapters.ls_config` builds it
from a label config and `adapters.ls_payloads` reads values out of annotation results.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal, Mapping

from .errors import BadRatingError, ConfigError

log = logging.getLogger(__name__)

ScaleKind = Literal["number", "rating", "choices"]


@dataclass(frozen=True)
class RatingScale:
    """How one rating control maps to targets.

    Attributes
    ----------
    kind : "number" | "rating" | "choices"
    name, to_name : the control's `name` and `toName` in the label config.
    minimum, maximum : value range for number/rating scales (rating: 1..maxRating).
    choices : choice value -> target in [-1, 1], for choices scales.
    step : granularity of a number control, used to round predicted values.
    """

    kind: ScaleKind
    name: str
    to_name: str
    minimum: float = -1.0
    maximum: float = 1.0
    choices: Mapping[str, float] = field(default_factory=dict)
    step: float | None = None

    def __post_init__(self) -> None:
        if self.kind == "choices":
            if not self.choices:
                raise ConfigError(f"choices control {self.name!r} has no choices")
            bad = {k: v for k, v in self.choices.items() if not -1.0 <= v <= 1.0}
            if bad:
                raise ConfigError(f"choice targets must lie in [-1, 1], got {bad}")
            if min(self.choices.values()) == max(self.choices.values()):
                raise ConfigError(f"choices control {self.name!r} maps every choice to the same target")
        elif not self.maximum > self.minimum:
            raise ConfigError(f"{self.kind} control {self.name!r} needs max > min, got {self.minimum}..{self.maximum}")
        elif not math.isfinite(self.maximum - self.minimum):
            # inf bounds, or bounds so far apart (±1e308) that max - min overflows: every target would be NaN.
            raise ConfigError(f"{self.kind} control {self.name!r} needs finite min and max with a finite range, "
                              f"got {self.minimum}..{self.maximum}")
        if self.step is not None and not (math.isfinite(self.step) and self.step > 0):
            raise ConfigError(f"{self.kind} control {self.name!r} needs a finite step > 0, got {self.step}")

    def to_target(self, value: object) -> float:
        """Convert a raw control value to a target in [-1, 1].

        Out-of-range numbers are clamped (and logged); NaN, infinities, wrong types and
        unknown choices raise `BadRatingError`.
        """
        if self.kind == "choices":
            if not isinstance(value, str):
                raise BadRatingError(f"{self.name}: choice must be a string, got {type(value).__name__}")
            if value not in self.choices:
                shown = value if len(value) <= 40 else value[:40] + "..."
                raise BadRatingError(f"{self.name}: unknown choice {shown!r}, expected one of {sorted(self.choices)}")
            return float(self.choices[value])
        number = _finite_number(value, self.name)
        # Compare before converting: an int too large for a float is still just out of range.
        clamped = float(min(max(number, self.minimum), self.maximum))
        if clamped != number:
            shown = repr(number) if len(repr(number)) <= 24 else repr(number)[:21] + "..."  # an int may not fit a float
            log.warning("%s: value %s outside %s..%s, clamped to %s", self.name, shown, self.minimum, self.maximum, clamped)
        # the share first: 2 * (value - min) can overflow where max - min does not (max=1e308)
        return 2.0 * ((clamped - self.minimum) / (self.maximum - self.minimum)) - 1.0

    def from_target(self, target: float) -> float | int | str:
        """The control value an annotator would give for `target` (used for pre-annotations)."""
        target = min(max(float(target), -1.0), 1.0)
        if self.kind == "choices":
            return min(self.choices, key=lambda choice: abs(self.choices[choice] - target))
        value = self.minimum + (target + 1.0) / 2.0 * (self.maximum - self.minimum)
        if self.kind == "rating":
            return int(round(value))
        steps = (value - self.minimum) / self.step if self.step else math.inf
        if math.isfinite(steps):  # a step finer than a float can count (1e-320) leaves the value as it is
            value = self.minimum + round(steps) * self.step
            value = min(max(value, self.minimum), self.maximum)  # a coarse step can round past max
        return round(value, 6)


def _finite_number(value: object, name: str) -> int | float:
    """The value itself if it is a finite number (ints stay exact, however large)."""
    # bool is an int subclass; a checkbox-like True is not a rating.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRatingError(f"{name}: rating must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRatingError(f"{name}: rating must be finite, got {value}")
    return value


def numeric_choice_targets(values: list[str]) -> dict[str, float] | None:
    """Targets for choices whose values are numbers ("-1", "0", "+1", or "0"/"1", or "1".."5").

    Values inside [-1, 1] that include a negative one are used as they are; otherwise
    min..max is scaled to -1..+1, so the lowest choice is always a "no" ("0" of "0"/"1"
    too: used as it is, it was "unsure", and no choice said no). Returns None when any
    value is not a number.
    """
    try:
        numbers = {value: float(value) for value in values}
    except ValueError:
        return None
    if not all(math.isfinite(n) for n in numbers.values()):
        return None
    low, high = min(numbers.values()), max(numbers.values())
    if -1.0 <= low < 0.0 and high <= 1.0:
        return numbers
    if high == low:  # one value: numeric, but no scale (RatingScale refuses it, saying so)
        return {value: 0.0 for value in numbers}
    # halves: high - low itself overflows for values near the float limits (-1e308, 1e308)
    return {value: 2.0 * ((n / 2 - low / 2) / (high / 2 - low / 2)) - 1.0 for value, n in numbers.items()}
