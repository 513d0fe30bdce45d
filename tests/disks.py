"""Real faulty disks for tests: a small tmpfs that can be filled up, made read-only, or emptied again."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

FILLER = ".filler"


class SmallDisk:
    """A tmpfs of `size_mib` mounted at `path` (root only; unmounted by the fixture)."""

    def __init__(self, path: Path, size_mib: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._binds: list[Path] = []
        _mount("-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(path))

    def fill(self) -> int:
        """Write a filler file until the disk is full (again); return how many bytes it took."""
        written = 0
        with open(self.path / FILLER, "ab", buffering=0) as filler:
            for size in (1024 * 1024, 64 * 1024, 4096, 512, 1):
                try:
                    while True:
                        written += filler.write(b"\0" * size)
                except OSError:
                    continue
        return written

    def free(self) -> int:
        """Remove the filler; return the bytes free now."""
        (self.path / FILLER).unlink(missing_ok=True)
        return self.available()

    def available(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def read_only(self, on: bool = True) -> None:
        """Remount the disk read-only (or writable again)."""
        _mount("-o", f"remount,{'ro' if on else 'rw'}", str(self.path))

    def read_only_folder(self, folder: Path) -> None:
        """Make one folder on the disk read-only (a read-only bind mount over itself), the rest writable.

        A whole disk cannot be remounted read-only while a server holds its database open for
        writing (the kernel refuses); the cache folder read-only is what a run trips on.
        """
        _mount("--bind", "-o", "ro", str(folder), str(folder))
        self._binds.append(folder)

    def writable_again(self) -> None:
        """Undo `read_only_folder`."""
        while self._binds:
            subprocess.run(["umount", str(self._binds.pop())], check=True, capture_output=True)

    def unmount(self) -> None:
        for folder in self._binds:
            subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)
        subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def can_mount() -> bool:
    """True when this process may mount a tmpfs (root, and the sandbox allows it)."""
    return os.geteuid() == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs for a data folder that a test fills up, makes read-only or frees."""
    if not can_mount():
        pytest.skip("mounting a tmpfs needs root")
    disk = SmallDisk(tmp_path / "disk", 24)
    yield disk
    disk.unmount()
