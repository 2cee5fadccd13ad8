"""A transparent image is embedded the way the labeling page shows it.

A cut-out's transparent pixels keep whatever colour they were stored with (here black);
the annotator sees what lies behind the <img>. The backend composites over white
(`core.images`); this test reads the rendered pixels in real Chromium on Label Studio
1.23's labeling page and compares them with what the backend decodes.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from ml_backend.adapters.ls_admin import admin_client, create_project, import_tasks
from ml_backend.core.images import decode_image
from scripts.servers import LabelStudioServer

from ..e2e.conftest import ROOT
from .harness import ARTIFACTS
from .label_studio_ui import label_all_tasks, open_project, wait_for_task

LABEL_STUDIO_NOISE = ("/heidi-tips",)  # Label Studio's own frontend asks for a page it does not serve


def cut_out() -> bytes:
    """64 x 32: opaque red on the left third, half-transparent red in the middle, transparent black on the right."""
    pixels = np.zeros((32, 64, 4), dtype=np.uint8)
    pixels[:, :21] = (200, 30, 30, 255)
    pixels[:, 21:43] = (200, 30, 30, 128)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def thirds(rgb: np.ndarray) -> list[np.ndarray]:
    """Mean colour of each third's inner half (away from the edges, which the browser's scaling blends)."""
    height, width = rgb.shape[:2]
    rows = slice(height // 4, 3 * height // 4)
    return [rgb[rows, int(width * (i + 0.25) / 3):int(width * (i + 0.75) / 3)].reshape(-1, 3).mean(axis=0)
            for i in range(3)]


def test_the_labeling_page_shows_transparent_pixels_as_the_backend_embeds_them(label_studio: LabelStudioServer,
                                                                                logged_in):
    png = cut_out()
    client = admin_client(label_studio.url, label_studio.api_token)
    project = create_project(client, "browser: transparent image", (ROOT / "label_config.xml").read_text())
    import_tasks(client, project, [{"image": "data:image/png;base64," + base64.b64encode(png).decode()}])

    open_project(logged_in, project)
    label_all_tasks(logged_in)
    wait_for_task(logged_in)
    [shown] = logged_in.find_all("img[alt=image]")
    rendered = np.asarray(Image.open(io.BytesIO(shown.screenshot_as_png)).convert("RGB")).astype(float)
    logged_in.screenshot(ARTIFACTS / "transparent-image-labeling-page.png")

    embedded = np.asarray(decode_image(png)).astype(float)
    for third, (on_page, decoded) in enumerate(zip(thirds(rendered), thirds(embedded))):
        assert np.abs(on_page - decoded).max() <= 6, (third, on_page, decoded)
    assert thirds(embedded)[2].min() >= 250  # white, not the stored black
    assert logged_in.console_errors(ignore=LABEL_STUDIO_NOISE) == []
