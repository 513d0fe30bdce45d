"""Sniffing, verifying, turning upright, reading sources, conforming and encoding images with Pillow."""

from __future__ import annotations

import io
import os
import zlib

import pytest
from PIL import Image

from console import imaging
from console.cache import ImageCache
from tests.hostile_files import PROMPT_S, fifo, within
from testkit.images import GIF, JPEG, PNG, WEBP, make

RED, BLUE = (255, 0, 0), (0, 0, 255)
LIMITS = {"max_bytes": 0, "max_pixels": imaging.DEFAULT_MAX_PIXELS, "max_side": 0, "max_source_bytes": 1 << 20}


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image


def phone_photo(fmt: str = "JPEG", orientation: int = 6) -> bytes:
    """Return a 400×200 picture stored sideways: red left half, blue right half, EXIF `orientation`."""
    image = Image.new("RGB", (400, 200), BLUE)
    image.paste(RED, (0, 0, 200, 200))
    exif = Image.Exif()
    exif[imaging.ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=exif)
    return buffer.getvalue()


def close(pixel, color) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(pixel, color))


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


# -- the one EXIF rule -----------------------------------------------------------------------------

@pytest.mark.parametrize("orientation, size, top_left", [
    (1, (400, 200), RED), (3, (400, 200), BLUE), (6, (200, 400), RED), (8, (200, 400), BLUE),
])
def test_upright_turns_as_viewers_do(orientation, size, top_left):
    with Image.open(io.BytesIO(phone_photo(orientation=orientation))) as opened:
        image = imaging.upright(opened)
    assert image.size == size and close(image.getpixel((5, 5)), top_left)
    assert imaging.orientation(image) == 1  # the tag went with the turn: nothing turns it twice


def test_every_use_of_a_source_follows_the_one_rule(tmp_path):
    """Thumbnail, save-time size, dataset conversion and what is sent upstream all see it upright."""
    path = tmp_path / "phone.jpg"
    path.write_bytes(phone_photo())
    sent, mime = imaging.read_source(path, **LIMITS)
    assert mime == "image/jpeg" and decoded(sent).size == (200, 400)
    assert close(decoded(sent).getpixel((100, 5)), RED) and imaging.inspect(sent).orientation == 1
    assert imaging.source_info(path) == ("jpeg", 200, 400)
    assert decoded(imaging.convert(path.read_bytes(), "png")).size == (200, 400)
    cache = ImageCache(tmp_path / "data")
    assert decoded(cache.source_thumbnail(path, 100).read_bytes()).size == (50, 100)


def test_tiff_orientation_is_applied_once(tmp_path):
    """Newer Pillow turns a TIFF itself while loading it: the rule must not turn it again."""
    path = tmp_path / "scan.tif"
    path.write_bytes(phone_photo("TIFF", 8))
    assert imaging.source_info(path) == ("tiff", 200, 400)
    info = imaging.inspect(path.read_bytes())
    assert (info.width, info.height) == (200, 400)
    converted = decoded(imaging.convert(path.read_bytes(), "png"))
    assert converted.size == (200, 400) and close(converted.getpixel((100, 395)), RED)
    thumb = decoded(ImageCache(tmp_path / "data").source_thumbnail(path, 100).read_bytes())
    assert thumb.size == (50, 100) and close(thumb.getpixel((25, 95)), RED)


# -- reading sources -------------------------------------------------------------------------------

def test_read_source_sends_a_plain_source_unchanged(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(PNG)
    assert imaging.read_source(path, **LIMITS) == (PNG, "image/png")


def test_read_source_shrinks_to_the_profile_limits(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(make("PNG", (400, 200)))
    data, mime = imaging.read_source(path, **{**LIMITS, "max_side": 100})
    assert mime == "image/jpeg" and decoded(data).size == (100, 50)


def test_read_source_refuses_a_file_over_max_source_bytes(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(PNG)
    limit = len(PNG) - 1
    with pytest.raises(imaging.SourceError) as caught:
        imaging.read_source(path, **{**LIMITS, "max_source_bytes": limit})
    assert str(caught.value) == f"source is {len(PNG)} bytes, over the limit of {limit} bytes (MAX_SOURCE_BYTES)"


def big_png_header(width: int, height: int) -> bytes:
    """Return a PNG whose header claims width×height but whose pixel data is garbage."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"not zlib") + chunk(b"IEND", b"")


def test_read_source_refuses_too_many_pixels_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(big_png_header(8_000, 10_000))  # 80 Mpx claimed in 70 bytes: decoding would fail
    with pytest.raises(imaging.SourceError) as caught:
        imaging.read_source(path, **{**LIMITS, "max_pixels": 50_000_000})
    assert str(caught.value) == "the source has 8000×10000 pixels, over the limit of 50,000,000 (MAX_IMAGE_PIXELS)"


def test_read_source_refuses_what_even_pillow_refuses_to_open(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(big_png_header(30_000, 20_000))  # over twice Pillow's own guard: Image.open refuses
    with pytest.raises(imaging.SourceError, match=r"^the source has 600,000,000 pixels, over the limit of [\d,]+ "
                                                  r"\(MAX_IMAGE_PIXELS\)$"):
        imaging.read_source(path, **{**LIMITS, "max_pixels": 10**12})


def test_read_source_pixel_limit_comes_from_the_caller(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(make("PNG", (100, 100)))
    with pytest.raises(imaging.SourceError, match="100×100 pixels, over the limit of 5,000"):
        imaging.read_source(path, **{**LIMITS, "max_pixels": 5000})


@pytest.mark.parametrize("content, message", [
    (b"<html>nope</html>", r"the source is not a usable image: not an image \(an HTML page\)"),
    (PNG[: len(PNG) // 2], "the source is not a usable image: corrupt png data"),
])
def test_read_source_refuses_what_is_not_an_image(tmp_path, content, message):
    path = tmp_path / "a.png"
    path.write_bytes(content)
    with pytest.raises(imaging.SourceError, match=message):
        imaging.read_source(path, **LIMITS)


def test_read_source_names_what_cannot_be_read(tmp_path):
    with pytest.raises(imaging.SourceError, match="cannot read the source: No such file or directory"):
        imaging.read_source(tmp_path / "gone.png", **LIMITS)
    with pytest.raises(imaging.SourceError, match="cannot read the source: not a regular file"):
        imaging.read_source(tmp_path, **LIMITS)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(imaging.SourceError, match="not a regular file"):  # never blocks on the pipe
        imaging.read_source(fifo, **LIMITS)


# -- images written into datasets ------------------------------------------------------------------

def test_source_info_explains_what_is_wrong(tmp_path):
    with pytest.raises(imaging.InvalidImage, match="the source file is missing"):
        imaging.source_info(tmp_path / "gone.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(ValueError, match="the source file cannot be read"):
        imaging.source_info(tmp_path / "text.png")


def test_conform_pad_crop_resize_give_the_target_size():
    square = Image.new("RGB", (40, 40), (255, 255, 255))
    for mode in ("pad", "crop", "resize"):
        assert imaging.conform(square, mode, 64, 48).size == (64, 48)
    padded = imaging.conform(square, "pad", 64, 48)
    assert padded.getpixel((0, 24)) == (0, 0, 0) and padded.getpixel((32, 24)) == (255, 255, 255)  # black bars
    cropped = imaging.conform(square, "crop", 64, 48)
    assert cropped.getpixel((0, 0)) == (255, 255, 255)  # no bars: the picture fills the frame


def test_convert_conforms_and_encodes():
    data = imaging.convert(make("PNG", (40, 40)), "webp", ("pad", 64, 48))
    assert imaging.inspect(data).format == "webp" and decoded(data).size == (64, 48)


def test_convert_to_jpeg_flattens_alpha_on_black():
    data = imaging.convert(make("PNG", (8, 8), (255, 255, 255, 0), "RGBA"), "jpeg")
    assert imaging.sniff(data) == "jpeg" and close(decoded(data).getpixel((4, 4)), (0, 0, 0))


def test_convert_keeps_sixteen_bit_greys_grey():
    data = imaging.convert(make("PNG", (8, 8), 0x4000, "I;16"), "png")
    assert decoded(data).convert("L").getpixel((4, 4)) == pytest.approx(64, abs=3)


def test_convert_refuses_what_is_not_an_image():
    with pytest.raises(imaging.InvalidImage):
        imaging.convert(b"not an image", "png")
    with pytest.raises(imaging.InvalidImage) as cut:
        imaging.convert(PNG[: len(PNG) // 2], "png")
    said = cut.value.args[0]
    assert said.code == "sources.image_corrupt_any" and said.startswith("corrupt image data: ")  # framed, any language


# -- hostile files -------------------------------------------------------------------------------------

SECRET = "root:x:0:0:the-secret-line-of-a-private-file"


@pytest.mark.parametrize("content, kind", [
    (SECRET.encode() + b"\nmore\n", "text, 50 bytes"),
    (b"\x00\xffsecret-binary" + bytes(range(255, 55, -1)), "215 bytes of an unknown format"),
    (b"<html><body>" + SECRET.encode(), "an HTML page"),
])
def test_a_link_to_a_file_that_is_not_an_image_is_described_never_quoted(tmp_path, content, kind):
    private = tmp_path / "private" / "secret.txt"
    private.parent.mkdir()
    private.write_bytes(content)
    link = tmp_path / "passwd.png"
    link.symlink_to(private)
    with pytest.raises(imaging.SourceError) as refused:
        imaging.read_source(link, **LIMITS)
    assert str(refused.value) == f"the source is not a usable image: not an image ({kind})"
    for part in ("secret", "root:x", "\\x00"):
        assert part not in str(refused.value)


def test_pillow_errors_lose_the_bytes_they_quote():
    data = bytearray(PNG)
    data[37 + 38 + 4: 37 + 38 + 8] = b"XXXX"  # the IDAT chunk's checksum: Pillow quotes the chunk's name
    with pytest.raises(imaging.InvalidImage) as refused:
        imaging.inspect(bytes(data), decode=False)  # verify() checks each chunk
    assert str(refused.value) == "corrupt png data: broken PNG file (bad header checksum in …)"


def test_a_file_swapped_for_a_fifo_after_its_check_is_refused_without_blocking(tmp_path, monkeypatch):
    from console import userfiles

    regular = tmp_path / "a.png"
    regular.write_bytes(PNG)
    pipe = fifo(tmp_path / "b.png")
    real_stat = os.stat
    def swapped(path, **kw):  # the check sees a file …
        return real_stat(regular if str(path) == str(pipe) else path, **kw)

    monkeypatch.setattr(userfiles.os, "stat", swapped)
    with pytest.raises(imaging.SourceError, match=r"not a regular file \(a FIFO\)"):  # … the open a FIFO
        within(PROMPT_S, lambda: imaging.read_source(pipe, **LIMITS), pipe)


def test_source_info_never_blocks_on_a_fifo(tmp_path):
    pipe = fifo(tmp_path / "a.png")
    with pytest.raises(imaging.InvalidImage, match="is a FIFO, not a regular file"):
        within(PROMPT_S, lambda: imaging.source_info(pipe), pipe)
