"""Real, small, decodable images for tests (made by Pillow, deterministic)."""

from __future__ import annotations

import base64
import io

from PIL import Image


def make(fmt: str = "PNG", size: tuple[int, int] = (32, 24), color=(200, 30, 40), mode: str = "RGB") -> bytes:
    """Return encoded image bytes."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    """Return standard base64 text."""
    return base64.b64encode(data).decode("ascii")


def data_url(data: bytes, mime: str = "image/png") -> str:
    """Return a data URL (the label may lie, as grok2api's does)."""
    return f"data:{mime};base64,{b64(data)}"


PNG = make("PNG")
JPEG = make("JPEG", color=(20, 180, 60))
WEBP = make("WEBP", color=(10, 20, 200))
GIF = make("GIF", color=(250, 250, 0))
