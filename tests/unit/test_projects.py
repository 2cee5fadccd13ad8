"""The project registry: parameters validated once, from their layers, and handed to the loop as an object."""

from __future__ import annotations

import json

import pytest

from ml_backend.core.errors import ConfigError
from ml_backend.service.runtime import Runtime
from ml_backend.service.settings import ServiceSettings
from tests.conftest import CHOICES_CONFIG, RATING_CONFIG
from tests.fakes import HashEmbedder, MemoryChroma

P = 1


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"default": {"batch_size": 7, "prompt": "anything"}, str(P): {"batch_size": 5}}))
    return path


@pytest.fixture
def projects(tmp_path, params_file, clean_env):
    settings = ServiceSettings(model_dir=tmp_path / "model", project_params_file=params_file)
    runtime = Runtime.build(settings, embedders={"image": HashEmbedder()}, chroma=MemoryChroma(),
                            start_worker=False, talk_to_label_studio=False)
    yield runtime.projects
    runtime.close()


def test_layers_merge_in_order_and_the_loop_gets_the_validated_object(projects):
    loop, changed = projects.configure(P, label_config=CHOICES_CONFIG, extra_params='{"prompt": "dogs"}')
    assert changed and (loop.params.batch_size, loop.params.prompt) == (5, "dogs")
    assert projects.ledger.project(P).params == {"prompt": "dogs"}  # the admin's own layer, as given


def test_a_rebuilt_loop_keeps_the_parameters_validated_at_setup(projects, params_file):
    loop, _ = projects.configure(P, label_config=CHOICES_CONFIG, extra_params={"prompt": "dogs"})
    params_file.write_text("not JSON any more")
    assert projects.observe(P, RATING_CONFIG)  # a new label config: a new loop, the same parameters
    rebuilt = projects.get(P)
    assert rebuilt is not loop and rebuilt.params is loop.params
    with pytest.raises(ConfigError, match="PROJECT_PARAMS_FILE=.* cannot be read as JSON"):
        projects.configure(P, extra_params={"prompt": "cats"})  # new parameters are validated again, with every layer
    assert projects.get(P).params.prompt == "dogs"


@pytest.mark.parametrize("content, reason", [
    ({"default": {"batch_size": 7}, str(P): [{"batch_size": 5}]}, "the entry '1' must be an object of parameters, got a JSON list"),
    ({"default": "batch_size=7"}, "the entry 'default' must be an object of parameters, got a JSON str"),
    ([{"batch_size": 7}], "holds a JSON list, not an object"),
])
def test_a_params_file_entry_that_is_not_an_object_is_refused_not_ignored(projects, params_file, content, reason):
    projects.configure(P, label_config=CHOICES_CONFIG, extra_params={"prompt": "dogs"})
    params_file.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=reason):
        projects.configure(P, extra_params={"prompt": "cats"})
    assert projects.get(P).params.prompt == "dogs"


def test_invalid_parameters_are_refused_and_change_nothing(projects):
    projects.configure(P, label_config=CHOICES_CONFIG, extra_params={"prompt": "dogs"})
    with pytest.raises(ConfigError, match="batchsize"):
        projects.configure(P, extra_params={"batchsize": 3})
    assert projects.ledger.project(P).params == {"prompt": "dogs"}
    assert projects.get(P).params.prompt == "dogs"
