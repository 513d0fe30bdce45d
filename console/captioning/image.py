"""Make the small JPEG a captioning call sends: the image shrunk to a long side, alpha flattened on white."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from ..messages import say
from .presets import LONG_SIDE

JPEG_QUALITY = 90
WHITE = (255, 255, 255)


class ImageProblem(Exception):
    """The image cannot be read or is too large to open; str(e) says why."""


def caption_jpeg(path: str, max_pixels: int, long_side: int = LONG_SIDE) -> tuple[bytes, int, int]:
    """Return (JPEG bytes, width, height) of the image at `path`, shrunk to `long_side` (never enlarged)."""
    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > max_pixels:
                raise ImageProblem(say("upstream.caption_too_many_pixels", width=opened.width, height=opened.height,
                                       limit=max_pixels))
            opened.draft("RGB", (long_side, long_side))  # JPEG: decode at a reduced scale when it can
            image = ImageOps.exif_transpose(opened)
            image.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
            flat = _flattened(image)
    except FileNotFoundError:
        raise ImageProblem(say("upstream.caption_image_gone")) from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageProblem(say("upstream.caption_image_unreadable", said=str(exc))) from None
    out = io.BytesIO()
    flat.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue(), flat.width, flat.height


def _flattened(image: Image.Image) -> Image.Image:
    """Return an RGB image; transparent parts become white (JPEG has no alpha)."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")
