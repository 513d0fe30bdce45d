"""Per-image prompts from sidecars: `<stem>.txt` next to a source, UTF-8 (a BOM is fine)."""

from __future__ import annotations

import codecs
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

SIDECAR_MAX_BYTES = 64 * 1024  # a caption, not a document: a bigger file is a mistake
SUFFIXES = (".txt", ".TXT")


@dataclass(frozen=True)
class Sidecar:
    """What was found next to one source: the caption text, or why there is none."""

    path: Path | None
    text: str | None
    problem: str | None

    @property
    def usable(self) -> bool:
        return self.text is not None


def find(sources: Iterable[Path]) -> dict[Path, Path | None]:
    """Return each source's sidecar path (or None), listing each folder once (100,000 sources stay fast)."""
    by_folder: dict[Path, list[Path]] = defaultdict(list)
    for source in sources:
        by_folder[source.parent].append(source)
    found: dict[Path, Path | None] = {}
    for folder, members in by_folder.items():
        try:
            names = set(os.listdir(folder))
        except OSError:
            names = set()
        for source in members:
            hit = next((source.stem + s for s in SUFFIXES if source.stem + s in names), None)
            found[source] = folder / hit if hit else None
    return found


def read(source: Path, path: Path | None) -> Sidecar:
    """Read one sidecar: its stripped text, or the reason it cannot be used."""
    if path is None:
        return Sidecar(None, None, f"no {source.stem}.txt")
    try:
        with path.open("rb") as file:
            data = file.read(SIDECAR_MAX_BYTES + 1)
    except OSError as exc:
        return Sidecar(path, None, f"{path.name} cannot be read: {exc.strerror or exc}")
    if len(data) > SIDECAR_MAX_BYTES:
        return Sidecar(path, None, f"{path.name} is over {SIDECAR_MAX_BYTES // 1024} KiB")
    text = decode(data)
    if text is None:
        return Sidecar(path, None, f"{path.name} is not UTF-8 text (save it as UTF-8)")
    text = text.strip()
    if not text:
        return Sidecar(path, None, f"{path.name} is empty")
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


def read_all(sources: list[Path]) -> dict[Path, Sidecar]:
    """Return every source's sidecar, read."""
    paths = find(sources)
    return {source: read(source, paths[source]) for source in sources}
