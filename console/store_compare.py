"""The store's comparisons: the same sample of a folder through 2 to 4 variants, one pilot run each.

A variant keeps its name, prompt and model, so a comparison still reads after one of its runs is
deleted. Mixed into Store: it uses the store's connections.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from .store_saves import chunks


class CompareQueries:
    """Store methods of comparisons."""

    def create_comparison(self, comparison_id: str, input_path: str, recursive: bool, sample: int,
                          variants: Sequence[tuple[str, str, str, str]]) -> None:
        """Store a comparison and its variants, each (name, run id, prompt, model) in order."""
        with self._tx() as db:
            db.execute("INSERT INTO comparisons (id, created_at, input_path, recursive, sample) VALUES (?, ?, ?, ?, ?)",
                       (comparison_id, time.time(), input_path, int(recursive), sample))
            db.executemany("INSERT INTO comparison_variants (comparison_id, position, name, run_id, prompt, model) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           [(comparison_id, position, *variant) for position, variant in enumerate(variants)])

    def comparison(self, comparison_id: str) -> dict[str, Any] | None:
        """Return a comparison with its variants (name, run_id, prompt, model) in order, or None."""
        db = self._db()
        row = db.execute("SELECT * FROM comparisons WHERE id = ?", (comparison_id,)).fetchone()
        if row is None:
            return None
        variants = [{"name": v["name"], "run_id": v["run_id"], "prompt": v["prompt"], "model": v["model"]}
                    for v in db.execute("SELECT * FROM comparison_variants WHERE comparison_id = ? ORDER BY position",
                                        (comparison_id,))]
        return {"id": row["id"], "created_at": row["created_at"], "input_path": row["input_path"],
                "recursive": bool(row["recursive"]), "sample": row["sample"], "chosen": row["chosen"],
                "variants": variants}

    def choose_variant(self, comparison_id: str, name: str | None) -> bool:
        """Record the chosen variant (None forgets a choice); False when one was already chosen."""
        with self._tx() as db:
            if name is None:
                db.execute("UPDATE comparisons SET chosen = NULL WHERE id = ?", (comparison_id,))
                return True
            # One statement: of two choices racing, only one finds it unchosen.
            return db.execute("UPDATE comparisons SET chosen = ? WHERE id = ? AND chosen IS NULL",
                              (name, comparison_id)).rowcount == 1

    def sample_tasks(self, run_id: str, indices: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Return a run's tasks at these positions by position: id, source name, status and result ids."""
        db = self._db()
        tasks: dict[int, dict[str, Any]] = {}
        for chunk in chunks(list(indices), 500):
            marks = ",".join("?" * len(chunk))
            for row in db.execute("SELECT id, idx, source_name, status FROM tasks "
                                  f"WHERE run_id = ? AND idx IN ({marks})", (run_id, *chunk)):
                tasks[row["idx"]] = {"id": row["id"], "source_name": row["source_name"], "status": row["status"],
                                     "results": []}
        by_id = {task["id"]: task for task in tasks.values()}
        for chunk in chunks(list(by_id), 500):
            marks = ",".join("?" * len(chunk))
            for row in db.execute(f"SELECT id, task_id FROM results WHERE task_id IN ({marks}) "
                                  "ORDER BY created_at, rowid", chunk):
                by_id[row["task_id"]]["results"].append(row["id"])
        return tasks
