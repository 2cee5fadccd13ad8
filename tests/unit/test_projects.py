"""The project registry: parameters validated once, from their layers, and handed to the loop as an object."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml_backend.core.errors import ConfigError
from ml_backend.core.facts import AnnotationRating
from ml_backend.service.runtime import Runtime
from ml_backend.service.settings import ServiceSettings
from tests.conftest import CHOICES_CONFIG, RATING_CONFIG, TEXT_CONFIG
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


def test_two_configures_at_once_leave_the_recorded_and_the_running_params_alike(projects, monkeypatch):
    """One call is held up right after recording its params; the other must not slip in between its
    record and its taking effect (the ledger would hold one's params while the project runs the other's)."""
    import threading
    import time

    projects.configure(P, label_config=CHOICES_CONFIG, extra_params={"batch_size": 5})
    record = projects.facts.set_params

    def slow_for_the_first(project, params=None):
        record(project, params)
        if params == {"batch_size": 3}:
            time.sleep(0.3)

    monkeypatch.setattr(projects.facts, "set_params", slow_for_the_first)
    calls = [threading.Thread(target=projects.configure, args=(P,), kwargs={"extra_params": {"batch_size": size}})
             for size in (3, 7)]
    calls[0].start()
    time.sleep(0.1)
    calls[1].start()
    for call in calls:
        call.join(10)
    assert projects.get(P).params.batch_size == projects.ledger.project(P).params["batch_size"]


def test_a_label_config_that_reads_another_field_embeds_every_task_again_and_refits(tmp_path, clean_env):
    """`value="$title"` changed to `value="$body"` kept the titles' vectors and the head fitted on them (also
    after a restart): annotators read the bodies while the queue and predictions came from the titles."""
    settings = ServiceSettings(model_dir=tmp_path / "model")
    runtime = Runtime.build(settings, embedders={"text": HashEmbedder("text")}, chroma=MemoryChroma(),
                            start_worker=False, talk_to_label_studio=False)
    projects, facts = runtime.projects, runtime.facts
    titles = TEXT_CONFIG.replace("$text", "$title")
    loop, _ = projects.configure(P, label_config=titles, extra_params={})
    facts.add_tasks(P, [(t, {"title": f"title {t}", "body": f"body {t}"}) for t in (1, 2, 3)])
    facts.record_annotation(P, AnnotationRating(10, 1, 1.0))
    loop.embed_pending()
    first = loop.refit_if_needed()
    title_vectors = loop.store.vectors([1, 2, 3])

    loop, _ = projects.configure(P, label_config=TEXT_CONFIG.replace("$text", "$body"))
    assert len(loop.store) == 0 and loop.store.source == "$body"
    loop.embed_pending()
    np.testing.assert_allclose(loop.store.vectors([1, 2, 3]), HashEmbedder("text").embed_texts(["body 1", "body 2", "body 3"]))
    assert not np.allclose(loop.store.vectors([1]), title_vectors[:1])
    second = loop.refit_if_needed()  # the same rating, new vectors: a new head
    assert second is not None and second.version > first.version
    assert projects.configure(P, label_config=TEXT_CONFIG.replace("$text", "$body"))[1] is False
    runtime.close()
