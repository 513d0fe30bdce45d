"""Store images once by content hash, make their thumbnails, and evict what nothing uses."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image, UnidentifiedImageError

from . import atomic
from .diskfault import out_of_room
from .imaging import EXTENSION, FORMATS, OPEN_FORMATS, InvalidImage, orientation, upright
from .messages import say

_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMAGE_SUFFIXES = frozenset(EXTENSION.values())
_TEMP_PREFIX = atomic.TEMP_PREFIX
_TEMP_MAX_AGE_S = 3600  # a temp file this old was left by a crashed write
_THUMB_SUFFIX = ".webp"
_THUMB_QUALITY = 80
_THUMB_MAX_SIZE = 4096
_LOCK_STRIPES = 64

Referenced = Callable[[str], bool]


class ThumbnailError(InvalidImage):
    """A file that cannot be decoded into a thumbnail; str(e) is a readable message."""


class DamagedImage(ValueError):
    """A cached image whose bytes no longer match its hash (cut short or changed on disk)."""


def verify(data: bytes, sha256: str, name: str) -> None:
    """Raise DamagedImage unless `data` hashes to `sha256`; `name` is the file the message names."""
    if hashlib.sha256(data).hexdigest() != sha256.lower():
        raise DamagedImage(say("engine.damaged_in_cache", name=name, size=len(data)))


@dataclass(frozen=True, slots=True)
class _Cached:
    """One image file in the cache as seen by an eviction scan."""

    sha256: str
    path: str
    size: int
    mtime_ns: int


class ImageCache:
    """Content-addressed image files under data_dir/cache and their thumbnails under data_dir/thumbs."""

    def __init__(self, data_dir: Path, ttl_hours: float = 168, max_bytes: int = 2 * 1024**3) -> None:
        self.images_dir = Path(data_dir) / "cache"
        self.thumbs_dir = Path(data_dir) / "thumbs"
        self.ttl_s = ttl_hours * 3600
        self.max_bytes = max_bytes
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        # One lock guards the pin counts and every keep-or-delete decision, so a pin, a put's
        # touch and a delete never interleave: a file being written is never evicted.
        self._lock = threading.Lock()
        self._pins: dict[str, int] = {}
        # Thumbnail writers lock one of a fixed set of stripes, so memory stays bounded.
        self._stripes = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    # -- images ---------------------------------------------------------------------------------

    def put(self, data: bytes, fmt: str, sha256: str | None = None) -> str:
        """Store `data` once under its SHA-256 (trusted when given) and return the hash."""
        sha = _checked_sha(sha256) if sha256 is not None else hashlib.sha256(data).hexdigest()
        target = self._image_path(sha, fmt)
        with self._lock:
            try:
                os.utime(target)  # already stored: mark it recently used instead of rewriting
                return sha
            except FileNotFoundError:
                pass
        atomic.write_bytes(target, data)
        return sha

    def path(self, sha256: str, fmt: str) -> Path:
        """Return the file of a cached image, or raise FileNotFoundError."""
        target = self._image_path(_checked_sha(sha256), fmt)
        if not target.is_file():
            raise FileNotFoundError(f"image {sha256} is not in the cache")
        return target

    def read_checked(self, sha256: str, fmt: str) -> bytes:
        """Return a cached image's bytes once they match their hash; raise FileNotFoundError or DamagedImage."""
        path = self.path(sha256, fmt)
        data = path.read_bytes()
        verify(data, sha256, path.name)
        return data

    def total_bytes(self) -> int:
        """Return the size of everything under cache/ (what the cap is compared with)."""
        return sum(st.st_size for _, st in _shard_files(self.images_dir))

    # -- thumbnails -----------------------------------------------------------------------------

    def thumbnail(self, sha256: str, fmt: str, size: int = 256) -> Path:
        """Return a thumbnail of a cached image fitting size×size, making it on first request."""
        sha, size = _checked_sha(sha256), _checked_size(size)
        target = self.thumbs_dir / sha[:2] / f"{sha}-{size}{_THUMB_SUFFIX}"
        if target.exists():
            return target
        return self._make_thumbnail(self.path(sha, fmt), target, size)

    def source_thumbnail(self, source: Path, size: int = 256) -> Path:
        """Return a thumbnail of a user's source file, remade whenever the file changes."""
        size = _checked_size(size)
        resolved, key = _source_identity(Path(source), size)
        target = self.thumbs_dir / "src" / key[:2] / f"{key}{_THUMB_SUFFIX}"
        if target.exists():
            return target
        return self._make_thumbnail(resolved, target, size)

    def _make_thumbnail(self, image: Path, target: Path, size: int) -> Path:
        with self._stripes[hash(target.name) % _LOCK_STRIPES]:
            if not target.exists():  # another request may have made it while we waited
                try:
                    atomic.write_bytes(target, render_thumbnail(image, size))
                except OSError as exc:
                    if not out_of_room(exc):
                        raise
                    return image  # a full or read-only disk: the image itself stands in for its thumbnail
        return target

    # -- pins, release and eviction -------------------------------------------------------------

    @contextmanager
    def pinned(self, sha256: str) -> Iterator[None]:
        """Keep eviction and release away from `sha256` while inside (counted, re-entrant)."""
        sha = _checked_sha(sha256)
        with self._lock:
            self._pins[sha] = self._pins.get(sha, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._pins[sha] - 1
                if left:
                    self._pins[sha] = left
                else:
                    del self._pins[sha]

    def release(self, sha256: str, fmt: str, referenced: Referenced) -> bool:
        """Delete an image and its thumbnails now unless it is referenced or pinned."""
        sha = _checked_sha(sha256)
        target = self._image_path(sha, fmt)
        with self._lock:  # `referenced` runs under the lock: it must not call back into the cache
            if self._pins.get(sha) or referenced(sha):
                return False
            deleted = _unlink(target) is not None
        self._remove_thumbnails(sha, [])
        return deleted

    def evict(self, referenced: Referenced, now: float | None = None) -> tuple[int, int]:
        """Remove expired, then oldest, unused images; return (files removed, bytes freed).

        The counts include thumbnails and stale temp files. Referenced or pinned images stay
        even when the cap is still exceeded.
        """
        now = time.time() if now is None else now
        freed: list[int] = []
        images, other_bytes = self._scan_images(now, freed)
        expired_ns = (now - self.ttl_s) * 1e9
        kept: list[_Cached] = []
        for item in images:
            if not (item.mtime_ns < expired_ns and self._evict_one(item, referenced, freed)):
                kept.append(item)
        total = other_bytes + sum(item.size for item in kept)
        for item in sorted(kept, key=lambda item: item.mtime_ns):
            if total <= self.max_bytes:
                break
            if self._evict_one(item, referenced, freed):
                total -= item.size
        self._sweep_thumbnails(now, freed)
        return len(freed), sum(freed)

    def _evict_one(self, item: _Cached, referenced: Referenced, freed: list[int]) -> bool:
        with self._lock:
            if self._pins.get(item.sha256):
                return False
            try:
                if os.stat(item.path).st_mtime_ns != item.mtime_ns:
                    return False  # put() touched it since the scan: it is in use again
            except FileNotFoundError:
                return False
            if referenced(item.sha256):
                return False
            size = _unlink(item.path)
        if size is None:
            return False
        freed.append(size)
        self._remove_thumbnails(item.sha256, freed)
        return True

    def _scan_images(self, now: float, freed: list[int]) -> tuple[list[_Cached], int]:
        """List the cached images, removing stale temp files; return them and the other bytes."""
        images: list[_Cached] = []
        other_bytes = 0
        for entry, st in _shard_files(self.images_dir):
            name = entry.name
            if _is_stale_temp(name, st, now) and _unlink_into(entry.path, freed):
                continue
            if _SHA256.fullmatch(name[:64]) and name[64:] in _IMAGE_SUFFIXES:
                images.append(_Cached(name[:64], entry.path, st.st_size, st.st_mtime_ns))
            else:
                other_bytes += st.st_size  # a write in progress, or a file we did not make
        return images, other_bytes

    def _sweep_thumbnails(self, now: float, freed: list[int]) -> None:
        """Remove stale temp files, thumbnails left without their image, and old source thumbnails."""
        present = {entry.name[:64] for entry, _ in _shard_files(self.images_dir)}
        for entry, st in _shard_files(self.thumbs_dir):
            name = entry.name
            orphan = name[:64] not in present and st.st_mtime < now - _TEMP_MAX_AGE_S
            if _is_stale_temp(name, st, now) or (orphan and not name.startswith(_TEMP_PREFIX)):
                _unlink_into(entry.path, freed)
        for entry, st in _shard_files(self.thumbs_dir / "src"):
            if _is_stale_temp(entry.name, st, now) or st.st_mtime < now - self.ttl_s:
                _unlink_into(entry.path, freed)

    def _remove_thumbnails(self, sha: str, freed: list[int]) -> None:
        with suppress(FileNotFoundError), os.scandir(self.thumbs_dir / sha[:2]) as entries:
            for entry in entries:
                if entry.name.startswith(f"{sha}-"):
                    _unlink_into(entry.path, freed)

    def _image_path(self, sha: str, fmt: str) -> Path:
        extension = EXTENSION.get(fmt.lower()) if isinstance(fmt, str) else None
        if extension is None:
            raise ValueError(f"unknown image format {fmt!r} (one of {', '.join(EXTENSION)})")
        return self.images_dir / sha[:2] / f"{sha}{extension}"


def render_thumbnail(source: Path, size: int) -> bytes:
    """Return WEBP bytes of the first frame of `source`, upright and fitting size×size."""
    try:
        with Image.open(source, formats=OPEN_FORMATS) as image:  # no EPS & co.: they run programs
            turn = orientation(image)  # read from the file: the shrunk copy may not carry it
            thumb = _shrunk(image, size)  # Image.open starts on the first frame of an animation
    except FileNotFoundError:
        raise
    except PermissionError:
        raise ThumbnailError(f"{source.name} cannot be read: permission denied") from None
    except UnidentifiedImageError:
        raise ThumbnailError(f"{source.name} is not an image ({', '.join(dict.fromkeys(FORMATS.values()))})") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ThumbnailError(f"{source.name} is not a decodable image: {exc}") from None
    thumb = upright(thumb, turn)  # turned after shrinking: cheaper, and JPEG keeps its draft decode
    buffer = io.BytesIO()
    thumb.save(buffer, "WEBP", quality=_THUMB_QUALITY)
    return buffer.getvalue()


def _shrunk(image: Image.Image, size: int) -> Image.Image:
    """Return `image` as RGB or RGBA, shrunk (never enlarged) to fit size×size."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B"):  # 16-bit greys would clip to white
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    elif image.mode not in ("RGB", "RGBA", "L", "LA"):  # palette, CMYK, 1-bit...: resize needs these
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    # thumbnail() lets JPEG decode at a reduced scale first (draft), which makes big photos cheap.
    image.thumbnail((size, size))
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _checked_sha(sha256: object) -> str:
    """Return the hash in lower case if it is 64 hex digits (nothing else may reach a path)."""
    sha = sha256.lower() if isinstance(sha256, str) else ""
    if not _SHA256.fullmatch(sha):
        raise ValueError(f"not a SHA-256 hex digest: {str(sha256)[:80]!r}")
    return sha


def _source_identity(source: Path, size: int) -> tuple[Path, str]:
    """Return the real path of a source and a key that changes whenever the file does."""
    try:
        st = os.stat(source)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{source} does not exist") from None
    except OSError as exc:
        raise ThumbnailError(f"{source.name} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):  # a folder, or a FIFO that would block the reader
        raise ThumbnailError(f"{source.name} is not a file")
    resolved = source.resolve()
    identity = f"{resolved}\0{size}\0{st.st_mtime_ns}\0{st.st_size}"
    return resolved, hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()


def _checked_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= _THUMB_MAX_SIZE:
        raise ValueError(f"thumbnail size must be an integer from 1 to {_THUMB_MAX_SIZE}")
    return size


def _shard_files(folder: Path) -> Iterator[tuple[os.DirEntry, os.stat_result]]:
    """Yield (entry, status) of the files in the two-hex-digit shard folders of `folder`."""
    with suppress(FileNotFoundError), os.scandir(folder) as shards:
        for shard in shards:
            if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                continue
            with suppress(FileNotFoundError), os.scandir(shard.path) as entries:
                for entry in entries:
                    with suppress(FileNotFoundError):  # removed while we were looking
                        if entry.is_file(follow_symlinks=False):
                            yield entry, entry.stat(follow_symlinks=False)


def _is_stale_temp(name: str, st: os.stat_result, now: float) -> bool:
    return name.startswith(_TEMP_PREFIX) and st.st_mtime < now - _TEMP_MAX_AGE_S


def _unlink(path: str | Path) -> int | None:
    """Delete a file and return its size, or None if it was already gone or cannot be deleted."""
    try:
        size = os.stat(path).st_size
        os.unlink(path)
    except OSError:  # gone already, or not ours to delete: eviction carries on regardless
        return None
    return size


def _unlink_into(path: str, freed: list[int]) -> bool:
    size = _unlink(path)
    if size is not None:
        freed.append(size)
    return size is not None
