"""The retry policy for upstream calls: what is retried and how long to wait (DESIGN §4)."""

from __future__ import annotations

import email.utils
import random
import time

from .errors import UpstreamError

BACKOFF_BASE_S = 1.0  # first wait; doubles with every retry
BACKOFF_CAP_S = 30.0  # longest computed wait
JITTER = 0.25  # each wait is shortened by up to this fraction, so retries spread out
RETRY_AFTER_CAP_S = 120.0  # a server asking for longer than this gets this


def should_retry(error: UpstreamError, retries_done: int, max_retries: int) -> bool:
    """Return True when `error` is transient and retries are left."""
    return retries_done < max_retries and bool(error.retryable)


def delay_s(retries_done: int, retry_after: float | None = None, rand: random.Random | None = None) -> float:
    """Return how long to wait before the next attempt (Retry-After wins, up to its cap)."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, RETRY_AFTER_CAP_S)
    base = min(BACKOFF_BASE_S * (2**retries_done), BACKOFF_CAP_S)
    return base * (1 - JITTER * (rand or random).random())


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return the wait a Retry-After header asks for in seconds (delta or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
