"""Sniff, fully decode and verify image bytes with Pillow, and shrink sources for upload."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# Formats accepted as sources and results; anything else Pillow might open (e.g. EPS, ICO)
# is refused so a "result" is always something a browser and a trainer can read.
# MPO (multi-picture JPEG from phones and cameras) is a JPEG with extra frames: treat it as one.
FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
# Pillow plugins allowed to open files: never EPS and the like, which run external programs.
# (JPEG's opener also yields MPO.)
OPEN_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
        "bmp": "image/bmp", "tiff": "image/tiff"}
EXTENSION = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "gif": ".gif", "bmp": ".bmp", "tiff": ".tif"}
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own default guard


class InvalidImage(ValueError):
    """The bytes are not a complete image in an accepted format."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the bytes really are, learned by decoding them."""

    format: str  # png, jpeg, webp, gif, bmp, tiff
    width: int
    height: int

    @property
    def mime(self) -> str:
        return MIME[self.format]


def sniff(data: bytes) -> str | None:
    """Return the format named by the leading magic bytes, or None (cheap, no decoding)."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def inspect(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Decode `data` completely and return its real format and size, or raise InvalidImage."""
    if not data:
        raise InvalidImage("empty image data")
    try:
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as image:
            fmt = FORMATS.get(image.format or "")
            if fmt is None:
                raise InvalidImage(f"unsupported image format {image.format or 'unknown'}")
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidImage(f"image too large: {width}x{height} pixels (limit {max_pixels})")
            image.load()  # a full decode: truncated or corrupt data fails here, not later
    except InvalidImage:
        raise
    except UnidentifiedImageError:
        raise InvalidImage(f"not an image ({_describe(data)})") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"corrupt {sniff(data) or 'image'} data: {exc}") from None
    return ImageInfo(fmt, width, height)


def _describe(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if head.startswith((b"{", b"[")):
        return "JSON text"
    if head.isascii():
        return f"text starting {data[:40]!r}"
    return f"{len(data)} bytes starting {data[:8].hex()}"


def prepare_source(data: bytes, max_side: int = 0, max_bytes: int = 0) -> tuple[bytes, str]:
    """Return (bytes, MIME type) of a source, shrunk to `max_side`/`max_bytes` when set (0 = off)."""
    info = inspect(data)
    too_wide = max_side > 0 and max(info.width, info.height) > max_side
    too_heavy = max_bytes > 0 and len(data) > max_bytes
    if not (too_wide or too_heavy):
        return data, info.mime
    with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
    if too_wide:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return _encode_within(image, max_bytes)


def _encode_within(image: Image.Image, max_bytes: int) -> tuple[bytes, str]:
    """Encode as PNG (alpha) or JPEG, scaling down until it fits in `max_bytes` (0 = any)."""
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    while True:
        buffer = io.BytesIO()
        if alpha:
            image.save(buffer, "PNG", optimize=True)
        else:
            image.convert("RGB").save(buffer, "JPEG", quality=90, optimize=True)
        encoded = buffer.getvalue()
        if not max_bytes or len(encoded) <= max_bytes or max(image.size) <= 64:
            return encoded, "image/png" if alpha else "image/jpeg"
        scale = max(0.5, (max_bytes / len(encoded)) ** 0.5 * 0.95)
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
