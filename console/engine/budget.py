"""A run's budget: how much it may spend, what it has spent, and whether the next call fits.

The next call starts only when what is spent, plus what the calls in flight and the next one are
expected to cost, stays within the budget: a run stops short rather than over, and never overshoots
by more than one round of calls (those in flight when a cost came in higher than expected). The
expected cost of a call is this run's average so far; before its first priced call, the estimate from
the profile's prices or this API and model's history; with neither, only what is spent counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..messages import Message, say

_SLACK = 1e-9  # money is summed in floats


@dataclass
class Budget:
    """One run's budget (see the module docstring); owned by the engine's loop."""

    limit: float
    currency: str
    spent: float = 0.0  # what the run's calls cost so far (known costs only)
    priced: int = 0  # calls whose cost is known
    hint: float | None = None  # the expected cost of a call before this run priced any

    def per_call(self) -> float | None:
        """Return what the next call is expected to cost, or None when nothing tells."""
        return self.spent / self.priced if self.priced else self.hint

    def allows(self, in_flight: int) -> bool:
        """Return whether one more call fits, with `in_flight` calls already under way."""
        expected = self.per_call()
        if expected is None:
            return self.spent < self.limit - _SLACK
        return self.spent + (in_flight + 1) * expected <= self.limit + _SLACK

    def add(self, cost: float | None) -> None:
        """Count a call's cost as it is known (None: a call its gateway and prices leave unpriced)."""
        if cost is not None:
            self.spent += cost
            self.priced += 1

    def reason(self) -> Message:
        """Say why the run paused, and what to do (the figures, which change as calls in flight end, are in to_dict)."""
        expected, budget = self.per_call(), _money(self.limit, self.currency)
        if expected is None:
            return say("engine.paused", reason=say("engine.budget_reached", budget=budget))
        return say("engine.paused", reason=say("engine.budget_reached_per_call", budget=budget,
                                               per_call=_money(expected, self.currency)))

    def to_dict(self) -> dict[str, object]:
        return {"budget": self.limit, "spent": round(self.spent, 6), "currency": self.currency,
                "per_call": round(self.per_call(), 6) if self.per_call() is not None else None}


def _money(amount: float, currency: str) -> str:
    """Return "0.50 USD", "12.30 USD", or up to four decimals for a call's cost ("0.0387 USD")."""
    text = f"{amount:.2f}" if abs(round(amount, 2) - amount) < 1e-9 else f"{amount:.4f}".rstrip("0")
    return f"{text} {currency}"
