"""Atomic writes: whole files or none, owner-only, one temp file per thread, crash leftovers replaced."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from console import atomic


def _folder(tmp_path):
    """A folder of its own (the test's temp dir holds the isolated home too)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_a_write_lands_whole_with_owner_only_modes_and_no_temp_left(tmp_path):
    target = tmp_path / "new" / "deeper" / "a.bin"
    atomic.write_bytes(target, b"x" * 100_000)
    assert target.read_bytes() == b"x" * 100_000
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert sorted(os.listdir(target.parent)) == ["a.bin"]


def test_a_temp_file_a_crashed_process_left_under_this_threads_name_is_replaced(tmp_path):
    tmp_path = _folder(tmp_path)
    leftover = tmp_path / f"{atomic.TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}"
    leftover.write_bytes(b"half of an old write")
    atomic.write_bytes(tmp_path / "a.bin", b"new")
    assert (tmp_path / "a.bin").read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["a.bin"]


def test_threads_writing_into_one_folder_each_land_their_own_file(tmp_path):
    tmp_path = _folder(tmp_path)

    def write(number: int) -> None:
        for round_ in range(50):
            atomic.write_bytes(tmp_path / f"{number}.bin", f"{number}:{round_}".encode() * 1000)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(os.listdir(tmp_path)) == sorted(f"{number}.bin" for number in range(8))
    assert all((tmp_path / f"{n}.bin").read_bytes() == f"{n}:49".encode() * 1000 for n in range(8))


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    tmp_path = _folder(tmp_path)
    target = tmp_path / "a.bin"
    atomic.write_bytes(target, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        atomic.write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["a.bin"]
