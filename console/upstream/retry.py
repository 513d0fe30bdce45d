"""The retry policy of upstream calls and downloads, and the one loop that applies it.

Every retry decision lives here: what is retried (`is_retryable`), how often (`max_retries` of
the profile for calls, `DOWNLOAD_RETRIES` for result downloads) and how long to wait (`delay_s`).
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any, Awaitable, Callable, TypeVar

from .errors import CooldownError, StatusError, StreamError, TransportError, UpstreamError

# What is retried: conflicts, throttling, timeouts and server errors are transient.
RETRY_STATUSES = frozenset({408, 409, 425, 429})  # plus every status >= 500
# Machine-readable type/code words of an in-stream error that mean "try again later"
# (`rate_limit_error`, `upstream_error`, `server_error`, ...); the human message is never
# pattern-matched, it may be in any language.
TRANSIENT_STREAM_WORDS = ("rate_limit", "server", "upstream", "timeout", "overloaded", "interrupted", "unavailable")
# Connection failures, resets and timeouts (TransportError and TimeoutError_) are always transient.

DOWNLOAD_RETRIES = 2  # retries of one result download
BACKOFF_BASE_S = 1.0  # first wait; doubles with every retry
BACKOFF_CAP_S = 30.0  # longest computed wait
JITTER = 0.25  # each wait is shortened by up to this fraction, so retries spread out
RETRY_AFTER_CAP_S = 120.0  # a server asking for longer than this gets this

T = TypeVar("T")
OnFailure = Callable[[UpstreamError, int, "float | None"], Any]


# Words in an error's type or code that name a rate limit or a cooldown (`rate_limit_exceeded`,
# grok2api's `upstream_cooling`), and an exhausted quota or bill: waiting a little does not help
# those, the run stops instead.
RATE_LIMIT_WORDS = ("rate_limit", "cooling", "too_many_requests")
QUOTA_WORDS = ("quota", "billing", "insufficient_balance")


def is_rate_limit(error: UpstreamError) -> bool:
    """Return True when the upstream refused the call for its rate, not for what was asked."""
    if isinstance(error, StatusError) and error.http_status == 429:
        return True
    words = f"{error.kind} {error.code}".lower()
    return isinstance(error, (StatusError, StreamError)) and any(word in words for word in RATE_LIMIT_WORDS + QUOTA_WORDS)


def is_quota(error: UpstreamError) -> bool:
    """Return True when the account's quota or balance is used up (OpenAI insufficient_quota, grok2api
    upstream_quota_exhausted, billing_limit_exceeded)."""
    words = f"{error.kind} {error.code}".lower()
    return any(word in words for word in QUOTA_WORDS)


def is_key_refused(error: UpstreamError) -> bool:
    """Return True when the upstream refused the key itself (401, or an `invalid_api_key` code): a key
    pool parks that key and the task goes to another one."""
    if isinstance(error, StatusError) and error.http_status == 401:
        return True
    return "invalid_api_key" in f"{error.kind} {error.code}".lower()


def is_retryable(error: UpstreamError) -> bool:
    """Return True when `error` is transient: trying again may succeed."""
    if isinstance(error, CooldownError):
        return is_retryable(error.cause)  # a router's refusal after a failure is retried as that failure
    if is_quota(error):
        return False
    if error.not_submitted:
        return True  # nothing reached the provider: a retry is free (grok2api upstream_not_submitted)
    if isinstance(error, StatusError):
        status = error.http_status or 0
        return status in RETRY_STATUSES or status >= 500
    if isinstance(error, StreamError):
        words = f"{error.kind} {error.code}".lower()
        return any(word in words for word in TRANSIENT_STREAM_WORDS)
    return isinstance(error, TransportError)


def should_retry(error: UpstreamError, retries_done: int, max_retries: int) -> bool:
    """Return True when `error` is transient and retries are left."""
    return retries_done < max_retries and is_retryable(error)


def backoff_s(streak: int) -> float:
    """Return the wait after `streak` failures in a row when the server named none (jittered, capped)."""
    return delay_s(streak)


def delay_s(retries_done: int, retry_after: float | None = None, rand: random.Random | None = None) -> float:
    """Return how long to wait before the next attempt (Retry-After wins, up to its cap)."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, RETRY_AFTER_CAP_S)
    base = min(BACKOFF_BASE_S * (2**retries_done), BACKOFF_CAP_S)
    return base * (1 - JITTER * (rand or random).random())


async def retrying(
    once: Callable[[int], Awaitable[T]],
    max_retries: int,
    sleep: Callable[[float], Awaitable[Any]],
    on_failure: OnFailure | None = None,
    *,
    rate_limits: bool = True,
) -> T:
    """Await `once(attempt)` (attempt = 1, 2, …) until it succeeds or fails for good.

    `on_failure(error, attempt, wait)` hears of every failed attempt; `wait` is None when the
    loop gives up, after which the error is raised with `attempts` set. With `rate_limits`
    False a rate-limit error is raised at once, for a caller that slows down a whole run.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await once(attempt)
        except UpstreamError as exc:
            retry = should_retry(exc, attempt - 1, max_retries) and (rate_limits or not is_rate_limit(exc))
            wait = delay_s(attempt - 1, exc.retry_after) if retry else None
            if on_failure:
                on_failure(exc, attempt, wait)
            if wait is None:
                exc.attempts = attempt
                raise
            await sleep(wait)


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
