"""Open the files a user points at (sources, sidecars, tables): regular files only, never blocking."""

from __future__ import annotations

import io
import os
import stat
from typing import BinaryIO

from .messages import Message, say

# O_NONBLOCK: opening a FIFO for reading otherwise waits until a writer appears, for ever.
# O_NOCTTY: a terminal device named like a caption must never become our controlling terminal.
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_BINARY", 0)


class NotRegularFile(OSError):
    """The path is a FIFO, a device, a socket or a folder: nothing to read as a file."""

    def __init__(self, kind: Message) -> None:
        message = say("sources.not_regular_file", kind=kind)
        super().__init__(message)
        self.strerror = message
        self.kind = kind


def kind(mode: int) -> Message:
    """Return what a file of this `st_mode` is, in words (a message, said in the page's language)."""
    if stat.S_ISREG(mode):
        return say("sources.kind_file")
    if stat.S_ISDIR(mode):
        return say("sources.kind_folder")
    if stat.S_ISFIFO(mode):
        return say("sources.kind_fifo")
    if stat.S_ISSOCK(mode):
        return say("sources.kind_socket")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return say("sources.kind_device")
    return say("sources.kind_other")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading (symlinks followed); raise NotRegularFile for anything else, OSError when it cannot be read.

    The mode is checked before opening, so a device is never opened, and again on the open
    descriptor, so a file swapped for a FIFO in between is refused instead of blocking.
    """
    before = os.stat(path)
    if not stat.S_ISREG(before.st_mode):
        raise NotRegularFile(kind(before.st_mode))
    descriptor = os.open(path, _FLAGS)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(kind(mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)  # a regular file never blocks; reads behave as usual
        return io.open(descriptor, "rb", closefd=True)
    except BaseException:
        os.close(descriptor)
        raise


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """Return at most `limit + 1` bytes of a regular file (one more than allowed tells the caller it is too big)."""
    with open_regular(path) as file:
        return file.read(limit + 1)
