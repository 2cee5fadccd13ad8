"""The audit log: draws, epochs and the sample the estimators get, on a real SQLite file."""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend.core.audit import NOT_SEEN
from ml_backend.core.audit_log import AuditLog

P = 7


@pytest.fixture
def log(tmp_path):
    audit = AuditLog(tmp_path / "evaluation.sqlite")
    yield audit
    audit.close()


def unseen(ids, seen):
    return np.array([t not in seen for t in ids])


def test_a_draw_stays_pending_until_its_tasks_are_seen_and_is_then_in_the_sample(log):
    ids = np.arange(100, 110)
    state = log.settle(P, ids, unseen(ids, set()))
    assert (state.epoch, state.pending) == (1, ())
    assert log.draws(P, 1) == []
    assert log.record_draw(P, state.epoch, [103, 105], n_available=10, head_version=1) == 0
    # the strategy's picks 100, 101 are rated; the drawn tasks are not yet
    state = log.settle(P, ids, unseen(ids, {100, 101}))
    assert state.pending == (103, 105)
    sample = log.sample(P, ids, {100: 1.0, 101: -1.0}, {100, 101})
    assert sample.draws == ()  # incomplete draws are left out
    # 103 rated, 105 skipped: complete; a skip counts as not positive
    state = log.settle(P, ids, unseen(ids, {100, 101, 103, 105}))
    assert state.pending == ()
    sample = log.sample(P, ids, {100: 1.0, 101: -1.0, 103: 0.5}, {100, 101, 103, 105})
    assert [d.seq for d in sample.draws] == [0]
    assert ids[sample.draws[0].rows].tolist() == [103, 105]
    assert np.isnan(sample.labels[[2, 4, 6]]).all()
    assert sample.labels[[0, 1, 3, 5]].tolist() == [1.0, 0.0, 1.0, 0.0]
    # 100, 101 were seen at draw 1 (the next one); 103, 105 too: seen_at says when they left the pool
    assert sample.seen_at[[0, 1, 3, 5]].tolist() == [1, 1, 1, 1]
    assert sample.seen_at[2] == NOT_SEEN


def test_seen_at_records_the_first_draw_a_task_was_already_seen_at(log):
    ids = np.arange(20)
    seen: set[int] = set()
    for seq in range(3):
        state = log.settle(P, ids, unseen(ids, seen))
        log.record_draw(P, state.epoch, [10 + seq], n_available=20 - len(seen), head_version=seq)
        seen |= {seq, 10 + seq}  # one strategy pick and the drawn task, per batch
    log.settle(P, ids, unseen(ids, seen))
    sample = log.sample(P, ids, {t: -1.0 for t in seen}, seen)
    assert [d.seq for d in sample.draws] == [0, 1, 2]
    assert sample.seen_at[[0, 1, 2, 10, 11, 12]].tolist() == [1, 2, 3, 1, 2, 3]
    assert [d.n_available for d in sample.draws] == [20, 18, 16]


def test_a_changed_pool_starts_a_new_epoch_and_forgets_the_old_draws(log):
    ids = np.arange(10)
    state = log.settle(P, ids, unseen(ids, set()))
    log.record_draw(P, state.epoch, [4], 10, 1)
    grown = np.arange(11)  # one task imported
    state = log.settle(P, grown, unseen(grown, {4}))
    assert (state.epoch, state.pending) == (2, ())
    assert log.draws(P, 2) == [] and log.draws(P, 1) == []
    # the estimators are not given a sample over a pool that is not the epoch's
    assert log.sample(P, np.arange(12), {4: 1.0}, {4}) is None


def test_drawn_task_ids_are_the_tasks_of_the_draws_the_log_holds(log):
    ids = np.arange(10)
    state = log.settle(P, ids, unseen(ids, set()))
    log.record_draw(P, state.epoch, [4, 7], 10, 1)
    log.record_draw(P, state.epoch, [2], 8, 2)
    assert log.drawn_task_ids(P) == {2, 4, 7} and log.drawn_task_ids(P + 1) == set()
    grown = np.arange(11)
    log.settle(P, grown, unseen(grown, {2, 4, 7}))  # a new epoch forgets the old draws
    assert log.drawn_task_ids(P) == set()


def test_a_task_seen_before_and_unseen_again_starts_a_new_epoch(log):
    ids = np.arange(10)
    state = log.settle(P, ids, unseen(ids, set()))
    log.record_draw(P, state.epoch, [4], 10, 1)
    log.settle(P, ids, unseen(ids, {4, 5}))
    # a deleted annotation (or a second pass) makes 5 unseen again: its draw-time history is void
    assert log.sample(P, ids, {4: 1.0}, {4}) is None
    assert log.settle(P, ids, unseen(ids, {4})).epoch == 2


def test_the_record_survives_a_restart(tmp_path):
    ids = np.arange(10)
    first = AuditLog(tmp_path / "evaluation.sqlite")
    state = first.settle(P, ids, unseen(ids, set()))
    first.record_draw(P, state.epoch, [2], 10, 3)
    first.save_evaluation(P, 3, {"labels": 1})
    first.close()
    again = AuditLog(tmp_path / "evaluation.sqlite")
    assert again.settle(P, ids, unseen(ids, set())).pending == (2,)
    assert [e["labels"] for e in again.evaluations(P)] == [1]
    again.close()


def test_evaluations_are_kept_per_version_and_the_latest_is_the_newest_version(log):
    log.save_evaluation(P, 2, {"labels": 10})
    log.save_evaluation(P, 5, {"labels": 30})
    log.save_evaluation(P, 2, {"labels": 11})  # the same version evaluated again: replaced
    assert [(e["version"], e["labels"]) for e in log.evaluations(P)] == [(2, 11), (5, 30)]
    assert log.latest_evaluation(P)["version"] == 5
    assert log.latest_evaluation(P + 1) is None
