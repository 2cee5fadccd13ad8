"""Per-project parameters, validated once when a project is set up."""

from __future__ import annotations

import inspect
import json
import unicodedata
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .strategies import DEFAULT_STRATEGY, STRATEGIES, AdaptiveStrategy
from .texts import is_blank

# CLIP's text tower reads 77 tokens (a few hundred characters), sentence models up to their max_seq_length;
# longer text is truncated.
MAX_PROMPT_CHARS = 1000
# The next-batch tab matches its tasks with one filter item each: Label Studio on SQLite (the demo's and
# the default install's) answers its listing with a 500 from 997 items on (SQLite's expression depth limit
# of 1000), and the tab shows no rows.
MAX_BATCH_SIZE = 900


class HeadParams(BaseModel):
    """How the linear head is fitted (see `core.training`)."""

    # inf or NaN passes gt/le checks in some places and makes every refit fail: refused outright.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    l2: float = Field(0.3, gt=0, le=1e6, description="L2 pull of the learned part of W towards 0")
    prior_l2: float = Field(1.0, gt=0, le=1e6, description="pull of the prompt's weight towards its zero-shot value")
    max_iter: int = Field(100, ge=1, le=10_000, description="L-BFGS iterations per refit")
    background_samples: int = Field(
        200, ge=0, le=100_000, description="unrated pool items added as weak negatives at each refit"
    )
    background_weight: float = Field(
        0.1, ge=0, le=1, description="total weight of the background negatives, relative to the ratings"
    )
    background_min_weight: float = Field(
        2.0, ge=0, le=1000,
        description="the background negatives weigh at least this many ratings in total, so the first few "
        "ratings (or one example item) already meet negatives and the head's 0.5 sits near the rated items",
    )
    prompt_role: Literal["example", "prior"] = Field(
        "example", description="how refits use the prompt: 'example', its embedding counts as `prompt_weight` ratings "
        "of +1; 'prior', a score W starts from and learns how much to keep",
    )
    prompt_weight: float = Field(
        30.0, gt=0, le=1000, description="with prompt_role 'example': how many ratings of +1 the prompt counts as")
    prior_positive_rate: float = Field(
        0.1, gt=0, lt=1, description="share of the pool the prompt-only head scores above 0.5"
    )


class EvaluationParams(BaseModel):
    """What the evaluation reports and when it suggests stopping (see `core.evaluation`, `core.stopping`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    target_recall: float = Field(
        0.9, gt=0, le=1, description="suggest stopping once the labeling has found this share of the pool's positives")
    confidence: float = Field(
        0.9, ge=0.5, lt=1, description="with at least this probability; also the level of every interval shown")
    stable_labels: int = Field(
        100, ge=10, le=100_000, description="window, in labels, over which the head's predictions are compared")
    stable_kappa: float = Field(
        0.99, gt=0, le=1, description="suggest stopping once the head's predictions on the pool agree with those "
        "of `stable_labels` labels ago at least this well (Cohen's kappa)")
    tab_summary: bool = Field(
        True, description="lead the next-batch tab's title in Label Studio with the share of yes found (or "
        "`stop?`) and end it with the evaluation's summary")


# The adaptive strategy's defaults live in its signature, as a scikit-learn estimator's do; a project's
# settings start from them.
ADAPTIVE_DEFAULTS = {name: parameter.default
                     for name, parameter in inspect.signature(AdaptiveStrategy.__init__).parameters.items()
                     if parameter.default is not inspect.Parameter.empty}


class SelectionParams(BaseModel):
    """How the adaptive strategy picks a batch (see `core.strategies.adaptive`); other strategies ignore it.
    Its fields are `AdaptiveStrategy`'s parameters, with their defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    uniform_share: float = Field(
        ADAPTIVE_DEFAULTS["uniform_share"], ge=0, le=1,
        description="share of every batch drawn uniformly at random from all unseen tasks, whatever the head says "
        "(at least one pick per batch when > 0): exploration, and an unbiased sample of the pool",
    )
    positive_balance: float = Field(
        ADAPTIVE_DEFAULTS["positive_balance"], gt=0, le=1,
        description="while positives are under this share of the ratings, part of each batch goes to the "
        "highest-scored tasks (the deficit's share); above it, all to the boundary",
    )
    clusters: int = Field(
        ADAPTIVE_DEFAULTS["clusters"], ge=1, le=1000,
        description="k-means clusters of the pool; before the head has any signal, picks go one per "
        "least-rated cluster",
    )
    prevalence_gain: float = Field(
        ADAPTIVE_DEFAULTS["prevalence_gain"], ge=0, le=100,
        description="once tasks are rated, the uniform share is at least this times the pool's prevalence as the "
        "rated uniform picks estimate it (0.5 before any): common concepts get more random picks",
    )
    stale_after: int = Field(
        ADAPTIVE_DEFAULTS["stale_after"], ge=0, le=1000,
        description="once a rating is positive, when this many of the latest ratings of the head's own picks hold "
        "no positive, half of those picks go to the least-rated clusters instead (0: never)",
    )
    boundary_per_cluster: bool = Field(
        ADAPTIVE_DEFAULTS["boundary_per_cluster"],
        description="boundary picks at most one per k-means cluster (none in a cluster the batch's top picks hold), "
        "closest to the boundary first: a varied batch instead of near-duplicates",
    )
    spread_until_confident: bool = Field(
        ADAPTIVE_DEFAULTS["spread_until_confident"],
        description="while the head scores no unseen task positive (few positives rated yet), its picks go down "
        "its ranking at most one per k-means cluster: its top and its boundary are then the same near-duplicates "
        "of the positives it has seen (not while the ratings are only a prompt or one example rated yes). Off: "
        "it gained on the tuned concepts and not on held-out ones",
    )


class ProjectParams(BaseModel):
    """What a project admin can set per project (ML backend 'extra params' or a config file)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    prompt: str | None = Field(
        None, max_length=MAX_PROMPT_CHARS,
        description="text whose embedding (the project's model) starts W before any rating (CLIP reads its first 77 tokens)")
    batch_size: int = Field(10, ge=1, le=MAX_BATCH_SIZE, description="k: tasks per next-batch view")
    strategy: str = Field(DEFAULT_STRATEGY, description="selection strategy name")
    rating_control: str | None = Field(None, description="name of the control that holds the rating")
    choice_values: dict[str, float] | None = Field(None, description="choice value -> target in [-1, 1]")
    view_title: str = Field("Next batch (ML)", min_length=1, max_length=100)
    preselect_rating: bool = Field(
        False, description="predictions pre-select the head's guess in the labeling form (off: they carry the score only)"
    )
    head: HeadParams = Field(default_factory=HeadParams)
    evaluation: EvaluationParams = Field(default_factory=EvaluationParams)
    selection: SelectionParams = Field(default_factory=SelectionParams)

    @field_validator("prompt")
    @classmethod
    def _blank_prompt_is_none(cls, prompt: str | None) -> str | None:
        # invisible characters alone (a NUL, a zero-width space) embed as the empty string: no prompt either
        return None if prompt is None or is_blank(prompt) else prompt.strip()

    @field_validator("view_title")
    @classmethod
    def _visible_title(cls, title: str) -> str:
        # A blank or zero-width title left the tab without a label, and a right-to-left override turned it
        # around ("(LM) hctab txeN"): the tab's title is plain visible text.
        hidden = next((c for c in title if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
        if hidden is not None:
            name = unicodedata.name(hidden, "a control character")
            raise ValueError(f"must be plain text; it holds U+{ord(hidden):04X} ({name}), which Label Studio shows "
                             "as nothing or uses to reorder the title")
        if not title.strip():
            raise ValueError("must hold visible text, not only spaces")
        return title.strip()

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}")
        return name

    @classmethod
    def parse(cls, *layers: Mapping[str, Any] | str | None) -> "ProjectParams":
        """Merge parameter layers (later wins; `head`, `selection` and `evaluation` merged key by key) and validate.

        A layer may be a dict, a JSON string (as typed into Label Studio's extra params
        box) or None. Raises `ConfigError` with every problem listed.
        """
        merged = merge_params(*layers)
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid project parameters: {problems}") from None


NESTED = ("head", "selection", "evaluation")  # groups merged key by key across layers


def merge_params(*layers: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """Parameter layers merged into one dict, later layers winning and the NESTED groups merged key by key.

    Not validated (see `ProjectParams.parse`); raises `ConfigError` for a layer that is not an object.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        values = _as_mapping(layer)
        nested = {}
        for key in NESTED:
            if not isinstance(values.get(key, {}), Mapping):
                raise ConfigError(f"invalid project parameters: {key}: must be an object, got {values[key]!r}")
            nested[key] = {**merged.get(key, {}), **values.get(key, {})}
        merged.update(values)
        merged.update({key: value for key, value in nested.items() if value})
    return merged


def read_params_file(path: str | Path) -> dict[str, Any]:
    """The layers of a PROJECT_PARAMS_FILE, {"default": {...}, "<project id>": {...}}, not validated.

    Raises `ConfigError` when the file cannot be read as one JSON object: read at startup and
    again at every configure, so that an edit takes effect without a restart.
    """
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise ConfigError(f"PROJECT_PARAMS_FILE={path} cannot be read as JSON: {exc}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"PROJECT_PARAMS_FILE={path} holds a JSON {type(content).__name__}, not an object "
                          'such as {"default": {"batch_size": 8}, "<project id>": {...}}')
    return content


def params_file_problems(path: str | Path) -> list[str]:
    """What in a PROJECT_PARAMS_FILE no project could run with, one sentence per section: read at startup, so
    that a typo made while the backend was down stops it with the reason, instead of refusing every rating of
    the projects it configures."""
    try:
        content = read_params_file(path)
    except ConfigError as exc:
        return [str(exc)]
    problems = []
    for section, layer in content.items():
        if section != "default" and not (section.isascii() and section.isdigit()):
            problems.append(f'PROJECT_PARAMS_FILE={path}: section {section!r} is neither "default" nor a project id')
            continue
        try:
            ProjectParams.parse(content.get("default"), layer)
        except ConfigError as exc:
            problems.append(f"PROJECT_PARAMS_FILE={path}, section {section!r}: {exc}")
    return problems


def _as_mapping(layer: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if layer is None or (isinstance(layer, str) and not layer.strip()):  # an emptied field, spaces left or not
        return {}
    if isinstance(layer, str):
        try:
            layer = json.loads(layer)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"extra params are not valid JSON: {exc}") from None
        except RecursionError:
            raise ConfigError("extra params are nested too deeply to read") from None
    if not isinstance(layer, Mapping):
        raise ConfigError(f"parameters must be a JSON object, got {type(layer).__name__}")
    return dict(layer)
