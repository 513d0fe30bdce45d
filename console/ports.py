"""Explain a port that is already in use: who holds it (from /proc) and what to do."""

from __future__ import annotations

import os
from pathlib import Path

_LISTEN = "0A"


def listening_inodes(port: int, proc: Path = Path("/proc")) -> set[str]:
    """Return the socket inodes listening on `port`, read from /proc/net/tcp and tcp6."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def holders(port: int, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """Return (pid, command line) of the processes listening on `port`, as far as /proc shows."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port, proc)}
    found: list[tuple[int, str]] = []
    if not wanted:
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue  # another user's process, or it just exited
        if links & wanted:
            found.append((int(entry.name), _cmdline(entry)))
    return found


def _cmdline(entry: Path) -> str:
    try:
        raw = (entry / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


def explain(host: str, port: int) -> str:
    """Return a message naming who holds `port` and how to proceed (never kills anything)."""
    lines = [f"Port {port} on {host} is already in use."]
    found = holders(port)
    for pid, command in found:
        lines.append(f"  held by pid {pid}: {command}")
    if not found:
        lines.append("  (the process holding it is not visible: another user's, or in a container)")
    lines.append(f"Stop that program, or start on another port: ./start.sh --port {port + 1} (or PORT={port + 1}).")
    return "\n".join(lines)
