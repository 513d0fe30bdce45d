"""Keep a save's names apart: the stems it has used per folder, what is already on disk, musubi's `_<n>` rule."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .layout import IMAGE_SUFFIXES

_DIGITS = re.compile(r"^(.*)_(\d+)$")


class Claims:
    """The image stems a save has used per folder (by task), and the names its folders already hold.

    `musubi` adds musubi-tuner's rule: a target's controls are `<stem>.*` and `<stem>_<digits>.*`,
    so no target stem may be another target's stem plus `_<digits>`.
    """

    def __init__(self, musubi: bool = False) -> None:
        self.musubi = musubi
        self._existing: dict[Path, dict[str, str]] = {}  # folder -> casefolded name -> name
        self._claimed: dict[tuple[Path, str], str] = {}  # (folder, casefolded image stem) -> task id
        self._targets: set[str] = set()  # casefolded target stems
        self._bases: set[str] = set()  # casefolded X of target stems X_<digits>

    def names(self, folder: Path) -> dict[str, str]:
        """Return the names in `folder` on disk (casefolded -> as written), read once."""
        if folder not in self._existing:
            try:
                self._existing[folder] = {e.name.casefold(): e.name for e in os.scandir(folder)}
            except OSError:
                self._existing[folder] = {}
        return self._existing[folder]

    def on_disk(self, path: Path, image: bool) -> list[Path]:
        """Return existing files `path` would clash with: any image with its stem, or the same caption."""
        names = self.names(path.parent)
        wanted = [path.stem + s for s in IMAGE_SUFFIXES] if image else [path.name]
        return [path.parent / names[w.casefold()] for w in wanted if w.casefold() in names]

    def owners(self, images: list[Path]) -> set[str]:
        """Return the tasks that already use these images' stems."""
        return {owner for path in images if (owner := self._claimed.get((path.parent, path.stem.casefold())))}

    def free(self, images: list[Path], target_stem: str) -> bool:
        """Return True when none of these images' stems is used in its folder (nor ambiguous for musubi)."""
        if any((path.parent, path.stem.casefold()) in self._claimed for path in images):
            return False
        return not (self.musubi and self._ambiguous(target_stem))

    def take(self, images: list[Path], target_stem: str | None, task_id: str) -> None:
        """Use these images' stems for `task_id`; `target_stem` is the pair's (None for flat files)."""
        for path in images:
            self._claimed[(path.parent, path.stem.casefold())] = task_id
        if target_stem is not None:
            self.note_target(target_stem)

    def note_target(self, stem: str) -> None:
        """Remember a target stem (written now or found on disk) for musubi's rule."""
        key = stem.casefold()
        self._targets.add(key)
        match = _DIGITS.match(key)
        if match:
            self._bases.add(match.group(1))

    def _ambiguous(self, stem: str) -> bool:
        key = stem.casefold()
        match = _DIGITS.match(key)
        return key in self._bases or bool(match and match.group(1) in self._targets)
