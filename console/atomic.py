"""Write files so that readers see either the old content or all of the new (temp + rename)."""

from __future__ import annotations

import os
import threading
from contextlib import suppress
from pathlib import Path

TEMP_PREFIX = ".tmp-"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


def write_bytes(target: Path, data: bytes, *, durable_folder: bool = False) -> None:
    """Write `data` to `target` atomically; the file is created with mode 0600, its folder (if new) 0700."""
    fd, temp = _create_temp(target.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable_folder:
        fsync_folder(target.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every platform allows it)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _create_temp(folder: Path) -> tuple[int, Path]:
    """Create this thread's temp file in `folder` (a thread writes one file at a time, so the name
    is its own: no random names, no folder check on every write, both of which the bench timed).

    A file of that name left by a crashed process that had the same pid and thread id is replaced.
    """
    temp = folder / f"{TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}"
    for _ in range(2):
        try:
            return os.open(temp, _CREATE, 0o600), temp
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:
            temp.unlink(missing_ok=True)
    return os.open(temp, _CREATE, 0o600), temp
