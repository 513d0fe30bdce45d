"""The store's pilot queries: a run's held tasks (stored, not queued) and letting them go.

A pilot run calls a sample of its folder first; the other tasks wait in status `held` until
the user releases them, maybe with an edited prompt. Held tasks are not pending: a restart,
Resume and Retry failed leave them alone. Mixed into Store: it uses the store's connections
and revision counter.
"""

from __future__ import annotations

from typing import Any


def pilot_sample(count: int, pilot: int) -> list[int]:
    """Return the indices of `pilot` tasks spread evenly over `count` (all of them when pilot >= count)."""
    if pilot >= count:
        return list(range(count))
    # round(i * count / pilot), in whole numbers (halves up) so no float decides a task
    return [(2 * i * count + pilot) // (2 * pilot) for i in range(pilot)]


class PilotQueries:
    """Store methods of held tasks."""

    def held_count(self, run_id: str) -> tuple[int, int]:
        """Return how many of a run's tasks are held, and how many of those use the run's prompt."""
        row = self._db().execute(
            "SELECT COUNT(*), COALESCE(SUM(t.prompt = r.prompt), 0) FROM tasks t JOIN runs r ON r.id = t.run_id "
            "WHERE t.run_id = ? AND t.status = 'held'", (run_id,)).fetchone()
        return row[0], row[1]

    def release_held(self, run_id: str, prompt: str | None = None) -> dict[str, Any]:
        """Make a run's held tasks pending, giving `prompt` to those that use the run's prompt.

        The run's prompt becomes the new one too (what the rest of the run was made with); the
        tasks already called keep theirs, as their results do. Return the released ids in
        source order and how many took the new prompt.
        """
        with self._tx() as db:
            rev = self._bump(db)
            changed = 0
            if prompt is not None:
                old = db.execute("SELECT prompt FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
                if prompt != old:
                    changed = db.execute("UPDATE tasks SET prompt = ? WHERE run_id = ? AND status = 'held' AND prompt = ?",
                                         (prompt, run_id, old)).rowcount
                    if changed:
                        db.execute("UPDATE runs SET prompt = ? WHERE id = ?", (prompt, run_id))
            rows = db.execute("UPDATE tasks SET status = 'pending', error = NULL, error_msg = NULL, rev = ? WHERE run_id = ? "
                              "AND status = 'held' RETURNING id, idx", (rev, run_id)).fetchall()
        return {"ids": [row[0] for row in sorted(rows, key=lambda row: row[1])], "prompted": changed}
