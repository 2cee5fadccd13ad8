"""Hostile and racing input found by a fuzzing pass over the service (2026-12-01), one test per finding.

Each of these answered 500, lost a rating or reported something untrue before its fix.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from ml_backend.core.errors import StaleVectorsError
from ml_backend.core.ledger import Ledger
from ml_backend.core.store import VectorStore
from tests.conftest import CHOICES_CONFIG, unit_rows

P = 1


def test_a_configure_racing_another_does_not_fail_on_the_dropped_loop(backend):
    """A /setup (or a webhook carrying a changed config) read the loop map twice without the lock:
    a concurrent configure that dropped the entry in between made it a KeyError, a 500, and for a
    rating webhook a lost rating. Here the other configure runs exactly in that window."""
    assert backend.setup().status_code == 200
    registry = backend.runtime.projects
    read_config = registry.records.label_config

    def config_read_while_another_configure_drops_the_loop(project):
        registry._loops.pop(project, None)
        return read_config(project)

    registry.records.label_config = config_read_while_another_configure_drops_the_loop
    try:
        response = backend.setup()
    finally:
        registry.records.label_config = read_config
    assert response.status_code == 200, response.get_json()
    assert backend.annotate(1, 3, ["+1"]).status_code == 200


@pytest.mark.parametrize("schema", [12345, ["<View/>"], {"xml": "<View/>"}])
def test_a_label_config_that_is_not_text_is_refused_and_not_stored(backend, schema):
    """It was stored, and every later call for the project failed on it (500), ratings included."""
    assert backend.setup().status_code == 200
    assert backend.tasks_created([1, 2]).status_code == 200
    response = backend.setup(schema=schema)
    assert response.status_code == 400 and "label config" in response.get_json()["message"]
    assert backend.runtime.projects.records.label_config(P) == CHOICES_CONFIG

    # in a webhook or /predict it is left out, and the event itself still counts
    assert backend.webhook("TASKS_CREATED", schema=schema, tasks=[{"id": 3, "data": {"image": "x"}}]).status_code == 200
    assert backend.annotate(1, 1, ["+1"], schema=schema).status_code == 200
    backend.wait()
    assert backend.runtime.projects.ledger.ratings(P) == {1: 1.0}
    assert backend.predict([(1, {})], schema=schema).status_code == 200
    assert backend.runtime.projects.records.label_config(P) == CHOICES_CONFIG
    assert backend.status()["tasks"]


def test_refused_params_stay_reported_until_valid_ones_arrive(backend):
    """A refused /setup still creates the project (later webhooks need it) with the defaults, but
    the refusal vanished from /health as soon as the loop was built: the admin saw a running project
    and no sign that their parameters were not in force."""
    refused = backend.setup(extra_params={"batch_size": 5, "strategy": "nope"})
    assert refused.status_code == 422
    assert backend.tasks_created([1, 2]).status_code == 200
    backend.wait()
    health = backend.get("/health").get_json()
    assert "strategy" in health["project_errors"][str(P)] and "refused" in health["project_errors"][str(P)]
    assert "strategy" in backend.status()["params_error"]

    assert backend.setup(extra_params={"batch_size": 5}).status_code == 200
    assert backend.get("/health").get_json()["project_errors"] == {}
    assert backend.status()["params_error"] is None


def test_blank_extra_params_mean_none_for_a_new_project_as_for_a_known_one(backend):
    """Spaces were 'not valid JSON' for a new project and 'nothing changed' for a known one."""
    assert backend.setup(extra_params="   ").status_code == 200
    assert backend.setup(project=2, extra_params="").status_code == 200
    assert backend.setup(project=2, extra_params="  \n ").status_code == 200


def test_an_update_older_than_the_recorded_version_says_it_changed_nothing(backend):
    """The ledger rightly keeps the newer version; the answer claimed the older one's rating."""
    assert backend.setup().status_code == 200
    assert backend.tasks_created([1]).status_code == 200
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)  # a stamp far ahead of this clock orders nothing (ls_payloads)
    newer = {"id": 7, "task": 1, "updated_at": (now - timedelta(hours=1)).isoformat(),
             "result": [{"from_name": "relevance", "to_name": "img", "type": "choices", "value": {"choices": ["+1"]}}]}
    older = {**newer, "updated_at": (now - timedelta(days=300)).isoformat(),
             "result": [{**newer["result"][0], "value": {"choices": ["-1"]}}]}
    task = {"id": 1, "data": {"image": "x"}}
    assert backend.webhook("ANNOTATION_CREATED", task=task, annotation=newer).get_json()["target"] == 1.0
    answer = backend.webhook("ANNOTATION_UPDATED", task=task, annotation=older).get_json()
    assert answer.get("ignored") is True and "newer version" in answer["reason"] and "target" not in answer
    assert backend.runtime.projects.ledger.ratings(P) == {1: 1.0}


def test_deleting_more_annotations_than_sqlite_takes_in_one_statement(tmp_path):
    """All ids went into one `IN (...)`: past SQLite's variable limit (32,766 in stock builds) the
    webhook answered 500 and the deletion was lost. The limit is lowered here to make it cheap."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.file._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    ledger.upsert_project(P)
    ledger.add_tasks(P, [(t, {"image": f"img-{t}"}) for t in range(1, 4)])
    for annotation, task in ((10, 1), (11, 2), (5000, 3)):
        ledger.record_annotation(P, annotation, task, 1.0)
    assert ledger.delete_annotations(P, list(range(1, 6001))) == 3
    assert ledger.annotation_ids(P) == [] and ledger.seen_task_ids(P) == set()


def test_the_size_limit_counts_utf8_bytes_not_escapes(tmp_path):
    """600 kB of CJK text was refused as 1.2 MB (each character counted as a 6-byte JSON escape)."""
    ledger = Ledger(tmp_path / "ledger.sqlite", max_task_data_bytes=1_048_576)
    ledger.upsert_project(P)
    ledger.add_tasks(P, [(1, {"text": "漢" * 200_000}), (2, {"text": "漢" * 400_000})])
    assert ledger.task_states(P) == {1: "pending", 2: "failed"}
    reason = {e["task"]: e["error"] for e in ledger.counts(P)["task_errors"]}[2]
    assert "1200012 bytes" in reason and "image or text" in reason


def test_a_store_refuses_another_models_vectors_as_stale_whatever_their_size(chroma):
    """A loop still embedding with the old model met a size check first: a generic ValueError
    ('vectors have 32 dims, the store holds 24') the worker logged as a failed pass."""
    store = VectorStore(chroma, "project-1", "model-a")
    store.upsert([1, 2], unit_rows(np.random.default_rng(0).normal(size=(2, 24))))
    store.use_model("model-b")
    store.upsert([1], unit_rows(np.random.default_rng(1).normal(size=(1, 32))), model_id="model-b")
    with pytest.raises(StaleVectorsError):
        store.upsert([2], unit_rows(np.random.default_rng(2).normal(size=(1, 24))), model_id="model-a")


def test_present_vectors_reads_membership_and_rows_at_one_moment(chroma):
    """/predict checked which tasks had vectors, then read them: a store reset in between was a KeyError."""
    store = VectorStore(chroma, "project-1", "model-a")
    vectors = unit_rows(np.random.default_rng(0).normal(size=(3, 8)))
    store.upsert([1, 2, 3], vectors)
    present, rows = store.present_vectors([3, 9, 1])
    assert present == [3, 1]
    np.testing.assert_array_equal(rows, vectors[[2, 0]])
    store.use_model("model-b")  # drops every vector
    present, rows = store.present_vectors([3, 1])
    assert present == [] and rows.shape[0] == 0


@pytest.mark.parametrize("take_back", ["annotation", "task"])
def test_taking_back_the_only_rating_retires_the_head_fitted_on_it(backend, take_back):
    """With no prompt, deleting the one rating (an annotator's "more like this" taken back), or its
    task, left the head fitted on it in force: /status reported it, /predict scored with it and the
    batch followed it (found by the second fuzzing pass, 2026-12-01). Now a head that knows nothing
    replaces it: a new version fitted on no rating, every score 0.5, the batch back to cluster picks."""
    assert backend.setup().status_code == 200
    assert backend.tasks_created([1, 2, 3, 4]).status_code == 200
    backend.wait()
    assert backend.annotate(7, 1, ["+1"]).status_code == 200
    backend.wait()
    assert backend.status()["head"] == {"version": 1, "ratings": 1}
    if take_back == "annotation":
        assert backend.webhook("ANNOTATIONS_DELETED", annotations=[{"id": 7}]).status_code == 200
    else:
        assert backend.webhook("TASKS_DELETED", tasks=[{"id": 1}]).status_code == 200
    backend.wait()
    status = backend.status()
    assert status["rated_tasks"] == 0 and status["head"] == {"version": 2, "ratings": 0}
    scores = [p["score"] for p in backend.predict([(2, {}), (3, {})]).get_json()["results"]]
    assert scores == [0.5, 0.5]
    # a rating again: a head fitted on it, as after the first
    assert backend.annotate(8, 2, ["+1"]).status_code == 200
    backend.wait()
    assert backend.status()["head"] == {"version": 3, "ratings": 1}


def test_with_a_prompt_the_head_after_every_task_is_deleted_and_new_ones_come_is_the_prompt_s(backend):
    """Every task deleted: nothing to fit, so a head that knows nothing; tasks imported again: the
    prompt's zero-shot head, not the empty one (their ratings and prompt are the same)."""
    assert backend.setup(extra_params={"prompt": "a red square"}).status_code == 200
    assert backend.tasks_created([1, 2, 3]).status_code == 200
    backend.wait()
    assert backend.annotate(7, 1, ["+1"]).status_code == 200
    backend.wait()
    assert backend.webhook("TASKS_DELETED", tasks=[{"id": t} for t in (1, 2, 3)]).status_code == 200
    backend.wait()
    emptied = backend.status()["head"]
    assert emptied["ratings"] == 0
    assert backend.tasks_created([4, 5, 6]).status_code == 200
    backend.wait()
    head = backend.status()["head"]
    assert head["version"] == emptied["version"] + 1 and head["ratings"] == 0
    scores = [p["score"] for p in backend.predict([(4, {}), (5, {}), (6, {})]).get_json()["results"]]
    assert len(set(scores)) > 1  # the prompt ranks them; the empty head scored all 0.5


def test_a_rating_whose_task_object_is_another_task_does_not_file_that_data_under_its_id(backend):
    """An ANNOTATION_CREATED whose `task` object was another task's (id 996, the annotation's 997)
    registered 996's data as task 997's. Label Studio always sends the pair matching; a payload that
    does not is now read as a rating of an unknown task, fetched from Label Studio."""
    assert backend.setup().status_code == 200
    backend.tasks_created([1])
    backend.wait()
    body = {"action": "ANNOTATION_CREATED", "project": {"id": P},
            "annotation": {"id": 924, "task": 997, "result": [{"from_name": "relevance", "to_name": "img",
                                                               "type": "choices", "value": {"choices": ["+1"]}}]},
            "task": {"id": 996, "data": {"image": "https://example.org/996.png"}}}
    response = backend.post("/webhook", body)
    assert response.status_code == 200 and "unknown here" in response.get_json()["note"]
    assert backend.runtime.projects.ledger.task_data(P, [996, 997]) == {}


def test_a_text_task_holding_a_lone_surrogate_fails_alone(backend):
    """An inline text with an unpaired surrogate ("\\ud800", valid JSON) made the tokenizer refuse the
    whole embedding batch, on every pass: the project's embedding and refits stopped for good, and
    no task error said why (found by fuzzing, 2026-12-01). That task now fails alone, with a reason."""
    from tests.conftest import TEXT_CONFIG

    assert backend.setup(project=2, schema=TEXT_CONFIG).status_code == 200
    body = ('{"action": "TASKS_CREATED", "project": {"id": 2}, "tasks": [{"id": 1, "data": {"text": "bad \\ud800"}}, '
            '{"id": 2, "data": {"text": "a recipe for soup"}}, {"id": 3, "data": {"text": "a football match"}}]}')
    assert backend.client.post("/webhook", data=body, content_type="application/json").status_code == 200
    backend.wait(project=2)
    status = backend.status(project=2)
    assert status["tasks"] == {"embedded": 2, "failed": 1, "pending": 0}
    assert "surrogate" in str(status["task_errors"])


# -- a second pass (2026-12-02) ----------------------------------------------------------

@pytest.mark.parametrize("token", ["\ud800tok", "tok\u20ac"])
def test_a_setup_token_that_is_not_printable_ascii_is_a_400(backend, token):
    """Hashing it (a lone surrogate) or sending it in a header (any non-ASCII) raised UnicodeEncodeError: a 500."""
    body = {"project": "1.1700000000", "schema": CHOICES_CONFIG, "access_token": token}
    response = backend.post("/setup", body)
    assert response.status_code == 400 and "printable ASCII" in response.get_json()["message"]


def test_deleting_a_task_named_twice_takes_it_out_of_the_pool(backend):
    """Chroma refused the delete (DuplicateIDError, a 500) after the ledger had dropped the task: its vector
    stayed in the store, and the deleted task kept coming back in batches."""
    assert backend.setup().status_code == 200
    backend.tasks_created([1, 2, 3, 4])
    backend.wait()
    assert backend.webhook("TASKS_DELETED", tasks=[{"id": 3}, {"id": 3}]).status_code == 200
    backend.wait()
    assert 3 not in backend.loop().pool()[0].tolist()
    assert 3 not in [t.task_id for t in backend.loop().select_batch(10)]
    assert backend.status()["vectors"] == 3


def test_made_up_webhook_actions_are_not_kept_without_bound(backend):
    """Every distinct action string was kept for the status answer: 5,000 made-up 2 kB names made a 10 MB one."""
    assert backend.setup().status_code == 200
    for i in range(200):
        assert backend.webhook(f"{i:04d}" + "X" * 2000).status_code == 200
        assert backend.webhook("MADE_UP_" + "".join(chr(65 + int(d)) for d in f"{i:03d}")).status_code == 200
    assert backend.tasks_created([1]).status_code == 200
    kept = backend.status()["last_webhooks"]
    assert len(kept) <= 64 and "TASKS_CREATED" in kept
    assert all(action.isupper() and len(action) <= 64 for action in kept)


def test_a_config_swapped_out_during_an_evaluation_is_one_warning_not_a_traceback(backend, monkeypatch, caplog):
    """A webhook that made the config unusable while the worker was about to evaluate logged a full traceback;
    every other pass logs that state as one line."""
    from ml_backend.core.errors import ConfigError

    assert backend.setup().status_code == 200

    def unusable(project):
        raise ConfigError("label config has no <Image> or <Text> tag")

    monkeypatch.setattr(backend.runtime.projects, "get", unusable)
    assert backend.runtime.worker._evaluate(P) is False
    [record] = [r for r in caplog.records if "evaluation" in r.getMessage()]
    assert record.exc_info is None and "no <Image> or <Text>" in record.getMessage()


def test_a_prompt_refit_over_another_models_vectors_is_stale_not_a_crash(backend):
    """A config switch to another model emptied (or refilled) the store between the refit's check and its read
    of the pool: the prompt's vector then met vectors of another size (ValueError in a matmul, logged with a
    traceback). Here the prompt's vector is of another size than the stored ones."""
    assert backend.setup(extra_params={"prompt": "a red square"}).status_code == 200
    backend.tasks_created([1, 2, 3])
    backend.wait()
    loop = backend.loop()
    assert loop.head_version() >= 1
    loop._prompt_vector = np.zeros(loop._prompt_vector.shape[0] + 3, dtype=np.float32)
    assert backend.annotate(1, 1, ["+1"]).status_code == 200
    with pytest.raises(StaleVectorsError, match="changed model"):
        loop.refit_if_needed()


def test_the_next_batch_answer_scrubs_secrets_from_the_workers_last_error(backend, monkeypatch):
    """/status scrubbed the worker's last error, /next-batch returned it as it was: an API key that Label Studio
    echoed in an error body reached the answer (found by fuzzing Label Studio's side, 2026-12-02)."""
    from ml_backend.service.redaction import redactor

    secret = "0123456789abcdef-secret-key-0123456789"
    redactor.add_secrets([secret])
    assert backend.setup().status_code == 200
    worker = backend.runtime.worker
    state = worker.status

    def failing_with_the_key(project):
        return {**state(project), "last_error": f"sync: Label Studio answered 403: key {secret} may not read"}

    monkeypatch.setattr(worker, "status", failing_with_the_key)
    answer = backend.post("/projects/1/next-batch")
    assert secret not in answer.get_data(as_text=True)
    assert "may not read" in answer.get_json()["worker"]["last_error"]
