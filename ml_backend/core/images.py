"""A task's image bytes -> the RGB picture an annotator's browser shows, or an ImageError.

Image bytes come from anyone who can import tasks (`core.fetch` gets them), so only the formats a
browser shows are opened, the pixel count is checked before anything is decoded, and a decoder's own
failure on hostile bytes is an ImageError, never a crash.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

# The formats an annotator's browser shows (and TIFF, common in datasets). Pillow reads dozens more; an
# exotic decoder can fail in ways of its own (a junk DDS header raised NotImplementedError), and EPS
# runs Ghostscript wherever it is installed. Anything else is refused before it is parsed.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "ICO", "TIFF", "AVIF")
# A side longer than this many times the other is cut to it around the centre. The models' preprocessing
# scales the short side up to the input size and keeps the centre: a 99-byte 1 x 10,000 PNG became
# 224 x 2,240,000 pixels (5.5 GiB) before being cropped to the same centre.
MAX_ASPECT = 4


def decode_image(data: bytes, max_pixels: int = 40_000_000) -> Image.Image:
    """Decode bytes to an RGB image, checking the pixel count before decoding anything."""
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(f"image is {width}x{height} pixels, limit {max_pixels}")
        image.load()  # decoding errors surface here, before anything reads EXIF
        return _to_rgb(_centre_crop(_upright(image)))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError("not a readable image (or a format browsers do not show)") from None
    except Exception as exc:  # noqa: BLE001 - a decoder's own failure on hostile bytes is a bad image, not a crash
        raise ImageError(f"corrupt image: {type(exc).__name__}: {exc}") from None


def _upright(image: Image.Image) -> Image.Image:
    """The image the way up its EXIF orientation says, as browsers (and so annotators) show it."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a malformed EXIF block leaves the pixels as stored, not the image unread
        return image


def _centre_crop(image: Image.Image) -> Image.Image:
    width, height = image.size
    short = max(1, min(width, height))
    if max(width, height) <= MAX_ASPECT * short:
        return image
    keep_w, keep_h = min(width, MAX_ASPECT * short), min(height, MAX_ASPECT * short)
    left, top = (width - keep_w) // 2, (height - keep_h) // 2
    return image.crop((left, top, left + keep_w, top + keep_h))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        # Transparent pixels keep whatever colour they were stored with (often black), but the labeling
        # page shows them over its white background: a product cut-out must embed the way it looks.
        image = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image).convert("RGB")
    if image.mode == "I" or image.mode.startswith("I;16"):
        # 16-bit greyscale: Pillow's RGB conversion clips at 255; a browser shows the high byte
        values = np.asarray(image.convert("I"), dtype=np.int64)
        image = Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), "L")
    return image.convert("RGB")
