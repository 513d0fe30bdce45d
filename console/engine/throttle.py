"""One key's answer to rate limits: fewer calls at once, a pause when the gateway asks, a stop on quota.

Each key of a run (the profile's own, and each of its key pool: `lanes.py`) has a throttle and
the adjustable `Limiter` it turns. A 429 (or an in-stream rate-limit error) does not fail its
task: the task goes back to the front of the queue, the key's concurrency halves, and no new
call starts on it before the gateway's `Retry-After` (or a backoff) has passed. Calls that
succeed raise the concurrency again, one step per `limit` successes, up to the key's own
setting. A task fails for rate limits only when the key has been held back for longer than the
profile's `rate_limit_wait_s` without a single success; an exhausted quota (or a wait longer
than that) stops the run with its reason (a pooled key is parked instead), so the rest of the
batch is not burnt and a resume picks it up.

A gateway router's cooldown 429 that only echoes a failure of the same deployment (LiteLLM's "No
deployments available") never reaches a throttle: the upstream client counts it as one more attempt
of that failure and the task fails with it once its retries are spent (`console.upstream.cooldown`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..messages import Message, say
from ..upstream import UpstreamError, backoff_s, is_quota

RETRY = "retry"  # back to the queue
PAUSE = "pause"  # stop the run: quota exhausted or a wait too long to sit out
FAIL = "fail"  # held back for longer than allowed: the task fails


class Limiter:
    """A counting semaphore whose limit can change while it is in use."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[asyncio.Future] = deque()

    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        while self.used >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.used += 1

    def release(self) -> None:
        """Give a slot back."""
        self.used -= 1
        self._wake()

    def set_limit(self, limit: int) -> None:
        """Change the limit; a larger one starts waiting work at once."""
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


@dataclass(frozen=True)
class Cooling:
    """What the page and the panel show while a run is held back."""

    until: float  # wall clock; no new call before
    reason: str
    concurrency: int  # the limit now
    target: int  # the run's own setting

    def to_dict(self) -> dict[str, object]:
        return {"until": self.until, "reason": self.reason, "concurrency": self.concurrency, "target": self.target}


class Throttle:
    """One run's rate-limit state; lives on the loop thread next to its limiter."""

    def __init__(self, limiter: Limiter, max_wait_s: float, clock: Callable[[], float] = time.time) -> None:
        self.limiter = limiter
        self.target = limiter.limit
        self.max_wait_s = max_wait_s
        self._clock = clock
        self.until = 0.0
        self.reason = ""
        self._since: float | None = None  # first rate limit since the last success
        self._streak = 0  # rate limits since the last success
        self._successes = 0

    def set_target(self, limit: int, max_wait_s: float) -> None:
        """The run's concurrency setting (and allowed wait) changed: follow it, lower if cooling."""
        self.target, self.max_wait_s = limit, max_wait_s
        self.limiter.set_limit(min(limit, self.limiter.limit) if self._streak else limit)

    def reset(self) -> None:
        """Forget the rate limits seen so far (a paused run resumed): full concurrency, no wait."""
        self.until, self.reason = 0.0, ""
        self._since, self._streak, self._successes = None, 0, 0
        self.limiter.set_limit(self.target)

    def hit(self, error: UpstreamError) -> str:
        """A call was rate limited: hold the run back; return RETRY, PAUSE or FAIL for its task."""
        now = self._clock()
        wait = error.retry_after if error.retry_after is not None else backoff_s(self._streak)
        self.reason = _reason(error)
        if is_quota(error) or wait > self.max_wait_s:
            return PAUSE
        if self._since is None:
            self._since = now
        self._streak += 1
        self._successes = 0
        self.until = max(self.until, now + wait)
        self.limiter.set_limit(max(1, self.limiter.limit // 2))
        if now - self._since > self.max_wait_s:
            return FAIL
        return RETRY

    def succeeded(self) -> None:
        """A call came through: the wait is over; climb back towards the run's setting."""
        self._since, self._streak = None, 0
        if self.limiter.limit >= self.target:
            return
        self._successes += 1
        if self._successes >= self.limiter.limit:
            self._successes = 0
            self.limiter.set_limit(self.limiter.limit + 1)

    def cooling(self) -> Cooling | None:
        """What to show while the run is paused or slowed down; None when it runs freely."""
        if self.until <= self._clock() and self.limiter.limit >= self.target:
            return None
        return Cooling(self.until, self.reason, self.limiter.limit, self.target)


def _reason(error: UpstreamError) -> Message:
    """Say what held the key back: "429 from the gateway (upstream_cooling)"."""
    if error.http_status:
        if error.code:
            return say("engine.throttle_status_code", status=error.http_status, error_code=error.code)
        return say("engine.throttle_status", status=error.http_status)
    if error.code:
        return say("engine.throttle_rate_limit_code", error_code=error.code)
    return say("engine.throttle_rate_limit")
