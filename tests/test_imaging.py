"""Sniffing, verifying and shrinking images with Pillow."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from console import imaging
from tests.images import GIF, JPEG, PNG, WEBP, make


@pytest.mark.parametrize("data, fmt", [(PNG, "png"), (JPEG, "jpeg"), (WEBP, "webp"), (GIF, "gif")])
def test_inspect_and_sniff(data, fmt):
    assert imaging.sniff(data) == fmt
    info = imaging.inspect(data)
    assert (info.format, info.width, info.height) == (fmt, 32, 24)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html>nope</html>", "HTML page"),
    (b'{"error": 1}', "JSON text"),
    (bytes(range(256)), "not an image"),
    (PNG[: len(PNG) // 2], "corrupt png"),
])
def test_inspect_rejects_with_a_reason(data, message):
    with pytest.raises(imaging.InvalidImage, match=message):
        imaging.inspect(data)


def test_pixel_cap():
    with pytest.raises(imaging.InvalidImage, match="too large"):
        imaging.inspect(make(size=(100, 100)), max_pixels=5000)


def test_prepare_source_untouched_when_within_limits():
    assert imaging.prepare_source(JPEG) == (JPEG, "image/jpeg")


def test_prepare_source_downscales_to_max_side():
    data, mime = imaging.prepare_source(make("PNG", (400, 200)), max_side=100)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (100, 50)
    assert mime == "image/jpeg"


def test_prepare_source_keeps_alpha_as_png():
    data, mime = imaging.prepare_source(make("PNG", (300, 300), (1, 2, 3, 100), "RGBA"), max_side=50)
    assert mime == "image/png" and imaging.inspect(data).width == 50


def test_prepare_source_fits_max_bytes():
    noisy = Image.effect_noise((600, 600), 80).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    data, mime = imaging.prepare_source(buffer.getvalue(), max_bytes=60_000)
    assert len(data) <= 60_000 and mime == "image/jpeg"


def test_mpo_from_cameras_counts_as_jpeg():
    frames = [Image.new("RGB", (20, 10), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "MPO", save_all=True, append_images=frames[1:])
    assert imaging.inspect(buffer.getvalue()).format == "jpeg"
