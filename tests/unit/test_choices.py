"""The decision record (`benchmarks.choices`) names the values the code runs with."""

from __future__ import annotations

import re

import pytest

from benchmarks import choices
from ml_backend.core import evaluation
from ml_backend.core.params import HeadParams, SelectionParams

DEFAULTS = {"head": HeadParams(), "selection": SelectionParams()}


@pytest.mark.parametrize("entry", [e for e in choices.LABEL_EFFICIENCY
                                   if e["parameter"].split(".")[0] in DEFAULTS and " " not in e["parameter"]],
                         ids=lambda e: e["parameter"])
def test_each_recorded_hyperparameter_is_the_codes_default(entry):
    group, name = entry["parameter"].split(".")
    assert getattr(DEFAULTS[group], name) == entry["value"]


def test_every_tuned_setting_of_the_head_and_the_selection_has_a_record():
    recorded = {e["parameter"] for e in choices.LABEL_EFFICIENCY}
    tuned = {"selection.uniform_share", "selection.positive_balance", "selection.clusters", "selection.prevalence_gain",
             "selection.stale_after", "selection.spread_until_confident", "head.l2", "head.prior_l2",
             "head.prompt_role", "head.prompt_weight", "head.background_min_weight", "head.background_weight"}
    assert tuned <= recorded


@pytest.mark.parametrize("name, value", [("STRATA_PER_SIDE", 1), ("MIN_STRATUM_DRAWS", 2), ("PLACEMENT_SLOPE", 0.5)])
def test_recorded_estimator_constants_are_the_codes(name, value):
    entry = next(e for e in choices.EVALUATION if e["constant"].startswith(f"core.evaluation.{name}")
                 and isinstance(e["value"], (int, float)))
    assert entry["value"] == value == getattr(evaluation, name)


@pytest.mark.parametrize("name", ["PRIOR", "POOL_PRIOR", "INTERVAL", "NONLINEAR_INTERVAL"])
def test_recorded_estimator_choices_name_the_codes(name):
    entry = next(e for e in choices.EVALUATION if re.match(rf"core\.evaluation\.{name}\b(?!:)", e["constant"]))
    assert entry["value"].split()[0] == getattr(evaluation, name)
