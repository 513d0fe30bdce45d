"""The store's progress of a run: counts per status, percent, rate per minute and ETA.

Mixed into Store: it reads through the store's connection.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

RATE_WINDOW_S = 300.0  # a running run's rate counts the tasks finished in the last five minutes
STATUSES = ("pending", "running", "done", "failed", "stopped", "held")  # held: a pilot's rest, not queued


class ProgressQueries:
    """Store methods of a run's progress."""

    def progress(self, run_id: str, now: float | None = None) -> dict[str, Any]:
        """Return counts per status, percent, rate per minute and ETA in seconds."""
        db = self._db()
        counts = dict.fromkeys(STATUSES, 0)
        for status, count in db.execute("SELECT status, COUNT(*) FROM tasks WHERE run_id = ? GROUP BY status", (run_id,)):
            counts[status] = count
        total = sum(counts.values())
        finished = counts["done"] + counts["failed"]
        now = time.time() if now is None else now
        started = db.execute("SELECT started_at FROM runs WHERE id = ?", (run_id,)).fetchone()
        left = counts["pending"] + counts["running"]
        if not left and finished:  # nothing left to do: the rate is the run's own, frozen at its last end
            last = max((db.execute("SELECT MAX(finished_at) FROM tasks WHERE run_id = ? AND status = ?",
                                   (run_id, status)).fetchone()[0] or 0.0 for status in ("done", "failed")))
            now = min(now, last) if last else now
        rate = eta = None
        if not left and finished and started and started[0] and self._restarted(db, run_id, started[0]):
            rate = self._working_rate(db, run_id)
            eta = 0.0 if rate is not None else None
        if rate is None and started and started[0]:
            since = max(now - RATE_WINDOW_S, started[0])
            recent = sum(db.execute("SELECT COUNT(*) FROM tasks WHERE run_id = ? AND status = ? AND finished_at >= ?",
                                    (run_id, status, since)).fetchone()[0] for status in ("done", "failed"))
            if recent and now > since:
                rate = round(recent / ((now - since) / 60), 2)
                eta = round(left / rate * 60, 1) if left else 0.0
        percent = round(100 * finished / total, 1) if total else 100.0
        return {"total": total, **counts, "percent": percent, "rate_per_min": rate, "eta_s": eta}

    @staticmethod
    def _restarted(db: sqlite3.Connection, run_id: str, clock: float) -> bool:
        """Return True when some task finished before the run's clock last started (a retry after the run)."""
        return any(db.execute("SELECT 1 FROM tasks WHERE run_id = ? AND status = ? AND finished_at < ? LIMIT 1",
                              (run_id, status, clock)).fetchone() for status in ("done", "failed"))

    @staticmethod
    def _working_rate(db: sqlite3.Connection, run_id: str) -> float | None:
        """Return a finished run's tasks per minute of working time, or None when its tasks carry no times.

        Working time is the union of the finished tasks' call times (each one adds what it runs past
        every earlier-started one): the idle hours between the run and a later retry are not the run's,
        so a retry of one task does not sink the rate to that task's alone.
        """
        count, busy = db.execute(
            "SELECT COUNT(*), SUM(MAX(0, f - MAX(s, COALESCE(reach, s)))) FROM ("
            " SELECT started_at AS s, finished_at AS f, MAX(finished_at) OVER (ORDER BY started_at"
            " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach FROM tasks WHERE run_id = ?"
            " AND status IN ('done', 'failed') AND started_at IS NOT NULL AND finished_at >= started_at)",
            (run_id,)).fetchone()
        return round(count / (busy / 60), 2) if count and busy else None
