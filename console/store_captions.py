"""The store's captions: a result's own caption, the model's answer text, find and replace across a run.

A result's `caption` is NULL until someone gives it one; a save then writes the save rule's caption
for it. Every change bumps the result's task's revision, so an incremental listing sends it again.
Mixed into Store: it uses the store's connections and revision counter.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable

from .fields import kib
from .messages import say
from .records import ResultRecord

CAPTION_MAX_BYTES = 8192  # of UTF-8, after trimming: far above any trainer's token limit
CHANGES_SHOWN = 20  # of a find and replace's changes, in source order
_UNSET: Any = object()


class CaptionTooLong(ValueError):
    """A caption over CAPTION_MAX_BYTES of UTF-8; `size` is its length in bytes."""

    def __init__(self, size: int) -> None:
        super().__init__(say("saving.caption_too_long", limit=kib(CAPTION_MAX_BYTES), size=size))
        self.size = size


def clean_caption(text: str | None) -> str | None:
    """Return a caption as stored: trimmed, None when empty; raise CaptionTooLong past the limit."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    size = len(text.encode("utf-8"))
    if size > CAPTION_MAX_BYTES:
        raise CaptionTooLong(size)
    return text


@dataclass(frozen=True)
class Replacement:
    """A find and replace over a run's own captions: the pattern, what a match becomes, and the scope."""

    pattern: re.Pattern[str]
    replace: str | Callable[[re.Match[str]], str]
    only_selected: bool = False


class CaptionQueries:
    """Store methods of results' captions."""

    def edit_result(self, result_id: str, *, selected: bool | None = None,
                    caption: Any = _UNSET) -> ResultRecord | None:
        """Set a result's selection and/or its own caption (already cleaned) at once; return it, or None if unknown."""
        with self._tx() as db:
            row = db.execute("SELECT task_id FROM results WHERE id = ?", (result_id,)).fetchone()
            if row is None:
                return None
            if selected is not None:
                db.execute("UPDATE results SET selected = ? WHERE id = ?", (int(selected), result_id))
            if caption is not _UNSET:
                db.execute("UPDATE results SET caption = ? WHERE id = ?", (caption, result_id))
            db.execute("UPDATE tasks SET rev = ? WHERE id = ?", (self._bump(db), row[0]))
        return self.result(result_id)

    def replace_captions(self, run_id: str, replacement: Replacement, *, preview: bool = False) -> dict[str, Any]:
        """Apply a find and replace to the own captions of a run's results (or only say what it would change).

        Results without a caption of their own are counted, not touched: their caption is the save
        rule's, known only at a save. A caption the replacement would take past the limit is left as
        it was and counted in `too_long`; one it empties becomes NULL. The pattern runs before the
        write transaction (a slow regular expression must not hold every writer up); the writes are
        one transaction, and a caption changed meanwhile is left as it is and not counted.
        """
        changes, counts = self._replaced(run_id, replacement)
        if not preview and changes:
            with self._tx() as db:
                changes = self._write_captions(db, changes)
        return {"changed": len(changes), **counts, "changes": changes[:CHANGES_SHOWN]}

    def _replaced(self, run_id: str, replacement: Replacement) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Return the changes a replacement makes to a run's own captions, and its other counts."""
        scope = " AND r.selected = 1" if replacement.only_selected else ""
        rows = self._db().execute(
            "SELECT r.id, r.task_id, t.source_name, r.caption FROM results r JOIN tasks t ON t.id = r.task_id "
            f"WHERE t.run_id = ?{scope} ORDER BY t.idx, r.created_at, r.rowid", (run_id,)).fetchall()
        changes, matched, too_long, without = [], 0, 0, 0
        for result_id, task_id, source_name, before in rows:
            if before is None:
                without += 1
                continue
            after, count = replacement.pattern.subn(replacement.replace, before)
            if not count:
                continue
            matched += 1
            try:
                after = clean_caption(after)
            except CaptionTooLong:
                too_long += 1
                continue
            if after != before:
                changes.append({"result_id": result_id, "task_id": task_id, "source_name": source_name,
                                "before": before, "after": after})
        return changes, {"matched": matched, "too_long": too_long, "without_caption": without}

    def _write_captions(self, db: sqlite3.Connection, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write the changes whose caption is still the one read; return them."""
        rev = self._bump(db)
        written = [change for change in changes if db.execute(
            "UPDATE results SET caption = ? WHERE id = ? AND caption = ?",
            (change["after"], change["result_id"], change["before"])).rowcount]
        db.executemany("UPDATE tasks SET rev = ? WHERE id = ?", ((rev, task_id) for task_id in
                                                                 {change["task_id"] for change in written}))
        return written
