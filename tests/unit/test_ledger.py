"""The SQLite ledger: projects, tasks, ratings, seen, head versions (Label Studio's side: test_ls_records.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend.core.ledger import Ledger

P = 1


@pytest.fixture
def led(ledger):
    ledger.upsert_project(P, params={"batch_size": 3})
    return ledger


def add(led, *task_ids):
    return led.add_tasks(P, [(t, {"image": f"img-{t}"}) for t in task_ids])


def test_projects(led):
    record = led.project(P)
    assert (record.id, record.params, record.batch_rev) == (P, {"batch_size": 3}, 0)
    led.upsert_project(P, params={"prompt": "x"})
    led.upsert_project(P)  # params untouched when not given
    assert led.project(P).params == {"prompt": "x"}
    led.upsert_project(2)
    assert led.project_ids() == [1, 2] and led.project(3) is None
    assert [led.request_batch(P), led.request_batch(P)] == [1, 2]


def test_add_tasks_is_idempotent_and_counts_new_ones(led):
    assert add(led, 1, 2, 3) == 3
    assert add(led, 2, 3, 4) == 1
    assert led.add_tasks(P, [(1, {"image": "changed"})]) == 0
    assert led.task_data(P, [1, 4, 99]) == {1: {"image": "img-1"}, 4: {"image": "img-4"}}
    assert led.tasks_in_state(P, "pending") == [(t, {"image": f"img-{t}"}) for t in (1, 2, 3, 4)]
    assert led.tasks_in_state(P, "pending", limit=2) == [(1, {"image": "img-1"}), (2, {"image": "img-2"})]


def test_tasks_are_per_project(led):
    add(led, 1)
    led.add_tasks(2, [(1, {"image": "other"})])
    assert led.task_data(2, [1]) == {1: {"image": "other"}}
    assert led.task_data(P, [1]) == {1: {"image": "img-1"}}


def test_task_data_for_many_ids_crosses_the_sqlite_variable_limit(led):
    led.add_tasks(P, [(t, {"i": t}) for t in range(1, 1201)])
    data = led.task_data(P, list(range(1, 1201)))
    assert len(data) == 1200 and data[1200] == {"i": 1200}


def test_record_annotation_marks_seen(led):
    add(led, 1, 2)
    led.record_annotation(P, 10, 1, 0.5)
    assert led.seen_task_ids(P) == {1}
    assert led.ratings(P) == {1: 0.5}


def test_ratings_come_in_the_order_the_tasks_were_first_annotated(led):
    """Not in task id order: the adaptive strategy reads the latest ratings (Label Studio's annotation
    ids grow with time, whatever order the backend hears about them in)."""
    add(led, 1, 2, 3)
    led.record_annotation(P, 22, 1, 1.0)
    led.record_annotation(P, 20, 3, -1.0)
    led.record_annotation(P, 21, 2, -1.0)
    led.record_annotation(P, 23, 3, 1.0)  # a second annotation does not move task 3
    assert list(led.ratings(P)) == [3, 2, 1]


def test_record_annotation_registers_an_unknown_task_with_its_data(led):
    led.record_annotation(P, 10, 7, 1.0, task_data={"image": "seven"})
    assert led.task_data(P, [7]) == {7: {"image": "seven"}}
    assert led.seen_task_ids(P) == {7}


def test_ratings_average_annotations_and_ignore_non_ratings(led):
    add(led, 1, 2, 3)
    led.record_annotation(P, 10, 1, 1.0)
    led.record_annotation(P, 11, 1, 0.0)
    led.record_annotation(P, 12, 1, None)                      # skipped
    led.record_annotation(P, 13, 2, None, error="bad value")   # unreadable
    led.record_annotation(P, 14, 3, -1.0)
    assert led.ratings(P) == pytest.approx({1: 0.5, 3: -1.0})
    assert led.seen_task_ids(P) == {1, 2, 3}
    counts = led.counts(P)
    assert (counts["rated_tasks"], counts["annotations"], counts["seen"]) == (2, 5, 3)
    assert counts["annotation_errors"] == [{"annotation_id": 13, "task_id": 2, "error": "bad value"}]


def test_updating_an_annotation_replaces_its_target(led):
    add(led, 1)
    led.record_annotation(P, 10, 1, 1.0)
    led.record_annotation(P, 10, 1, -0.5)
    assert led.ratings(P) == {1: -0.5}
    assert led.annotation_ids(P) == [10]


def test_delete_annotations_recomputes_seen(led):
    add(led, 1, 2)
    led.record_annotation(P, 10, 1, 1.0)
    led.record_annotation(P, 11, 1, -1.0)
    led.record_annotation(P, 12, 2, 1.0)
    assert led.delete_annotations(P, [10, 12, 999]) == 2
    assert led.seen_task_ids(P) == {1}       # task 1 still has annotation 11
    assert led.ratings(P) == {1: -1.0}
    assert led.delete_annotations(P, [999]) == 0
    assert led.delete_annotations(P, []) == 0


def test_reset_seen_keeps_ratings(led):
    add(led, 1, 2, 3)
    led.record_annotation(P, 8, 1, None)   # skips: seen, not rated
    led.record_annotation(P, 9, 2, None)
    led.record_annotation(P, 10, 3, 1.0)
    assert led.reset_seen(P) == 3
    assert led.seen_task_ids(P) == set()
    assert led.ratings(P) == {3: 1.0}
    assert led.reset_seen(P) == 0


def test_reading_a_known_annotation_again_does_not_undo_reset_seen(led):
    # Every sync re-reads all annotations from Label Studio: only news may mark a task seen.
    add(led, 1, 2)
    led.record_annotation(P, 10, 1, 1.0, source_updated_at=100.0)
    led.record_annotation(P, 11, 2, None, source_updated_at=100.0)   # a skip
    led.reset_seen(P)
    led.record_annotation(P, 10, 1, 1.0, source_updated_at=100.0)
    led.record_annotation(P, 11, 2, None, source_updated_at=100.0)
    led.record_annotation(P, 10, 1, 1.0)   # a repeated webhook without Label Studio's time
    assert led.seen_task_ids(P) == set()


@pytest.mark.parametrize(
    "target, source_updated_at",
    [(-1.0, 100.0), (1.0, 200.0), (-1.0, None)],
    ids=["new value", "re-submitted unchanged", "new value, no time"],
)
def test_an_annotation_updated_after_reset_seen_marks_its_task_seen(led, target, source_updated_at):
    add(led, 1)
    led.record_annotation(P, 10, 1, 1.0, source_updated_at=100.0)
    led.reset_seen(P)
    led.record_annotation(P, 10, 1, target, source_updated_at=source_updated_at)
    assert led.seen_task_ids(P) == {1}
    assert led.ratings(P) == {1: target}


def test_an_older_version_of_an_annotation_changes_nothing(led):
    add(led, 1)
    led.record_annotation(P, 10, 1, 1.0, source_updated_at=200.0)
    led.reset_seen(P)
    led.record_annotation(P, 10, 1, -1.0, source_updated_at=100.0)
    assert led.seen_task_ids(P) == set() and led.ratings(P) == {1: 1.0}


def test_deleting_one_of_two_annotations_keeps_a_reset(led):
    add(led, 1)
    led.record_annotation(P, 10, 1, 1.0)
    led.record_annotation(P, 11, 1, 0.0)
    led.reset_seen(P)
    led.delete_annotations(P, [10])
    assert led.seen_task_ids(P) == set()


def test_head_versions_round_trip_exact_float32(led):
    rng = np.random.default_rng(0)
    coefs = [rng.normal(size=32).astype(np.float32) for _ in range(3)]
    versions = [led.save_head(P, c, float(i) - 0.25, f"key-{i}", i * 2) for i, c in enumerate(coefs)]
    assert versions == [1, 2, 3]
    head = led.latest_head(P)
    assert (head.version, head.intercept, head.fit_key, head.n_ratings) == (3, 1.75, "key-2", 4)
    assert head.coef.dtype == np.float32
    assert head.coef.tobytes() == coefs[2].tobytes()
    head.coef[0] = 99.0  # a copy, not a view of SQLite's buffer
    assert led.latest_head(P).coef[0] == coefs[2][0]
    assert led.latest_head(2) is None
    assert led.save_head(2, coefs[0], 0.0, "k", 0) == 1  # versions are per project


def test_save_head_converts_float64_to_float32(led):
    coef = np.array([0.1, 0.2, 0.3])
    led.save_head(P, coef, 0.0, "k", 0)
    np.testing.assert_array_equal(led.latest_head(P).coef, coef.astype(np.float32))


def test_transient_failures_stay_pending_until_given_up(led):
    add(led, 1, 2)
    led.mark_failed(P, 1, "timeout", transient=True)
    led.mark_failed(P, 1, "timeout", transient=True)
    assert led.task_states(P, [1]) == {1: "pending"}
    assert led.tasks_in_state(P, "pending", max_attempts=2) == [(2, {"image": "img-2"})]
    assert led.give_up_pending(P, max_attempts=3) == 0
    led.mark_failed(P, 1, "timeout", transient=True)
    assert led.give_up_pending(P, max_attempts=3) == 1
    assert led.task_states(P, [1, 2]) == {1: "failed", 2: "pending"}
    assert led.counts(P)["task_errors"] == [{"task": 1, "error": "timeout"}]


def test_permanent_failure_is_failed_at_once_and_embedding_clears_it(led):
    add(led, 1, 2)
    led.mark_failed(P, 1, "not a readable image", transient=False)
    assert led.task_states(P, [1]) == {1: "failed"}
    led.reset_embeddings(P, [1])
    assert led.task_states(P, [1]) == {1: "pending"}
    led.mark_embedded(P, [1])
    assert led.task_states(P, [1]) == {1: "embedded"}
    assert led.counts(P)["task_errors"] == []


def test_an_error_message_holding_a_lone_surrogate_is_stored_escaped(led):
    # SQLite cannot encode a lone surrogate: the write failed, and the task stayed pending for good
    add(led, 1, 2)
    led.mark_failed(P, 1, "cannot read 'a\ud800b.png'", transient=False)
    led.record_annotation(P, 10, 2, None, error="unknown choice a\udfffb")
    assert led.task_states(P, [1]) == {1: "failed"}
    counts = led.counts(P)
    assert counts["task_errors"] == [{"task": 1, "error": "cannot read 'a\\ud800b.png'"}]
    assert [e["error"] for e in counts["annotation_errors"]] == ["unknown choice a\\udfffb"]


def test_reset_embeddings_of_all_tasks(led):
    add(led, 1, 2)
    led.mark_embedded(P, [1, 2])
    led.reset_embeddings(P)
    assert led.task_states(P, [1, 2]) == {1: "pending", 2: "pending"}


def test_delete_tasks_drops_their_annotations(led):
    add(led, 1, 2)
    led.record_annotation(P, 10, 1, 1.0)
    led.record_annotation(P, 11, 2, -1.0)
    led.delete_tasks(P, [1])
    assert led.task_data(P, [1, 2]) == {2: {"image": "img-2"}}
    assert led.ratings(P) == {2: -1.0}
    assert led.annotation_ids(P) == [11]


def test_counts(led):
    add(led, 1, 2, 3, 4)
    led.mark_embedded(P, [1, 2])
    led.mark_failed(P, 3, "broken", transient=False)
    led.record_annotation(P, 10, 1, 1.0)
    counts = led.counts(P)
    assert counts["tasks"] == {"pending": 1, "embedded": 2, "failed": 1}
    assert (counts["seen"], counts["rated_tasks"], counts["annotations"]) == (1, 1, 1)
    assert counts["task_errors"] == [{"task": 3, "error": "broken"}]
    assert counts["annotation_errors"] == []


def test_reopening_the_file_keeps_everything(tmp_path):
    path = tmp_path / "nested" / "ledger.sqlite"
    first = Ledger(path)
    first.upsert_project(P, params={"prompt": "x"})
    first.add_tasks(P, [(1, {"image": "a"}), (2, {"image": "b"})])
    first.mark_embedded(P, [1])
    first.record_annotation(P, 10, 1, 0.25)
    first.save_head(P, np.arange(4, dtype=np.float32), 0.5, "key", 1)
    first.close()

    again = Ledger(path)
    assert again.project(P).params == {"prompt": "x"}
    assert again.task_states(P, [1, 2]) == {1: "embedded", 2: "pending"}
    assert again.ratings(P) == {1: 0.25}
    assert again.seen_task_ids(P) == {1}
    head = again.latest_head(P)
    assert (head.version, head.intercept, head.fit_key) == (1, 0.5, "key")
    np.testing.assert_array_equal(head.coef, np.arange(4, dtype=np.float32))
    again.close()


def test_a_failed_transaction_leaves_nothing_behind(led):
    """record_annotation registers the task, then fails binding the annotation id: the task insert is rolled back."""
    with pytest.raises(Exception):
        led.record_annotation(P, {"not": "an id"}, 7, 1.0, task_data={"image": "seven"})
    assert led.task_data(P, [7]) == {}
    assert led.annotation_ids(P) == []
    led.record_annotation(P, 10, 7, 1.0, task_data={"image": "seven"})  # the connection is still usable
    assert led.ratings(P) == {7: 1.0}


def test_a_task_added_after_its_annotation_is_seen(led):
    led.record_annotation(P, 10, 5, 1.0)   # e.g. a backfilled annotation without task data
    add(led, 5)
    assert led.seen_task_ids(P) == {5}
