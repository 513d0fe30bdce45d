"""The store's attempts and spend: each upstream call, what it used and cost, and their sums.

Every attempt is a row (retries included); what it used (tokens in, image tokens in, tokens out,
images returned) and its cost are written on it once its answer is read, so spend survives a
restart and counts failed calls that were paid for. A run's or a task's spend sums its attempts;
a day's spend groups them by local day and by profile (API host and model). Mixed into Store: it
uses the store's connections and revision counter.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

CURRENCY_DEFAULT = "USD"
SPEND_DAYS_MAX = 366
_SUMS = ("COUNT(*), COALESCE(SUM(a.images), 0), COALESCE(SUM(a.input_tokens), 0) + COALESCE(SUM(a.input_image_tokens), 0), "
         "COALESCE(SUM(a.input_image_tokens), 0), COALESCE(SUM(a.output_tokens), 0), SUM(a.cost), COUNT(a.cost)")


def spend_of(row: Iterable[Any], currency: str) -> dict[str, Any]:
    """Return a spend from a row of _SUMS: calls, images, tokens, cost (None when no call had a known cost)."""
    calls, images, tokens_in, image_tokens, tokens_out, cost, known = row
    return {"calls": calls, "images": images, "input_tokens": tokens_in, "input_image_tokens": image_tokens,
            "output_tokens": tokens_out, "cost": round(cost, 6) if known else None, "cost_known": known,
            "currency": currency}


def currency_of(profile: Mapping[str, Any]) -> str:
    """Return the currency of a profile's prices (USD when it names none)."""
    prices = profile.get("prices") if isinstance(profile.get("prices"), Mapping) else {}
    return str(prices.get("currency") or CURRENCY_DEFAULT)


class SpendQueries:
    """Store methods of attempts and what they cost."""

    def add_attempt(self, task_id: str, number: int) -> None:
        """Count one more upstream call for a task."""
        with self._tx() as db:
            rev = self._bump(db)
            db.execute("UPDATE tasks SET attempts = attempts + 1, rev = ? WHERE id = ?", (rev, task_id))
            db.execute("INSERT INTO attempts (task_id, number, started_at) VALUES (?, ?, ?)", (task_id, number, time.time()))

    def record_usage(self, task_id: str, number: int, usage: Mapping[str, Any], cost: float | None,
                     basis: str | None) -> None:
        """Write what a task's latest attempt `number` used and cost (a retry after a rate limit numbers from 1 again).

        The task's revision is not bumped: its end (or its return to the queue) is written right after and bumps it.
        """
        with self._tx() as db:
            db.execute(
                "UPDATE attempts SET input_tokens = ?, input_image_tokens = ?, output_tokens = ?, images = ?, cost = ?, "
                "cost_basis = ? WHERE id = (SELECT MAX(id) FROM attempts WHERE task_id = ? AND number = ?)",
                (usage.get("input_tokens"), usage.get("input_image_tokens"), usage.get("output_tokens"),
                 usage.get("images"), cost, basis, task_id, number))

    def run_spend(self, run_id: str, currency: str | None = None) -> dict[str, Any]:
        """Return a run's spend: every attempt of its tasks summed."""
        db = self._db()
        if currency is None:
            row = db.execute("SELECT profile FROM runs WHERE id = ?", (run_id,)).fetchone()
            currency = currency_of(json.loads(row[0])) if row else CURRENCY_DEFAULT
        row = db.execute(f"SELECT {_SUMS} FROM attempts a JOIN tasks t ON t.id = a.task_id WHERE t.run_id = ?",
                         (run_id,)).fetchone()
        return spend_of(row, currency)

    def task_spends(self, run_id: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Return the spend of each of these tasks of a run, by task id."""
        if not task_ids:
            return {}
        row = self._db().execute("SELECT profile FROM runs WHERE id = ?", (run_id,)).fetchone()
        currency = currency_of(json.loads(row[0])) if row else CURRENCY_DEFAULT
        spends = {}
        for start in range(0, len(task_ids), 500):
            chunk = task_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for task_id, *sums in self._db().execute(
                    f"SELECT a.task_id, {_SUMS} FROM attempts a WHERE a.task_id IN ({marks}) GROUP BY a.task_id", chunk):
                spends[task_id] = spend_of(sums, currency)
        return {task_id: spends.get(task_id) or spend_of((0, 0, 0, 0, 0, None, 0), currency) for task_id in task_ids}

    def daily_spend(self, days: int, today: date | None = None) -> dict[str, Any]:
        """Return the spend of the last `days` local days (today included), per day and per profile.

        A profile is its API host and model: a run's, or a captioning call's own (`attempts.profile`);
        runs deleted since take their attempts with them.
        """
        today = today or date.today()
        first = today - timedelta(days=days - 1)
        since = datetime.combine(first, datetime.min.time()).timestamp()
        rows = self._db().execute(
            f"SELECT date(a.started_at, 'unixepoch', 'localtime') AS day, COALESCE(a.profile, r.profile) AS paid, "
            f"{_SUMS} FROM attempts a JOIN tasks t ON t.id = a.task_id JOIN runs r ON r.id = t.run_id "
            "WHERE a.started_at >= ? GROUP BY day, paid ORDER BY day DESC", (since,)).fetchall()
        grouped: dict[tuple[str, str, str, str], list[Any]] = {}
        for day, profile_text, *sums in rows:
            profile = json.loads(profile_text)
            key = (day, urlsplit(str(profile.get("api_url") or "")).hostname or "", str(profile.get("model") or ""),
                   currency_of(profile))
            grouped[key] = _added(grouped.get(key), sums)
        out: dict[str, list[dict[str, Any]]] = {}
        for (day, host, model, currency), sums in grouped.items():
            out.setdefault(day, []).append({"api_host": host, "model": model, **spend_of(sums, currency)})
        return {"days": [{"day": day, "profiles": sorted(out[day], key=lambda p: (p["api_host"], p["model"]))}
                         for day in sorted(out, reverse=True)],
                "from": first.isoformat(), "to": today.isoformat()}


def _added(total: list[Any] | None, sums: list[Any]) -> list[Any]:
    """Add one profile's sums to another with the same host and model (a cost stays None only while no call of either had a known cost)."""
    if total is None:
        return list(sums)
    merged = [a + b for a, b in zip(total[:5], sums[:5])]
    cost = None if total[5] is None and sums[5] is None else (total[5] or 0.0) + (sums[5] or 0.0)
    return [*merged, cost, total[6] + sums[6]]
