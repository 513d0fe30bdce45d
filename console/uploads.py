"""Keep folders handed over through the page: safe relative paths, one new folder per upload, removed with its last run.

An upload is written into `<data>/uploads/.tmp-<id>/` and renamed to `<data>/uploads/<id>/` only
when every file is in, so a failed or killed upload never leaves a folder a run could use; the
start-up sweep removes the temporary folders a killed server left.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
import unicodedata
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from .atomic import TEMP_PREFIX
from .messages import Message, say
from .scan import IMAGE_EXTENSIONS

FOLDER_NAME = "uploads"
TEXT_EXTENSIONS = frozenset({".txt"})  # sidecar captions next to their images
MAX_TEXT_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_PART_BYTES = 255  # of one path component, in UTF-8: what file systems take
FOLDER_MODE, FILE_MODE = 0o700, 0o600
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


class UploadRefused(Exception):
    """The upload as a whole cannot be kept (nothing usable in it)."""


def uploads_root(data_folder: Path) -> Path:
    """Return the folder that holds every upload."""
    return Path(data_folder) / FOLDER_NAME


def clean_relative(name: str) -> str | None:
    """Return `name` as a safe relative POSIX path inside the upload, or None when it must be refused.

    Separators are normalised ("\\" to "/"), a leading "/" or drive ("C:") is dropped and "." parts
    go; a ".." part, a hidden part (".DS_Store", ".git/"), a control character or an over-long part
    refuses the file rather than guessing where it was meant to go.
    """
    text = unicodedata.normalize("NFC", name).replace("\\", "/")
    if len(text) > 1 and text[1] == ":" and text[0].isalpha():
        text = text[2:]
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if not parts or len(parts) > MAX_DEPTH:
        return None
    for part in parts:
        if part.startswith(".") or not part.strip():
            return None
        if any(ord(char) < 32 or ord(char) == 127 for char in part) or len(part.encode()) > MAX_PART_BYTES:
            return None
    return str(PurePosixPath(*parts))


def refusal(name: str, limit: int) -> tuple[str | None, Message | str, int]:
    """Return (safe path or None, reason when refused, size limit) for one file of an upload."""
    path = clean_relative(name)
    if path is None:
        return None, say("sources.upload_unsafe_path"), 0
    extension = os.path.splitext(path)[1].lower()
    if extension in IMAGE_EXTENSIONS:
        return path, "", limit
    if extension in TEXT_EXTENSIONS:
        return path, "", MAX_TEXT_BYTES
    return None, say("sources.upload_not_image"), 0


@dataclass
class Upload:
    """One upload being written: files go into a temporary folder that `finish` makes visible."""

    root: Path
    name: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4))
    written: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"name", "reason"}: messages where words

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        self.temp = self.root / (TEMP_PREFIX + self.name)
        self.temp.mkdir(mode=FOLDER_MODE)
        self._seen: set[str] = set()

    def open(self, relative: str) -> BinaryIO | None:
        """Create the file `relative` (already cleaned) for writing; None when the upload already has it."""
        key = relative.casefold()  # two names that differ only in case collide on some disks
        if key in self._seen:
            self.skip(relative, say("sources.upload_twice"))
            return None
        self._seen.add(key)
        target = self.temp / relative
        for parent in reversed(target.relative_to(self.temp).parents[:-1]):
            (self.temp / parent).mkdir(mode=FOLDER_MODE, exist_ok=True)
        return os.fdopen(os.open(target, _CREATE, FILE_MODE), "wb")

    def drop(self, relative: str, reason: str) -> None:
        """Remove a file `open` created that turned out to be refused."""
        with suppress(FileNotFoundError):
            (self.temp / relative).unlink()
        self.skip(relative, reason)

    def skip(self, name: str, reason: str) -> None:
        """Record a file left out, with why."""
        self.skipped.append({"name": name, "reason": reason})

    def finish(self) -> Path:
        """Make the upload visible under its final name; return the folder a run should use."""
        images = [path for path in self.written if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS]
        if not images:
            raise UploadRefused(say("sources.upload_no_images",
                                    extensions=", ".join(sorted(ext[1:] for ext in IMAGE_EXTENSIONS))))
        final = self.root / self.name
        os.replace(self.temp, final)
        tops = {PurePosixPath(path).parts[0] for path in self.written}
        only = next(iter(tops))
        # A dropped folder arrives as "photos/…": the run uses that folder, named as the user knows it.
        if len(tops) == 1 and (final / only).is_dir():
            return final / only
        return final

    def abandon(self) -> None:
        """Remove everything written so far (a failed or refused upload leaves nothing)."""
        shutil.rmtree(self.temp, ignore_errors=True)


def has_subfolders(folder: Path) -> bool:
    """Return True when `folder` holds folders (the run must then scan recursively)."""
    return any(entry.is_dir() for entry in folder.iterdir())


def owning_upload(data_folder: Path, input_path: str) -> Path | None:
    """Return the upload folder that `input_path` lies in, or None when it is not an upload."""
    root = uploads_root(data_folder).resolve()
    try:
        relative = Path(input_path).resolve().relative_to(root)
    except (ValueError, OSError):
        return None
    if not relative.parts or relative.parts[0].startswith(TEMP_PREFIX):
        return None
    return root / relative.parts[0]


class RunPaths(Protocol):
    """What `remove_if_unused` reads of the store: every run's input path."""

    def input_paths(self) -> list[str]: ...


def remove_if_unused(data_folder: Path, input_path: str, runs: RunPaths) -> bool:
    """Remove the upload holding `input_path` when no run left uses it; True if removed."""
    folder = owning_upload(data_folder, input_path)
    if folder is None:
        return False
    if any(owning_upload(data_folder, path) == folder for path in runs.input_paths()):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def remove_forgotten(data_folder: Path, runs: RunPaths, older_than_s: float, keep: Path | None = None) -> int:
    """Remove uploads no run uses that were made more than `older_than_s` ago (never `keep`); return how many."""
    root = uploads_root(data_folder)
    if not root.is_dir():
        return 0
    used = {owning_upload(data_folder, path) for path in runs.input_paths()}
    cutoff = time.time() - older_than_s
    removed = 0
    for entry in root.iterdir():
        if entry.name.startswith(TEMP_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        if entry.resolve() in used or entry == keep or entry.stat().st_mtime > cutoff:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


def sweep(data_folder: Path) -> int:
    """Remove the temporary folders of uploads a stopped server left (call only holding the lock)."""
    root = uploads_root(data_folder)
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        if entry.name.startswith(TEMP_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
