"""What the backend keeps about Label Studio, in the ledger's file beside the core tables."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from ml_backend.adapters.ls_records import LabelStudioRecords, version_name
from ml_backend.core.facts import Facts
from ml_backend.core.ledger import Ledger
from ml_backend.core.sqlite_file import columns

P = 1


@pytest.fixture
def led(ledger):
    ledger.upsert_project(P, params={"batch_size": 3})
    return ledger


@pytest.fixture
def records(led):
    return LabelStudioRecords(led.file)


def add(led, *task_ids):
    return led.add_tasks(P, [(t, {"image": f"img-{t}"}) for t in task_ids])


def test_version_names():
    assert [version_name(v) for v in (0, 1, 12)] == ["clip-head-v0", "clip-head-v1", "clip-head-v12"]


def test_label_config_and_state(records):
    assert records.label_config(P) == "" and records.view(P) is None and records.connections(P) is None
    records.set_label_config(P, "<View/>")
    records.set_view(P, {"id": 5, "task_ids": [1, 2]})
    records.set_view(P, {"id": 6, "task_ids": []})
    records.set_connections(P, {"connections": [4]})
    records.set_project_model_version(P, "clip-head-v2")
    assert records.label_config(P) == "<View/>" and records.label_config(2) == ""
    assert records.view(P) == {"id": 6, "task_ids": []}
    assert records.connections(P) == {"connections": [4]}
    assert records.project_model_version(P) == "clip-head-v2" and records.project_model_version(2) is None


def test_predictions_bookkeeping(led, records):
    add(led, 1, 2, 3, 4)
    led.mark_embedded(P, [1, 2, 3])
    assert records.tasks_to_predict(P, version=1, limit=10) == [1, 2, 3]   # 4 is not embedded
    assert records.tasks_to_predict(P, version=1, limit=2) == [1, 2]
    records.mark_predicted(P, [1, 2], 1)
    assert records.tasks_to_predict(P, version=1, limit=10) == [3]
    assert records.not_predicted(P, [1, 2, 3, 4], 1) == [3, 4]
    assert records.tasks_to_predict(P, version=2, limit=10) == [1, 2, 3]
    assert records.not_predicted(P, [2, 1], 2) == [2, 1]


def test_versions_pushed(records):
    records.note_version_pushed(P, 2)
    records.note_version_pushed(P, 1)
    records.note_version_pushed(P, 2)
    assert records.versions_pushed(P) == [1, 2]
    records.forget_version_pushed(P, 1)
    assert records.versions_pushed(P) == [2]
    assert records.versions_pushed(2) == []


def test_deletions_are_remembered_and_a_deleted_tasks_prediction_forgotten(led, records):
    """Label Studio on SQLite can reuse a deleted task's id: the new task needs its own prediction."""
    facts = Facts(led)
    facts.on_deleted(records.note_deleted)
    add(led, 1, 2)
    led.mark_embedded(P, [1, 2])
    records.mark_predicted(P, [1, 2], 1)
    before = time.monotonic()
    facts.delete_tasks(P, [2])
    facts.delete_annotations(P, [7])
    assert records.deleted_since(P, "tasks", before) == {2}
    assert records.deleted_since(P, "annotations", before) == {7}
    assert records.deleted_since(P, "tasks", time.monotonic()) == set()
    add(led, 2)
    led.mark_embedded(P, [2])
    assert records.tasks_to_predict(P, version=1, limit=10) == [2]


def test_the_records_survive_a_restart(tmp_path):
    first = Ledger(tmp_path / "ledger.sqlite")
    records = LabelStudioRecords(first.file)
    first.add_tasks(P, [(1, {"image": "a"})])
    first.mark_embedded(P, [1])
    records.set_label_config(P, "<View/>")
    records.mark_predicted(P, [1], 1)
    records.note_version_pushed(P, 1)
    first.close()

    again = Ledger(tmp_path / "ledger.sqlite")
    records = LabelStudioRecords(again.file)
    assert records.label_config(P) == "<View/>"
    assert records.tasks_to_predict(P, 1, 10) == [] and records.versions_pushed(P) == [1]
    again.close()


# The ledger's schema before Label Studio's state moved out of the core tables (main at d679a32).
OLD_SCHEMA = """
CREATE TABLE projects (id INTEGER PRIMARY KEY, label_config TEXT NOT NULL DEFAULT '', params TEXT NOT NULL DEFAULT '{}',
    ratings_rev INTEGER NOT NULL DEFAULT 0, batch_rev INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL);
CREATE TABLE tasks (project INTEGER NOT NULL, task_id INTEGER NOT NULL, data TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'embedded', 'failed')), error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, seen INTEGER NOT NULL DEFAULT 0, store_seen INTEGER NOT NULL DEFAULT 0,
    predicted_version INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (project, task_id));
CREATE INDEX tasks_by_state ON tasks (project, state);
CREATE TABLE annotations (project INTEGER NOT NULL, annotation_id INTEGER NOT NULL, task_id INTEGER NOT NULL,
    target REAL, error TEXT, updated_at REAL NOT NULL, source_updated_at REAL, PRIMARY KEY (project, annotation_id));
CREATE TABLE heads (project INTEGER NOT NULL, version INTEGER NOT NULL, coef BLOB NOT NULL, intercept REAL NOT NULL,
    fit_key TEXT NOT NULL, n_ratings INTEGER NOT NULL, embedding_model TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
    PRIMARY KEY (project, version));
CREATE TABLE project_state (project INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (project, key));
INSERT INTO projects VALUES (1, '<View><Image name="i" value="$image"/></View>', '{"prompt": "dogs"}', 7, 2, 0);
INSERT INTO tasks VALUES (1, 10, '{"image": "a"}', 'embedded', NULL, 0, 1, 1, 3);
INSERT INTO tasks VALUES (1, 11, '{"image": "b"}', 'embedded', NULL, 0, 0, 1, 0);
INSERT INTO tasks VALUES (1, 12, '{"image": "c"}', 'pending', NULL, 0, 0, 0, 0);
INSERT INTO annotations VALUES (1, 100, 10, 1.0, NULL, 0, NULL);
INSERT INTO heads VALUES (1, 3, X'0000803F', 0.5, 'key', 1, 'clip', 0);
INSERT INTO project_state VALUES (1, 'view', '{"id": 9, "task_ids": [11]}');
INSERT INTO project_state VALUES (1, 'versions_pushed', '[3]');
INSERT INTO project_state VALUES (1, 'project_model_version', '"clip-head-v3"');
"""


def test_a_ledger_from_before_the_split_is_migrated_and_loses_nothing(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)

    ledger = Ledger(path)
    records = LabelStudioRecords(ledger.file)
    assert ledger.project(P).params == {"prompt": "dogs"} and ledger.project(P).batch_rev == 2
    assert ledger.seen_task_ids(P) == {10} and ledger.ratings(P) == {10: 1.0}
    assert ledger.task_states(P) == {10: "embedded", 11: "embedded", 12: "pending"}
    np.testing.assert_array_equal(ledger.latest_head(P).coef, [1.0])
    assert records.label_config(P) == '<View><Image name="i" value="$image"/></View>'
    assert records.view(P) == {"id": 9, "task_ids": [11]}
    assert records.versions_pushed(P) == [3] and records.project_model_version(P) == "clip-head-v3"
    assert records.tasks_to_predict(P, 3, 10) == [11]   # 10 holds a prediction of v3 already
    ledger.close()

    with sqlite3.connect(path) as db:   # the second copy of `seen` and Label Studio's columns are gone
        assert columns(db, "tasks") == {"project", "task_id", "data", "state", "error", "attempts", "seen", "created_at"}
        assert columns(db, "projects") == {"id", "params", "batch_rev", "updated_at", "version_floor"}
        assert "project_state" not in {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    again = Ledger(path)   # and opening it again changes nothing
    assert LabelStudioRecords(again.file).label_config(P).startswith("<View>") and again.seen_task_ids(P) == {10}
    again.close()
