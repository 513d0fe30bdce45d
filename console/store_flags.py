"""The store's review-flag queries: which results still need a look, their flags, and the run's marks.

A result's `flags` column is NULL until the flagger has looked at it, then a JSON object
`{name: reason}` (empty when nothing is wrong), and `flag_msgs` the code and parameters of each reason
(`{name: {code, params}}`, so the page says it in its language); `mark` keeps its near-duplicate mark and its
source's, so a restarted console finds a run's duplicates without decoding its images again.
Mixed into Store: it uses the store's connections and revision counter.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping, Sequence

from .messages import Message, as_json
from .records import UncheckedResult

FLAG_NAMES = ("unchanged", "unrelated", "blank", "off_size", "near_duplicate")
FLAG_FILTERS = (*FLAG_NAMES, "any")


def flag_condition(flag: str, alias: str = "r") -> str:
    """Return the SQL condition on results alias `alias` for a flag filter (a name, or `any`)."""
    if flag == "any":
        return f"({alias}.flags IS NOT NULL AND {alias}.flags != '{{}}')"
    if flag not in FLAG_NAMES:
        raise ValueError(f"unknown flag {flag!r}")
    return f"json_extract({alias}.flags, '$.{flag}') IS NOT NULL"


def flag_names(reasons: dict[str, str]) -> tuple[str, ...]:
    """Return the names of the flags these reasons give, in the order the page lists them."""
    return tuple(name for name in FLAG_NAMES if name in reasons) if reasons else ()


def flag_reasons(flags: str | None, kept: str | None) -> dict[str, str]:
    """Return a result's reasons as read from its `flags` and `flag_msgs` columns: each a Message when its code was kept."""
    reasons = json.loads(flags) if flags else {}
    if not reasons or not kept:
        return reasons
    try:
        codes = json.loads(kept)
    except ValueError:
        return reasons
    for name, found in codes.items() if isinstance(codes, dict) else ():
        if isinstance(reasons.get(name), str) and isinstance(found, dict) and isinstance(found.get("code"), str):
            reasons[name] = Message(reasons[name], found["code"], found.get("params") or {})
    return reasons


def _kept(reasons: Mapping[str, Any]) -> str | None:
    """Return the `flag_msgs` of these reasons: the code and parameters of each that is a Message, or None."""
    codes = {name: as_json(reason) for name, reason in reasons.items() if isinstance(reason, Message)}
    return json.dumps(codes, ensure_ascii=False, separators=(",", ":")) if codes else None


class FlagQueries:
    """Store methods of the review flags (see the module docstring)."""

    def unchecked_results(self, run_id: str, limit: int = 64) -> list[UncheckedResult]:
        """Return up to `limit` results of a run not looked at yet, oldest first, with what judging them needs."""
        rows = self._db().execute(
            "SELECT r.id, r.task_id, r.sha256, r.format, t.idx, t.source_name, t.source_path, t.overrides FROM results r "
            "JOIN tasks t ON t.id = r.task_id WHERE t.run_id = ? AND r.flags IS NULL "
            "ORDER BY r.created_at, r.rowid LIMIT ?", (run_id, limit))
        return [UncheckedResult(*row[:7], json.loads(row[7]) if row[7] else {}) for row in rows]

    def record_flags(self, looked: Sequence[tuple[str, dict[str, str], bytes | None]],
                     duplicates: Sequence[tuple[str, str]] = ()) -> None:
        """Record in one transaction what the flagger found: (result id, flags, mark) per result looked at,
        and (result id, reason) for earlier results now known to have a duplicate. Gone results are skipped."""
        if not looked and not duplicates:
            return
        with self._tx() as db:
            rev = self._bump(db)
            db.executemany("UPDATE results SET flags = ?, flag_msgs = ?, mark = ? WHERE id = ?",
                           [(json.dumps(flags), _kept(flags), mark, result_id) for result_id, flags, mark in looked])
            for result_id, reason in duplicates:
                row = db.execute("SELECT flags, flag_msgs FROM results WHERE id = ?", (result_id,)).fetchone()
                flags = flag_reasons(row[0], row[1]) if row and row[0] else None
                if flags is not None and "near_duplicate" not in flags:
                    flags["near_duplicate"] = reason
                    db.execute("UPDATE results SET flags = ?, flag_msgs = ? WHERE id = ?",
                               (json.dumps(flags), _kept(flags), result_id))
            ids = [result_id for result_id, _, _ in looked] + [result_id for result_id, _ in duplicates]
            db.execute("UPDATE tasks SET rev = ? WHERE id IN (SELECT task_id FROM results WHERE id IN "
                       "(SELECT value FROM json_each(?)))", (rev, json.dumps(ids)))

    def run_marks(self, run_id: str) -> Iterator[tuple[str, bytes]]:
        """Yield (result id, mark) of a run's results looked at already, oldest first."""
        rows = self._db().execute(
            "SELECT r.id, r.mark FROM results r JOIN tasks t ON t.id = r.task_id "
            "WHERE t.run_id = ? AND r.mark IS NOT NULL ORDER BY r.created_at, r.rowid", (run_id,))
        for row in rows:
            yield row[0], row[1]

    def result_place(self, result_id: str) -> tuple[int, str] | None:
        """Return (task index, source name) of a result's task, or None if the result is gone."""
        row = self._db().execute("SELECT t.idx, t.source_name FROM results r JOIN tasks t ON t.id = r.task_id "
                                 "WHERE r.id = ?", (result_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def flag_counts(self, run_id: str) -> dict[str, int]:
        """Return how many results of a run carry each flag, and `any`."""
        counts = {name: 0 for name in FLAG_FILTERS}
        rows = self._db().execute(
            "SELECT j.key, COUNT(*) FROM results r JOIN tasks t ON t.id = r.task_id, json_each(r.flags) j "
            "WHERE t.run_id = ? AND r.flags IS NOT NULL GROUP BY j.key", (run_id,))
        for name, count in rows:
            if name in counts:
                counts[name] = count
        counts["any"] = self._db().execute(
            f"SELECT COUNT(*) FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.run_id = ? AND {flag_condition('any')}",
            (run_id,)).fetchone()[0]
        return counts
