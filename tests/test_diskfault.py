"""Which failures are the data folder's (full, read-only, gone), what they say, and the held answers' bound."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from console.diskfault import FULL, GONE, READ_ONLY, RESERVE_NAME, DataFolder, StorageFault, human_bytes
from console.engine.held import HeldAnswers
from console.upstream import CallOutcome, ResultImage


@pytest.fixture
def folder(tmp_path):
    return DataFolder(tmp_path)


@pytest.mark.parametrize("exc, kind", [
    (OSError(errno.ENOSPC, "No space left on device"), FULL),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), FULL),
    (OSError(errno.EROFS, "Read-only file system"), READ_ONLY),
    (PermissionError(errno.EACCES, "Permission denied"), READ_ONLY),
    (sqlite3.OperationalError("database or disk is full"), FULL),
    (sqlite3.OperationalError("attempt to write a readonly database"), READ_ONLY),
])
def test_storage_errors_are_told_apart_by_kind(folder, exc, kind, monkeypatch):
    monkeypatch.setattr(DataFolder, "available", lambda self: 4096)  # the data folder's disk is the full one
    fault = folder.fault(exc)
    assert fault is not None and fault.kind == kind
    assert str(folder.path) in str(fault)


@pytest.mark.parametrize("exc", [ValueError("bug"), KeyError("x"), OSError(errno.ECONNRESET, "reset"),
                                 sqlite3.OperationalError("no such column: x"),
                                 FileNotFoundError(errno.ENOENT, "a file inside")])
def test_other_errors_are_not_the_data_folders(folder, exc):
    assert folder.fault(exc) is None


def test_a_removed_folder_is_gone_whatever_the_error_said(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    folder = DataFolder(data)
    folder.check()
    (data / RESERVE_NAME).unlink()
    data.rmdir()
    with pytest.raises(StorageFault) as raised:
        folder.check()
    assert raised.value.kind == GONE and "restart the console" in str(raised.value)
    assert folder.fault(OSError(errno.ENOENT, "gone")).kind == GONE


def test_the_reserve_is_given_back_and_taken_again(folder):
    reserve = folder.path / RESERVE_NAME
    assert reserve.stat().st_size > 0
    free = folder.available()
    assert folder.give_reserve() and not reserve.exists()
    assert folder.available() <= free  # the reserve given back is not counted as room
    folder.take_reserve()
    assert reserve.exists()


def test_a_full_disk_says_how_much_is_free():
    fault = StorageFault(FULL, "/data", 1_500_000)
    assert "is full (1.5 MB free); free some space, then resume" in str(fault)
    assert fault.details == {"storage": {"kind": "full", "folder": "/data", "free_bytes": 1_500_000}}
    assert human_bytes(0) == "0 B" and human_bytes(2_000_000_000) == "2.0 GB"


def outcome(size: int) -> CallOutcome:
    image = ResultImage(b"x" * size, "0" * 64, "png", 1, 1, "base64")
    return CallOutcome([image], "", 200, 1, "chat_completions")


def test_held_answers_stay_within_their_bound():
    held = HeldAnswers(max_bytes=100)
    assert held.hold("run1", "t1", outcome(60))
    assert not held.hold("run1", "t2", outcome(60))  # over the bound: not kept, its task is called again
    assert held.peek("t2") is None and held.bytes == 60
    assert held.hold("run2", "t3", outcome(40)) and held.count("run1") == 1
    held.release_run("run1")
    assert held.peek("t1") is None and held.bytes == 40
    held.release("t3")
    assert held.bytes == 0


def test_a_full_disk_elsewhere_is_not_the_data_folders(folder, tmp_path):
    elsewhere = OSError(errno.ENOSPC, "No space left on device", "/mnt/usb/dataset/a.png")
    inside = OSError(errno.ENOSPC, "No space left on device", str(folder.path / "cache" / "ab" / "x.png"))
    assert folder.fault(elsewhere) is None
    assert folder.fault(inside).kind == FULL


def test_an_unnamed_full_disk_error_is_not_blamed_on_a_roomy_data_folder(folder, monkeypatch):
    unnamed = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(DataFolder, "available", lambda self: 80 * 1024**3)
    assert folder.fault(unnamed) is None  # a temporary file on another disk
    monkeypatch.setattr(DataFolder, "available", lambda self: 1024**2)
    assert folder.fault(unnamed).kind == FULL
