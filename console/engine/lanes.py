"""A run's keys: each with its own concurrency, cooldown and state; calls go to the least busy one.

A profile with a key pool has one lane per key: the profile's own key, then each pooled
key with its own API URL and concurrency. Each lane has its own throttle, so a 429 slows down
and cools only the key that got it, while the others go on. A key the upstream refuses (401) or
whose quota is gone is parked with the reason and takes no more calls; the task it was running
goes back to the queue for another key. The run pauses only when every key is parked.

A profile without a pool has one lane and behaves exactly as before pools existed: its 429s
hold back the whole run, its quota pauses it, its 401 fails the task.

Lives on the loop thread, next to the scheduler that owns it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from ..messages import Message, say, told
from ..profile import ApiProfile, pool_mask
from ..upstream import UpstreamError, is_key_refused, is_rate_limit
from .throttle import PAUSE, RETRY, Cooling, Limiter, Throttle

WAKE_S = 1.0  # a waiting dispatcher looks again at least this often (the wall clock may jump)


class Lane:
    """One key of a run: its profile (key and URL), concurrency, throttle and counts."""

    def __init__(self, number: int, profile: ApiProfile, clock: Callable[[], float]) -> None:
        self.number = number
        self.profile = profile
        self.limiter = Limiter(profile.concurrency)
        self.throttle = Throttle(self.limiter, profile.rate_limit_wait_s, clock=clock)
        self.calls = 0
        self.errors = 0
        self.parked: str = ""  # why this key takes no more calls (a Message); "" while it works

    @property
    def identity(self) -> tuple[str, str]:
        return self.profile.api_key, self.profile.api_url

    def free(self, now: float) -> bool:
        """True when a call may start on this key now."""
        return not self.parked and self.throttle.until <= now and self.limiter.used < self.limiter.limit

    def state(self, now: float) -> str:
        if self.parked:
            return "parked"
        return "cooling" if self.throttle.until > now or self.limiter.limit < self.throttle.target else "ready"

    def to_dict(self, now: float) -> dict[str, Any]:
        """What the page and the panel show of this key: masked, never the key itself."""
        state = self.state(now)
        return {"number": self.number, "key": pool_mask(self.profile.api_key) or say("engine.no_key"),
                "api_url": self.profile.api_url, "calls": self.calls, "errors": self.errors,
                "in_flight": self.limiter.used, "concurrency": self.limiter.limit, "target": self.throttle.target,
                "state": state, "until": self.throttle.until if state == "cooling" else None,
                "reason": self.parked or (self.throttle.reason if state == "cooling" else "")}


class Lanes:
    """The keys of one run and which one the next call uses."""

    def __init__(self, profile: ApiProfile, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._changed = asyncio.Event()
        self.lanes = [Lane(number, lane, clock) for number, lane in enumerate(profile.lanes(), start=1)]

    @property
    def pooled(self) -> bool:
        return len(self.lanes) > 1

    @property
    def throttle(self) -> Throttle:
        """The first key's throttle (the only one without a pool)."""
        return self.lanes[0].throttle

    def use_profile(self, profile: ApiProfile) -> None:
        """Follow a changed profile: keys kept keep their counts and state; new keys start fresh."""
        old = {lane.identity: lane for lane in self.lanes}
        lanes = []
        for number, own in enumerate(profile.lanes(), start=1):
            lane = old.pop((own.api_key, own.api_url), None) or Lane(number, own, self._clock)
            lane.number, lane.profile = number, own
            lane.throttle.set_target(own.concurrency, own.rate_limit_wait_s)
            lanes.append(lane)
        self.lanes = lanes
        self._wake()

    def reset(self) -> None:
        """A paused run is resumed: every key works again, at full concurrency."""
        for lane in self.lanes:
            lane.parked = ""
            lane.throttle.reset()
        self._wake()

    async def take(self) -> Lane | None:
        """Wait until a key may start a call, take one of its slots and return it; None if every key is parked.

        The least busy key wins (calls in flight over its concurrency), then the one with fewer calls,
        so calls spread evenly over equal keys.
        """
        while True:
            now = self._clock()
            if all(lane.parked for lane in self.lanes):
                return None
            free = [lane for lane in self.lanes if lane.free(now)]
            if free:
                lane = min(free, key=lambda lane: (lane.limiter.used / lane.limiter.limit, lane.calls))
                lane.limiter.used += 1
                lane.calls += 1
                return lane
            self._changed.clear()
            waits = [lane.throttle.until - now for lane in self.lanes if not lane.parked and lane.throttle.until > now]
            try:
                await asyncio.wait_for(self._changed.wait(), min([WAKE_S, *waits]))
            except TimeoutError:
                pass

    def release(self, lane: Lane) -> None:
        """A call on `lane` is over (its slot is free)."""
        lane.limiter.release()
        self._wake()

    def succeeded(self, lane: Lane) -> None:
        """A call on `lane` came through."""
        lane.throttle.succeeded()
        self._wake()

    def failed(self, lane: Lane, error: UpstreamError) -> str | None:
        """A call on `lane` failed for good; return what becomes of its task.

        RETRY (back to the queue), PAUSE (the run stops) or FAIL (the task fails for rate limits)
        when the keys decide; None when the error is the task's own and it fails as usual.
        """
        lane.errors += 1
        if is_rate_limit(error):
            verdict = lane.throttle.hit(error)
            if verdict == RETRY or not self.pooled:
                return verdict
            reason = lane.throttle.reason
            self._park(lane, say("engine.key_quota_used_up", reason=reason) if verdict == PAUSE else
                       say("engine.key_rate_limited", reason=reason, seconds=lane.throttle.max_wait_s))
        elif self.pooled and is_key_refused(error):
            verdict = PAUSE
            self._park(lane, say("engine.key_refused", error=told(error)))
        else:
            return None
        return RETRY if any(not other.parked for other in self.lanes) else verdict

    def pause_reason(self) -> Message:
        """Why the run paused itself, with what to do about it ("paused: …", the reason nested)."""
        if not self.pooled:
            return say("engine.paused", reason=say("engine.pause_quota", reason=self.throttle.reason))
        return say("engine.paused", reason=say("engine.pause_keys", keys=self.parked_keys()))

    def job_reason(self) -> Message:
        """Why a captioning job on these keys stopped early, with what to do about it."""
        if not self.pooled:
            return say("engine.job_stopped_early", reason=say("engine.job_quota", reason=self.throttle.reason))
        return say("engine.job_stopped_early", reason=say("engine.job_keys", keys=self.parked_keys()))

    def parked_keys(self) -> list[Message]:
        """Each parked key with why: "key 1 ••••CCCC: refused by the gateway: …"."""
        return [say("engine.parked_key", number=lane.number, key=pool_mask(lane.profile.api_key), reason=lane.parked)
                for lane in self.lanes if lane.parked]

    def cooling(self) -> Cooling | None:
        """What holds the whole run back: one key's cooldown, or for a pool every working key cooling at once."""
        if not self.pooled:
            return self.throttle.cooling()
        states = [lane.throttle.cooling() for lane in self.lanes if not lane.parked]
        if not states or any(state is None for state in states):
            return None
        latest = max(states, key=lambda state: state.until)
        return Cooling(min(state.until for state in states), latest.reason,
                       sum(state.concurrency for state in states), sum(state.target for state in states))

    def describe(self) -> list[dict[str, Any]]:
        """Every key as the page and the panel show it (masked)."""
        now = self._clock()
        return [lane.to_dict(now) for lane in self.lanes]

    def _park(self, lane: Lane, reason: Message) -> None:
        lane.parked = reason
        self._wake()

    def _wake(self) -> None:
        self._changed.set()

