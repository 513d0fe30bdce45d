"""List written items as a save goes: their manifest lines first, made durable, then their saved marks.

An item counts as saved only once its manifest line is on disk, so the manifest, the saved marks
and the files always agree. When the manifest cannot be written (a full disk), the items that
could not be listed are removed again and the save stops: nothing is left on disk unlisted.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..atomic import fsync_folder
from ..messages import say
from ..store import Store
from .manifest import append_jsonl, manifest_line
from .memory import MANIFEST
from .planning import Plan, PlannedItem

log = logging.getLogger(__name__)
EVERY_ITEMS = 32  # items listed per manifest append at most…
EVERY_S = 0.5  # …and at least this often while items are being written


class Listing:
    """The manifest lines and saved marks of one save's written items, appended in batches in plan order."""

    def __init__(self, store: Store, plan_: Plan, provenance: dict[str, Any], save_id: str) -> None:
        self.store, self.plan, self.provenance, self.save_id = store, plan_, provenance, save_id
        self.pending: list[tuple[PlannedItem, str | None]] = []
        self.listed: list[tuple[PlannedItem, str | None]] = []
        self.undone: list[PlannedItem] = []
        self.failure: OSError | None = None  # why the manifest could not be written
        self.mark_error: str | None = None
        self._last = time.monotonic()

    def mark(self, result_ids: list[str]) -> None:
        """Mark results saved in the store (their manifest lines exist already)."""
        try:
            self.store.record_saves(result_ids, str(self.plan.root), self.plan.rule.layout)
        except sqlite3.Error as exc:  # listed in the manifest: the next save here marks them ("saved before")
            log.warning("saved results could not be marked in the store: %s", exc)
            self.mark_error = str(exc)

    def add(self, item: PlannedItem, source_sha: str | None) -> None:
        """Take a written item; list the batch when it is full or due."""
        self.pending.append((item, source_sha))
        if len(self.pending) >= EVERY_ITEMS or time.monotonic() - self._last >= EVERY_S:
            self.flush()

    def flush(self) -> None:
        """List the pending items: make their folders and manifest lines durable, then mark them saved."""
        batch, self.pending = self.pending, []
        self._last = time.monotonic()
        if not batch:
            return
        if self.failure is None:
            try:
                self._append(batch)
            except OSError as exc:
                self.failure = exc
        if self.failure is not None:
            for item, _ in batch:
                _undo(item)
                self.undone.append(item)
            return
        self.listed.extend(batch)
        self.mark([item.candidate.result.id for item, _ in batch])

    def _append(self, batch: list[tuple[PlannedItem, str | None]]) -> None:
        # The renames of the items' files reach the disk before the lines that say they are there.
        for folder in sorted({f.path.parent for item, _ in batch for f in item.files}):
            fsync_folder(folder)
        lines = [manifest_line(self.plan.rule, item, sha, self.provenance, self.save_id) for item, sha in batch]
        append_jsonl(self.plan.root / MANIFEST, lines)

    def undone_errors(self) -> list[dict]:
        """Return the report's errors for the items removed because the manifest could not be written."""
        reason = say("saving.not_kept", manifest=MANIFEST, said=str(self.failure))
        return [{**item.candidate.names(), "kind": "write", "error": reason, "paths": item.paths,
                 "fix": say("saving.fix_free_space_rest")} for item in self.undone]


def _undo(item: PlannedItem) -> None:
    for f in item.files:
        try:
            Path(f.path).unlink(missing_ok=True)
        except OSError:  # the journal still names it: the next save removes it
            pass
