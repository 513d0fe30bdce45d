"""The store's captioning calls: each call a captioning job makes, counted in the run's spend.

A captioning call is an `attempts` row of the captioned result's task with `kind` 'caption' and the
captioning profile (API URL, model, prices) in `profile`, so the run's, the task's and the day's
spend count it; `tasks.attempts` counts image calls only and is left alone. Mixed into Store: it
uses the store's connections and revision counter.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

from .records import ScopedResult

CAPTION_KIND = "caption"
CAPTION_LOG_HEADING = "--- caption call (job {job}) ---"


class CaptionCallQueries:
    """Store methods of the calls captioning jobs make."""

    def caption_scope(self, run_id: str, only_selected: bool = False) -> list[ScopedResult]:
        """Return a run's results (or its selected ones) with their caption and their task's source, in run order."""
        selected = " AND r.selected = 1" if only_selected else ""
        rows = self._db().execute(
            "SELECT r.id, r.task_id, r.sha256, r.format, r.caption, t.source_name, t.source_path FROM results r "
            f"JOIN tasks t ON t.id = r.task_id WHERE t.run_id = ?{selected} ORDER BY t.idx, r.created_at, r.rowid",
            (run_id,)).fetchall()
        return [ScopedResult(*row) for row in rows]

    def add_caption_attempt(self, task_id: str, number: int, profile: Mapping[str, Any]) -> int | None:
        """Record one captioning call of a task's result; return its attempt id (None: the task is gone)."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone() is None:
                return None
            return db.execute(
                "INSERT INTO attempts (task_id, number, started_at, kind, profile) VALUES (?, ?, ?, ?, ?) RETURNING id",
                (task_id, number, time.time(), CAPTION_KIND, json.dumps(dict(profile)))).fetchone()[0]

    def record_caption_usage(self, attempt_id: int, usage: Mapping[str, Any], cost: float | None,
                             basis: str | None) -> None:
        """Write what one captioning call used and cost."""
        with self._tx() as db:
            db.execute("UPDATE attempts SET input_tokens = ?, input_image_tokens = ?, output_tokens = ?, images = ?, "
                       "cost = ?, cost_basis = ? WHERE id = ?",
                       (usage.get("input_tokens"), usage.get("input_image_tokens"), usage.get("output_tokens"),
                        usage.get("images"), cost, basis, attempt_id))

    def write_generated_caption(self, result_id: str, caption: str, *, replace: bool) -> str:
        """Give a result the caption a model wrote (bumping its task's revision); return "written", or why not:
        "gone" (deleted meanwhile) or "has_caption" (one written meanwhile, and `replace` is off)."""
        with self._tx() as db:
            row = db.execute("SELECT task_id, caption FROM results WHERE id = ?", (result_id,)).fetchone()
            if row is None:
                return "gone"
            if row[1] is not None and not replace:
                return "has_caption"
            db.execute("UPDATE results SET caption = ? WHERE id = ?", (caption, result_id))
            db.execute("UPDATE tasks SET rev = ? WHERE id = ?", (self._bump(db), row[0]))
        return "written"

    def append_debug_log(self, task_id: str, job_id: str, text: str, cap_bytes: int) -> None:
        """Add a captioning call's log to its task's debug log, under a heading; the oldest lines go past `cap_bytes`."""
        with self._tx() as db:
            row = db.execute("SELECT debug_log FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                return
            merged = "\n".join(part for part in (row[0], CAPTION_LOG_HEADING.format(job=job_id), text) if part)
            if len(merged) > cap_bytes:
                merged = "… earlier lines dropped\n" + merged[len(merged) - cap_bytes:]
            db.execute("UPDATE tasks SET debug_log = ? WHERE id = ?", (merged, task_id))
