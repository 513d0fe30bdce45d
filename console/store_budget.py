"""The store's run budgets: the most a run may spend (NULL: no budget).

Mixed into Store: it uses the store's connections.
"""

from __future__ import annotations


class BudgetQueries:
    """Store methods of run budgets."""

    def set_run_budget(self, run_id: str, budget: float | None) -> None:
        """Set (or with None, remove) the most a run may spend."""
        with self._tx() as db:
            db.execute("UPDATE runs SET budget = ? WHERE id = ?", (budget, run_id))

    def run_budget(self, run_id: str) -> float | None:
        """Return the most a run may spend, or None."""
        row = self._db().execute("SELECT budget FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row[0] if row else None
