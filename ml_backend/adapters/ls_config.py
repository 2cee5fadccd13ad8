"""Label config XML -> the rating scale and the task object (image or text) the loop needs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Mapping

from ..core.errors import ConfigError
from ..core.targets import RatingScale, numeric_choice_targets

RATING_TAGS = {"number": "number", "rating": "rating", "choices": "choices"}
# Object tags this backend embeds -> the modality whose embedder serves the project.
OBJECT_TAGS = {"image": "image", "text": "text"}
MAX_RATING = 100  # stars: Label Studio's default is 5
# A <Number> without step: Label Studio's input steps by 1 and marks other values invalid (it still takes them).
INPUT_STEP = 1.0


@dataclass(frozen=True)
class ProjectSchema:
    """What the backend reads from a project's label config."""

    scale: RatingScale
    object_name: str  # the <Image>/<Text> the rating control points at
    data_key: str  # the task data field it reads, from value="$image"
    modality: str = "image"  # "image" or "text": decides the project's embedder
    value_is_url: bool = False  # <Text valueType="url">: the field holds a URL or path to a text file
    notes: tuple[str, ...] = ()  # what the admin should know: other controls, and why they were not used

    @property
    def source(self) -> str:
        """What each task's vector is made from: the data field, and whether it holds the item or its URL."""
        return f"${self.data_key}" + (" (url)" if self.value_is_url else "")

    def describe(self) -> dict:
        """The rating control and how its values become targets, for the project's status."""
        scale = self.scale
        described = {"control": scale.name, "kind": scale.kind, "object": self.object_name, "field": self.data_key}
        if scale.kind == "choices":
            return {**described, "targets": dict(scale.choices)}
        return {**described, "range": [scale.minimum, scale.maximum], "targets": "min..max scaled to -1..+1"}


def parse_label_config(
    xml: str, rating_control: str | None = None, choice_values: Mapping[str, float] | None = None
) -> ProjectSchema:
    """Find the object (an <Image> or a <Text>) and the rating control in a label config.

    `rating_control` picks a control by name when there are several; `choice_values`
    maps non-numeric choice values to targets. Without `rating_control`, the first control
    that can hold a rating is used, one on an image before one on a text; the others, and
    why any was passed over, are in the schema's `notes`. Raises `ConfigError` saying what
    is missing and what was found.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ConfigError(f"label config is not valid XML: {exc}") from None
    except UnicodeEncodeError as exc:  # a lone surrogate, which JSON lets through and XML cannot hold
        raise ConfigError(f"label config is not valid XML: it holds {exc.object[exc.start]!r} at "
                          f"position {exc.start}") from None
    objects = {_attr(el, "name"): el for el in root.iter() if el.tag.lower() in OBJECT_TAGS and _attr(el, "name")}
    if not objects:
        raise ConfigError("label config has no <Image> or <Text> tag: this backend rates images and texts")
    controls = [el for el in root.iter() if el.tag.lower() in RATING_TAGS and _attr(el, "name")]
    usable = [el for el in controls if _attr(el, "toName") in objects]
    if rating_control is not None:
        usable = [el for el in usable if _attr(el, "name") == rating_control]
        if not usable:
            raise ConfigError(
                f"rating_control {rating_control!r} is not a Number, Rating or Choices control on an image or "
                f"a text; found {_describe(controls)}"
            )
    if not usable:
        raise ConfigError(
            "label config has no usable rating control: add a <Number min max>, <Rating> or <Choices> "
            f"with toName pointing at an <Image> or a <Text>; found {_describe(controls)}"
        )
    # An image control before a text one (image projects came first), then document order.
    usable.sort(key=lambda el: objects[_attr(el, "toName")].tag.lower() != "image")
    scales, passed_over = [], []
    for control in usable:
        try:
            scales.append((control, _scale(control, choice_values)))
        except ConfigError as exc:
            passed_over.append((control, exc))
    if not scales:
        raise passed_over[0][1]
    control, scale = scales[0]
    notes = [f"{_tag(el)} not used: {reason}" for el, reason in passed_over]
    if len(scales) > 1:
        others = ", ".join(repr(_attr(el, "name")) for el, _ in scales[1:])
        notes.insert(0, f"ratings are read from {_tag(control)}; {others} could hold a rating too: set rating_control "
                        "in the project's extra params to choose")
    element = objects[_attr(control, "toName")]
    tag, name, value = element.tag, _attr(element, "name"), _attr(element, "value", "")
    if not value.startswith("$") or len(value) < 2:
        field = "image" if tag.lower() == "image" else "text"
        raise ConfigError(f"<{tag} name={name!r}> must read a task field, like value=\"${field}\"; got {value!r}")
    modality = OBJECT_TAGS[tag.lower()]
    value_is_url = modality == "text" and (_attr(element, "valueType") or "").lower() == "url"
    return ProjectSchema(scale, name, value[1:], modality, value_is_url, tuple(notes))


def _attr(element: ET.Element, name: str, default: str | None = None) -> str | None:
    """An attribute in any case: Label Studio's editor lowercases attribute names, so maxrating="10" shows ten
    stars (with two spellings, the later one counts, as there)."""
    wanted, found = name.lower(), default
    for key, value in element.attrib.items():
        if key.lower() == wanted:
            found = value
    return found


def _tag(control: ET.Element) -> str:
    return f"<{control.tag} name={_attr(control, 'name')!r}>"


def _scale(control: ET.Element, choice_values: Mapping[str, float] | None) -> RatingScale:
    kind = RATING_TAGS[control.tag.lower()]
    name, to_name = _attr(control, "name"), _attr(control, "toName")
    if kind == "number":
        try:
            low, high = float(_attr(control, "min")), float(_attr(control, "max"))
        except (TypeError, ValueError):
            raise ConfigError(f"<Number name={name!r}> needs numeric min and max to map ratings to -1..+1") from None
        step = _float_or_none(_attr(control, "step")) or None
        if step is None and high - low >= 2 * INPUT_STEP:
            step = INPUT_STEP  # pre-selected values on the input's own steps: 71.704727 showed as invalid
        return RatingScale("number", name, to_name, minimum=low, maximum=high, step=step)
    if kind == "rating":
        top = _attr(control, "maxRating", "5").strip()
        if not (top.isascii() and top.isdigit() and 2 <= int(top) <= MAX_RATING):
            raise ConfigError(f"<Rating name={name!r}> needs a whole maxRating from 2 to {MAX_RATING}, got {top[:20]!r}")
        return RatingScale("rating", name, to_name, minimum=1.0, maximum=float(top))
    if (_attr(control, "choice") or "").strip().lower() == "multiple":
        raise ConfigError(f"<Choices name={name!r}> lets an annotator tick several choices (choice=\"multiple\"): a "
                          "rating needs exactly one; remove choice=\"multiple\"")
    # Label Studio stores a choice's alias, when it has one, instead of its value.
    values = [_attr(el, "alias") or _attr(el, "value") for el in control.iter()
              if el.tag.lower() == "choice" and _attr(el, "value")]
    if not values:
        raise ConfigError(f"<Choices name={name!r}> has no <Choice value=...> to rate with")
    if choice_values:  # the admin's targets for one Choices control: another control's values do not match
        unknown = sorted(set(choice_values) - set(values))
        if unknown:
            raise ConfigError(f"choice_values names {unknown}, which <Choices name={name!r}> does not offer ({values})")
        missing = sorted(set(values) - set(choice_values))
        if missing:
            raise ConfigError(f"choice_values gives no target for choices {missing} of {name!r}")
        return RatingScale("choices", name, to_name, choices=dict(choice_values))
    targets = numeric_choice_targets(values)
    if targets is None:
        raise ConfigError(
            f"<Choices name={name!r}> has non-numeric values {values}: use values like \"-1\", \"0\", \"+1\" "
            "or set choice_values in the project's extra params, e.g. {\"choice_values\": {\"Yes\": 1, \"No\": -1}}"
        )
    return RatingScale("choices", name, to_name, choices=targets)


def _describe(controls: list[ET.Element]) -> str:
    if not controls:
        return "no Number, Rating or Choices control"
    return ", ".join(f"<{el.tag} name={_attr(el, 'name')!r} toName={_attr(el, 'toName')!r}>" for el in controls)


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
