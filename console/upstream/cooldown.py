"""Tell a gateway router's cooldown from a rate limit: a 429 that only echoes the deployment's last failure.

A router such as LiteLLM's puts a deployment whose call failed in cooldown for a few seconds
(`cooldown_time`, 5 s by default) and refuses every call to it meanwhile with a 429 "No deployments
available for selected model, Try again in N seconds" and no Retry-After. Taken as a rate limit,
that 429 would hold the run back for as long as the profile's `rate_limit_wait_s` allows while the
real error, a 500 of the deployment behind it, is never shown. So each deployment the client calls
(its endpoint, model and key) remembers its last failure that was not a rate limit, until a call gets
through: a 429 whose message names a router's cooldown, without a Retry-After, within
`FAILURE_MEMORY_S` of that failure (or the cooldown it names, if longer) is a `CooldownError`
standing for that failure. It counts as one more attempt of it, is retried as it would be (after the
cooldown the router named) and, once the retries are spent, fails the task with that failure's
message. Any other 429 (with a Retry-After, not naming a cooldown, such as OpenAI's "Rate limit
reached", or after a success) is a rate limit as before.

The router's message is English text with no code to read (its type and param are "None"), so
here, and only here, the human message is matched.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from typing import Callable

from .errors import CooldownError, StatusError, StreamError, TransportError, UpstreamError
from .retry import is_rate_limit

COOLDOWN_WORDS = ("no deployments available", "cooldown")  # LiteLLM's RouterRateLimitError, lower case
FAILURE_MEMORY_S = 60.0  # a cooldown refusal this long after a failure still stands for it
MAX_DEPLOYMENTS = 256  # deployments remembered per client; the least recently used is forgotten
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


def is_cooldown_refusal(error: UpstreamError) -> bool:
    """Return True for a router's cooldown 429: it names a cooldown and asks for no particular wait."""
    if not isinstance(error, StatusError) or error.http_status != 429 or error.retry_after is not None:
        return False
    text = error.message.lower()
    return any(word in text for word in COOLDOWN_WORDS)


def named_cooldown_s(error: UpstreamError) -> float | None:
    """Return the cooldown the router's message names ("Try again in 5 seconds"), or None."""
    found = _TRY_AGAIN.search(error.message)
    return float(found.group(1)) if found else None


class Deployment:
    """One deployment's last failure that was not a rate limit, forgotten once a call gets through."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failure: UpstreamError | None = None
        self._at = 0.0

    def failed(self, error: UpstreamError) -> None:
        """Remember a failure of the deployment itself (a status, an in-stream error, a broken connection)."""
        if isinstance(error, CooldownError) or not isinstance(error, (StatusError, StreamError, TransportError)):
            return
        if is_cooldown_refusal(error) or is_rate_limit(error):
            return
        self._failure, self._at = error, self._clock()

    def succeeded(self) -> None:
        """A call got through: later refusals are not echoes of an older failure."""
        self._failure = None

    def explain(self, error: UpstreamError) -> UpstreamError:
        """Return `error`, or the CooldownError it stands for when it is a cooldown refusal echoing a failure."""
        if self._failure is None or not is_cooldown_refusal(error):
            return error
        named = named_cooldown_s(error)
        if self._clock() - self._at > max(FAILURE_MEMORY_S, named or 0.0):
            return error
        return CooldownError(self._failure, error, named)


class Deployments:
    """The deployments one client has called, by endpoint URL, model and key.

    The key is part of it so that a failure's message, which a gateway may have filled with what it
    was sent, is only ever shown again on a call made with the same key.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._known: OrderedDict[tuple[str, str, str], Deployment] = OrderedDict()

    def get(self, url: str, model: str, api_key: str) -> Deployment:
        """Return the deployment behind this endpoint, model and key (a new one the first time)."""
        key = (url, model, api_key)
        deployment = self._known.pop(key, None) or Deployment(self._clock)
        self._known[key] = deployment
        while len(self._known) > MAX_DEPLOYMENTS:
            self._known.popitem(last=False)
        return deployment

