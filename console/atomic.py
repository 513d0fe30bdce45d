"""Write files so that readers see either the old content or all of the new (temp + rename)."""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def write_bytes(target: Path, data: bytes, *, durable_folder: bool = False) -> None:
    """Write `data` to `target` atomically; the file is created with mode 0600 (mkstemp)."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
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
