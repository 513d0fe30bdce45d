"""Per-image prompts from sidecars: `<stem>.txt` next to a source, UTF-8 (a BOM is fine)."""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..messages import Message, say, sized
from ..userfiles import read_regular

SIDECAR_MAX_BYTES = 64 * 1024  # a caption, not a document: a bigger file is a mistake


@dataclass(frozen=True)
class Sidecar:
    """What was found next to one source: the caption text, or why there is none."""

    path: Path | None
    text: str | None
    why: Message | None  # why a sidecar that is there cannot be used
    absent: str | None = None  # the name of a sidecar that is not there (its message is made when asked for)

    @property
    def usable(self) -> bool:
        return self.text is not None

    @property
    def problem(self) -> Message | None:
        """Return why there is no caption, or None (a preview of 100,000 sources asks for 200 of them)."""
        return say("sources.sidecar_missing", name=self.absent) if self.absent is not None else self.why


def read_all(sources: Sequence[Path | str], root: str = "") -> list[Sidecar]:
    """Return every source's sidecar, read, in the order of `sources` (paths, or names under `root`).

    Each folder is listed once, and plain string operations are used throughout: pathlib's
    properties, or even `os.path`'s, cost seconds for 100,000 sources, and the scan preview has
    3 s in all (the scan budget in BENCHMARKS.md).
    """
    listings: dict[str, frozenset[str]] = {}
    found: list[Sidecar] = []
    for source in sources:
        folder, _, name = str(source).rpartition("/")
        stem = name.rpartition(".")[0] or name
        names = listings.get(folder)
        if names is None:
            names = listings[folder] = _listing(os.path.join(root, folder) if root else folder or "/")
        hit = stem + ".txt" if stem + ".txt" in names else stem + ".TXT" if stem + ".TXT" in names else None
        if hit is None:
            found.append(Sidecar(None, None, None, stem + ".txt"))
        else:
            found.append(read(Path(root, folder, hit) if root else Path(folder or "/", hit)))
    return found


def _listing(folder: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return frozenset()


def read(path: Path) -> Sidecar:
    """Read one sidecar file: its stripped text, or the reason it cannot be used."""
    try:
        data = read_regular(path, SIDECAR_MAX_BYTES)  # a FIFO named like a caption must not hang the scan
    except OSError as exc:
        return Sidecar(path, None, say("sources.sidecar_unreadable", name=path.name, reason=exc.strerror or str(exc)))
    if len(data) > SIDECAR_MAX_BYTES:
        return Sidecar(path, None, say("sources.sidecar_too_big", name=path.name, size=sized(SIDECAR_MAX_BYTES)))
    text = decode(data)
    if text is None:
        return Sidecar(path, None, say("sources.sidecar_not_utf8", name=path.name))
    text = text.strip()
    if not text:
        return Sidecar(path, None, say("sources.sidecar_empty", name=path.name))
    return Sidecar(path, text, None)


def decode(data: bytes) -> str | None:
    """Return UTF-8 text (BOM dropped; UTF-16 with its BOM, as Windows Notepad writes it), or None."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None

