"""Read what one call used and cost from any answer shape, and price it when the gateway does not.

Gateways report usage in the answer's own shape: chat completions `usage` (`prompt_tokens`,
`completion_tokens`, OpenRouter's `cost`), the Responses and images APIs `usage` (`input_tokens`,
`output_tokens`, `input_tokens_details: {text_tokens, image_tokens}`), Gemini `usageMetadata`
(`promptTokenCount`, `candidatesTokenCount`, `promptTokensDetails` by modality), Seedream `usage`
(`generated_images`, `output_tokens`), and LiteLLM's `x-litellm-response-cost` header. A stream
may repeat a running total in several chunks, so each field keeps the last value reported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..profile import BATCH_DISCOUNT_DEFAULT

COST_HEADER = "x-litellm-response-cost"
PRICE_FIELDS = ("call", "image", "input_mtok", "input_image_mtok", "output_mtok")
MTOK = 1_000_000
_USAGE_EVENTS = ("response.completed", "response.incomplete", "response.failed")


@dataclass(frozen=True)
class Usage:
    """What one call used: text and image tokens in, tokens out, images returned, and the cost the gateway reported."""

    input_tokens: int | None = None  # text tokens when the usage splits them, else every input token
    input_image_tokens: int | None = None
    output_tokens: int | None = None
    images: int | None = None
    cost: float | None = None  # money, as reported by the gateway

    def to_dict(self) -> dict[str, Any]:
        """Return the usage as JSON-ready data."""
        return asdict(self)


def priced(usage: Usage, prices: Mapping[str, Any], *, batch: bool = False) -> tuple[float | None, str | None]:
    """Return (cost, basis): the gateway's cost, else one from `prices`, else (None, None).

    From prices, every price that is set needs its count: a token price with no tokens reported
    leaves the cost unknown rather than too low. Image input tokens have a price of their own only
    when the usage splits them out (otherwise `input_mtok` covers all input tokens). A `batch` call
    costs the prices less `prices["batch_discount"]` (half by default); a gateway's cost is taken as is.
    """
    if usage.cost is not None:
        return usage.cost, "gateway"
    if not any(prices.get(name) is not None for name in PRICE_FIELDS):
        return None, None
    counts = {"call": 1, "image": usage.images or 0, "input_mtok": usage.input_tokens,
              "input_image_mtok": usage.input_image_tokens if usage.input_image_tokens is not None else 0,
              "output_mtok": usage.output_tokens}
    total = 0.0
    for name in PRICE_FIELDS:
        price = prices.get(name)
        if price is None:
            continue
        count = counts[name]
        if count is None:
            return None, None
        total += price * count / (MTOK if name.endswith("_mtok") else 1)
    if batch:
        total *= 1 - batch_discount(prices)
    return round(total, 10), "prices"


def batch_discount(prices: Mapping[str, Any]) -> float:
    """Return the share of the prices a batch call saves (`prices["batch_discount"]`, else the default)."""
    return prices.get("batch_discount", BATCH_DISCOUNT_DEFAULT)


def batch_prices(prices: Mapping[str, Any]) -> dict[str, Any]:
    """Return the prices a batch call is charged: each price less the batch discount (for estimates)."""
    share = 1 - batch_discount(prices)
    return {name: price * share if name in PRICE_FIELDS and price is not None else price
            for name, price in prices.items()}


class UsageReader:
    """Collect the usage an answer reports: `read(obj)` per payload, `header(headers)`, then `usage(images)`."""

    def __init__(self) -> None:
        self._fields: dict[str, Any] = {}
        self.seen = False

    def header(self, headers: Mapping[str, str]) -> None:
        """Take LiteLLM's cost header, when the answer has one."""
        cost = _money(headers.get(COST_HEADER))
        if cost is not None:
            self._set(cost=cost)

    def read(self, obj: Any) -> None:
        """Take the usage of one decoded payload, whatever its shape."""
        if not isinstance(obj, dict):
            return
        if obj.get("type") in _USAGE_EVENTS and isinstance(obj.get("response"), dict):
            obj = obj["response"]
        meta = obj.get("usageMetadata")
        if isinstance(meta, dict):
            self._gemini(meta)
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self._usage(usage)

    def usage(self, images: int | None = None) -> Usage:
        """Return what was read; `images` (the image references found) when the gateway did not count them."""
        fields = dict(self._fields)
        if fields.get("images") is None and images is not None:
            fields["images"] = images
        return Usage(**fields)

    def _usage(self, usage: dict) -> None:
        details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details")
        details = details if isinstance(details, dict) else {}
        total_in = _count(usage.get("input_tokens", usage.get("prompt_tokens")))
        text_in, image_in = _count(details.get("text_tokens")), _count(details.get("image_tokens"))
        if text_in is None and image_in is not None and total_in is not None:
            text_in = max(total_in - image_in, 0)
        self._set(input_tokens=text_in if text_in is not None else total_in, input_image_tokens=image_in,
                  output_tokens=_count(usage.get("output_tokens", usage.get("completion_tokens"))),
                  images=_count(usage.get("generated_images")), cost=_money(usage.get("cost")))

    def _gemini(self, meta: dict) -> None:
        text_in = image_in = None
        for entry in meta.get("promptTokensDetails") or []:
            if isinstance(entry, dict) and _count(entry.get("tokenCount")) is not None:
                modality = str(entry.get("modality") or "").upper()
                if modality == "IMAGE":
                    image_in = (image_in or 0) + entry["tokenCount"]
                else:
                    text_in = (text_in or 0) + entry["tokenCount"]
        total_in = _count(meta.get("promptTokenCount"))
        out = _count(meta.get("candidatesTokenCount"))
        thoughts = _count(meta.get("thoughtsTokenCount"))  # billed as output tokens
        if thoughts is not None:
            out = (out or 0) + thoughts
        if image_in is not None and text_in is None and total_in is not None:
            text_in = max(total_in - image_in, 0)
        self._set(input_tokens=text_in if text_in is not None else total_in, input_image_tokens=image_in,
                  output_tokens=out)

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            if value is not None:
                self._fields[name] = value
                self.seen = True


def _count(value: Any) -> int | None:
    """Return a token or image count, or None for anything that is not a whole number ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return int(value)


def _money(value: Any) -> float | None:
    """Return an amount of money ≥ 0 (a number, or a number in a string as headers carry it), or None."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)
