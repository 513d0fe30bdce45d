"""Make a save resumable: note each item before it is written, and undo what a killed save left unfinished.

A save notes its items in `.console-save-journal.jsonl` (in output_dir) before it starts them, and
removes the journal when it ends. An item is finished when its manifest line exists (that line
is written after all its files). So a journal found at the start of a save was left by a save
that was killed: its items without a manifest line of that save are half-written or unlisted,
and their files are removed, so that this save writes them whole. Files the journal does not
name are never touched, so a user's own files in the folder stay whatever the conflict rule is.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..atomic import TEMP_PREFIX, fsync_folder
from .manifest import append_jsonl
from .memory import MANIFEST, manifest_lines
from .planning import PlannedItem
from .rule import inside

JOURNAL = ".console-save-journal.jsonl"
TEMP_MAX_AGE_S = 3600  # a temp file of a living process this old was left by a crashed write
MTIME_SLACK_S = 2  # file systems with coarse timestamps may date a file written just after a note before it
# Temp files of console.atomic (.tmp-<pid>-<thread>) and of a save's staged files (…-<n>).
_TEMP = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-\d+(-\d+)?")


def new_save_id() -> str:
    """Return an id for one save, written in its journal and manifest lines."""
    return secrets.token_hex(6)


@dataclass
class Recovery:
    """What a save undid before planning: items a killed save left unfinished, and stale temp files."""

    interrupted: bool = False  # a killed save's journal was found
    unfinished: int = 0  # items it noted and never listed: this save writes them
    items: int = 0  # unfinished items whose files were removed
    files: int = 0  # their files removed
    temp_files: int = 0  # stale temp files removed
    paths: list[str] = field(default_factory=list)  # the files removed

    def report(self) -> dict[str, Any]:
        """Return the save report's `repaired` entry."""
        return {"interrupted": self.interrupted, "unfinished": self.unfinished, "items": self.items,
                "files": self.files, "temp_files": self.temp_files, "paths": self.paths}


def recover(root: Path, folders: Iterable[Path]) -> Recovery:
    """Undo the unfinished items of a killed save in `root`, remove stale temp files, and drop the journal."""
    found = Recovery()
    journal = root / JOURNAL
    intents = manifest_lines(journal)
    found.interrupted = journal.exists()
    finished = {(line.get("save_id"), line.get("result_id")) for line in manifest_lines(root / MANIFEST)}
    swept = {root, *folders}
    for intent in intents:
        paths = [Path(p) for p in intent.get("paths") or [] if isinstance(p, str)]
        swept.update(p.parent for p in paths)
        if (intent.get("save_id"), intent.get("result_id")) in finished:
            continue
        found.unfinished += 1
        noted_at = intent.get("noted_at")
        since = noted_at - MTIME_SLACK_S if isinstance(noted_at, (int, float)) else 0
        removed = [p for p in paths if _remove(root, p, since)]
        if removed:
            found.items += 1
            found.files += len(removed)
            found.paths.extend(str(p) for p in removed)
    for folder in swept:
        found.temp_files += _sweep_temps(root, folder)
    with suppress(OSError):  # cannot go (a read-only folder): the next save tries again
        journal.unlink(missing_ok=True)
    return found


class Journal:
    """The journal of one running save: items are noted before they start, the file goes when the save ends."""

    def __init__(self, root: Path, save_id: str) -> None:
        self.path = root / JOURNAL
        self.save_id = save_id
        self.noted = 0

    def note(self, items: list[PlannedItem]) -> None:
        """Append these items (their result ids and every path they write or replace) and make it durable."""
        created = not self.path.exists()
        now = time.time()
        append_jsonl(self.path, [{"save_id": self.save_id, "result_id": item.candidate.result.id, "noted_at": now,
                                  "paths": [*item.paths, *map(str, item.replaces)]} for item in items])
        if created:
            fsync_folder(self.path.parent)
        self.noted += len(items)

    def close(self) -> None:
        """Remove the journal: every item noted is now listed, undone or never started."""
        with suppress(OSError):  # a read-only folder: the next save cleans it up
            self.path.unlink(missing_ok=True)


def _remove(root: Path, path: Path, since: float) -> bool:
    """Remove one file a killed save may have written: a regular file inside root, changed since `since`.

    An older file at that name (one an overwrite had not reached yet) stays; so do folders and links.
    """
    if not inside(root, path.parent) or path.is_symlink() or not path.is_file():
        return False
    try:
        if path.stat().st_mtime < since:
            return False
        path.unlink()
    except OSError:
        return False
    return True


def _sweep_temps(root: Path, folder: Path) -> int:
    """Remove temp files in `folder` left by a process that is gone (or by a write older than an hour)."""
    if not inside(root, folder):
        return 0
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False) or not _stale(int(match.group(1)), entry):
            continue
        try:
            os.unlink(entry.path)
            removed += 1
        except OSError:
            pass
    return removed


def _stale(pid: int, entry: os.DirEntry) -> bool:
    if pid != os.getpid() and not _alive(pid):
        return True
    try:
        return entry.stat(follow_symlinks=False).st_mtime < time.time() - TEMP_MAX_AGE_S
    except OSError:
        return False


def _alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(0, …) would ask about our own process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid > 0
    return True
