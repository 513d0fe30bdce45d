"""A run's throttle on its own: halving on 429, climbing back, pausing on quota, giving up."""

from __future__ import annotations


from console.engine.scheduler import Limiter
from console.engine.throttle import FAIL, PAUSE, RETRY, Throttle
from console.upstream import StatusError, StreamError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def too_many(retry_after: float | None = None, code: str = "upstream_cooling") -> StatusError:
    return StatusError("HTTP 429: cooling", http_status=429, retry_after=retry_after, kind="rate_limit_error", code=code)


def test_a_429_halves_the_concurrency_and_pauses_new_calls_until_retry_after():
    clock, limiter = Clock(), Limiter(16)
    throttle = Throttle(limiter, max_wait_s=600, clock=clock)
    assert throttle.hit(too_many(retry_after=30)) == RETRY
    assert limiter.limit == 8 and throttle.until == clock.now + 30
    cooling = throttle.cooling()
    assert cooling.reason == "429 from the gateway (upstream_cooling)" and (cooling.concurrency, cooling.target) == (8, 16)
    assert throttle.hit(too_many()) == RETRY and limiter.limit == 4  # no Retry-After: a backoff
    clock.now += 31
    for _ in range(4 + 5 + 6 + 7):  # one step up per `limit` successes
        throttle.succeeded()
    assert limiter.limit == 8
    for _ in range(sum(range(8, 16))):
        throttle.succeeded()
    assert limiter.limit == 16 and throttle.cooling() is None


def test_never_below_one_call_at_a_time():
    limiter = Limiter(2)
    throttle = Throttle(limiter, max_wait_s=600, clock=Clock())
    for _ in range(5):
        throttle.hit(too_many(retry_after=0))
    assert limiter.limit == 1


def test_quota_or_a_wait_longer_than_allowed_pauses_the_run():
    throttle = Throttle(Limiter(4), max_wait_s=600, clock=Clock())
    assert throttle.hit(too_many(retry_after=3600, code="upstream_quota_exhausted")) == PAUSE
    assert throttle.hit(too_many(retry_after=601)) == PAUSE
    assert throttle.hit(StreamError("out of credit", kind="insufficient_quota")) == PAUSE


def test_held_back_longer_than_allowed_without_a_success_fails_the_task():
    clock = Clock()
    throttle = Throttle(Limiter(4), max_wait_s=60, clock=clock)
    assert throttle.hit(too_many(retry_after=10)) == RETRY
    clock.now += 50
    assert throttle.hit(too_many(retry_after=10)) == RETRY
    throttle.succeeded()  # one call got through: the clock starts again
    clock.now += 50
    assert throttle.hit(too_many(retry_after=10)) == RETRY
    clock.now += 61
    assert throttle.hit(too_many(retry_after=10)) == FAIL


def test_a_new_concurrency_setting_is_followed_but_not_above_the_cooled_limit():
    limiter = Limiter(8)
    throttle = Throttle(limiter, max_wait_s=600, clock=Clock())
    throttle.set_target(12, 600)
    assert limiter.limit == 12
    throttle.hit(too_many(retry_after=1))
    throttle.set_target(20, 600)
    assert limiter.limit == 6 and throttle.target == 20

