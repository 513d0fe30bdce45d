"""*Test connection*: list the upstream's models with a profile, with every key of its pool at once."""

from __future__ import annotations

import asyncio
from typing import Any

from ..messages import say, told
from ..profile import ApiProfile, pool_mask
from ..upstream import UpstreamClient, UpstreamError


async def try_keys(client: UpstreamClient, profile: ApiProfile) -> dict[str, Any]:
    """Return how listing the models went, with `keys` saying how each key of a pool fared (masked)."""
    lanes = profile.lanes()
    answers = await asyncio.gather(*(_models(client, lane) for lane in lanes))
    first = next((answer for answer in answers if answer["ok"]), answers[0])
    if len(lanes) == 1:
        return first
    keys = [{"number": number, "key": pool_mask(lane.api_key) or say("engine.no_key"), "ok": answer["ok"],
             "http_status": answer["http_status"], "error": answer["error"]}
            for number, (lane, answer) in enumerate(zip(lanes, answers), start=1)]
    return {**first, "ok": all(answer["ok"] for answer in answers), "keys": keys}


async def _models(client: UpstreamClient, profile: ApiProfile) -> dict[str, Any]:
    try:
        status, models = await client.models(profile)
    except UpstreamError as exc:
        return {"ok": False, "http_status": exc.http_status, "models": [], "error": told(exc)}
    return {"ok": True, "http_status": status, "models": models, "error": None}
