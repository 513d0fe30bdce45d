"""The store's record of saves: which results were saved where, by which layout (the "saved" mark).

Mixed into Store: it uses the store's connections and revision counter.
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Sequence


class SaveQueries:
    """Store methods of the saved marks."""

    def record_saves(self, result_ids: Sequence[str], output_dir: str, layout: str) -> None:
        """Remember that these results were saved into `output_dir` by `layout`; their tasks show the mark."""
        if not result_ids:
            return
        now = time.time()
        with self._tx() as db:
            rev = self._bump(db)
            for chunk in chunks(list(dict.fromkeys(result_ids)), 500):
                # A result deleted while the save ran is left out (no foreign-key error).
                db.executemany("INSERT OR REPLACE INTO saves SELECT ?, ?, ?, ? WHERE EXISTS "
                               "(SELECT 1 FROM results WHERE id = ?)",
                               [(result_id, output_dir, layout, now, result_id) for result_id in chunk])
                marks = ",".join("?" * len(chunk))
                db.execute(f"UPDATE tasks SET rev = ? WHERE id IN (SELECT task_id FROM results WHERE id IN ({marks}))",
                           (rev, *chunk))

    def saves(self, result_id: str) -> list[dict[str, Any]]:
        """Return where a result was saved: [{"output_dir", "layout", "saved_at"}], newest first."""
        rows = self._db().execute("SELECT output_dir, layout, saved_at FROM saves WHERE result_id = ? "
                                  "ORDER BY saved_at DESC", (result_id,))
        return [dict(row) for row in rows]


def chunks(items: list, size: int) -> Iterator[list]:
    """Yield `items` in lists of at most `size` (SQLite caps the '?' in one statement)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
