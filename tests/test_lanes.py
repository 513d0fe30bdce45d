"""A run's keys (engine/lanes.py): which key the next call takes, cooldowns, parking and what the page sees."""

from __future__ import annotations

import asyncio

from console.engine.lanes import Lanes
from console.engine.throttle import FAIL, PAUSE, RETRY
from console.profile import ApiProfile
from console.upstream import StatusError

LONG_KEY = "sk-live-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool(*keys: dict | str, concurrency: int = 4, **fields) -> ApiProfile:
    return ApiProfile.from_dict({"api_url": "http://gw/v1", "api_key": "sk-one", "model": "m",
                                 "concurrency": concurrency, "key_pool": list(keys), **fields})


def take_all(lanes: Lanes, count: int) -> list:
    async def go() -> list:
        return [await asyncio.wait_for(lanes.take(), 1) for _ in range(count)]
    return asyncio.run(go())


def error(status: int, code: str = "", retry_after: float | None = None) -> StatusError:
    failure = StatusError(f"HTTP {status}: no", http_status=status, code=code)
    failure.retry_after = retry_after
    return failure


def test_calls_spread_over_equal_keys_and_each_key_keeps_its_own_concurrency():
    lanes = Lanes(pool("sk-two", {"api_key": "sk-three", "concurrency": 1}, concurrency=3))
    taken = take_all(lanes, 7)
    assert [lane.number for lane in taken] == [1, 2, 3, 1, 2, 1, 2]
    assert [(lane.limiter.used, lane.calls) for lane in lanes.lanes] == [(3, 3), (3, 3), (1, 1)]
    lanes.release(taken[0])
    assert take_all(lanes, 1)[0].number == 1  # the only key with a free slot


def test_without_a_pool_there_is_one_key_and_nothing_to_show():
    lanes = Lanes(ApiProfile.from_dict({"api_key": "sk-one", "concurrency": 2}))
    assert not lanes.pooled and len(lanes.lanes) == 1
    assert lanes.failed(lanes.lanes[0], error(401)) is None  # a lone key's 401 fails its task, as before pools


def test_a_key_answering_401_is_parked_and_the_task_goes_to_another_key():
    lanes = Lanes(pool("sk-two"))
    one, two = lanes.lanes
    assert lanes.failed(two, error(401)) == RETRY
    assert two.parked == "refused by the gateway: HTTP 401: no" and two.errors == 1
    assert [lane.number for lane in take_all(lanes, 3)] == [1, 1, 1]
    assert lanes.failed(one, StatusError("HTTP 400: bad", http_status=400)) is None  # the task's own fault
    assert lanes.failed(one, error(401)) == PAUSE
    assert take_all(lanes, 1) == [None]  # every key parked
    assert lanes.pause_reason() == ("paused: every key is parked (key 1 ••••••••: refused by the gateway: HTTP 401: no; "
                                    "key 2 ••••••••: refused by the gateway: HTTP 401: no); fix or replace the keys, "
                                    "or wait for the quota, then resume")
    lanes.reset()
    assert not one.parked and not two.parked


def test_a_rate_limited_key_cools_alone_while_the_others_go_on():
    clock = Clock()
    lanes = Lanes(pool("sk-two", concurrency=4), clock=clock)
    one, two = lanes.lanes
    assert lanes.failed(two, error(429, "upstream_cooling", retry_after=30)) == RETRY
    assert two.limiter.limit == 2 and not two.free(clock.now)
    assert [lane.number for lane in take_all(lanes, 4)] == [1, 1, 1, 1]
    described = lanes.describe()[1]
    assert described["state"] == "cooling" and described["until"] == clock.now + 30
    assert described["reason"] == "429 from the gateway (upstream_cooling)"
    assert lanes.cooling() is None  # the run as a whole is not held back
    clock.now += 31
    lanes.release(one)
    assert take_all(lanes, 1)[0].number == 2


def test_a_waiting_call_takes_the_first_key_whose_cooldown_ends():
    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        lanes = Lanes(pool("sk-two", concurrency=1), clock=loop.time)
        for lane in lanes.lanes:
            lanes.failed(lane, error(429, "upstream_cooling", retry_after=0.2 if lane.number == 2 else 5))
        assert lanes.cooling() is not None  # every key cools: the run is held back
        started = loop.time()
        lane = await asyncio.wait_for(lanes.take(), 2)
        assert loop.time() - started >= 0.15
        return lane.number

    assert asyncio.run(scenario()) == 2


def test_a_spent_key_is_parked_and_the_run_pauses_when_the_last_one_is():
    lanes = Lanes(pool("sk-two"))
    one, two = lanes.lanes
    assert lanes.failed(one, error(429, "upstream_quota_exhausted", retry_after=3600)) == RETRY
    assert one.parked == "429 from the gateway (upstream_quota_exhausted): quota used up"
    assert lanes.failed(two, error(429, "upstream_quota_exhausted", retry_after=3600)) == PAUSE


def test_a_key_held_back_past_the_patience_is_parked_and_the_last_one_fails_its_task():
    clock = Clock()
    lanes = Lanes(pool("sk-two", rate_limit_wait_s=10), clock=clock)
    one, two = lanes.lanes
    assert lanes.failed(two, error(429, retry_after=1)) == RETRY
    clock.now += 11
    assert lanes.failed(two, error(429, retry_after=1)) == RETRY
    assert two.parked == "429 from the gateway: rate limited for over 10s"
    lanes.failed(one, error(429, retry_after=1))
    clock.now += 11
    assert lanes.failed(one, error(429, retry_after=1)) == FAIL


def test_a_changed_profile_keeps_the_counts_of_the_keys_it_keeps():
    lanes = Lanes(pool("sk-two", "sk-three"))
    take_all(lanes, 3)
    lanes.failed(lanes.lanes[2], error(401))
    lanes.use_profile(pool("sk-three", {"api_key": "sk-four", "concurrency": 2}))
    assert [(lane.number, lane.profile.api_key, lane.calls, bool(lane.parked)) for lane in lanes.lanes] == [
        (1, "sk-one", 1, False), (2, "sk-three", 1, True), (3, "sk-four", 0, False)]
    assert lanes.lanes[2].limiter.limit == 2


def test_the_page_sees_keys_masked_with_a_hint_only_for_long_keys():
    lanes = Lanes(pool(LONG_KEY, {"api_key": "sk-short", "api_url": "http://other/v1", "concurrency": 1}))
    shown = lanes.describe()
    assert [(key["number"], key["key"], key["api_url"], key["concurrency"], key["state"]) for key in shown] == [
        (1, "••••••••", "http://gw/v1", 4, "ready"), (2, "••••••••cdef", "http://gw/v1", 4, "ready"),
        (3, "••••••••", "http://other/v1", 1, "ready")]
    assert "sk-" not in repr(shown)
