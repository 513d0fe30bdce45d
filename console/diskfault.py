"""Tell a write the data folder could not take (disk full, read-only, folder gone) from a bug, and say it plainly.

A full disk is an expected condition for a tool that stores thousands of images: the engine
pauses the run and keeps the answers it has paid for, the web layer answers 507, the start-up
refuses with one line. Each of them asks `DataFolder.fault(exc)` whether a failure was the data
folder's, and shows the `StorageFault` it returns.

The folder keeps a small reserve file. When the disk fills up the reserve is given back, so the
few writes that record the pause (tasks stopped, their reasons) still fit; Resume takes it again,
and refuses while it cannot (the disk is still full).
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from contextlib import suppress
from pathlib import Path

from .messages import Message, say

FULL, READ_ONLY, GONE = "full", "read_only", "gone"
RESERVE_NAME = "disk-reserve"
RESERVE_BYTES = 2 * 1024 * 1024
ROOMY_BYTES = 1024**3  # a disk with this much free is not the one that is full
_ERRNO_KINDS = {errno.ENOSPC: FULL, errno.EDQUOT: FULL, errno.EROFS: READ_ONLY, errno.EACCES: READ_ONLY,
                errno.EPERM: READ_ONLY, errno.ENOENT: GONE, errno.ESTALE: GONE}
_SQLITE_KINDS = (("disk is full", FULL), ("readonly database", READ_ONLY), ("unable to open database", GONE),
                 ("disk i/o error", ""), ("no such table", GONE))


class StorageFault(Exception):
    """The data folder could not take a write: full, read-only, or removed while the console ran."""

    def __init__(self, kind: str, folder: Path, free: int | None = None, then: Message | None = None) -> None:
        self.kind, self.folder, self.free = kind, folder, free
        self.then = then if then is not None else say("engine.then_resume")
        super().__init__(self.describe())

    @property
    def details(self) -> dict[str, object]:
        """What an API answer carries beside the message: the kind of fault and the bytes free."""
        return {"storage": {"kind": self.kind, "folder": str(self.folder), "free_bytes": self.free}}

    def describe(self) -> Message:
        """Say what happened and what to do, naming the folder."""
        folder = str(self.folder)
        if self.kind == FULL:
            if self.free is not None:
                return say("engine.disk_full_free", folder=folder, free=human_bytes(self.free), then=self.then)
            return say("engine.disk_full", folder=folder, then=self.then)
        if self.kind == READ_ONLY:
            return say("engine.read_only", folder=folder, then=self.then)
        return say("engine.folder_gone", folder=folder)


class DataFolder:
    """The data folder as it was when the server started: its identity, free space and reserve."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._identity = _identity(self.path)
        self._reserve_given = False
        with suppress(StorageFault):  # a disk nearly full at the start: starting a run says so
            self.take_reserve()

    def check(self) -> None:
        """Raise StorageFault(GONE) if the folder was removed or replaced since the start.

        A write into a removed folder does not fail: SQLite goes on writing the deleted file and
        the cache recreates its folder, so results would vanish at the next start without a word.
        """
        if _identity(self.path) != self._identity:
            raise StorageFault(GONE, self.path)

    def fault(self, exc: BaseException) -> StorageFault | None:
        """Return the StorageFault behind `exc`, or None when it is not the data folder's doing."""
        if isinstance(exc, StorageFault):
            return exc
        kind = _kind(exc)
        if kind is None or not self._about_me(exc):
            return None
        if _identity(self.path) != self._identity:
            kind = GONE
        elif not kind:  # an I/O error: the folder's state says which
            kind = FULL if self.available() < RESERVE_BYTES else READ_ONLY if not os.access(self.path, os.W_OK) else None
            if kind is None:
                return None
        elif kind == GONE:  # a file inside went missing, the folder itself is fine: not a storage fault
            return None
        return StorageFault(kind, self.path, self.available() if kind == FULL else None)

    def _about_me(self, exc: BaseException) -> bool:
        """False when the error is another folder's: it names a file outside the data folder (a save's
        output), or it says "full" while the data folder's disk has plenty of room (an unnamed
        temporary file on another disk)."""
        named = getattr(exc, "filename", None)
        if not isinstance(named, str | bytes | os.PathLike):
            return _kind(exc) != FULL or (self.available() or 0) < ROOMY_BYTES
        try:
            return Path(os.fsdecode(named)).resolve().is_relative_to(self.path.resolve())
        except (OSError, ValueError):
            return True

    def available(self) -> int | None:
        """Bytes free on the folder's disk, not counting a reserve given back; None if it cannot be told."""
        try:
            free = shutil.disk_usage(self.path).free
        except OSError:
            return None
        return max(0, free - RESERVE_BYTES) if self._reserve_given else free

    def give_reserve(self) -> bool:
        """Free the reserve, so that recording a pause fits on a full disk; True if there was one."""
        try:
            (self.path / RESERVE_NAME).unlink()
        except OSError:
            return False
        self._reserve_given = True
        return True

    def take_reserve(self) -> None:
        """Set the reserve aside again (at the start and on resume); StorageFault when it does not fit."""
        target = self.path / RESERVE_NAME
        with suppress(OSError):
            if target.stat().st_size >= RESERVE_BYTES:
                self._reserve_given = False
                return
        try:
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                os.posix_fallocate(descriptor, 0, RESERVE_BYTES)
            finally:
                os.close(descriptor)
            self._reserve_given = False
        except OSError as exc:
            with suppress(OSError):
                target.unlink()
            fault = self.fault(exc)
            if fault is not None:
                raise fault from None
            raise



def check_at_start(folder: Path) -> None:
    """Create the data folder if needed and write a byte in it; StorageFault says why it cannot be used.

    Checked before anything else touches the folder, so a read-only or full disk is one line at
    the start instead of a traceback from whichever file came first (the log, the lock, the database).
    """
    probe = folder / f".probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.write(descriptor, b"\0")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        kind = _kind(exc)
        if not kind:
            raise
        free = shutil.disk_usage(folder).free if kind == FULL and folder.exists() else None
        raise StorageFault(kind, folder, free, then=say("engine.then_restart")) from None
    finally:
        with suppress(OSError):
            probe.unlink()


def out_of_room(exc: BaseException) -> bool:
    """True when `exc` says the disk is full or will not be written (a write that can be skipped then)."""
    return _kind(exc) in (FULL, READ_ONLY)


def human_bytes(count: int | None) -> str:
    """Say a byte count the way a person reads it (1.5 MB)."""
    value = float(count or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns first


def _kind(exc: BaseException) -> str | None:
    """FULL, READ_ONLY, GONE, "" (an I/O error: look at the folder), or None (not a storage error)."""
    if isinstance(exc, OSError):
        return _ERRNO_KINDS.get(exc.errno or 0, "" if exc.errno == errno.EIO else None)
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        text = str(exc).lower()
        return next((kind for needle, kind in _SQLITE_KINDS if needle in text), None)
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
