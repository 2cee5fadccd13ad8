"""Decoding images safely: only the formats a browser shows, pixel limits, the picture a browser shows."""

from __future__ import annotations

import struct
import warnings
import zlib

import pytest

from ml_backend.core import images
from ml_backend.core.errors import ImageError
from ml_backend.core.images import decode_image
from tests.conftest import png_bytes, timed




def png_header(width: int, height: int) -> bytes:
    """A PNG signature and a valid IHDR claiming width x height, and no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


# -- decode_image ---------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [png_bytes(1), png_bytes(2, fmt="JPEG"), png_bytes(3, mode="RGBA"), png_bytes(4, mode="L"),
     png_bytes(5, fmt="GIF"), png_bytes(6, fmt="BMP"), png_bytes(7, fmt="WEBP")],
    ids=["png", "jpeg", "rgba", "grey", "gif", "bmp", "webp"],
)
def test_decode_image_gives_rgb(payload):
    image = decode_image(payload)
    assert image.mode == "RGB"
    assert image.size == (24, 24)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "not a readable image"),
        (b"hello, world", "not a readable image"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "not a readable image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a readable image"),
        (png_bytes(1)[:60], "corrupt image"),
        (png_bytes(1, fmt="JPEG")[:200], "corrupt image"),
    ],
    ids=["empty", "text", "pdf", "svg", "truncated-png", "truncated-jpeg"],
)
def test_decode_image_rejects_non_images(payload, message):
    with pytest.raises(ImageError, match=message) as info:
        decode_image(payload)
    assert not info.value.transient


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (10_000, 10_000), (1, 50_000_000)])
def test_decode_image_refuses_huge_dimensions_from_the_header_alone(width, height):
    """Only a header: a decoder that allocated first would need up to 30 GB. It must refuse at once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning on the way
        result, seconds = timed(lambda: decode_image(png_header(width, height)))
    assert isinstance(result, ImageError)
    assert seconds < 1.0


def test_decode_image_respects_max_pixels():
    with pytest.raises(ImageError, match=r"24x24 pixels, limit 500"):
        decode_image(png_bytes(1), max_pixels=500)
    assert decode_image(png_bytes(1), max_pixels=576).size == (24, 24)


def _png_of(array, mode=None) -> bytes:
    import io

    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, "PNG")
    return out.getvalue()


def test_a_long_thin_image_is_cropped_around_its_centre_before_any_model_sees_it():
    """A 99-byte 1 x 10,000 PNG: CLIP's preprocessing scales the short side up to 224 px first,
    224 x 2,240,000 pixels (5.5 GiB, 20 s) only to keep the centre (found by fuzzing, 2026-12-01).
    The long side is now cut to MAX_ASPECT times the short one, around the centre: what the model
    keeps of it is the same."""
    import numpy as np

    stripe = np.zeros((10_000, 1), dtype=np.uint8)
    stripe[4_999:5_001] = 255  # the centre, which every crop keeps
    image = decode_image(_png_of(stripe))
    assert image.size == (1, images.MAX_ASPECT) and np.asarray(image)[images.MAX_ASPECT // 2 - 1:][:2].max() == 255
    assert decode_image(_png_of(np.zeros((30, 20), dtype=np.uint8))).size == (20, 30)  # ordinary shapes untouched


def test_a_16_bit_greyscale_image_keeps_its_contrast():
    """Pillow's RGB conversion clips 16-bit greyscale (mode I;16) at 255: a full-range gradient came out
    99.6% white. It is scaled to 8 bits as a browser shows it."""
    import numpy as np

    gradient = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    pixels = np.asarray(decode_image(_png_of(gradient)))[..., 0].astype(int)
    assert abs(pixels - (gradient >> 8)).max() <= 1


def test_formats_a_browser_would_not_show_are_refused_before_they_are_parsed():
    """A junk DDS header made Pillow raise NotImplementedError, past every except (found by fuzzing);
    an EPS file would run Ghostscript where it is installed. Only the formats browsers show are opened."""
    dds = (b"DDS " + (124).to_bytes(4, "little") + (0x1007).to_bytes(4, "little") + (30000).to_bytes(4, "little") * 2
           + b"\0" * 132)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    for payload in (dds, eps):
        with pytest.raises(ImageError, match="not a readable image"):
            decode_image(payload)


def test_a_photo_with_an_exif_orientation_is_embedded_the_way_up_a_browser_shows_it():
    """A phone photo stores its pixels sideways and says so in EXIF; browsers (and so annotators) see
    it upright. It was embedded sideways (found by fuzzing)."""
    import io

    import numpy as np
    from PIL import Image

    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = 255  # stored 40 wide, 20 high, white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    out = io.BytesIO()
    Image.fromarray(stored).save(out, "JPEG", exif=exif, quality=95)
    shown = np.asarray(decode_image(out.getvalue()))
    assert shown.shape[:2] == (40, 20) and shown[:20].mean() > 200 and shown[20:].mean() < 50


@pytest.mark.parametrize("fmt, mode", [("PNG", "RGBA"), ("PNG", "LA"), ("PNG", "P"), ("GIF", "P"), ("WEBP", "RGBA")])
def test_transparent_pixels_are_embedded_over_the_white_the_labeling_page_shows(fmt, mode):
    """A cut-out's transparent pixels are stored as black here; the browser shows them over white, and
    Pillow's RGB conversion kept them black. Half-transparent pixels blend with the white."""
    import io

    import numpy as np
    from PIL import Image

    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[:, :8] = (200, 30, 30, 255)  # opaque red on the left, fully transparent black on the right
    image = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        image = image.convert("LA")
    elif mode == "P":
        image = image.quantize(colors=4)
        image.info["transparency"] = image.getpixel((12, 8))  # the palette entry of the transparent half
    out = io.BytesIO()
    image.save(out, fmt, **({"lossless": True} if fmt == "WEBP" else {}))

    shown = np.asarray(decode_image(out.getvalue())).astype(int)

    assert shown[:, 8:].min() >= 250  # white, as shown, not black
    assert shown[:, :8].max() <= 205 and abs(shown[:, :8] - shown[0, 0]).max() <= 3  # the opaque part as stored
    half = rgba.copy()
    half[..., 3] = 128
    out = io.BytesIO()
    Image.fromarray(half, "RGBA").save(out, "PNG")
    blended = np.asarray(decode_image(out.getvalue())).astype(int)
    assert abs(blended[0, 0] - np.array([227, 142, 142])).max() <= 2 and blended[0, 12].min() >= 126
