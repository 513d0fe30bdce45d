"""Test the content-addressed image cache with real images: storage, thumbnails, eviction."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

import console.cache as cache_module
from console.cache import ImageCache, ThumbnailError
from testkit.images import make

HOUR = 3600.0
NOW = float(int(time.time()))  # "now" for evict(): tests set mtimes around it instead of sleeping


@pytest.fixture
def cache(tmp_path) -> ImageCache:
    return ImageCache(tmp_path / "data", ttl_hours=24, max_bytes=10**9)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def age(path: Path, hours: float) -> None:
    """Set a file's mtime to `hours` before NOW."""
    stamp = NOW - hours * HOUR
    os.utime(path, (stamp, stamp))


def temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob(".tmp-*")]


def opened(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image


def nothing(_: str) -> bool:
    return False


def everything(_: str) -> bool:
    return True


# -- put and path --------------------------------------------------------------------------

def test_put_stores_once_by_content_hash(cache, tmp_path):
    data = make("PNG")
    digest = cache.put(data, "png")
    assert digest == sha(data)
    stored = tmp_path / "data" / "cache" / digest[:2] / f"{digest}.png"
    assert stored.read_bytes() == data
    inode = stored.stat().st_ino
    age(stored, 5)
    assert cache.put(data, "png") == digest
    assert stored.stat().st_ino == inode  # not rewritten
    assert stored.stat().st_mtime >= NOW - 1  # but touched, so it counts as recently used
    assert [p for p in (tmp_path / "data" / "cache").rglob("*") if p.is_file()] == [stored]


def test_put_trusts_a_given_hash_and_maps_formats_to_extensions(cache):
    data = make("JPEG")
    digest = sha(data)
    assert cache.put(data, "jpeg", digest) == digest
    assert cache.path(digest, "jpeg").name == f"{digest}.jpg"
    for fmt, extension in [("png", ".png"), ("webp", ".webp"), ("gif", ".gif"), ("bmp", ".bmp"),
                           ("tiff", ".tif")]:
        assert cache._image_path(digest, fmt).suffix == extension


def test_put_leaves_no_temp_files_even_when_the_write_fails(cache, tmp_path, monkeypatch):
    for color in range(5):
        cache.put(make("PNG", color=(color, 0, 0)), "png")
    assert temp_files(tmp_path) == []

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module.os, "replace", broken_replace)
    data = make("PNG", color=(9, 9, 9))
    with pytest.raises(OSError, match="No space"):
        cache.put(data, "png")
    assert temp_files(tmp_path) == []
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError):
        cache.path(sha(data), "png")


def test_put_refuses_a_bad_hash_or_format(cache):
    with pytest.raises(ValueError, match="not a SHA-256"):
        cache.put(b"x", "png", "../../etc/passwd")
    with pytest.raises(ValueError, match="unknown image format 'svg'"):
        cache.put(b"x", "svg")


def test_path_finds_stored_images_only(cache):
    data = make("PNG")
    digest = cache.put(data, "png")
    assert cache.path(digest, "png").read_bytes() == data
    assert cache.path(digest.upper(), "PNG") == cache.path(digest, "png")
    with pytest.raises(FileNotFoundError):
        cache.path(digest, "jpeg")
    with pytest.raises(FileNotFoundError):
        cache.path("0" * 64, "png")


@pytest.mark.parametrize("bad", ["", "0" * 63, "0" * 65, "g" * 64, "../" + "0" * 61, "0" * 64 + "\n",
                                 "0" * 32 + "/" + "0" * 31, None, 123])
def test_path_refuses_anything_but_a_hex_digest(cache, bad):
    with pytest.raises(ValueError, match="not a SHA-256"):
        cache.path(bad, "png")


def test_total_bytes(cache):
    first, second = make("PNG"), make("JPEG")
    cache.put(first, "png")
    cache.put(second, "jpeg")
    assert cache.total_bytes() == len(first) + len(second)


# -- thumbnails ----------------------------------------------------------------------------

def test_thumbnail_fits_the_box_and_keeps_the_aspect(cache):
    digest = cache.put(make("PNG", size=(400, 200)), "png")
    thumb = cache.thumbnail(digest, "png")
    image = opened(thumb)
    assert (image.format, image.size) == ("WEBP", (256, 128))
    assert opened(cache.thumbnail(digest, "png", 64)).size == (64, 32)


def test_thumbnail_never_enlarges(cache):
    digest = cache.put(make("PNG", size=(32, 24)), "png")
    assert opened(cache.thumbnail(digest, "png")).size == (32, 24)


def test_thumbnail_is_made_once(cache):
    digest = cache.put(make("JPEG", size=(600, 300)), "jpeg")
    thumb = cache.thumbnail(digest, "jpeg")
    before = thumb.stat()
    assert cache.thumbnail(digest, "jpeg") == thumb
    after = thumb.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_thumbnail_of_an_animation_is_its_first_frame(cache):
    frames = [Image.new("RGB", (300, 300), color) for color in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    digest = cache.put(buffer.getvalue(), "gif")
    image = opened(cache.thumbnail(digest, "gif"))
    red, green, blue = image.convert("RGB").getpixel((128, 128))
    assert image.size == (256, 256)
    assert red > 200 and green < 40 and blue < 40


def test_thumbnail_keeps_transparency(cache):
    rgba = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    rgba.paste((10, 200, 30, 255), (0, 0, 150, 200))
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    digest = cache.put(buffer.getvalue(), "png")
    image = opened(cache.thumbnail(digest, "png"))
    assert image.mode == "RGBA"
    assert image.getpixel((250, 80))[3] == 0
    assert image.getpixel((10, 80))[3] == 255


def test_thumbnail_of_a_transparent_palette_gif(cache):
    palette = Image.new("P", (100, 100), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.paste(1, (50, 0, 100, 100))
    buffer = io.BytesIO()
    palette.save(buffer, "GIF", transparency=1)
    image = opened(cache.thumbnail(cache.put(buffer.getvalue(), "gif"), "gif"))
    assert image.mode == "RGBA"
    assert image.getpixel((10, 50))[3] == 255 and image.getpixel((90, 50))[3] == 0


def test_thumbnail_follows_exif_orientation(cache):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": a phone photo taken upright
    buffer = io.BytesIO()
    Image.new("RGB", (400, 200), (90, 90, 90)).save(buffer, "JPEG", exif=exif)
    digest = cache.put(buffer.getvalue(), "jpeg")
    assert opened(cache.thumbnail(digest, "jpeg")).size == (128, 256)


def test_thumbnail_of_sixteen_bit_grey_is_not_white(cache):
    data = make("PNG", size=(64, 64), color=0x4000, mode="I;16")
    image = opened(cache.thumbnail(cache.put(data, "png"), "png"))
    assert image.convert("L").getpixel((5, 5)) == pytest.approx(64, abs=3)


def test_thumbnail_of_a_missing_image(cache):
    with pytest.raises(FileNotFoundError):
        cache.thumbnail("a" * 64, "png")


@pytest.mark.parametrize("size", [0, -5, 5000, 2.5, "256", True])
def test_thumbnail_size_is_checked(cache, size):
    digest = cache.put(make("PNG"), "png")
    with pytest.raises(ValueError, match="thumbnail size"):
        cache.thumbnail(digest, "png", size)


def test_concurrent_first_requests_make_one_sound_thumbnail(cache, tmp_path, monkeypatch):
    digest = cache.put(make("PNG", size=(800, 600)), "png")
    calls = []
    real_render = cache_module.render_thumbnail

    def slow_render(source, size):
        calls.append(size)
        time.sleep(0.05)  # widen the window in which the other requests arrive
        return real_render(source, size)

    monkeypatch.setattr(cache_module, "render_thumbnail", slow_render)
    start = threading.Barrier(8)
    paths = []

    def request():
        start.wait()
        paths.append(cache.thumbnail(digest, "png"))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 1 and len(paths) == 8
    assert calls == [256]
    assert opened(paths[0]).size == (256, 192)
    assert temp_files(tmp_path) == []


# -- source thumbnails ---------------------------------------------------------------------

def test_source_thumbnail_is_cached_and_the_source_untouched(cache, tmp_path):
    source = tmp_path / "photo.jpg"
    source.write_bytes(make("JPEG", size=(640, 480)))
    before = (source.read_bytes(), source.stat().st_mtime_ns)
    thumb = cache.source_thumbnail(source)
    assert thumb.parent.parent == tmp_path / "data" / "thumbs" / "src"
    assert opened(thumb).size == (256, 192)
    inode = thumb.stat().st_ino
    assert cache.source_thumbnail(source) == thumb
    assert thumb.stat().st_ino == inode
    assert (source.read_bytes(), source.stat().st_mtime_ns) == before
    assert opened(cache.source_thumbnail(source, 100)).size == (100, 75)


def test_source_thumbnail_changes_when_the_source_does(cache, tmp_path):
    source = tmp_path / "photo.png"
    source.write_bytes(make("PNG", size=(200, 100), color=(255, 0, 0)))
    first = cache.source_thumbnail(source)
    source.write_bytes(make("PNG", size=(100, 200), color=(0, 0, 255)))
    os.utime(source, ns=(source.stat().st_mtime_ns + 10**9,) * 2)
    second = cache.source_thumbnail(source)
    assert second != first
    assert opened(second).size == (100, 200)
    assert opened(second).convert("RGB").getpixel((50, 50))[2] > 200


def test_source_thumbnail_of_a_multi_picture_jpeg(cache, tmp_path):
    buffer = io.BytesIO()  # MPO: what many phones and cameras write, Pillow's "JPEG" plugin reads it
    frames = [Image.new("RGB", (300, 150), (200, 0, 0)), Image.new("RGB", (300, 150), (0, 0, 200))]
    frames[0].save(buffer, "MPO", save_all=True, append_images=frames[1:])
    source = tmp_path / "phone.jpg"
    source.write_bytes(buffer.getvalue())
    image = opened(cache.source_thumbnail(source))
    assert image.size == (256, 128)
    assert image.convert("RGB").getpixel((128, 64))[0] > 150


def test_source_thumbnail_is_keyed_by_the_real_path(cache, tmp_path):
    source = tmp_path / "real.png"
    source.write_bytes(make("PNG"))
    (tmp_path / "link.png").symlink_to(source)
    assert cache.source_thumbnail(tmp_path / "link.png") == cache.source_thumbnail(source)


def test_source_thumbnail_errors_are_readable(cache, tmp_path):
    with pytest.raises(FileNotFoundError):
        cache.source_thumbnail(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("just some text\n")
    with pytest.raises(ThumbnailError, match=r"notes.png is not an image \(png, jpeg"):
        cache.source_thumbnail(tmp_path / "notes.png")
    (tmp_path / "cut.png").write_bytes(make("PNG", size=(200, 200))[:300])
    with pytest.raises(ThumbnailError, match="cut.png is not a decodable image"):
        cache.source_thumbnail(tmp_path / "cut.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ThumbnailError, match="folder.png is not a file"):
        cache.source_thumbnail(tmp_path / "folder.png")
    assert issubclass(ThumbnailError, ValueError)


def test_source_thumbnail_refuses_formats_that_run_programs(cache, tmp_path):
    eps = tmp_path / "drawing.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ThumbnailError, match="is not an image"):
        cache.source_thumbnail(eps)


def test_decompression_bomb_guard_stays_on(cache, tmp_path, monkeypatch):
    source = tmp_path / "big.png"
    source.write_bytes(make("PNG", size=(64, 64)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels > 2 × the limit
    with pytest.raises(ThumbnailError, match="decompression bomb"):
        cache.source_thumbnail(source)


# -- pins and release ----------------------------------------------------------------------

def test_release_deletes_an_unused_image_and_its_thumbnails(cache):
    digest = cache.put(make("PNG", size=(300, 300)), "png")
    thumbs = [cache.thumbnail(digest, "png"), cache.thumbnail(digest, "png", 64)]
    assert cache.release(digest, "png", everything) is False
    assert cache.path(digest, "png").exists()
    assert cache.release(digest, "png", nothing) is True
    with pytest.raises(FileNotFoundError):
        cache.path(digest, "png")
    assert not any(thumb.exists() for thumb in thumbs)
    assert cache.release(digest, "png", nothing) is False


def test_pins_are_counted(cache):
    digest = cache.put(make("PNG"), "png")
    with cache.pinned(digest):
        with cache.pinned(digest.upper()):
            assert cache.release(digest, "png", nothing) is False
        assert cache.release(digest, "png", nothing) is False
    assert cache._pins == {}
    assert cache.release(digest, "png", nothing) is True


def test_pin_is_released_when_the_block_fails(cache):
    digest = cache.put(make("PNG"), "png")
    with pytest.raises(RuntimeError):
        with cache.pinned(digest):
            raise RuntimeError("write failed")
    assert cache.release(digest, "png", nothing) is True


# -- eviction ------------------------------------------------------------------------------

def stored(cache: ImageCache, color: int, hours_old: float, size: tuple[int, int] = (32, 24)) -> str:
    """Put a distinct PNG and make it `hours_old` hours old; return its hash."""
    digest = cache.put(make("PNG", size=size, color=(color, 0, 0)), "png")
    age(cache.path(digest, "png"), hours_old)
    return digest


def test_evict_by_ttl_spares_referenced_pinned_and_recent_images(cache):
    old, kept, pinned, recent = (stored(cache, n, hours) for n, hours in [(1, 30), (2, 30), (3, 30), (4, 1)])
    thumb = cache.thumbnail(old, "png")
    age(thumb, 0)  # a fresh thumbnail: it goes because its image goes, not because of its age
    expected_bytes = cache.path(old, "png").stat().st_size + thumb.stat().st_size
    with cache.pinned(pinned):
        removed = cache.evict(lambda digest: digest == kept, now=NOW)
    assert removed == (2, expected_bytes)
    assert not thumb.exists()
    with pytest.raises(FileNotFoundError):
        cache.path(old, "png")
    for digest in (kept, pinned, recent):
        assert cache.path(digest, "png").exists()


def test_evict_by_cap_removes_the_oldest_unused_first(tmp_path):
    cache = ImageCache(tmp_path / "data", ttl_hours=1000, max_bytes=10**9)
    hashes = [stored(cache, n, hours, size=(64, 64)) for n, hours in [(1, 5), (2, 4), (3, 3), (4, 2), (5, 1)]]
    sizes = [cache.path(digest, "png").stat().st_size for digest in hashes]
    cache.max_bytes = sum(sizes) - sizes[1] - 1  # two must go; the oldest is referenced
    removed = cache.evict(lambda digest: digest == hashes[0], now=NOW)
    assert removed == (2, sizes[1] + sizes[2])
    left = [digest for digest in hashes if cache._image_path(digest, "png").exists()]
    assert left == [hashes[0], hashes[3], hashes[4]]
    assert cache.total_bytes() <= cache.max_bytes


def test_evict_never_removes_used_images_even_over_the_cap(tmp_path):
    cache = ImageCache(tmp_path / "data", ttl_hours=1, max_bytes=1)
    used = stored(cache, 1, 50)
    pinned = stored(cache, 2, 50)
    with cache.pinned(pinned):
        assert cache.evict(lambda digest: digest == used, now=NOW) == (0, 0)
    assert cache.total_bytes() > cache.max_bytes
    assert cache.path(used, "png").exists() and cache.path(pinned, "png").exists()


def test_evict_spares_an_image_touched_after_its_scan(cache, monkeypatch):
    digest = stored(cache, 1, 48)
    real_scan = cache._scan_images

    def scan_then_put_again(now, freed):
        found = real_scan(now, freed)
        cache.put(make("PNG", color=(1, 0, 0)), "png")  # a result with the same bytes arrives
        return found

    monkeypatch.setattr(cache, "_scan_images", scan_then_put_again)
    assert cache.evict(nothing, now=NOW) == (0, 0)
    assert cache.path(digest, "png").exists()


def test_evict_removes_stale_temp_files_orphan_and_old_source_thumbnails(cache, tmp_path):
    data_dir = tmp_path / "data"
    keep = stored(cache, 1, 0)
    shard = data_dir / "cache" / keep[:2]
    stale_temp, fresh_temp = shard / ".tmp-stale", shard / ".tmp-fresh"
    thumb_temp = data_dir / "thumbs" / "ab" / ".tmp-crashed"
    thumb_temp.parent.mkdir(parents=True)
    for path, hours in [(stale_temp, 2), (fresh_temp, 0.5), (thumb_temp, 2)]:
        path.write_bytes(b"12345")
        age(path, hours)
    orphan = data_dir / "thumbs" / "ab" / f"{'ab' * 32}-256.webp"  # its image is gone
    orphan.write_bytes(b"123")
    age(orphan, 2)
    source = tmp_path / "photo.png"
    source.write_bytes(make("PNG"))
    old_src = cache.source_thumbnail(source)
    new_src = cache.source_thumbnail(source, 64)
    age(old_src, 25)
    age(new_src, 1)
    kept_thumb = cache.thumbnail(keep, "png")
    age(kept_thumb, 30)  # old, but its image is still here
    old_src_bytes = old_src.stat().st_size
    assert cache.evict(nothing, now=NOW) == (4, 5 + 5 + 3 + old_src_bytes)
    assert not any(path.exists() for path in (stale_temp, thumb_temp, orphan, old_src))
    assert all(path.exists() for path in (fresh_temp, new_src, kept_thumb, cache.path(keep, "png")))


def test_evict_on_an_empty_cache(tmp_path):
    assert ImageCache(tmp_path / "data").evict(nothing) == (0, 0)


def test_pinned_writes_survive_concurrent_eviction(tmp_path):
    cache = ImageCache(tmp_path / "data", ttl_hours=1e-9, max_bytes=1)  # everything may go at once
    stop = threading.Event()
    failures = []

    def writer(offset: int) -> None:
        try:
            for n in range(40):
                data = make("PNG", color=(offset, n, 0))
                digest = sha(data)
                with cache.pinned(digest):
                    cache.put(data, "png", digest)
                    cache.path(digest, "png")  # still here: the store row would be added now
                    cache.thumbnail(digest, "png", 16)
        except Exception as exc:  # a thread's exception would otherwise only be a warning
            failures.append(exc)

    def evictor() -> None:
        while not stop.is_set():
            cache.evict(nothing)

    sweeper = threading.Thread(target=evictor)
    sweeper.start()
    writers = [threading.Thread(target=writer, args=(offset,)) for offset in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    sweeper.join()
    assert failures == []
    cache.evict(nothing)  # nothing is pinned any more: all of it goes, thumbnails included
    assert cache.total_bytes() == 0
    assert [path for path in (tmp_path / "data").rglob("*") if path.is_file()] == []
