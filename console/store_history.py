"""The store's memory of what an API and model cost per call so far (for estimates before a run).

Mixed into Store: it reads through the store's connection.
"""

from __future__ import annotations

import json
from collections import Counter

from .estimate import History
from .store_spend import currency_of

HISTORY_CALLS = 2000  # the latest calls averaged: prices and sizes change, old runs say less


class HistoryQueries:
    """Store methods of the call history."""

    def call_history(self, api_url: str, model: str) -> History:
        """Return the average usage and cost per image call of the latest made with this API URL and model
        (captioning calls, `kind` 'caption', cost something else and are left out)."""
        rows = self._db().execute(
            "SELECT a.cost, a.input_tokens, a.input_image_tokens, a.output_tokens, r.profile FROM attempts a "
            "JOIN tasks t ON t.id = a.task_id JOIN runs r ON r.id = t.run_id "
            "WHERE json_extract(r.profile, '$.api_url') = ? AND json_extract(r.profile, '$.model') = ? "
            "AND a.kind IS NULL AND (a.cost IS NOT NULL OR a.input_tokens IS NOT NULL OR a.output_tokens IS NOT NULL) "
            "ORDER BY a.id DESC LIMIT ?", (api_url, model, HISTORY_CALLS)).fetchall()
        if not rows:
            return History()
        priced = [(row[0], currency_of(json.loads(row[4]))) for row in rows if row[0] is not None]
        currency = Counter(code for _, code in priced).most_common(1)[0][0] if priced else None
        costs = [cost for cost, code in priced if code == currency]  # never an average across currencies

        def average(column: int) -> float | None:
            values = [row[column] for row in rows if row[column] is not None]
            return sum(values) / len(values) if values else None

        return History(calls=len(rows), priced_calls=len(costs), cost=sum(costs) / len(costs) if costs else None,
                       currency=currency,
                       input_tokens=average(1), input_image_tokens=average(2), output_tokens=average(3))
