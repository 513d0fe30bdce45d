"""What a run will cost before it starts: its calls and images from the plan, its cost from the
profile's prices or from what this API and model cost so far.

The basis says where the cost came from:
- `prices`: the profile's prices. Token prices need token counts, taken from this API and model's
  earlier calls (their average per call); without such history a token price leaves the cost unknown
  rather than too low.
- `history`: no usable prices, so the average cost per call of this API URL and model so far (the
  gateway's reported cost, or what the prices of those runs made of it).
- `unknown`: neither; set prices in the profile to know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .store_spend import CURRENCY_DEFAULT
from .upstream import PRICE_FIELDS, Usage, priced


@dataclass(frozen=True)
class History:
    """What earlier calls of one API URL and model used and cost, on average per call."""

    calls: int = 0  # calls with their usage known
    priced_calls: int = 0  # calls with their cost known
    cost: float | None = None  # average cost per priced call
    currency: str | None = None
    input_tokens: float | None = None
    input_image_tokens: float | None = None
    output_tokens: float | None = None


def estimate(images_per_task: Sequence[int], prices: Mapping[str, Any], history: History,
             pilot: int | None = None) -> dict[str, Any]:
    """Return the estimate of a run whose tasks return these many images each (one call per task)."""
    tasks = len(images_per_task)
    images = sum(images_per_task)
    per_call, basis = _per_call_cost(images_per_task, prices, history)
    currency = str(prices.get("currency") or "") or (history.currency if basis == "history" else None) or CURRENCY_DEFAULT
    answer: dict[str, Any] = {"tasks": tasks, "calls": tasks, "images": images,
                              "cost": round(sum(per_call), 6) if per_call is not None else None,
                              "currency": currency, "basis": basis,
                              "history_calls": history.priced_calls if basis == "history" else history.calls}
    if pilot is not None and pilot < tasks:
        answer["pilot"] = {"tasks": pilot, "calls": pilot,
                           "cost": round(sum(per_call) * pilot / tasks, 6) if per_call is not None and tasks else None}
    return answer


def _per_call_cost(images_per_task: Sequence[int], prices: Mapping[str, Any],
                   history: History) -> tuple[list[float] | None, str]:
    """Return each call's expected cost and the basis, or (None, "unknown")."""
    if any(prices.get(name) is not None for name in PRICE_FIELDS):
        costs = []
        for images in images_per_task:
            usage = Usage(input_tokens=_tokens(history.input_tokens), output_tokens=_tokens(history.output_tokens),
                          input_image_tokens=_tokens(history.input_image_tokens), images=images)
            cost, _ = priced(usage, prices)
            if cost is None:  # a token price without token history
                break
            costs.append(cost)
        else:
            return costs, "prices"
    if history.priced_calls and history.cost is not None:
        return [history.cost] * len(images_per_task), "history"
    return None, "unknown"


def _tokens(average: float | None) -> int | None:
    return None if average is None else round(average)


def images_of(task_overrides: Sequence[Mapping[str, Any]], profile_n: int | None) -> list[int]:
    """Return how many images each task asks for: its own `n` (a table row's), else the profile's, else 1."""
    return [int(overrides.get("n") or profile_n or 1) for overrides in task_overrides]
