"""Shared fixtures and helpers for the unit and protocol suites.

Everything here is offline and deterministic: a tiny random CLIP built on the fly,
PNG bytes drawn from seeded RNGs, and a local HTTP server on 127.0.0.1 (tests/stubs.py).
"""

from __future__ import annotations

import io
import os
import time
from typing import Callable

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tests.stubs import LocalServer, data_uri  # noqa: E402

# -- images -------------------------------------------------------------------


def png_bytes(seed: int = 0, size: tuple[int, int] = (24, 24), mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """A small random image encoded as `fmt`; the same seed gives the same bytes."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def image_uri(seed: int = 0) -> str:
    """A data: URI of a random 24x24 PNG."""
    return data_uri(png_bytes(seed))


def decoded(seed: int = 0) -> Image.Image:
    """The RGB image `image_uri(seed)` decodes to."""
    return Image.open(io.BytesIO(png_bytes(seed))).convert("RGB")


# -- vectors ------------------------------------------------------------------


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def planted_vectors(rng: np.random.Generator, n: int, dim: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n random unit vectors, a planted unit direction w*, and labels sign(w*.x) in {-1, +1}.

    Returns (X (n, dim) float32, w_star (dim,) float64, y (n,) float64).
    """
    w_star = rng.normal(size=dim)
    w_star /= np.linalg.norm(w_star)
    X = unit_rows(rng.normal(size=(n, dim)))
    y = np.where(X @ w_star > 0, 1.0, -1.0)
    return X, w_star, y


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- label configs --------------------------------------------------------------

CHOICES_CONFIG = """
<View>
  <Image name="img" value="$image"/>
  <Choices name="relevance" toName="img">
    <Choice value="-1"/><Choice value="0"/><Choice value="+1"/>
  </Choices>
</View>
"""
NUMBER_CONFIG = """
<View>
  <Image name="img" value="$image"/>
  <Number name="score" toName="img" min="0" max="10" step="0.5"/>
</View>
"""
RATING_CONFIG = """
<View>
  <Image name="img" value="$image"/>
  <Rating name="stars" toName="img" maxRating="5"/>
</View>
"""

TEXT_CONFIG = """
<View>
  <Text name="txt" value="$text"/>
  <Choices name="relevance" toName="txt">
    <Choice value="-1"/><Choice value="0"/><Choice value="+1"/>
  </Choices>
</View>
"""
TEXT_URL_CONFIG = TEXT_CONFIG.replace('value="$text"/>', 'value="$doc" valueType="url"/>')

# -- texts with a clear topic (for the real sentence embedder) ------------------------------------

RECIPES = [
    "Brown the onions in butter, add the garlic and simmer the tomato sauce for twenty minutes.",
    "Whisk the eggs with sugar until pale, fold in the flour and bake the sponge at 180 degrees.",
    "Marinate the chicken overnight in yoghurt and spices, then grill it over high heat.",
    "Season the soup with salt and pepper and serve it with fresh bread.",
    "Knead the dough for ten minutes, let it rise, then bake the loaf until golden.",
]
NOT_RECIPES = [
    "Can we move tomorrow's design review to 3pm? Anna is out in the morning.",
    "The patch fixes the race in the scheduler; please review before the release branch is cut.",
    "Minutes of the board meeting are attached, comments by Friday please.",
    "I pushed the new benchmark numbers to the wiki, the regression is gone.",
    "Reminder: the kernel mailing list moved to the new server last week.",
    "Your flight itinerary: departure 7:40 from gate B12, seat 14C.",
    "The library book you reserved is ready for pickup until Thursday.",
    "Lowest mortgage rates guaranteed, refinance today and save thousands.",
    "The quarterly report shows revenue up four percent on last year.",
    "Please rotate your VPN credentials before the end of the month.",
]

# -- the tiny random models ----------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    from scripts.make_tiny_clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def embedder(tiny_clip_dir):
    from ml_backend.core.embed import ImageEmbedder

    return ImageEmbedder(str(tiny_clip_dir), batch_size=4)


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory):
    """A tiny random SigLIP (a CLIP-family model with a text tower), with a character-level tokenizer."""
    import torch
    from transformers import SiglipConfig, SiglipModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from scripts.make_tiny_clip import build_tiny_tokenizer

    out = tmp_path_factory.mktemp("tiny-siglip")
    tokenizer = build_tiny_tokenizer()
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = SiglipConfig(text_config={**layers, "vocab_size": len(tokenizer), "max_position_embeddings": 64},
                          vision_config={**layers, "image_size": 32, "patch_size": 8})
    torch.manual_seed(0)
    SiglipModel(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(out)
    (out / "TINY_RANDOM_MODEL.json").write_text("{}")
    return out


@pytest.fixture(scope="session")
def tiny_vit_dir(tmp_path_factory):
    """A tiny random ViT: an image backbone with no text tower."""
    import torch
    from transformers import ViTConfig, ViTModel
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    out = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    ViTModel(ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       image_size=32, patch_size=8)).eval().save_pretrained(out)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(out)
    (out / "TINY_RANDOM_MODEL.json").write_text("{}")
    return out


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory):
    from scripts.make_tiny_text_model import build_tiny_text_model

    return build_tiny_text_model(tmp_path_factory.mktemp("tiny-text"))


@pytest.fixture(scope="session")
def text_embedder(tiny_text_dir):
    from ml_backend.core.embed_text import TextEmbedder

    return TextEmbedder(str(tiny_text_dir), batch_size=4)


# -- durable state in tmp_path --------------------------------------------------------


def fresh_chroma(path):
    """A Chroma client that really reads `path` (Chroma caches one system per path)."""
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    return chromadb.PersistentClient(path=str(path))


@pytest.fixture
def chroma(tmp_path):
    return fresh_chroma(tmp_path / "chroma")


@pytest.fixture
def ledger(tmp_path):
    from ml_backend.core.ledger import Ledger

    ledger = Ledger(tmp_path / "ledger.sqlite")
    yield ledger
    ledger.close()


@pytest.fixture
def clean_env(monkeypatch):
    """ServiceSettings also reads the environment: make sure nothing set there leaks into a test."""
    from ml_backend.service.settings import ServiceSettings

    for name in ServiceSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def http_server():
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture
def second_http_server():
    server = LocalServer()
    yield server
    server.close()


def wait_until(condition: Callable[[], object], timeout_s: float, every_s: float = 0.02):
    """Poll `condition` until it is truthy or `timeout_s` passes; returns its last value (assert on it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    return condition()


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(result or raised exception, seconds taken)."""
    start = time.monotonic()
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - the caller inspects it
        result = exc
    return result, time.monotonic() - start


# -- a real Label Studio (e2e and reliability layers) -------------------------------------------


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """One Label Studio 1.23 process for the session (its first start runs migrations, ~1 min);
    every test makes its own project in it."""
    from scripts.servers import LABEL_STUDIO_BIN, LabelStudioServer, free_port

    if not LABEL_STUDIO_BIN.exists():
        pytest.skip("Label Studio is not installed: run scripts/setup_env.sh")
    root = tmp_path_factory.mktemp("label-studio")
    server = LabelStudioServer(root / "data", free_port(), root / "files").start(log_path=root / "label-studio.log")
    yield server
    server.stop()
