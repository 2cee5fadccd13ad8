"""Text embeddings from a sentence-embedding model (a transformers encoder plus pooling), L2-normalised.

The pooling is what the model card prescribes: a sentence-transformers folder says it
in `1_Pooling/config.json` (mean, CLS or max over tokens) and its input length in
`sentence_bert_config.json`; a folder without them gets mean pooling over the
attention mask, the usual recipe. Items and prompts go through the same model, so a
prompt lands in the space of the tasks it is meant to find.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils.hub import cached_file

from .embed import unavailable
from .embedding import Embedder, is_tiny_random_model, unit_rows
from .errors import ModelUnavailableError

log = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
# sentence-transformers modules this embedder reproduces; anything else (a Dense layer, say) would be skipped silently.
KNOWN_MODULES = {"Transformer", "Pooling", "Normalize"}
# A token is at most this many characters (WordPiece gives up on longer words), so cutting a
# text at max_tokens * this many characters before tokenising (runs of blanks read as one)
# never changes the result, and a megabyte of text is not tokenised only to be truncated.
MAX_CHARS_PER_TOKEN = 128
# Ordinary sentences any text model's tokenizer reads, embedded once when the model loads.
PROBE_TEXTS = ("A recipe for bread with garlic and olive oil.", "Stock markets fell sharply on Monday, 12 May 2003.")


class TextEmbedder(Embedder):
    """Embeds texts with a sentence-embedding model from the hub or a local folder.

    Parameters
    ----------
    model : hub id (e.g. "sentence-transformers/all-MiniLM-L6-v2") or a local folder.
    device : torch device string.
    batch_size : texts per forward pass.
    """

    modality = "text"

    def __init__(self, model: str = DEFAULT_TEXT_MODEL, device: str = "cpu", batch_size: int = 32):
        self.model_id = model
        self.device = torch.device(device)
        self.batch_size = batch_size
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(model)
            self._model = AutoModel.from_pretrained(model).to(self.device).eval()
            card = _sentence_transformers_card(model)
            # A CLIP or vision folder loads too, and has no text encoder's hidden size.
            self.dim = int(self._model.config.hidden_size)
            positions = getattr(self._model.config, "max_position_embeddings", None) or self._tokenizer.model_max_length
            self.max_tokens = int(min(card.get("max_seq_length") or positions, positions, self._tokenizer.model_max_length))
        except ModelUnavailableError:
            raise
        except Exception as exc:  # hub, network and format errors all mean "no usable model"
            raise unavailable(model, exc, variable="TEXT_EMBEDDING_MODEL") from None
        self.pooling = card.get("pooling", "mean")
        if self._tokenizer.pad_token is None:  # GPT-2-style tokenizers; padded positions are masked out anyway
            self._tokenizer.pad_token = self._tokenizer.eos_token or self._tokenizer.unk_token
        self.is_random_test_model = is_tiny_random_model(model)
        self._check_tells_texts_apart()
        log.info("text model %s: %s pooling, first %d tokens, %d-d", model, self.pooling, self.max_tokens, self.dim)

    def _check_tells_texts_apart(self) -> None:
        """Refuse a model that cannot embed, or whose tokenizer reads ordinary words as unknown: a folder without
        its tokenizer files loads with a fallback that does, and every text gets the same vector."""
        unknown = self._tokenizer.unk_token_id
        special = set(self._tokenizer.all_special_ids) - {unknown}
        words = [i for text in PROBE_TEXTS for i in self._tokenizer(text)["input_ids"] if i not in special]
        if unknown is not None and all(i == unknown for i in words):
            raise ModelUnavailableError(
                f"text model {self.model_id!r} reads every word of an ordinary sentence as unknown, so every text "
                "would get the same vector: its tokenizer files are missing or wrong (save_pretrained writes them "
                "beside the weights)")
        try:
            self.embed_texts(PROBE_TEXTS)
        except Exception as exc:
            raise ModelUnavailableError(f"text model {self.model_id!r} loads but cannot embed a text "
                                        f"({type(exc).__name__}: {exc}): choose another TEXT_EMBEDDING_MODEL") from None

    @property
    def can_embed_text(self) -> bool:
        return True

    def prepare(self, item: str) -> str:
        limit = self.max_tokens * MAX_CHARS_PER_TOKEN
        if len(item) > limit:
            # The tokenizer reads a run of blanks as one; cut with them, a page of blanks after the first
            # sentence (or before it) would hide every word that follows.
            item = " ".join(item.split())
        return item.strip()[:limit].rstrip()

    def collate(self, prepared: Sequence[str]) -> Any:
        return self._tokenizer(list(prepared), padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt")

    def forward(self, batch: Any) -> np.ndarray:
        inputs = {key: value.to(self.device) for key, value in batch.items()}
        with torch.inference_mode():
            tokens = self._model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        if self.pooling == "cls":
            features = tokens[:, 0]
        elif self.pooling == "max":
            features = tokens.masked_fill(mask == 0, torch.finfo(tokens.dtype).min).max(dim=1).values
        else:
            features = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return unit_rows(features)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings (n, dim) float32: tasks and prompts alike."""
        return self.embed_items(list(texts))


def _sentence_transformers_card(model: str) -> dict:
    """Pooling and input length from a sentence-transformers folder (empty when it is a plain encoder)."""
    modules = _json_file(model, "modules.json")
    if modules is None:
        return {}
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    unknown = sorted(set(kinds) - KNOWN_MODULES)
    if unknown:
        raise ModelUnavailableError(
            f"text model {model!r} has sentence-transformers modules {unknown} this backend does not run "
            f"(it runs {sorted(KNOWN_MODULES)}): choose another TEXT_EMBEDDING_MODEL")
    card: dict = {}
    pooling_path = next((m.get("path") for m in modules if str(m.get("type", "")).endswith("Pooling")), None)
    pooling = _json_file(model, f"{pooling_path}/config.json") if pooling_path else None
    if pooling:
        modes = [mode for key, mode in POOLING_MODES.items() if pooling.get(key)]
        others = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v and k not in POOLING_MODES]
        if len(modes) != 1 or others:
            raise ModelUnavailableError(
                f"text model {model!r} asks for pooling {modes + others}; this backend does one of mean, cls or max")
        card["pooling"] = modes[0]
    settings = _json_file(model, "sentence_bert_config.json") or {}
    if settings.get("max_seq_length"):
        card["max_seq_length"] = int(settings["max_seq_length"])
    return card


def _json_file(model: str, name: str) -> Any | None:
    """A JSON file of a model folder or hub repo, or None when it has none."""
    folder = Path(model)
    if folder.is_dir():
        path = folder / name
    else:
        found = cached_file(model, name, _raise_exceptions_for_missing_entries=False,
                            _raise_exceptions_for_connection_errors=False)
        path = Path(found) if found else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())
