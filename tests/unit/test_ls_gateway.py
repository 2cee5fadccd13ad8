"""The gateway protocol: the real Label Studio client and the tests' in-memory one keep to it."""

from __future__ import annotations

import inspect

import pytest

from ml_backend.adapters.ls_client import LabelStudioClient
from ml_backend.adapters.ls_gateway import LabelStudioGateway
from tests.fakes import FakeLabelStudio

CALLS = [name for name, member in vars(LabelStudioGateway).items() if inspect.isfunction(member) and not name.startswith("_")]


def test_the_protocol_lists_what_pull_and_push_call():
    assert sorted(CALLS) == ["counts", "delete_model_version", "ensure_webhook", "iter_tasks", "ml_connections",
                             "model_versions", "push_predictions", "push_view", "set_model_version"]


@pytest.mark.parametrize("implementation", [LabelStudioClient, FakeLabelStudio], ids=["client", "fake"])
@pytest.mark.parametrize("call", CALLS)
def test_each_implementation_takes_every_call_as_the_protocol_gives_it(implementation, call):
    wanted = list(inspect.signature(getattr(LabelStudioGateway, call)).parameters.values())[1:]
    method = getattr(implementation, call, None)
    assert method is not None, f"{implementation.__name__} has no {call}"
    given = list(inspect.signature(method).parameters.values())[1:]
    assert [p.name for p in given[: len(wanted)]] == [p.name for p in wanted]
    assert all(p.default is not inspect.Parameter.empty for p in given[len(wanted):]), "extra parameters need defaults"
