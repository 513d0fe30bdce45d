"""Hostile files for tests: a FIFO that blocks its reader, a name that is not UTF-8, a call that must not hang."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

PROMPT_S = 15.0  # "answers promptly": far above the milliseconds it takes, far below a hang


def fifo(path: Path) -> Path:
    """Make a real FIFO at `path`: whoever opens it to read waits for a writer, for ever."""
    os.mkfifo(path)
    return path


def release(*fifos: Path) -> None:
    """Open each FIFO for writing, once: a reader stuck in open() returns (then reads end of file)."""
    for path in fifos:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader waits (ENXIO): nothing to release
            pass


def within(seconds: float, call: Callable[[], Any], *fifos: Path) -> Any:
    """Return `call()`, or fail when it has not returned after `seconds` (its FIFOs are released then,
    so a regression fails the test instead of leaving a thread blocked for ever)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        release(*fifos)
        thread.join(5)
        raise AssertionError(f"still blocked after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def badly_named(folder: Path, name: bytes, data: bytes = b"") -> str:
    """Write a file whose name is the bytes `name` (not valid UTF-8); return its path as Python sees it."""
    path = os.fsdecode(os.fsencode(folder) + b"/" + name)
    with open(path, "wb") as file:
        file.write(data)
    return path
