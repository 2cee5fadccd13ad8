"""ActiveLoop over a real SQLite ledger with fast fakes for Chroma and the embedding model
(images from data: URIs, decoded for real). `tests/integration/test_real_components.py` runs
these tests again on real Chroma and the tiny CLIP."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from ml_backend.adapters.ls_media import TaskImageLoader
from ml_backend.adapters.ls_records import version_name
from ml_backend.core.audit_log import AuditLog
from ml_backend.core.errors import ImageError, NotFittedError
from ml_backend.core.facts import AnnotationRating, Facts
from ml_backend.core.fetch import FetchPolicy, ImageFetcher
from ml_backend.core.ledger import Ledger
from ml_backend.core.loop import MAX_EMBED_ATTEMPTS, ActiveLoop
from ml_backend.core.params import ProjectParams
from ml_backend.core.store import VectorStore
from tests.conftest import cosine, data_uri, decoded, image_uri, png_bytes, wait_until
from tests.fakes import HashEmbedder, MemoryChroma

P = 3
PROMPT = {"prompt": "a photo of a red square"}


def tasks(*ids):
    return [(t, {"image": image_uri(t)}) for t in ids]


def add_tasks(loop, pairs):
    return Facts(loop.ledger).add_tasks(loop.project, pairs)


def rate(loop, annotation_id, task_id, target):
    """An annotation as the webhook records it (target None: a skip)."""
    return Facts(loop.ledger).record_annotation(loop.project, AnnotationRating(annotation_id, task_id, target))


def seen_in_selection(loop) -> set[int]:
    """The tasks the loop's selection treats as seen (its mirror, derived from the ledger)."""
    ids, pool = loop.pool()
    return {int(ids[row]) for row in np.flatnonzero(~pool.available)}


class Files:
    """A project's ledger and vector store "on disk"; `loop()` opens a fresh ActiveLoop over them.

    `open_chroma()` gives a client of the same store each time (after `reopen`, as a restart would).
    """

    def __init__(self, tmp_path, embedder, open_chroma):
        self.tmp_path = tmp_path
        self.embedder = embedder
        self.open_chroma = open_chroma
        self.ledgers: list[Ledger] = []

    def loop(self, params=None, embedder=None, load=None, reopen=False, audit=None) -> ActiveLoop:
        embedder = embedder or self.embedder
        if reopen or not self.ledgers:
            self.ledgers.append(Ledger(self.tmp_path / "ledger.sqlite"))
            self.chroma = self.open_chroma()
        load = load or TaskImageLoader("image", "http://127.0.0.1:1", ImageFetcher(FetchPolicy()))
        store = VectorStore(self.chroma, f"project-{P}", embedder.model_id)
        return ActiveLoop(P, ProjectParams.parse(params), self.ledgers[-1], store, embedder, load, fetch_workers=2,
                          audit=audit)


@pytest.fixture
def loop_embedder():
    return HashEmbedder()


@pytest.fixture
def open_chroma():
    disk = MemoryChroma()
    return lambda: disk


@pytest.fixture
def files(tmp_path, loop_embedder, open_chroma):
    files = Files(tmp_path, loop_embedder, open_chroma)
    yield files
    for ledger in files.ledgers:
        ledger.close()


@pytest.fixture
def embedded(files):
    """A loop with a prompt and tasks 1..12 embedded."""
    loop = files.loop({**PROMPT, "batch_size": 4})
    add_tasks(loop, tasks(*range(1, 13)))
    assert loop.embed_pending().failed == {}
    return loop


def unseen_ids(loop):
    return set(range(1, 13)) - loop.ledger.seen_task_ids(P)


# -- ingest ----------------------------------------------------------------------------------


def test_embed_pending_stores_the_unit_clip_vector_of_every_task(files, loop_embedder):
    loop = files.loop()
    assert add_tasks(loop, tasks(1, 2, 3, 4, 5)) == 5
    report = loop.embed_pending()
    assert sorted(report.embedded) == [1, 2, 3, 4, 5] and report.failed == {}
    vectors = loop.store.vectors([1, 2, 3, 4, 5])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, loop_embedder.embed_items([decoded(s) for s in range(1, 6)]), atol=1e-5)
    assert loop.ledger.counts(P)["tasks"] == {"pending": 0, "embedded": 5, "failed": 0}


def test_embed_pending_respects_its_limit(files):
    loop = files.loop()
    add_tasks(loop, tasks(1, 2, 3, 4, 5))
    assert sorted(loop.embed_pending(limit=2).embedded) == [1, 2]
    assert sorted(loop.embed_pending(limit=10).embedded) == [3, 4, 5]


def test_a_reference_holding_a_lone_surrogate_fails_alone_and_its_reason_is_stored(files):
    """JSON lets "\ud800" through. In an http(s) or Label Studio path the fetch failed with the URL in its
    message, and SQLite refused to store that message (UnicodeEncodeError): the embedding pass itself broke,
    on every try. Every kind of reference now fails alone, with a reason the ledger can store."""
    label_studio = "http://127.0.0.1:1"  # trusted, so its paths are fetched (nothing listens there)
    loop = files.loop(load=TaskImageLoader("image", label_studio,
                                           ImageFetcher(FetchPolicy(trusted_origins=(label_studio,), timeout_s=2.0))))
    add_tasks(loop, tasks(1) + [(2, {"image": label_studio + "/a\ud800.png"}),
                                (3, {"image": "/data/upload/\ud800.png"}),
                                (4, {"image": "data:image/png;base64,QUJD\ud800"})])
    report = loop.embed_pending()
    assert report.embedded == [1] and set(report.failed) == {2, 3, 4}
    assert all("unpaired surrogate" in reason for reason in report.failed.values()), report.failed
    assert loop.ledger.counts(P)["tasks"] == {"pending": 0, "embedded": 1, "failed": 3}


def test_a_broken_image_fails_alone_with_its_reason(files):
    loop = files.loop()
    add_tasks(loop, tasks(1, 2) + [(3, {"image": "data:image/png;base64,!!!"}),
                                  (4, {"image": data_uri(b"plain text", "text/plain")}),
                                  (5, {"picture": image_uri(5)})])
    report = loop.embed_pending()
    assert sorted(report.embedded) == [1, 2]
    assert set(report.failed) == {3, 4, 5}
    assert "bad base64" in report.failed[3]
    assert "not a readable image" in report.failed[4]
    assert "no image in field 'image'" in report.failed[5]
    counts = loop.ledger.counts(P)
    assert counts["tasks"] == {"pending": 0, "embedded": 2, "failed": 3}
    assert {e["task"] for e in counts["task_errors"]} == {3, 4, 5}
    assert loop.embed_pending() == type(report)([], {})  # permanent failures are not retried


def test_transient_failures_are_retried_then_given_up(files):
    calls = []
    real = TaskImageLoader("image", "http://127.0.0.1:1", ImageFetcher(FetchPolicy()))

    def flaky(data, task_id):
        calls.append(data["image"])
        if data["image"] == image_uri(2):
            raise ImageError("HTTP 503", transient=True)
        return real(data, task_id)

    loop = files.loop(load=flaky)
    add_tasks(loop, tasks(1, 2))
    for _ in range(MAX_EMBED_ATTEMPTS + 2):
        loop.embed_pending()
    assert calls.count(image_uri(2)) == MAX_EMBED_ATTEMPTS
    assert loop.ledger.task_states(P, [1, 2]) == {1: "embedded", 2: "failed"}


def test_duplicate_tasks_change_nothing(files):
    loop = files.loop()
    add_tasks(loop, tasks(1, 2, 3))
    loop.embed_pending()
    before = loop.store.vectors([1, 2, 3])
    assert add_tasks(loop, tasks(1, 2, 3)) == 0
    assert add_tasks(loop, [(2, {"image": image_uri(99)})]) == 0  # same id, other data: the first wins
    assert loop.embed_pending().embedded == []
    assert len(loop.store) == 3
    np.testing.assert_array_equal(loop.store.vectors([1, 2, 3]), before)


class DeletingEmbedder(HashEmbedder):
    """Deletes tasks (as the TASKS_DELETED webhook does, vectors included) while their batch is embedded."""

    def __init__(self, facts: Facts, doomed: list[int]):
        super().__init__()
        self.facts, self.doomed = facts, doomed
        self.loop: ActiveLoop | None = None

    def forward(self, batch):
        if self.doomed:
            self.facts.delete_tasks(P, self.doomed)
            self.loop.store.delete(self.doomed)
            self.doomed = []
        return super().forward(batch)


def test_a_task_deleted_while_it_is_embedded_gets_no_vector_back(files):
    ledger_owner = files.loop()  # opens the ledger the embedder's deletion writes to
    embedder = DeletingEmbedder(Facts(ledger_owner.ledger), doomed=[2, 3])
    loop = embedder.loop = files.loop(embedder=embedder)
    add_tasks(loop, tasks(1, 2, 3, 4))
    report = loop.embed_pending()
    assert sorted(report.embedded) == [1, 4]
    assert sorted(int(t) for t in loop.store.ids()) == [1, 4]  # 2 and 3 never reach a batch or the audit
    assert sorted(loop.ledger.task_ids(P)) == [1, 4]


def test_ensure_embedded_embeds_unknown_tasks_now(files):
    loop = files.loop()
    add_tasks(loop, tasks(7, 8))  # /predict records the tasks it is given, then embeds them
    report = loop.ensure_embedded([7, 8])
    assert sorted(report.embedded) == [7, 8]
    assert 7 in loop.store and loop.ledger.task_states(P, [7, 8]) == {7: "embedded", 8: "embedded"}
    assert loop.ensure_embedded([7, 8]).embedded == []


def test_ensure_embedded_with_a_repeated_task(files):
    loop = files.loop()
    add_tasks(loop, tasks(7))
    report = loop.ensure_embedded([7, 7])
    assert 7 in loop.store and report.failed == {}


def test_a_malformed_url_fails_alone(files):
    loop = files.loop()
    add_tasks(loop, tasks(1, 2) + [(3, {"image": "http://example.com:99999/a.png"})])
    report = loop.embed_pending()
    assert sorted(report.embedded) == [1, 2] and set(report.failed) == {3}


# -- the head -----------------------------------------------------------------------------------


def test_a_prompt_gives_head_v1_without_ratings(embedded, loop_embedder):
    head = embedded.refit_if_needed()
    assert (head.version, head.n_ratings) == (1, 0)
    assert version_name(embedded.head_version()) == version_name(1) == "clip-head-v1"
    assert cosine(head.head.coef_, loop_embedder.embed_texts([PROMPT["prompt"]])[0]) == pytest.approx(1.0, abs=1e-5)
    assert embedded.refit_if_needed() is None
    assert embedded.current_head().version == 1


def test_no_prompt_and_no_ratings_means_no_head(files):
    loop = files.loop()
    add_tasks(loop, tasks(1, 2, 3))
    loop.embed_pending()
    assert loop.refit_if_needed() is None
    assert loop.current_head() is None and version_name(loop.head_version()) == "clip-head-v0"
    with pytest.raises(NotFittedError):
        loop.scores([1, 2])


def test_ratings_give_v2_and_move_w(embedded):
    v1 = embedded.refit_if_needed()
    rate(embedded, 100, 3, 1.0)
    rate(embedded, 101, 4, -1.0)
    rate(embedded, 102, 5, None)           # a skip is not a rating
    rate(embedded, 103, 999, 1.0)          # a task that is not embedded is not fitted on
    v2 = embedded.refit_if_needed()
    assert (v2.version, v2.n_ratings) == (2, 2)
    assert not np.allclose(v2.head.coef_, v1.head.coef_)
    probabilities = embedded.scores([3, 4])
    assert probabilities[3] > probabilities[4]
    assert embedded.refit_if_needed() is None


def test_a_refit_whose_rated_vectors_vanish_midway_is_stale_not_a_crash(embedded):
    """The store switched models (dropping every vector) between reading which rated tasks have
    vectors and reading those vectors: a KeyError the worker logged as an unexpected failure."""
    from ml_backend.core.errors import StaleVectorsError

    rate(embedded, 100, 3, 1.0)
    rate(embedded, 101, 4, -1.0)
    # what use_model does to every vector, just before the fit reads them
    with pytest.raises(StaleVectorsError, match="lost their vectors"):
        embedded.refit_if_needed(on_refit=lambda: embedded.store.delete([3]))


def test_a_rating_without_a_prompt_gives_v1(files):
    loop = files.loop()
    add_tasks(loop, tasks(1, 2, 3, 4))
    loop.embed_pending()
    rate(loop, 1, 1, 1.0)
    head = loop.refit_if_needed()
    assert (head.version, head.n_ratings) == (1, 1)


def test_changed_head_params_refit(files):
    loop = files.loop(PROMPT)
    add_tasks(loop, tasks(1, 2, 3, 4))
    loop.embed_pending()
    rate(loop, 1, 1, 1.0)
    assert loop.refit_if_needed().version == 1
    again = files.loop({**PROMPT, "head": {"l2": 5.0}})
    assert again.refit_if_needed().version == 2


def test_scores_are_probabilities_of_embedded_tasks_only(embedded):
    head = embedded.refit_if_needed().head
    scores = embedded.scores([1, 2, 404])
    assert set(scores) == {1, 2}
    expected = head.predict_proba(embedded.store.vectors([1, 2]))
    assert [scores[1], scores[2]] == pytest.approx(expected.tolist())
    assert embedded.scores([404]) == {}


# -- selection ---------------------------------------------------------------------------------


def test_select_batch_is_the_top_k_unseen_by_score(files):
    embedded = files.loop({**PROMPT, "batch_size": 4, "strategy": "nearest"})
    add_tasks(embedded, tasks(*range(1, 13)))
    embedded.embed_pending()
    head = embedded.refit_if_needed().head
    rate(embedded, 100, 1, 1.0)
    rate(embedded, 101, 2, None)
    batch = embedded.select_batch()
    ids = [t.task_id for t in batch]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert not {1, 2} & set(ids)

    candidates = sorted(unseen_ids(embedded))
    logits = head.decision_function(embedded.store.vectors(candidates))
    expected = [candidates[i] for i in np.argsort(-logits, kind="stable")[:4]]
    assert ids == expected
    scores = [t.score for t in batch]
    assert scores == sorted(scores, reverse=True)
    assert scores == pytest.approx([embedded.scores([t])[t] for t in ids], abs=1e-6)


def test_select_batch_k_overrides_the_batch_size(embedded):
    embedded.refit_if_needed()
    assert len(embedded.select_batch(k=7)) == 7
    assert len(embedded.select_batch(k=50)) == 12


def test_select_batch_without_a_head_falls_back_to_random(files):
    loop = files.loop({"batch_size": 3})
    add_tasks(loop, tasks(*range(1, 9)))
    loop.embed_pending()
    rate(loop, 1, 1, None)
    batch = loop.select_batch()
    ids = [t.task_id for t in batch]
    assert len(set(ids)) == 3 and 1 not in ids and set(ids) <= set(range(2, 9))
    assert all(t.score == 0.0 for t in batch)
    assert [t.task_id for t in loop.select_batch()] == ids  # seeded: stable between calls


def test_select_batch_records_the_uniform_draws_of_the_default_strategy(files, tmp_path):
    """The adaptive default draws a share of each batch uniformly from all unseen tasks; the
    audit log records which tasks and out of how many, for estimates that need known probabilities."""
    audit = AuditLog(tmp_path / "evaluation.sqlite")
    loop = files.loop({**PROMPT, "batch_size": 5, "selection": {"uniform_share": 0.4}}, audit=audit)
    add_tasks(loop, tasks(*range(1, 13)))
    loop.embed_pending()
    loop.refit_if_needed()
    rate(loop, 100, 1, -1.0)
    batch = [t.task_id for t in loop.select_batch()]
    [draw] = audit.draws(loop.project, audit.epoch(loop.project)["epoch"])
    # 0.4 of 5, or half of 5 rounded up: one rating, not a uniform pick, says nothing of the prevalence yet
    assert len(batch) == 5 and len(draw.task_ids) == 3 and set(draw.task_ids) <= set(batch)
    assert draw.n_available == 11  # every unseen task
    audit.close()


def test_the_strategy_is_told_which_ratings_were_uniform_draws(files, tmp_path):
    """With the audit log, the ratings of recorded uniform draws are flagged (the adaptive strategy
    estimates the prevalence from them alone); without one, nothing is claimed."""
    audit = AuditLog(tmp_path / "evaluation.sqlite")
    loop = files.loop({**PROMPT, "batch_size": 5, "selection": {"uniform_share": 0.4}}, audit=audit)
    add_tasks(loop, tasks(*range(1, 13)))
    loop.embed_pending()
    loop.refit_if_needed()
    batch = [t.task_id for t in loop.select_batch()]
    drawn = audit.drawn_task_ids(loop.project)
    for n, task_id in enumerate(batch):
        rate(loop, 100 + n, task_id, 1.0 if n % 2 else -1.0)
    ids, pool = loop.pool()
    flagged = loop._with_ratings(ids, pool)
    assert {int(ids[r]) for r, u in zip(flagged.rated, flagged.uniform) if u} == drawn and len(drawn) == 2
    # a second pass: the ratings stay but the tasks are unseen again; they are not a draw's answers
    Facts(loop.ledger).reset_seen(loop.project)
    ids, pool = loop.pool()
    assert not loop._with_ratings(ids, pool).uniform.any()
    loop.audit = None
    assert loop._with_ratings(ids, pool).uniform.size == 0
    audit.close()


def test_select_batch_with_a_strategy_without_uniform_draws_records_none(files, tmp_path):
    audit = AuditLog(tmp_path / "evaluation.sqlite")
    loop = files.loop({**PROMPT, "strategy": "nearest"}, audit=audit)
    add_tasks(loop, tasks(1, 2, 3))
    loop.embed_pending()
    loop.refit_if_needed()
    assert loop.select_batch() and audit.drawn_task_ids(loop.project) == set()
    audit.close()


def test_uncertainty_strategy_picks_scores_nearest_one_half(files):
    loop = files.loop({**PROMPT, "strategy": "uncertainty", "batch_size": 3})
    add_tasks(loop, tasks(*range(1, 13)))
    loop.embed_pending()
    loop.refit_if_needed()
    picked = {t.task_id for t in loop.select_batch()}
    scores = loop.scores(list(range(1, 13)))
    closest = sorted(scores, key=lambda t: abs(scores[t] - 0.5))[:3]
    assert picked == set(closest)


def test_reset_seen_makes_tasks_selectable_again(embedded):
    embedded.refit_if_needed()
    for t in range(1, 11):
        rate(embedded, 100 + t, t, 1.0 if t % 2 else -1.0)
    assert {t.task_id for t in embedded.select_batch()} == {11, 12}
    assert Facts(embedded.ledger).reset_seen(P) == 10
    batch = {t.task_id for t in embedded.select_batch()}
    assert len(batch) == 4 and batch & set(range(1, 11))
    assert embedded.ledger.ratings(P)[1] == 1.0  # ratings are kept


def test_status(embedded):
    embedded.refit_if_needed()
    rate(embedded, 1, 1, 0.5)
    status = embedded.status()
    assert status["project"] == P and version_name(embedded.head_version()) == "clip-head-v1"
    assert status["head"] == {"version": 1, "ratings": 0}
    assert (status["vectors"], status["seen"], status["rated_tasks"]) == (12, 1, 1)
    assert status["tasks"] == {"pending": 0, "embedded": 12, "failed": 0}
    assert status["params"]["prompt"] == PROMPT["prompt"]


# -- durability ----------------------------------------------------------------------------------


def test_state_survives_a_new_loop_over_the_same_files(files, embedded):
    embedded.refit_if_needed()
    rate(embedded, 100, 3, 1.0)
    rate(embedded, 101, 4, -1.0)
    rate(embedded, 102, 5, None)
    v2 = embedded.refit_if_needed()
    batch = embedded.select_batch()
    vectors = embedded.store.vectors(range(1, 13))

    again = files.loop({**PROMPT, "batch_size": 4}, reopen=True)
    assert again.current_head().version == 2 and version_name(again.head_version()) == "clip-head-v2"
    np.testing.assert_array_equal(again.current_head().head.coef_, v2.head.coef_)
    assert again.current_head().head.intercept_ == pytest.approx(v2.head.intercept_)
    assert again.ledger.ratings(P) == {3: 1.0, 4: -1.0}
    assert again.ledger.seen_task_ids(P) == {3, 4, 5}
    assert seen_in_selection(again) == {3, 4, 5}
    np.testing.assert_allclose(again.store.vectors(range(1, 13)), vectors, atol=1e-6)
    assert again.refit_if_needed() is None
    assert again.embed_pending().embedded == []
    assert [t.task_id for t in again.select_batch()] == [t.task_id for t in batch]


def other_model(embedder):
    """The same weights under another model id: what the loop sees when IMAGE_EMBEDDING_MODEL changes."""
    other = copy.copy(embedder)
    other.model_id = embedder.model_id + "-v2"
    return other


def test_changing_the_embedding_model_re_embeds_everything(files, embedded, loop_embedder):
    rate(embedded, 100, 3, 1.0)
    embedded.refit_if_needed()
    changed = files.loop({**PROMPT, "batch_size": 4}, embedder=other_model(loop_embedder))
    assert len(changed.store) == 0
    assert changed.store.stored_model_id == loop_embedder.model_id + "-v2"
    assert changed.ledger.counts(P)["tasks"]["pending"] == 12
    assert sorted(changed.embed_pending().embedded) == list(range(1, 13))
    assert len(changed.store) == 12
    assert seen_in_selection(changed) == {3}  # seen flags come from the ledger
    again = files.loop({**PROMPT, "batch_size": 4}, embedder=other_model(loop_embedder), reopen=True)
    assert len(again.store) == 12  # reopening with the same new model keeps the vectors


def test_a_model_change_refits_the_head_in_the_new_space(files, embedded, loop_embedder):
    rate(embedded, 100, 3, 1.0)
    assert embedded.refit_if_needed().version == 1
    changed = files.loop({**PROMPT, "batch_size": 4}, embedder=other_model(loop_embedder))
    changed.embed_pending()
    refit = changed.refit_if_needed()
    assert refit is not None and refit.version == 2


def test_switching_the_model_back_saves_the_old_models_head_as_a_new_version(files, embedded, loop_embedder):
    """Versions only go up: Label Studio and the evaluation follow the newest version."""
    rate(embedded, 100, 3, 1.0)
    first = embedded.refit_if_needed()
    changed = files.loop({**PROMPT, "batch_size": 4}, embedder=other_model(loop_embedder))
    changed.embed_pending()
    assert changed.refit_if_needed().version == 2
    back = files.loop({**PROMPT, "batch_size": 4}, embedder=loop_embedder)
    back.embed_pending()
    again = back.refit_if_needed()
    assert again is not None and again.version == 3 and back.head_version() == 3
    np.testing.assert_array_equal(again.head.coef_, first.head.coef_)  # the same head: nothing to refit
    assert back.refit_if_needed() is None


def test_select_batch_on_an_empty_store_with_a_head_is_empty(files, embedded, loop_embedder):
    embedded.refit_if_needed()
    changed = files.loop({**PROMPT, "batch_size": 4}, embedder=other_model(loop_embedder))
    assert changed.select_batch() == []


def test_a_task_rated_while_it_is_embedded_is_not_selected(files):
    loop = files.loop({"batch_size": 5})
    add_tasks(loop, tasks(1, 2, 3))
    real_upsert = loop.store.upsert

    def upsert_racing_a_webhook(ids, vectors, **kwargs):
        # The annotation webhook lands between reading `seen` and writing the vectors.
        rate(loop, 100, 2, 1.0)
        real_upsert(ids, vectors, **kwargs)

    loop.store.upsert = upsert_racing_a_webhook
    loop.embed_pending()
    loop.store.upsert = real_upsert
    assert 2 not in {t.task_id for t in loop.select_batch()}


def test_a_straggler_whose_task_is_no_longer_pending_is_forgotten(files, http_server):
    """/predict fetches a task's image itself while a worker pass leaves its own fetch of it loading in
    the background; /predict records the task (here: failed), so the pass's straggler is stale and must
    not keep the project "loading" for ever (the worker would never be idle)."""
    import threading
    import time

    from tests.stubs import Reply

    http_server.routes["/slow.png"] = Reply(body=b"x", delay_s=0.6)
    fetcher = ImageFetcher(FetchPolicy(allowed_hosts=("127.0.0.0/8",), timeout_s=5.0))
    loop = files.loop(load=TaskImageLoader("image", "http://127.0.0.1:1", fetcher))
    add_tasks(loop, [(1, {"image": http_server.url("/slow.png")})])  # /predict records it, then embeds it
    predict = threading.Thread(target=loop.ensure_embedded, args=([1],))
    predict.start()
    while not http_server.requests:
        time.sleep(0.01)
    loop.embed_pending(wait_s=0.05)
    assert loop.has_items_loading()  # the pass did not wait for its fetch
    predict.join()
    assert loop.ledger.task_states(P, [1]) == {1: "failed"}
    time.sleep(1.0)  # the pass's fetch is done too
    loop.embed_pending(wait_s=0.05)
    assert not loop.has_items_loading() and not loop.has_items_to_embed()


def test_a_pass_stops_waiting_for_a_slow_image_once_told_to_hurry(files, http_server):
    """The worker's pass waits `wait_s` for slow images; other work coming in (`hurry`) ends the wait at once,
    and the image finishes loading in the background, to be embedded by a later pass."""
    import threading
    import time

    from tests.stubs import Reply

    http_server.routes["/slow.png"] = Reply(body=png_bytes(1), delay_s=1.0)
    fetcher = ImageFetcher(FetchPolicy(allowed_hosts=("127.0.0.0/8",), timeout_s=5.0))
    loop = files.loop(load=TaskImageLoader("image", "http://127.0.0.1:1", fetcher))
    add_tasks(loop, [(1, {"image": http_server.url("/slow.png")})])
    hurry = threading.Event()
    threading.Timer(0.1, hurry.set).start()
    started = time.monotonic()
    report = loop.embed_pending(wait_s=5.0, hurry=hurry)
    assert time.monotonic() - started < 0.9 and report.embedded == [] and loop.has_items_loading()
    wait_until(lambda: not loop.has_items_loading() or loop.has_items_to_embed(), timeout_s=10)
    assert loop.embed_pending(wait_s=5.0, hurry=hurry).embedded == [1]
