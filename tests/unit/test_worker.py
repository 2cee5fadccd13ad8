"""The worker's passes against an in-memory Label Studio, over fast fakes for Chroma and the
embedding model (no network). `tests/integration/test_real_components.py` runs these tests
again on real Chroma and the tiny CLIP."""

from __future__ import annotations

import threading
import time

import pytest

from ml_backend.adapters.ls_client import LabelStudioUnavailable
from ml_backend.adapters.ls_gateway import ProjectCounts
from ml_backend.adapters.ls_records import version_name, version_number
from ml_backend.adapters.ml_connections import BackendIdentity, Connection, Hook
from ml_backend.core.embed_tasks import MAX_EMBED_ATTEMPTS
from ml_backend.core.errors import ImageError, RemoteRejected
from ml_backend.core.facts import AnnotationRating
from ml_backend.service.app import create_app
from ml_backend.service.runtime import Runtime, label_studio_worker
from ml_backend.service import worker as worker_module
from ml_backend.service.settings import ServiceSettings
from ml_backend.service.worker import Worker
from tests.conftest import CHOICES_CONFIG, image_uri, wait_until
from tests.fakes import FakeLabelStudio, HashEmbedder, MemoryChroma

P = 1


@pytest.fixture
def worker_embedder():
    return HashEmbedder()


@pytest.fixture
def worker_chroma():
    return MemoryChroma()


@pytest.fixture
def runtime(tmp_path, worker_embedder, worker_chroma, clean_env):
    settings = ServiceSettings(model_dir=tmp_path / "model", label_studio_url="http://127.0.0.1:9", fetch_workers=2)
    runtime = Runtime.build(settings, embedders={"image": worker_embedder}, chroma=worker_chroma,
                            start_worker=False, talk_to_label_studio=False)
    runtime.projects.configure(P, label_config=CHOICES_CONFIG,
                               extra_params={"prompt": "a red square", "batch_size": 3, "view_title": "Next"})
    yield runtime
    runtime.close()


@pytest.fixture
def ls():
    return FakeLabelStudio()


def make_worker(runtime, ls, identity=None, evaluations=None, **settings):
    """A worker that talks to `ls`; by default every prediction goes out at once, in chunks of 500."""
    values = {"backend_url": "http://backend:9090", "prediction_chunk": 500, "bulk_prediction_delay_s": 0.0, **settings}
    worker = label_studio_worker(runtime.settings.model_copy(update=values), runtime.projects, ls, identity,
                                 evaluations=evaluations)
    runtime.projects.on_items_ready = worker.notify  # as Runtime.build wires its own worker
    return worker


def add_tasks(runtime, *ids):
    runtime.facts.add_tasks(P, [(t, {"image": image_uri(t)}) for t in ids])


def rate(runtime, annotation_id, task_id, target):
    runtime.facts.record_annotation(P, AnnotationRating(annotation_id, task_id, target))


def reconcile(worker, project=P) -> bool:
    """One pass's local and push parts, on this thread; True if more remains."""
    loop = worker.projects.get(project)
    loop.embed_pending()
    loop.refit_if_needed()
    return loop.has_items_to_embed() or worker.push.push(project) == 0.0


def reconcile_until_done(worker, limit=20):
    for _ in range(limit):
        if not reconcile(worker):
            return
    raise AssertionError("reconcile never finished")


def test_first_pass_pushes_the_batch_view_then_every_prediction(runtime, ls):
    add_tasks(runtime, *range(1, 8))
    worker = make_worker(runtime, ls, prediction_chunk=3)
    reconcile_until_done(worker)
    loop = runtime.projects.get(P)

    [view] = ls.of("view")
    batch = [t.task_id for t in loop.select_batch()]
    assert view == ("view", P, "Next", batch, None) and len(batch) == 3
    # The view (which tasks) goes first, then the batch's predictions, then the version
    # switch that makes the view's score order the new head's; the other predictions last.
    first_predictions = ls.of("predictions")[0]
    assert sorted(first_predictions[2]) == sorted(batch)
    order = [c[0] for c in ls.calls]
    assert order.index("view") < order.index("predictions") < order.index("model_version")
    assert ls.model_version == "clip-head-v1"
    predicted = [p["task"] for p in ls.predictions]
    assert sorted(predicted) == list(range(1, 8)) and len(predicted) == 7  # each task exactly once
    scores = loop.scores(list(range(1, 8)))
    for p in ls.predictions:
        assert p["model_version"] == "clip-head-v1"
        assert p["score"] == pytest.approx(scores[p["task"]], abs=1e-6)
        assert p["result"] == []  # score only: the form is not pre-filled (preselect_rating off)
    assert all(len(c[2]) <= 3 for c in ls.of("predictions"))
    assert runtime.records.view(P)["task_ids"] == batch


class RefusesViews(FakeLabelStudio):
    """A Label Studio that answers 4xx to every next-batch view (say, a version whose view filter differs)."""

    def push_view(self, project, title, task_ids, view_id):
        raise RemoteRejected("Label Studio answered 400: invalid filter", status_code=400)


def test_a_refused_view_does_not_hold_back_the_predictions(runtime):
    """Pre-annotations do not depend on the queue's view: before, a view Label Studio refused stopped every
    push at its first call, so no task ever got a prediction. The refusal is still raised (the worker
    reports it and resyncs)."""
    add_tasks(runtime, *range(1, 8))
    ls = RefusesViews()
    worker = make_worker(runtime, ls)
    runtime.projects.get(P).embed_pending()
    runtime.projects.get(P).refit_if_needed()
    for _ in range(2):  # a chunk of predictions per pass, then the version switch, as when the view goes through
        with pytest.raises(RemoteRejected, match="invalid filter"):
            worker.push.push(P)
    assert sorted(p["task"] for p in ls.predictions) == list(range(1, 8))
    assert ls.model_version == "clip-head-v1"


def test_a_pass_with_nothing_new_pushes_nothing(runtime, ls):
    add_tasks(runtime, 1, 2, 3, 4)
    worker = make_worker(runtime, ls)
    reconcile_until_done(worker)
    calls = list(ls.calls)
    assert reconcile(worker) is False
    assert ls.calls == calls


def test_a_new_rating_replaces_every_prediction_and_drops_the_old_version(runtime, ls):
    add_tasks(runtime, *range(1, 6))
    worker = make_worker(runtime, ls)
    reconcile_until_done(worker)
    rate(runtime, 100, 2, 1.0)
    reconcile_until_done(worker)
    assert ls.model_version == "clip-head-v2"
    assert ls.of("delete_version") == [("delete_version", P, "clip-head-v1")]
    assert sorted(p["task"] for p in ls.predictions) == list(range(1, 6))
    assert {p["model_version"] for p in ls.predictions} == {"clip-head-v2"}
    assert runtime.records.versions_pushed(P) == [2]
    [_, second_view] = ls.of("view")
    assert 2 not in second_view[3] and second_view[4] == 500  # the same view, updated


def test_keep_old_predictions(runtime, ls):
    add_tasks(runtime, 1, 2, 3)
    worker = make_worker(runtime, ls, keep_old_predictions=True)
    reconcile_until_done(worker)
    rate(runtime, 100, 1, -1.0)
    reconcile_until_done(worker)
    assert ls.of("delete_version") == []
    assert {p["model_version"] for p in ls.predictions} == {"clip-head-v1", "clip-head-v2"}


def test_a_batch_request_re_pushes_the_view(runtime, ls):
    add_tasks(runtime, 1, 2, 3, 4)
    worker = make_worker(runtime, ls)
    reconcile_until_done(worker)
    runtime.facts.request_batch(P)
    reconcile_until_done(worker)
    views = ls.of("view")
    assert len(views) == 2 and views[0][3] == views[1][3] and views[1][4] == 500


def test_the_tab_title_says_how_many_tasks_could_not_be_read(runtime, ls):
    """Label Studio shows no backend log: a batch short of tasks whose images failed (an allow-list, a storage
    setting) is explained in the tab's title, which the admin sees, and the status says why."""
    add_tasks(runtime, 1, 2, 3, 4)
    worker = make_worker(runtime, ls)
    reconcile_until_done(worker)
    assert ls.of("view")[-1][2] == "Next"
    runtime.facts.add_tasks(P, [(5, {"image": "ftp://images/5.png"}), (6, {"image": "ftp://images/6.png"})])
    runtime.facts.request_batch(P)
    reconcile_until_done(worker)
    assert ls.of("view")[-1][2] == f"Next · 2 tasks unreadable: the backend's /projects/{P}/status says why"
    assert runtime.projects.get(P).status()["tasks"]["failed"] == 2


class HeldEvaluations:
    """The runtime's evaluations, each held until the test lets it finish: a slow evaluation (a large pool)."""

    def __init__(self, evaluations):
        self.evaluations = evaluations
        self.entered = threading.Event()
        self.release = threading.Event()
        self.finished = 0

    def __getattr__(self, name):  # everything but refresh is the runtime's (the push reads `latest`)
        return getattr(self.evaluations, name)

    def refresh(self, loop):
        self.entered.set()
        assert self.release.wait(30), "the test never let the evaluation finish"
        stored = self.evaluations.refresh(loop)
        self.finished += 1
        return stored


def test_a_slow_evaluation_does_not_hold_back_the_next_ratings_batch(runtime, ls):
    """The evaluation (about a second on 10,000 tasks) ran on the worker thread once a project was idle: a rating
    that arrived meanwhile waited for it before its refit and its new batch (the hostile-load run's slow rounds)."""
    # random picks: every task of a batch is an audit pick, so rating one batch gives the title its summary
    runtime.projects.configure(P, label_config=CHOICES_CONFIG, extra_params={
        "prompt": "a red square", "batch_size": 3, "view_title": "Next", "strategy": "random"})
    add_tasks(runtime, *range(1, 10))
    ls.tasks = [{"id": t, "data": {"image": image_uri(t)}, "annotations": []} for t in range(1, 10)]
    held = HeldEvaluations(runtime.evaluations)
    worker = make_worker(runtime, ls, evaluations=held, poll_interval_s=0.05, task_check_interval_s=3600)
    worker.start()
    try:
        assert held.entered.wait(10), "the first head was never evaluated"
        assert ls.model_version == "clip-head-v1"
        assert not worker.status(P)["idle"] and worker.activity(P) == "evaluating"

        [first_batch] = [view[3] for view in ls.of("view")]
        for annotation, task in enumerate(first_batch, start=1):
            rate(runtime, annotation, task, 1.0 if annotation == 1 else -1.0)
        worker.notify(P)
        # refit, new batch and predictions pushed while the evaluation is still held
        assert wait_until(lambda: ls.model_version == "clip-head-v2" and len(ls.of("view")) == 2, timeout_s=10)
        assert held.finished == 0 and not set(first_batch) & set(ls.of("view")[-1][3])
        assert ls.of("view")[-1][2] == "Next"
        assert not worker.wait_idle(P, 0.2)  # not idle while its evaluation is pending

        held.release.set()
        assert worker.wait_idle(P, 20)
        assert held.finished >= 2  # the held one, then one of head v2
        assert runtime.evaluations.latest(P)["model_version"] == "clip-head-v2"
        # one more push: the tab's title carries the new summary
        assert len(ls.of("view")) == 3 and ls.of("view")[-1][2].startswith("found ≥")
    finally:
        held.release.set()
        worker.stop()


class HeldSource:
    """A project's item loader that holds every load until the test releases it: an image host that answers
    slowly (the hostile-load run's dripping server)."""

    def __init__(self, loop):
        self.real = loop.load_item
        self.entered, self.release = threading.Event(), threading.Event()
        loop.load_item = self

    def __call__(self, data, task_id):
        self.entered.set()
        self.release.wait(30)
        return self.real(data, task_id)


def test_a_slow_image_source_in_one_project_does_not_hold_back_another_projects_rating(runtime, monkeypatch):
    """A pass waited up to ITEM_WAIT_S for slow images, and the thread serves every project: a rating that
    arrived meanwhile waited too (the hostile-load run's slow rounds). Here the wait is made long (5 s)."""
    monkeypatch.setattr(worker_module, "ITEM_WAIT_S", 5.0)
    add_tasks(runtime, *range(1, 7))
    runtime.projects.configure(2, label_config=CHOICES_CONFIG, extra_params={"batch_size": 3})
    runtime.facts.add_tasks(2, [(t, {"image": image_uri(t)}) for t in (11, 12, 13)])
    slow = HeldSource(runtime.projects.get(2))
    worker = Worker(runtime.projects, poll_interval_s=0.05)  # local passes only: no Label Studio to list tasks
    runtime.projects.on_items_ready = worker.notify
    worker.start()
    try:
        assert worker.wait_idle(P, 20) and slow.entered.wait(20)  # project 2's pass now waits on its images
        loop = runtime.projects.get(P)
        before = loop.head_version()
        rate(runtime, 1, 1, 1.0)
        rated_at = time.monotonic()
        worker.notify(P)
        assert wait_until(lambda: loop.head_version() > before, timeout_s=20)
        assert time.monotonic() - rated_at < 2.5  # not after the 5 s wait
        slow.release.set()
        assert worker.wait_idle(2, 20)  # the held images finished in the background and were embedded
        assert len(runtime.projects.get(2).store) == 3
    finally:
        slow.release.set()
        worker.stop()


def test_sync_catches_up_on_tasks_and_annotations(runtime, ls):
    runtime.facts.record_annotation(P, AnnotationRating(99, 1, 1.0), task_data={"image": image_uri(1)})  # deleted in LS since
    ls.tasks = [
        {"id": 1, "data": {"image": image_uri(1)}, "annotations": []},
        {"id": 2, "data": {"image": image_uri(2)}, "annotations": [
            {"id": 7, "task": 2, "result": [{"from_name": "relevance", "value": {"choices": ["+1"]}}]}]},
        {"id": 3, "data": {"image": image_uri(3)}, "annotations": [{"id": 8, "task": 3, "was_cancelled": True}]},
    ]
    worker = make_worker(runtime, ls)
    worker.pull.sync(P)
    ledger = runtime.projects.ledger
    assert ls.of("webhook") == [("webhook", P, ["http://backend:9090"])]
    assert ledger.task_data(P, [1, 2, 3]).keys() == {1, 2, 3}
    assert ledger.ratings(P) == {2: 1.0}
    assert sorted(ledger.annotation_ids(P)) == [7, 8]
    assert ledger.seen_task_ids(P) == {2, 3}


def test_a_sync_after_reset_seen_keeps_the_second_pass(runtime, ls):
    """reset-seen refills the batch with the best tasks, rated ones included, and a later sync
    (which re-reads every annotation from Label Studio) must not mark them seen again."""
    add_tasks(runtime, *range(1, 7))
    ls.tasks = [{"id": t, "data": {"image": image_uri(t)}, "annotations": []} for t in range(1, 7)]
    worker = make_worker(runtime, ls)
    reconcile_until_done(worker)
    first = runtime.records.view(P)["task_ids"]
    for annotation_id, task in enumerate(first, start=100):
        ls.tasks[task - 1]["annotations"] = [{
            "id": annotation_id, "task": task, "updated_at": "2026-11-30T10:00:00.000000Z",
            "result": [{"from_name": "relevance", "value": {"choices": ["+1"]}}],
        }]
    worker.pull.sync(P)
    reconcile_until_done(worker)
    assert set(runtime.records.view(P)["task_ids"]).isdisjoint(first)

    runtime.facts.reset_seen(P)
    worker.pull.sync(P)
    reconcile_until_done(worker)
    ledger = runtime.projects.ledger
    assert ledger.seen_task_ids(P) == set()
    second_pass = runtime.records.view(P)["task_ids"]
    assert [t.task_id for t in runtime.projects.get(P).select_batch()] == second_pass
    assert set(second_pass) & set(first), "the rated tasks (all +1) should rank among the best again"


def wait_for_a_failure(worker, timeout_s=10.0):
    wait_until(lambda: worker.status(P).get("failures", 0) >= 1, timeout_s)


def test_the_thread_retries_while_label_studio_is_down(runtime, ls):
    add_tasks(runtime, 1, 2, 3)
    ls.tasks = [{"id": t, "data": {"image": image_uri(t)}, "annotations": []} for t in (1, 2, 3)]
    ls.down = True
    worker = make_worker(runtime, ls, poll_interval_s=0.1)
    worker.start()
    try:
        wait_for_a_failure(worker)
        status = worker.status(P)
        assert status["failures"] >= 1 and not status["idle"]
        assert "LabelStudioUnavailable" in status["last_error"]
        assert len(runtime.projects.get(P).store) == 3  # the local part of the pass still happened

        ls.down = False
        worker.notify(P)
        assert worker.wait_idle(P, 20)
        assert worker.status(P) == {"idle": True, "last_error": None, "failures": 0}
        assert ls.model_version == "clip-head-v1" and len(ls.predictions) == 3
    finally:
        worker.stop()


def test_the_thread_waits_as_long_as_label_studio_asks(runtime, ls):
    """A Label Studio answering 429 or 503 with Retry-After was asked again after the usual 1-2 s."""
    add_tasks(runtime, 1, 2, 3)
    ls.down, ls.retry_after_s = True, 120.0
    worker = make_worker(runtime, ls, poll_interval_s=0.1)
    worker.start()
    try:
        wait_for_a_failure(worker)
        assert worker.status(P)["failures"] == 1
        refused = ls.refused
        worker.notify(P)  # a webhook meanwhile: local work only, Label Studio is not asked before its time
        time.sleep(2.5)
        assert ls.refused == refused
        assert len(runtime.projects.get(P).store) == 3
    finally:
        worker.stop()


class FlakySource:
    """A project's item loader whose source fails (transiently, as an outage does) for the tasks in `failing`:
    the first `outage_calls` loads of each, or every load when that is None."""

    def __init__(self, loop, failing, outage_calls=None):
        self.real, self.failing, self.outage_calls = loop.load_item, set(failing), outage_calls
        self.calls: dict[int, int] = {}
        loop.load_item = self

    def __call__(self, data, task_id):
        self.calls[task_id] = self.calls.get(task_id, 0) + 1
        if task_id in self.failing and (self.outage_calls is None or self.calls[task_id] <= self.outage_calls):
            raise ImageError("cannot fetch http://label-studio/data/upload/1/x.png: ConnectionError", transient=True)
        return self.real(data, task_id)


def test_items_given_up_in_an_outage_none_of_our_calls_saw_are_retried_once_label_studio_answers(runtime, ls):
    """An outage short enough to fall between two of the worker's calls to Label Studio: every call went
    through, so no backoff and no recovery; the items it failed to serve meanwhile are retried all the same."""
    add_tasks(runtime, 1, 2, 3)
    ls.tasks = listed(1, 2, 3)
    source = FlakySource(runtime.projects.get(P), failing={2, 3}, outage_calls=MAX_EMBED_ATTEMPTS)
    worker = make_worker(runtime, ls, poll_interval_s=0.1)
    worker.start()
    try:
        assert worker.wait_idle(P, 20)
        assert ls.refused == 0 and worker.status(P)["last_error"] is None
        assert runtime.projects.ledger.task_states(P, [1, 2, 3]) == {1: "embedded", 2: "embedded", 3: "embedded"}
        assert source.calls == {1: 1, 2: MAX_EMBED_ATTEMPTS + 1, 3: MAX_EMBED_ATTEMPTS + 1}
        assert len(ls.predictions) == 3
    finally:
        worker.stop()


def test_an_item_label_studio_keeps_failing_to_serve_is_retried_once_then_left_failed(runtime, ls):
    """Retrying on every pass that reaches Label Studio would loop for ever (retried items are local work,
    which calls for a pass at once): one more round, and the project goes idle with the item failed."""
    add_tasks(runtime, 1, 2)
    ls.tasks = listed(1, 2)
    source = FlakySource(runtime.projects.get(P), failing={2})
    worker = make_worker(runtime, ls, poll_interval_s=0.1)
    worker.start()
    try:
        assert worker.wait_idle(P, 20)
        assert runtime.projects.ledger.task_states(P, [1, 2]) == {1: "embedded", 2: "failed"}
        assert source.calls[2] == 2 * MAX_EMBED_ATTEMPTS
        # A later busy spell (a webhook) does not bring it back: it gave nothing up (a sync would retry it).
        worker.notify(P)
        assert worker.wait_idle(P, 20)
        assert source.calls[2] == 2 * MAX_EMBED_ATTEMPTS
    finally:
        worker.stop()


def test_items_given_up_while_label_studio_is_down_wait_until_it_answers(runtime, ls):
    add_tasks(runtime, 1, 2)
    ls.tasks = listed(1, 2)
    source = FlakySource(runtime.projects.get(P), failing={2}, outage_calls=MAX_EMBED_ATTEMPTS)
    ls.down = True
    worker = make_worker(runtime, ls, poll_interval_s=0.1, max_backoff_s=0.5)
    worker.start()
    try:
        wait_until(lambda: runtime.projects.ledger.task_states(P, [2])[2] == "failed", timeout_s=10)
        time.sleep(1.5)  # several backoffs: every call to Label Studio is refused, so nothing is retried
        assert runtime.projects.ledger.task_states(P, [2]) == {2: "failed"}
        assert source.calls[2] == MAX_EMBED_ATTEMPTS and not worker.status(P)["idle"]

        ls.down = False
        assert worker.wait_idle(P, 20)
        assert runtime.projects.ledger.task_states(P, [1, 2]) == {1: "embedded", 2: "embedded"}
        assert source.calls[2] == MAX_EMBED_ATTEMPTS + 1
    finally:
        worker.stop()


def listed(*ids):
    return [{"id": t, "data": {"image": image_uri(t)}, "annotations": []} for t in ids]


def test_sync_drops_tasks_deleted_in_label_studio_when_the_listing_is_complete(runtime, ls):
    add_tasks(runtime, 1, 2, 3)
    worker = make_worker(runtime, ls)
    reconcile_until_done(worker)
    ls.tasks = listed(1, 3)                       # task 2 was deleted while no webhook reached us
    worker.pull.sync(P)
    loop = runtime.projects.get(P)
    assert runtime.projects.ledger.task_ids(P) == [1, 3]
    assert 2 not in loop.store and len(loop.store) == 2


class ShortListing(FakeLabelStudio):
    """A listing that misses tasks Label Studio still counts (e.g. cut short)."""

    def task_count(self):
        return len(self.tasks) + 1


def test_sync_keeps_tasks_and_ratings_when_the_listing_disagrees_with_the_count(runtime):
    """A listing cut short (a page refused, Label Studio capping the page size) lacks tasks and their
    annotations exactly as deletions would: nothing is deleted, and the sync fails to be run again.
    Before, the annotations were deleted anyway, and with a page-size cap, at every sync."""
    from ml_backend.service.pull import IncompleteListing

    ls = ShortListing()
    add_tasks(runtime, 1, 2, 3)
    facts = runtime.projects.facts
    for annotation, task in ((10, 1), (20, 2)):
        facts.record_annotation(P, AnnotationRating(annotation, task, 1.0))
    ls.tasks = listed(1, 3)
    worker = make_worker(runtime, ls)
    with pytest.raises(IncompleteListing, match="2 tasks, Label Studio counts 3"):
        worker.pull.sync(P)
    assert runtime.projects.ledger.task_ids(P) == [1, 2, 3]
    assert runtime.projects.ledger.ratings(P) == {1: 1.0, 2: 1.0}


class Uncounted(FakeLabelStudio):
    """A Label Studio whose project answer has no task count (it listed as 0 before)."""

    def task_count(self):
        return None


def test_without_a_task_count_the_sync_keeps_what_the_listing_lacks_and_the_check_does_not_resync(runtime):
    """Taken as 0, a missing count failed every sync that had something to delete (IncompleteListing)
    and made every task count check start a resync."""
    ls = Uncounted()
    add_tasks(runtime, 1, 2, 3)
    runtime.projects.facts.record_annotation(P, AnnotationRating(20, 2, 1.0))
    ls.tasks = listed(1, 3)
    worker = make_worker(runtime, ls)
    worker.pull.sync(P)                            # no error: the sync recorded what was listed
    assert runtime.projects.ledger.task_ids(P) == [1, 2, 3]
    assert runtime.projects.ledger.ratings(P) == {2: 1.0}
    assert worker.pull.in_step(P)


def test_a_task_count_mismatch_triggers_a_resync(runtime, ls):
    """Tasks created without a TASKS_CREATED webhook (a storage sync that failed part-way) are found."""
    add_tasks(runtime, 1, 2)
    ls.tasks = listed(1, 2, 3)                    # task 3 exists in Label Studio only
    worker = make_worker(runtime, ls, poll_interval_s=0.05, task_check_interval_s=0.2)
    worker.start()
    try:
        wait_until(lambda: runtime.projects.ledger.task_total(P) >= 3, timeout_s=20, every_s=0.05)
        assert runtime.projects.ledger.task_ids(P) == [1, 2, 3]
        assert worker.wait_idle(P, 20)
        assert 3 in runtime.projects.get(P).store
    finally:
        worker.stop()


def test_ratings_made_while_no_webhook_reached_us_are_found_by_the_count_check(runtime, ls):
    """An admin deleted the webhook: ratings stopped arriving and the task counts still matched."""
    unreadable = {"id": 6, "task": 1, "result": "not a list"}   # listed by Label Studio, not a rating here
    ls.tasks = listed(1, 2, 3)
    ls.tasks[0]["annotations"] = [unreadable]
    worker = make_worker(runtime, ls)
    worker.pull.sync(P)
    assert worker.pull.in_step(P)  # one annotation the ledger leaves out: the gap after a sync, not a miss

    ls.tasks[1]["annotations"] = [{"id": 7, "task": 2, "result": [{"from_name": "relevance", "value": {"choices": ["+1"]}}]}]
    ls.calls.clear()
    assert not worker.pull.in_step(P)  # rated in Label Studio, no webhook came
    assert ls.calls == [("counts", P)]  # tasks and annotations from one read of the project
    worker.pull.sync(P)
    assert runtime.projects.ledger.ratings(P) == {2: 1.0} and worker.pull.in_step(P)


def test_a_sync_writes_the_next_batch_tab_again(runtime, ls):
    """An admin who deleted or edited the tab got it back only when the batch changed: nothing tells the
    backend, and the push compared the batch with its own record alone."""
    add_tasks(runtime, 1, 2, 3, 4)
    ls.tasks = listed(1, 2, 3, 4)
    worker = make_worker(runtime, ls)
    reconcile_until_done(worker)
    [first] = ls.of("view")
    reconcile_until_done(worker)
    assert len(ls.of("view")) == 1  # an unchanged batch is not pushed again
    worker.pull.sync(P)
    reconcile_until_done(worker)
    [second] = ls.of("view")[1:]
    assert second[:4] == first[:4] and second[4] == 500  # the same batch, written again into the same tab
    assert not runtime.records.view(P).get("rewrite")
    reconcile_until_done(worker)
    assert len(ls.of("view")) == 2


class DeletedProject(FakeLabelStudio):
    """Label Studio after the admin deleted the project (`gone`): every call about it answers 404 (an HTML page)."""

    gone = True

    def _record(self, *call):
        super()._record(*call)
        if self.gone:
            raise RemoteRejected("Label Studio answered 404: <!DOCTYPE html><html>...Not Found...</html>", status_code=404)


def test_a_project_deleted_in_label_studio_is_reported_once_and_not_asked_about_again(runtime):
    add_tasks(runtime, 1, 2, 3)
    ls = DeletedProject()
    worker = make_worker(runtime, ls, poll_interval_s=0.05, task_check_interval_s=0.1)
    worker.start()
    try:
        assert worker.wait_idle(P, 20)
        status = worker.status(P)
        assert "project 1 no longer exists in Label Studio" in status["last_error"] and status["idle"]
        asked = len(ls.calls)
        time.sleep(1.0)  # ten count checks and backoffs would have asked again
        assert len(ls.calls) == asked
        assert len(runtime.projects.get(P).store) == 3  # the local part still ran
    finally:
        worker.stop()


def test_a_project_deleted_while_idle_is_reported_by_the_count_check(runtime):
    add_tasks(runtime, 1, 2)
    ls = DeletedProject()
    ls.gone = False
    ls.tasks = listed(1, 2)
    worker = make_worker(runtime, ls, poll_interval_s=0.05, task_check_interval_s=0.1)
    worker.start()
    try:
        assert worker.wait_idle(P, 20) and worker.status(P)["last_error"] is None
        ls.gone = True
        wait_until(lambda: worker.status(P)["last_error"] is not None, timeout_s=10, every_s=0.05)
        assert "project 1 no longer exists in Label Studio" in worker.status(P)["last_error"]
        asked = len(ls.calls)
        time.sleep(0.5)
        assert len(ls.calls) == asked
    finally:
        worker.stop()


def test_bulk_predictions_wait_while_ratings_arrive(runtime, ls):
    """After a new head's batch is out, the other tasks' predictions are held back a while."""
    add_tasks(runtime, *range(1, 8))
    worker = make_worker(runtime, ls, prediction_chunk=3, bulk_prediction_delay_s=0.5)
    reconcile_until_done(worker)
    batch = runtime.records.view(P)["task_ids"]
    # The batch, its predictions and the version switch are out; the rest waits.
    assert sorted(p["task"] for p in ls.predictions) == sorted(batch)
    assert ls.model_version == "clip-head-v1"
    view = runtime.records.view(P)
    assert view["ordered"] is True and view["ordered_at"] >= view["pushed_at"]
    time.sleep(0.6)
    reconcile_until_done(worker)
    assert sorted(p["task"] for p in ls.predictions) == list(range(1, 8))


def test_the_thread_pushes_held_back_predictions_when_the_hold_ends(runtime, ls):
    add_tasks(runtime, *range(1, 8))
    ls.tasks = listed(*range(1, 8))
    worker = make_worker(runtime, ls, prediction_chunk=3, bulk_prediction_delay_s=0.3, poll_interval_s=0.05)
    worker.start()
    try:
        worker.notify(P)
        assert worker.wait_idle(P, 20)  # not idle while predictions are held back
        assert sorted(p["task"] for p in ls.predictions) == list(range(1, 8))
    finally:
        worker.stop()


def test_two_connections_to_this_backend_are_reported_and_the_oldest_sets_the_params(runtime, ls):
    """Label Studio calls /setup once per connection: without one source of truth the
    project's params would flip between the two connections' at every call (and refit)."""
    ls.connections = [
        Connection(7, "http://localhost:9090/", {"prompt": "a blue circle", "batch_size": 2, "view_title": "Next"}),
        Connection(4, "http://backend:9090", {"prompt": "a red square", "batch_size": 3, "view_title": "Next"}),
        Connection(9, "http://other-model:9090", {"anything": 1}),
    ]
    ls.hooks = [Hook(11, "http://backend:9090/webhook", (), True, True), Hook(12, "http://BACKEND:9090/webhook/", (), True, True)]
    worker = make_worker(runtime, ls, BackendIdentity(
        "me", "http://backend:9090", probe=lambda url: "me" if "localhost" in url else None))
    worker.pull.check_connections(P)

    projects = runtime.projects
    state = projects.records.connections(P)
    assert state["connections"] == [4, 7] and state["webhooks"] == [11, 12]
    assert state["repeated_actions"] == {"TASKS_CREATED": 2, "TASKS_DELETED": 2, "ANNOTATION_CREATED": 2,
                                         "ANNOTATION_UPDATED": 2, "ANNOTATIONS_DELETED": 2}
    assert "2 ML connections lead to this backend (ids [4, 7]" in state["warning"]
    assert projects.warnings() == {str(P): [state["warning"]]}
    assert projects.get(P).params.prompt == "a red square"   # connection 4's, the oldest
    version = version_name(projects.get(P).head_version())

    # /setup from either connection: neither set of params is applied, and no refit follows.
    for connection in ls.connections[:2]:
        assert projects.params_from_setup(P, connection.extra_params) == (None, False)
        assert projects.configure(P, extra_params=None)[1] is False
    assert projects.get(P).params.prompt == "a red square" and version_name(projects.get(P).head_version()) == version
    # Params no connection held: an admin edited one; the worker must look again.
    assert projects.params_from_setup(P, {"prompt": "edited"}) == (None, True)


def test_one_connection_sets_the_params_through_setup_as_before(runtime, ls):
    ls.connections = [Connection(4, "http://backend:9090", {"prompt": "a red square"})]
    worker = make_worker(runtime, ls)
    worker.pull.check_connections(P)
    state = runtime.records.connections(P)
    assert state["connections"] == [4] and state["warning"] is None
    assert runtime.projects.params_from_setup(P, {"prompt": "new"}) == ({"prompt": "new"}, False)
    assert runtime.projects.warnings() == {}


def test_the_task_count_check_stops_asking_about_projects_label_studio_does_not_have(runtime, ls):
    """Issue 12, finding 3: periodic checks scale with real projects only."""
    from ml_backend.adapters.ls_client import LabelStudioRejected

    runtime.projects.configure(99, label_config=CHOICES_CONFIG)
    asked = []

    def counts(project):
        asked.append(project)
        if project == 99:
            raise LabelStudioRejected("Label Studio answered 404: not found", 404)
        return ProjectCounts(0, 0)

    ls.counts = counts
    worker = make_worker(runtime, ls)
    for _ in range(3):
        worker._check_counts()
    assert asked.count(99) == 1 and asked.count(P) == 3
    worker.notify(99, sync=True)  # set up again (/setup): asked again
    worker._work[99].done.set()
    worker._check_counts()
    assert asked.count(99) == 2


SETTLE_S = 3.0


def test_after_a_setup_change_the_refit_runs_at_once_and_label_studio_waits(runtime, ls):
    """Label Studio saves an edited connection after /setup answers; a connection listing
    during that save makes it write the old params back. The pass's calls wait `settle_s`."""
    add_tasks(runtime, 1, 2, 3)
    ls.tasks = listed(1, 2, 3)
    worker = make_worker(runtime, ls, poll_interval_s=0.05)
    worker.start()
    try:
        worker.notify(P, sync=True)
        assert worker.wait_idle(P, 20)
        current_version = lambda: version_name(runtime.projects.get(P).head_version())  # noqa: E731
        before = current_version()
        ls.calls.clear()
        runtime.projects.configure(P, extra_params={"prompt": "a blue circle", "batch_size": 3, "view_title": "Next"})
        notified = time.monotonic()
        # A settle long enough that a refit slowed by a busy machine (real Chroma in the integration
        # rerun of these tests) still shows first: the order is asserted, not the speed.
        worker.notify(P, sync=True, settle_s=SETTLE_S)
        deadline, refitted = notified + 20, None
        while not ls.calls and time.monotonic() < deadline:
            if refitted is None and current_version() != before:
                refitted = time.monotonic()  # when the new head first shows, not the last poll that saw it
            time.sleep(0.01)
        first_call = time.monotonic()
        assert ls.calls and first_call - notified >= SETTLE_S
        assert refitted is not None and refitted - notified < SETTLE_S  # the local refit did not wait
        assert worker.wait_idle(P, 20)
        assert ls.model_version == current_version() != before
    finally:
        worker.stop()


# -- Label Studio answering oddly (found by fuzzing its side, 2026-12-02) ----------------------

def rated_task(task_id, annotation_id, **annotation):
    return {"id": task_id, "data": {"image": image_uri(task_id)}, "annotations": [
        {"id": annotation_id, "task": task_id, "result": [{"from_name": "relevance", "value": {"choices": ["+1"]}}],
         **annotation}]}


def test_a_listing_that_leaves_out_a_tasks_annotations_deletes_no_annotation(runtime, ls):
    """A task listed without its annotations (the field missing, null, or not a list of objects) read as
    "no annotations": every rating the project had was deleted, and the head refitted without them."""
    add_tasks(runtime, 1, 2)
    facts = runtime.projects.facts
    for annotation, task in ((10, 1), (20, 2)):
        facts.record_annotation(P, AnnotationRating(annotation, task, 1.0))
    ls.tasks = [rated_task(1, 10), dict(listed(2)[0], annotations=[], annotations_listed=False)]
    make_worker(runtime, ls).pull.sync(P)
    assert runtime.projects.ledger.ratings(P) == {1: 1.0, 2: 1.0}


def test_an_annotation_listed_with_an_unreadable_task_is_not_deleted(runtime, ls):
    add_tasks(runtime, 1, 2)
    runtime.projects.facts.record_annotation(P, AnnotationRating(10, 1, 1.0))
    ls.tasks = [rated_task(1, 10, task="one"), listed(2)[0]]
    make_worker(runtime, ls).pull.sync(P)
    assert runtime.projects.ledger.annotation_ids(P) == [10]


class DeletesDuringTheListing(FakeLabelStudio):
    """Label Studio deletes a task while its listing is read: offset pages then skip the task that moved up
    onto a page already read, and only the count taken before the listing shows the change."""

    def __init__(self, counts):
        super().__init__()
        self.task_counts = list(counts)

    def task_count(self):
        return self.task_counts.pop(0)


def test_a_task_deleted_while_the_listing_is_read_deletes_nothing(runtime):
    """The count, read only after the listing, matched the listing that had skipped a live task: that task
    and its rating were deleted, and the task count check then said "in step", so they never came back."""
    from ml_backend.service.pull import IncompleteListing

    add_tasks(runtime, 1, 2, 3)
    runtime.projects.facts.record_annotation(P, AnnotationRating(20, 2, 1.0))
    ls = DeletesDuringTheListing(counts=[3, 2])
    ls.tasks = listed(1, 3)          # task 1 deleted after page 1 was read; task 2 moved onto it, unread
    with pytest.raises(IncompleteListing, match="3 tasks before its listing and 2 after"):
        make_worker(runtime, ls).pull.sync(P)
    assert runtime.projects.ledger.task_ids(P) == [1, 2, 3]
    assert runtime.projects.ledger.ratings(P) == {2: 1.0}


@pytest.mark.parametrize("deleted", ["annotation", "task"])
def test_a_late_rating_after_a_deletion_stays_only_if_label_studio_lists_it(runtime, ls, deleted):
    """A webhook that arrives after the deletion of its annotation (or task) must not undo the deletion;
    Label Studio on SQLite may reuse the id for a new annotation, which must stay. Its listing decides."""
    add_tasks(runtime, 1, 2, 3)
    ls.tasks = [{"id": t, "data": {"image": image_uri(t)}, "annotations": []} for t in (1, 2, 3)]
    worker = make_worker(runtime, ls, poll_interval_s=0.1)
    runtime.worker = worker
    client = create_app(runtime.settings, runtime).test_client()
    annotation = {"id": 7, "task": 3, "result": [{"from_name": "relevance", "value": {"choices": ["+1"]}}]}

    def hook(action, **payload):
        return client.post("/webhook", json={"action": action, "project": {"id": P, "label_config": CHOICES_CONFIG},
                                             **payload})

    worker.start()
    try:
        if deleted == "annotation":
            assert hook("ANNOTATIONS_DELETED", annotations=[{"id": 7}]).get_json()["deleted"] == 0
        else:
            ls.tasks = ls.tasks[:2]
            hook("TASKS_DELETED", tasks=[{"id": 3}])
        late = hook("ANNOTATION_CREATED", annotation=annotation, task={"id": 3, "data": {"image": image_uri(3)}})
        assert late.status_code == 200 and "deleted recently" in late.get_json()["note"]
        assert worker.wait_idle(P, 20)
        ledger = runtime.projects.ledger
        assert ledger.ratings(P) == {} and 7 not in ledger.annotation_ids(P)
        assert sorted(ledger.task_ids(P)) == ([1, 2, 3] if deleted == "annotation" else [1, 2])

        if deleted == "annotation":  # the id reused by a new annotation that Label Studio lists: it stays
            ls.tasks[2]["annotations"] = [annotation]
            assert hook("ANNOTATION_CREATED", annotation=annotation, task={"id": 3}).status_code == 200
            assert worker.wait_idle(P, 20)
            assert ledger.ratings(P) == {3: 1.0}
    finally:
        worker.stop()


def test_versions_published_by_an_earlier_ledger_are_numbered_past_and_deleted(runtime, ls):
    """MODEL_DIR lost, moved aside or restored from a backup: versions restarted at v1 beside Label Studio's
    v5, and a later v5 gave tasks two predictions of one name (fuzz pass 4, 2026-12-02)."""
    add_tasks(runtime, *range(1, 6))
    ls.tasks = listed(*range(1, 6))
    ls.predictions = [{"task": t, "result": [], "score": 0.5, "model_version": "clip-head-v5"} for t in range(1, 6)]
    worker = make_worker(runtime, ls)
    reconcile_until_done(worker)                       # the ledger's first head: v1, pushed beside v5
    assert runtime.projects.get(P).head_version() == 1
    worker.pull.sync(P)                                # every start syncs: Label Studio holds v5
    reconcile_until_done(worker)
    assert runtime.projects.get(P).head_version() == 6  # the same head, published under a new name
    versions = {p["model_version"] for p in ls.predictions}
    assert versions == {"clip-head-v6"} and ls.model_version == "clip-head-v6"
    assert ("delete_version", P, "clip-head-v5") in ls.calls
    worker.pull.sync(P)                                # nothing more to adopt: no new version
    reconcile_until_done(worker)
    assert runtime.projects.get(P).head_version() == 6


class AnswerLost(FakeLabelStudio):
    """Stores a chunk of predictions, then the answer never arrives (a timeout), once."""

    lost = 1

    def push_predictions(self, project, predictions):
        super().push_predictions(project, predictions)
        if self.lost:
            self.lost -= 1
            raise LabelStudioUnavailable("Label Studio did not answer within 15 s")


def test_a_prediction_chunk_whose_answer_was_lost_is_not_sent_twice(runtime):
    """Sent again, the stored chunk gave its tasks two predictions of one version, for good (fuzz pass 4)."""
    add_tasks(runtime, *range(1, 8))
    ls = AnswerLost()
    ls.tasks = listed(*range(1, 8))
    worker = make_worker(runtime, ls, prediction_chunk=3)
    with pytest.raises(LabelStudioUnavailable):
        reconcile_until_done(worker)
    reconcile_until_done(worker)
    predicted = [(p["task"], p["model_version"]) for p in ls.predictions]
    assert sorted(predicted) == [(t, "clip-head-v1") for t in range(1, 8)]  # each task once
    assert ("delete_version", P, "clip-head-v1") in ls.calls
    assert runtime.records.in_flight(P) is None


def test_a_head_older_than_label_studios_model_version_is_not_published(runtime, ls):
    """Restarted with the embedding model switched back (A, then B, then A), the current head is A's older one
    until the re-embedded vectors give a refit: published, it took model_version back from v4 to v3 (fuzz
    pass 4, 2026-12-02). The tab still follows the batch."""
    add_tasks(runtime, *range(1, 6))
    runtime.records.set_project_model_version(P, "clip-head-v4")   # what Label Studio shows
    worker = make_worker(runtime, ls)
    reconcile_until_done(worker)
    assert runtime.projects.get(P).head_version() == 1
    assert ls.of("view") and not ls.of("predictions") and not ls.of("model_version")
    runtime.records.set_project_model_version(P, "clip-head-v1")
    reconcile_until_done(worker)
    assert sorted(p["task"] for p in ls.predictions) == [1, 2, 3, 4, 5]  # once in step, it goes out


def test_a_task_deleted_and_imported_again_under_its_id_is_a_new_task(runtime, ls):
    """Label Studio on SQLite reuses ids: after "Delete all tasks" and a new import while the backend was down,
    the ledger kept the old tasks' data, vectors and ratings under the new tasks' ids (the head learnt the
    opposite concept from the new, truthful ratings)."""
    old = [dict(listed(1)[0], created_at="2026-01-01T10:00:00Z"), dict(rated_task(2, 20), created_at="2026-01-01T10:00:01Z")]
    ls.tasks = old
    worker = make_worker(runtime, ls)
    worker.pull.sync(P)
    reconcile_until_done(worker)
    ledger = runtime.projects.ledger
    assert ledger.ratings(P) == {2: 1.0}
    old_vector = runtime.projects.get(P).store.vectors([2])
    new_data = {"image": image_uri(22)}
    ls.tasks = [dict(listed(1)[0], created_at="2026-01-01T10:00:00Z"),
                {"id": 2, "data": new_data, "annotations": [], "created_at": "2026-03-05T09:00:00Z"}]
    worker.pull.sync(P)
    assert ledger.task_data(P, [2]) == {2: new_data}
    assert ledger.ratings(P) == {}  # the old task's rating went with it
    assert 2 not in runtime.projects.get(P).store  # no vector until the new data is embedded
    reconcile_until_done(worker)
    assert 2 in runtime.projects.get(P).store
    assert not (runtime.projects.get(P).store.vectors([2]) == old_vector).all()
    worker.pull.sync(P)  # listed again unchanged: nothing more happens
    assert 2 in runtime.projects.get(P).store and ledger.task_data(P, [2]) == {2: new_data}


def test_deleting_the_connection_detaches_the_backend_until_it_is_connected_again(runtime, ls):
    """With the project's ML connection (and its webhook) deleted, the backend made the webhook again within
    45 s, refitted, pushed predictions and set the project's model_version: an admin could not detach it."""
    ls.connections = [Connection(4, "http://backend:9090", {"prompt": "a red square"})]
    add_tasks(runtime, 1, 2, 3)
    worker = make_worker(runtime, ls)
    worker.pull.check_connections(P)
    reconcile_until_done(worker)
    assert ls.predictions and not runtime.records.connections(P)["detached"]

    # The connection still listed, but this backend briefly not answering at its URL: not detached.
    own = worker.pull.identity
    worker.pull.identity = BackendIdentity("me", "http://elsewhere:1", probe=lambda url: None)
    worker.pull.check_connections(P)
    assert runtime.records.connections(P)["connections"] == [] and not runtime.records.connections(P)["detached"]
    worker.pull.identity = own
    worker.pull.check_connections(P)

    ls.connections, ls.hooks = [], []
    worker.pull.check_connections(P)
    state = runtime.records.connections(P)
    assert state["detached"] and "no ML connection of this project leads to this backend" in state["warning"]
    assert ls.calls[-1] == ("ml_connections", P)  # the deleted webhook is not made again
    ls.calls.clear()
    add_tasks(runtime, 4)
    rate(runtime, 10, 1, 1.0)
    reconcile_until_done(worker)
    assert not [call for call in ls.calls if call[0] not in ("ml_connections", "iter_tasks", "counts")]
    worker.pull.check_connections(P)
    assert runtime.records.connections(P)["detached"]  # stays detached, check after check

    ls.connections = [Connection(5, "http://backend:9090", {"prompt": "a red square"})]
    worker.pull.check_connections(P)
    assert not runtime.records.connections(P)["detached"]
    reconcile_until_done(worker)
    assert any(p["task"] == 4 for p in ls.predictions)  # connected again: the project catches up


def test_with_every_task_deleted_the_model_version_is_left_alone(runtime, ls):
    """After "Delete all tasks" the worker set model_version to the new head's version, which no prediction
    holds: Label Studio answered 400 "Model version doesn't exist" pass after pass, and the worker never idled."""
    add_tasks(runtime, 1, 2)
    rate(runtime, 10, 1, 1.0)
    worker = make_worker(runtime, ls)
    reconcile_until_done(worker)
    assert ls.model_version == version_name(runtime.projects.get(P).head_version())
    ls.calls.clear()
    runtime.projects.facts.delete_tasks(P, [1, 2])
    reconcile_until_done(worker)
    assert runtime.projects.get(P).head_version() > version_number(ls.model_version)  # refitted without the rating
    assert not [call for call in ls.calls if call[0] == "model_version"]
