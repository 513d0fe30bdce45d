"""Find the source images in a folder (optionally its subfolders) or a single file, fast."""

from __future__ import annotations

import os
import re
import stat
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .messages import Message, say
from .typedpath import FORMS, typed_path

_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
IMAGE_EXTENSIONS: frozenset[str] = frozenset(_EXTENSIONS)  # compared lower-cased
_EXTENSION_LIST = ", ".join(ext[1:] for ext in _EXTENSIONS)
_DIGITS = re.compile(r"[0-9]+")
_Folder = tuple[str, str, tuple[int, int]]  # (path, path relative to root + "/", (st_dev, st_ino))
MAX_ENTRIES = 500_000  # entries a scan visits at most (SCAN_MAX_ENTRIES): a recursive scan of / stops
MAX_SECONDS = 60.0  # and the time it takes at most (a slow network drive)
CHECK_EVERY = 1024  # entries between looks at the clock and at `stop`
# Why an entry is skipped (made once: a scan may skip 100,000 of them).
NOT_UTF8 = say("sources.skip_not_utf8")
NOT_UTF8_FOLDER = say("sources.skip_not_utf8_folder")
NOT_IMAGE = say("sources.skip_not_image")
BROKEN_LINK = say("sources.skip_broken_link")
NOT_REGULAR = say("sources.skip_not_regular")
NOT_PERMITTED = say("sources.skip_permission")
UNREADABLE_FOLDER = say("sources.skip_unreadable_folder")
_limits = {"entries": MAX_ENTRIES}


class ScanError(ValueError):
    """A path that cannot be scanned; str(e) is a readable message for an HTTP 400."""


@dataclass(frozen=True)
class Cut:
    """Why a scan stopped before its end ("entries" or "time"), after visiting `visited` entries."""

    reason: str
    visited: int
    limit: float

    def stopped(self) -> Message:
        """Return where the scan stopped, naming the limit."""
        if self.reason == "entries":  # the setting's value as it is typed
            return say("sources.scan_stopped_entries", visited=self.visited, limit=str(int(self.limit)))
        return say("sources.scan_stopped_time", seconds=int(self.limit))

    def message(self) -> Message:
        """Return the note a preview shows."""
        return say("sources.scan_cut", stopped=self.stopped())


@dataclass(frozen=True)
class ScanResult:
    """The images found under `root`, and the files passed over with the reason."""

    root: Path
    files: list[Path]
    skipped: list[tuple[str, str]]
    names: list[str] = field(default_factory=list, compare=False)  # `files` relative to `root`, as text
    cut: Cut | None = field(default=None, compare=False)  # set when the scan stopped before its end

    def __post_init__(self) -> None:
        if len(self.names) != len(self.files):  # made by hand: derive them (the scan passes its own)
            object.__setattr__(self, "names", [str(path.relative_to(self.root)) for path in self.files])


def natural_key(text: str) -> tuple:
    """Return a sort key that orders "2.png" before "10.png", ignoring letter case."""
    # Numbers become "\x01" + a length mark + the digits without leading zeros, so one string
    # comparison (in C, fast for 100,000 names) orders them by value and before any other
    # character, as a list of text and int parts would. "/" becomes "\x00" so a path sorts
    # component by component ("a/x" before "a-b/x"). The raw text breaks ties ("A" vs "a").
    encoded = _DIGITS.sub(_encode_number, text.casefold()).replace("/", "\x00")
    return encoded, text


def _encode_number(match: re.Match[str]) -> str:
    digits = match.group().lstrip("0") or "0"
    return f"\x01{chr(0x20 + len(digits))}{digits}"


def configure(max_entries: int) -> None:
    """Set how many entries a scan visits at most (the SCAN_MAX_ENTRIES setting)."""
    _limits["entries"] = max(1, max_entries)


def scan(input_path: str, recursive: bool = False, stop: Callable[[], bool] | None = None) -> ScanResult:
    """List the images at `input_path` (a folder, or one image file), natural-sorted.

    A folder's scan visits at most SCAN_MAX_ENTRIES entries in MAX_SECONDS: past either it
    stops, keeping what it found, with `cut` saying so. `stop()` is asked now and then (the
    client went away): when true the scan is abandoned with a ScanError.
    """
    path = _checked_path(input_path)
    st = _stat(path)
    if stat.S_ISREG(st.st_mode):
        return _single_file(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ScanError(say("sources.not_file_or_folder", path=path))
    found = listing(path, recursive, stop, (st.st_dev, st.st_ino))
    if not found.files:
        raise ScanError(_no_images(path, len(found.skipped), found.cut))
    return found


def _no_images(path: str, skipped: int, cut: Cut | None) -> Message:
    """Return why a folder gives no images: the files skipped, and where the scan stopped."""
    if cut is None:
        return say("sources.no_images_skipped", path=path, count=skipped) if skipped else say("sources.no_images", path=path)
    if skipped:
        return say("sources.no_images_skipped_cut", path=path, count=skipped, stopped=cut.stopped())
    return say("sources.no_images_cut", path=path, stopped=cut.stopped())


def listing(path: str, recursive: bool, stop: Callable[[], bool] | None = None,
            root_id: tuple[int, int] | None = None) -> ScanResult:
    """List the images of the folder `path`, natural-sorted, even none; ScanError when it cannot be read."""
    if root_id is None:
        st = _stat(path)
        root_id = (st.st_dev, st.st_ino)
    budget = _Budget(_limits["entries"], MAX_SECONDS, stop)
    images, skipped = _walk(path, root_id, recursive, budget)
    images.sort(key=natural_key)
    skipped.sort(key=lambda item: natural_key(item[0]))
    root = Path(path)
    # `/`: half the cost of Path(a, b); the relative names are kept, as pathlib's relative_to is
    # slow (3 s for 100,000 paths: the scan preview's budget is 3 s in all).
    return ScanResult(root, [root / rel for rel in images], skipped, images, budget.cut)


def is_text(name: str) -> bool:
    """Return True when a name is valid text (a name that is not UTF-8 holds lone surrogates here)."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(name: str) -> str:
    """Return a name as text that can be stored and sent: bytes that are not UTF-8 written as \\xNN."""
    if is_text(name):
        return name
    try:
        raw = name.encode("utf-8", "surrogateescape")  # the bytes the file system holds
    except UnicodeEncodeError:  # a surrogate no file name decodes to (JSON can carry one)
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


class _Budget:
    """What a scan may still visit: entries, time, and whether anyone still waits for it."""

    def __init__(self, entries: int, seconds: float, stop: Callable[[], bool] | None) -> None:
        self.limit, self.seconds, self.stop = entries, seconds, stop
        self.visited = 0
        self.deadline = time.monotonic() + seconds
        self.cut: Cut | None = None

    def take(self) -> bool:
        """Count one entry; return False when the scan must stop before it."""
        self.visited += 1
        if self.visited > self.limit:
            self.cut = Cut("entries", self.limit, self.limit)
            return False
        if self.visited % CHECK_EVERY == 0:
            if self.stop is not None and self.stop():
                raise ScanError(say("sources.scan_cancelled"))
            if time.monotonic() > self.deadline:
                self.cut = Cut("time", self.visited, self.seconds)
                return False
        return True


def _checked_path(input_path: object) -> str:
    """Return the expanded path, or raise ScanError if it is empty, relative or malformed."""
    if not isinstance(input_path, str):
        raise ScanError(say("sources.path_not_string"))
    if not input_path.strip():
        raise ScanError(say("sources.path_empty"))
    if "\x00" in input_path:
        raise ScanError(say("sources.path_nul"))
    if not is_text(input_path):
        raise ScanError(say("sources.path_not_text", path=shown(input_path)))
    path = typed_path(input_path)
    if not os.path.isabs(path):
        raise ScanError(say("sources.path_not_absolute", path=input_path, forms=FORMS))
    return path


def _stat(path: str) -> os.stat_result:
    """Return the status of `path` (symlinks followed), or raise a readable ScanError."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            raise ScanError(say("sources.broken_symlink", path=path)) from None
        raise ScanError(say("sources.not_found", path=path)) from None
    except PermissionError:
        raise ScanError(say("sources.permission_denied", path=path)) from None
    except (OSError, ValueError) as exc:  # ValueError: a name the file system cannot encode
        raise ScanError(say("sources.cannot_read", path=path, reason=_reason(exc))) from None


def _single_file(path: str) -> ScanResult:
    if os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
        raise ScanError(say("sources.not_image_file", path=path, extensions=_EXTENSION_LIST))
    if not os.access(path, os.R_OK):
        raise ScanError(say("sources.permission_denied", path=path))
    file = Path(path)
    return ScanResult(file.parent, [file], [])


def _walk(root: str, root_id: tuple[int, int], recursive: bool,
          budget: _Budget) -> tuple[list[str], list[tuple[str, str]]]:
    """Return (image paths, skipped entries) relative to `root`, in no particular order."""
    images: list[str] = []
    skipped: list[tuple[str, str]] = []
    visited: set[tuple[int, int]] = set()
    # Real folders are walked before any symlinked one, so a folder reachable both ways is
    # listed under its real path, and which path wins never depends on scandir's order.
    real: deque[_Folder] = deque([(root, "", root_id)])
    linked: deque[_Folder] = deque()
    while (real or linked) and budget.cut is None:
        folder, prefix, key = real.popleft() if real else linked.popleft()
        if key in visited:  # a symlink loop, or a second way into the same folder
            continue
        visited.add(key)
        try:
            subfolders = _scan_folder(folder, prefix, images, skipped, budget)
        except OSError as exc:
            if not prefix:
                raise ScanError(say("sources.cannot_read", path=root, reason=_reason(exc))) from None
            skipped.append((prefix[:-1], UNREADABLE_FOLDER))
            continue
        if not recursive:
            break
        for entry in sorted(subfolders, key=lambda e: natural_key(e.name)):
            _queue_folder(entry, prefix, real, linked, skipped)
    return images, skipped


def _scan_folder(folder: str, prefix: str, images: list[str], skipped: list[tuple[str, str]],
                 budget: _Budget) -> list[os.DirEntry]:
    """Sort one folder's entries into `images` and `skipped`; return its subfolders."""
    subfolders: list[os.DirEntry] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not budget.take():
                break
            name = entry.name
            if name[0] == ".":  # hidden files and folders are not the user's images
                continue
            kind = _classify(entry)
            if kind is not None and kind != "folder":
                skipped.append((prefix + shown(name), kind))
            elif not is_text(name):  # it could never be stored, sent or shown as it is
                skipped.append((prefix + shown(name), NOT_UTF8 if kind is None else NOT_UTF8_FOLDER))
            elif kind is None:
                images.append(prefix + name)
            else:
                subfolders.append(entry)
    return subfolders


def _classify(entry: os.DirEntry) -> str | None:
    """Return None for a readable image, "folder", or the reason the entry is skipped."""
    # DirEntry answers is_dir/is_file from the directory listing itself, with no system call
    # except for symlinks; only os.access costs one per image (the spec's readability test).
    try:
        if entry.is_dir():
            return "folder"
        if os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
            return NOT_IMAGE
        if not entry.is_file():
            return BROKEN_LINK if _is_broken_link(entry) else NOT_REGULAR
        if not os.access(entry.path, os.R_OK):
            return NOT_PERMITTED
    except OSError as exc:  # e.g. a symlink loop (ELOOP) or a target we may not stat
        return say("sources.skip_unreadable", reason=_reason(exc))
    return None


def _is_broken_link(entry: os.DirEntry) -> bool:
    return entry.is_symlink() and not os.path.exists(entry.path)


def _queue_folder(entry: os.DirEntry, prefix: str, real: deque[_Folder], linked: deque[_Folder],
                  skipped: list[tuple[str, str]]) -> None:
    """Queue a subfolder with the identity of the real folder it leads to."""
    try:
        st = entry.stat()  # follows a symlink: loops are caught by the real folder's identity
    except OSError:
        skipped.append((prefix + entry.name, UNREADABLE_FOLDER))
        return
    queue = linked if entry.is_symlink() else real
    queue.append((entry.path, prefix + entry.name + "/", (st.st_dev, st.st_ino)))


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text[:1].lower() + text[1:]
