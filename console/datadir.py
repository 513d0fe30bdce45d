"""Open the data folder at start: owner-only modes, one server at a time, no partial files left by a crash.

The folder holds API keys (settings, presets, the database and its WAL, logs), so it is 0700 and
those files 0600; a looser one, left by an older version or a copy, is tightened with a warning.
A lock file keeps a second server off the same folder: it would mark the first one's running
tasks as interrupted and sweep its writes. Holding the lock, every temporary file of an atomic
write (`.tmp-…`) is a leftover of a killed process, and is removed.
"""

from __future__ import annotations

import logging
import os
import stat
from contextlib import suppress
from pathlib import Path

from . import uploads
from .atomic import TEMP_PREFIX

try:  # POSIX; elsewhere two servers on one folder are not prevented
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("console")

LOCK_NAME = "console.lock"
FOLDER_MODE = 0o700
FILE_MODE = 0o600
# Files that hold, or may hold, an API key or an upstream's answer (the log quotes answers).
SECRET_FILES = ("settings.json", "presets.json", "console.db", "console.db-wal", "console.db-shm", LOCK_NAME)
SECRET_GLOBS = ("settings.json.corrupt-*", "presets.json.corrupt-*", "logs/console.log*")
SECRET_FOLDERS = ("logs",)
WRITE_FOLDERS = ("", "cache", "thumbs")  # where atomic writes leave their temporary files


class DataDirBusy(Exception):
    """Another server holds the data folder."""


class DataDirLock:
    """The open lock file: held until the process ends (a kill releases it too)."""

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor

    def release(self) -> None:
        """Give the folder up (tests; a server simply exits)."""
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1


def prepare(folder: Path) -> DataDirLock:
    """Create or open the data folder for this server; raise DataDirBusy when another one holds it."""
    previous = os.umask(0o077)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        tighten(folder, FOLDER_MODE)
        lock = take_lock(folder)
    finally:
        os.umask(previous)
    for name in SECRET_FOLDERS:
        tighten(folder / name, FOLDER_MODE)
    for path in secret_files(folder):
        tighten(path, FILE_MODE)
    removed = sweep_partial_files(folder) + uploads.sweep(folder)
    if removed:
        log.info("removed %d partial file(s) a stopped or killed session left behind", removed)
    return lock


def secret_files(folder: Path) -> list[Path]:
    """Return the files in `folder` that may hold a key."""
    found = [folder / name for name in SECRET_FILES]
    for pattern in SECRET_GLOBS:
        found += sorted(folder.glob(pattern))
    return [path for path in found if path.is_file() and not path.is_symlink()]


def tighten(path: Path, mode: int) -> bool:
    """Take group and other permissions off `path` (never a symlink's target); return True if it was looser."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
        return False
    path.chmod(stat.S_IMODE(st.st_mode) & mode)
    log.warning("%s was readable by others (mode %o); now %o", path, stat.S_IMODE(st.st_mode), mode)
    return True


def take_lock(folder: Path) -> DataDirLock:
    """Lock the folder for this process (its pid written in the lock file); DataDirBusy names the holder."""
    path = folder / LOCK_NAME
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    if fcntl is None:
        return DataDirLock(descriptor)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(descriptor)
        raise DataDirBusy(f"another console (pid {holder}) is using the data folder {folder}; stop it, "
                          "or start this one with another --data-dir") from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
    return DataDirLock(descriptor)


def sweep_partial_files(folder: Path) -> int:
    """Remove the temporary files of atomic writes under `folder` (call only while holding the lock)."""
    removed = 0
    for name in WRITE_FOLDERS:
        top = folder / name
        if not top.is_dir():
            continue
        for root, _, files in os.walk(top) if name else [(str(top), [], os.listdir(top))]:
            for file in files:
                if file.startswith(TEMP_PREFIX):
                    with suppress(FileNotFoundError, IsADirectoryError):
                        os.unlink(os.path.join(root, file))
                        removed += 1
    return removed
