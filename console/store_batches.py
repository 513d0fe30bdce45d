"""The store's batch delivery queries: a run's batches, the tasks waiting in each, and their ends.

A batch row is written with its tasks in one transaction before anything is submitted, so a
crash between submitting and storing the provider's answer leaves a `preparing` batch whose
label the engine looks for at the provider before it submits again. Mixed into Store: it uses
the store's connections and revision counter.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Sequence

from .messages import restored, stored
from .records import BatchRecord

PREPARING = "preparing"  # written, not yet (known to be) submitted
NOT_SUBMITTED = "not submitted"  # the submission failed: its tasks went back to pending
_COLUMNS = ("id, run_id, service, provider_id, status, done, total, completed, failed, error, created_at, "
            "submitted_at, finished_at, stopped")
_READ = _COLUMNS + ", error_msg"  # a batch's error with its message's code beside it


class BatchQueries:
    """Store methods of batches."""

    def open_batch(self, run_id: str, label: str, service: str, task_ids: Sequence[str]) -> list[str]:
        """Write a batch and put its pending tasks in it (running, one attempt each); return the ids that moved."""
        now = time.time()
        with self._tx() as db:
            rev = self._bump(db)
            db.execute(f"INSERT INTO batches ({_COLUMNS}) VALUES (?, ?, ?, NULL, ?, 0, 0, 0, 0, NULL, ?, NULL, NULL, 0)",
                       (label, run_id, service, PREPARING, now))
            moved = [task_id for task_id in task_ids if db.execute(
                "UPDATE tasks SET status = 'running', batch_id = ?, attempts = attempts + 1, error = NULL, error_msg = NULL, warning = NULL, warning_msg = NULL, "
                "http_status = NULL, rev = ?, started_at = ?, finished_at = NULL WHERE id = ? AND status = 'pending'",
                (label, rev, now, task_id)).rowcount]
            db.executemany("INSERT INTO attempts (task_id, number, started_at) "
                           "SELECT id, attempts, ? FROM tasks WHERE id = ?", ((now, task_id) for task_id in moved))
            db.execute("UPDATE batches SET total = ? WHERE id = ?", (len(moved), label))
        return moved

    def batch_polled(self, label: str, provider_id: str, status: str, done: bool, total: int, completed: int,
                     failed: int, error: str | None) -> None:
        """Store what the provider last said of a batch (the first time: when it was submitted)."""
        with self._tx() as db:
            db.execute("UPDATE batches SET provider_id = ?, status = ?, done = ?, total = CASE WHEN ? > 0 THEN ? "
                       "ELSE total END, completed = ?, failed = ?, error = ?, error_msg = ?, "
                       "submitted_at = COALESCE(submitted_at, ?) WHERE id = ?",
                       (provider_id, status, int(done), total, total, completed, failed, error, stored(error),
                        time.time(), label))

    def batch_stopped(self, label: str) -> None:
        """Note that the user stopped a batch: its unfinished tasks end stopped, so Resume sends them again."""
        with self._tx() as db:
            db.execute("UPDATE batches SET stopped = 1 WHERE id = ?", (label,))

    def batch_unsent(self, label: str, reason: str) -> None:
        """A submission that failed for a while (rate limit, server error): its tasks go back to pending."""
        with self._tx() as db:
            rev = self._bump(db)
            db.execute("UPDATE tasks SET status = 'pending', batch_id = NULL, rev = ? WHERE batch_id = ? "
                       "AND status = 'running'", (rev, label))
            db.execute("UPDATE batches SET status = ?, error = ?, error_msg = ?, done = 1, finished_at = ? WHERE id = ?",
                       (NOT_SUBMITTED, reason, stored(reason), time.time(), label))

    def close_batch(self, label: str) -> None:
        """Every answer of a batch is stored: it is no longer active, and its tasks no longer wait in it."""
        with self._tx() as db:
            rev = self._bump(db)
            db.execute("UPDATE tasks SET batch_id = NULL, rev = ? WHERE batch_id = ?", (rev, label))
            db.execute("UPDATE batches SET finished_at = ? WHERE id = ?", (time.time(), label))

    def batch(self, label: str) -> BatchRecord | None:
        """Return one batch, or None."""
        row = self._db().execute(f"SELECT {_READ} FROM batches WHERE id = ?", (label,)).fetchone()
        return _batch(row) if row else None

    def run_batches(self, run_id: str) -> tuple[BatchRecord, ...]:
        """Return a run's batches, newest first."""
        rows = self._db().execute(f"SELECT {_READ} FROM batches WHERE run_id = ? ORDER BY created_at DESC, rowid DESC",
                                  (run_id,))
        return tuple(_batch(row) for row in rows)

    def batch_number(self, label: str) -> int:
        """Return a batch's number in its run, as the page counts them: 1 for the first made (0 when unknown)."""
        row = self._db().execute(
            "SELECT COUNT(*) FROM batches o JOIN batches b ON o.run_id = b.run_id AND (o.created_at < b.created_at OR "
            "(o.created_at = b.created_at AND o.rowid <= b.rowid)) WHERE b.id = ?", (label,)).fetchone()
        return row[0]

    def active_batches(self, run_id: str | None = None) -> list[BatchRecord]:
        """Return the batches whose answers are not all stored yet (of one run, or of every run), oldest first."""
        where, args = ("run_id = ? AND ", (run_id,)) if run_id is not None else ("", ())
        rows = self._db().execute(f"SELECT {_READ} FROM batches WHERE {where}finished_at IS NULL "
                                  "ORDER BY created_at, rowid", args)
        return [_batch(row) for row in rows]

    def batch_tasks(self, label: str) -> list[str]:
        """Return the ids of the tasks still waiting in a batch, in source order."""
        rows = self._db().execute("SELECT id FROM tasks WHERE batch_id = ? AND status = 'running' ORDER BY idx", (label,))
        return [row[0] for row in rows]

    def waiting_in_batches(self, run_id: str) -> set[str]:
        """Return the ids of a run's tasks waiting in an active batch."""
        rows = self._db().execute(
            "SELECT t.id FROM tasks t JOIN batches b ON b.id = t.batch_id WHERE b.run_id = ? AND b.finished_at IS NULL "
            "AND t.status = 'running'", (run_id,))
        return {row[0] for row in rows}

    def batch_progress(self, run_id: str) -> dict[str, Any]:
        """Return a batch run's progress: its ETA comes from the provider's counts, not from a rate of calls."""
        progress = self.progress(run_id)
        if progress["pending"] + progress["running"]:
            progress["eta_s"] = self.batch_eta(run_id, progress["pending"])
        return progress

    def batch_eta(self, run_id: str, pending: int, now: float | None = None) -> float | None:
        """Return the seconds a batch run has left, from the provider's counts (None until a count moved)."""
        row = self._db().execute(
            "SELECT MIN(submitted_at), SUM(completed + failed), SUM(MAX(total - completed - failed, 0)) FROM batches "
            "WHERE run_id = ? AND finished_at IS NULL AND submitted_at IS NOT NULL", (run_id,)).fetchone()
        since, moved, left = row
        now = time.time() if now is None else now
        if not since or not moved or now <= since:
            return None
        return round((left + pending) / (moved / (now - since)), 1)


def _batch(row: sqlite3.Row | tuple[Any, ...]) -> BatchRecord:
    (label, run_id, service, provider_id, status, done, total, completed, failed, error, created_at, submitted_at,
     finished_at, stopped, error_msg) = row
    return BatchRecord(label, run_id, service, provider_id, status, bool(done), total, completed, failed,
                       restored(error, error_msg), created_at, submitted_at, finished_at, bool(stopped))
