"""ClipEmbedder over the tiny random CLIP (shapes, norms, failure isolation; not semantics)."""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend.core.embed import ClipEmbedder
from ml_backend.core.errors import ImageError, ModelUnavailableError
from tests.conftest import decoded


def test_tiny_model_properties(embedder):
    assert embedder.dim == 32
    assert embedder.is_random_test_model
    assert embedder.can_embed_text


def test_image_embeddings_are_unit_rows_and_deterministic(embedder):
    images = [decoded(s) for s in range(6)]
    vectors = embedder.embed_images(images)
    assert vectors.shape == (6, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, embedder.embed_images(images))
    assert len({tuple(np.round(v, 4)) for v in vectors}) == 6  # different images, different vectors


def test_no_images_is_an_empty_matrix(embedder):
    assert embedder.embed_images([]).shape == (0, 32)


def test_text_embeddings_are_unit_rows_in_the_image_dimension(embedder):
    vectors = embedder.embed_texts(["a red square", "a blue circle"])
    assert vectors.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


@pytest.mark.parametrize("workers", [1, 3])
def test_embed_sources_isolates_failures_and_matches_embed_images(embedder, workers):
    """10 sources over batches of 4: positions 2 and 7 fail, the rest embed as embed_images would."""
    broken = {2: ImageError("broken", transient=False), 7: ImageError("timeout", transient=True)}

    def load(seed):
        if seed in broken:
            raise broken[seed]
        return decoded(seed)

    positions, vectors, errors = embedder.embed_sources(list(range(10)), load, workers=workers)
    good = [p for p in range(10) if p not in broken]
    assert positions == good
    assert errors == broken
    np.testing.assert_allclose(vectors, embedder.embed_images([decoded(p) for p in good]), atol=1e-5)


def test_embed_sources_all_failing(embedder):
    def load(_):
        raise ImageError("nope")

    positions, vectors, errors = embedder.embed_sources(["a", "b"], load)
    assert positions == [] and vectors.shape == (0, 32) and set(errors) == {0, 1}


def test_unavailable_model_explains_what_to_do(tmp_path):
    with pytest.raises(ModelUnavailableError, match="make_tiny_clip") as info:
        ClipEmbedder(str(tmp_path / "no-such-model"))
    assert "no-such-model" in str(info.value)


def test_the_pre_check_refuses_a_folder_without_an_image_processor(tiny_clip_dir, tmp_path):
    """`CLIPModel.save_pretrained` alone writes config and weights only: the pre-check must load
    what the backend loads, or the demo starts a backend that dies on "Can't load image processor"."""
    from transformers import CLIPModel

    from ml_backend.core.embed import check_model_available

    CLIPModel.from_pretrained(str(tiny_clip_dir)).save_pretrained(tmp_path / "model-only")
    with pytest.raises(ModelUnavailableError, match="image processor") as info:
        check_model_available(str(tmp_path / "model-only"))
    assert "CLIPProcessor" in str(info.value)  # and says how to save one
    check_model_available(str(tiny_clip_dir))  # a complete folder passes
