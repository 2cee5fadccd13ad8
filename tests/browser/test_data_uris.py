"""The backend reads a task's data: URI exactly when an annotator's browser shows it.

Label Studio puts `task.data.image` into an <img>, so Chromium decides what the annotator
sees; the backend's task loader (`TaskImageLoader`, then `decode_data_uri`) follows the same
WHATWG rules. Each variant is shown to Chromium and given to the loader: both read the same
bytes, or both refuse.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from ml_backend.adapters.ls_media import TaskImageLoader
from ml_backend.core.errors import ImageError
from ml_backend.core.fetch import FetchPolicy, ImageFetcher

from .harness import BrowserMissing, chromium_binaries, launch


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (7, 5), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue() + b"\xfb\xff"  # trailing bytes PNG readers ignore, whose base64 holds '+', '/' and '='


PNG = _png()
B64 = base64.b64encode(PNG).decode()
VARIANTS = {
    "plain": "data:image/png;base64," + B64,
    "scheme-in-capitals": "DATA:image/png;base64," + B64,
    "BASE64": "data:image/png;BASE64," + B64,
    "spaced-parameter": "data:image/png; base64 ," + B64,
    "line-wrapped": "data:image/png;base64," + base64.encodebytes(PNG).decode(),
    "unpadded": "data:image/png;base64," + B64.rstrip("="),
    "percent-escaped": "data:image/png;base64," + B64.replace("+", "%2B").replace("/", "%2F"),
    "stray-character": "data:image/png;base64,@" + B64,
    "padding-inside": "data:image/png;base64," + B64[:8] + "=" + B64[8:],
    "no-base64-parameter": "data:image/png," + B64,
    "fragment": "data:image/png;base64," + B64 + "#preview",
    "tab-before-base64": "data:image/png;\tbase64," + B64,  # only spaces may come between ';' and 'base64'
    "trailing-nul": "data:image/png;base64," + B64 + "\x00",  # C0 controls and spaces at the ends are cut
    "leading-space": "  data:image/png;base64," + B64,
    "trailing-nbsp": "data:image/png;base64," + B64 + "\u00a0",  # ... but not other whitespace
}


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    try:
        chromium_binaries()
    except BrowserMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    session = launch("about:blank", tmp_path_factory.mktemp("chromium-profile"))
    session.driver.get("data:text/html,<html><body></body></html>")
    yield session.driver
    session.quit()


def shown_width(driver, uri: str) -> int:
    """The image's width as Chromium decodes it, or -1 when it shows nothing."""
    return driver.execute_async_script(
        "const [uri, done] = arguments; const img = new Image();"
        "img.onload = () => done(img.naturalWidth); img.onerror = () => done(-1); img.src = uri;", uri)


@pytest.mark.parametrize("name", VARIANTS)
def test_the_backend_reads_a_data_uri_exactly_when_chromium_shows_it(chromium, name):
    uri = VARIANTS[name]
    shown = shown_width(chromium, uri) == 7
    loader = TaskImageLoader("image", "http://127.0.0.1:9", ImageFetcher(FetchPolicy()))
    try:
        read = loader.read_bytes({"image": uri}) == PNG
    except ImageError:
        read = False
    assert read == shown, f"{name}: Chromium {'shows' if shown else 'refuses'} it, the backend {'reads' if read else 'refuses'} it"
