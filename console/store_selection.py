"""The store's bulk selection: select, unselect, invert or keep the first result of the tasks a filter matches.

Mixed into Store: it uses the store's connections and revision counter. `task_filter` is the one
home of the tasks listing's filters (status, search, flag), so a selection acts on exactly what a
listing with the same filters shows.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Sequence

from .store_flags import flag_condition


class SelectionQueries:
    """Store methods of the bulk selection."""

    def bulk_select(self, run_id: str, action: str, status: str | None = None, q: str | None = None,
                    task_ids: Sequence[str] | None = None, flag: str | None = None) -> int:
        """Apply a bulk selection to the results of a run's tasks matching the filters; return the run's selected count.

        `all`, `none` and `invert` act on every result of the matching tasks; `first` selects the
        first result of each and unselects its others. `task_ids`, when given, narrows the match
        to those tasks (a page range, or filters only the page knows). Tasks whose marks changed
        get a new revision, so an incremental listing sends them again.
        """
        if action not in SELECTION_ACTIONS:
            raise ValueError(f"unknown selection action {action!r}")
        clause, args = task_filter(run_id, status, q, flag)
        if task_ids is not None:  # one JSON parameter: SQLite caps the number of '?' in a statement
            clause += " AND id IN (SELECT value FROM json_each(?))"
            args.append(json.dumps(list(task_ids)))
        change, wanted = _SELECTION_SQL[action]
        matching = f"SELECT id FROM tasks WHERE {clause}"
        with self._tx() as db:
            rev = self._bump(db)
            # Tasks first: once the results change, which tasks had a result to change is lost.
            db.execute(f"UPDATE tasks SET rev = ? WHERE {clause} AND EXISTS "
                       f"(SELECT 1 FROM results r WHERE r.task_id = tasks.id AND {change.format(r='r')})", (rev, *args))
            db.execute(f"UPDATE results SET selected = {wanted.format(r='results')} "
                       f"WHERE task_id IN ({matching}) AND {change.format(r='results')}", args)
            return self._selected_count(db, run_id)

    def selected_count(self, run_id: str) -> int:
        """Return how many results of a run are selected."""
        return self._selected_count(self._db(), run_id)

    @staticmethod
    def _selected_count(db: sqlite3.Connection, run_id: str) -> int:
        return db.execute("SELECT COUNT(*) FROM results r JOIN tasks t ON t.id = r.task_id "
                          "WHERE t.run_id = ? AND r.selected = 1", (run_id,)).fetchone()[0]


def task_filter(run_id: str, status: str | None, q: str | None, flag: str | None = None) -> tuple[str, list[Any]]:
    """Return the WHERE clause and arguments of a run's tasks in `status` whose source name contains `q`
    and (with `flag`) that have a result carrying that flag."""
    where, args = ["run_id = ?"], [run_id]
    if status:
        where.append("status = ?")
        args.append(status)
    if q:
        where.append("source_name LIKE ? ESCAPE '\\'")
        args.append("%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if flag:
        where.append(f"EXISTS (SELECT 1 FROM results r WHERE r.task_id = tasks.id AND {flag_condition(flag)})")
    return " AND ".join(where), args


# The first result of a task, in the order listings show results.
_FIRST = "(SELECT f.id FROM results f WHERE f.task_id = {r}.task_id ORDER BY f.created_at, f.rowid LIMIT 1)"
# Per action: which results change (a condition on alias {r}) and the mark they get.
_SELECTION_SQL = {
    "all": ("{r}.selected = 0", "1"),
    "none": ("{r}.selected = 1", "0"),
    "invert": ("1", "1 - selected"),
    "first": ("{r}.selected != ({r}.id = " + _FIRST + ")", "(results.id = " + _FIRST.replace("{r}", "results") + ")"),
}
SELECTION_ACTIONS = tuple(_SELECTION_SQL)
__all__ = ["SELECTION_ACTIONS", "SelectionQueries", "task_filter"]
