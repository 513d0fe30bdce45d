"""The one retry policy and loop shared by upstream calls and result downloads."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from console.netguard import UrlPolicy
from console.upstream.debuglog import DebugLog
from console.upstream.cooldown import MAX_DEPLOYMENTS, Deployment, Deployments
from console.upstream.errors import (BlockedURLError, CooldownError, ProfileProblem, ResponseError, StatusError,
                                     StreamError, TimeoutError_, TooLargeError, TransportError, UpstreamError)
from console.upstream.fetch import Downloader
from console.upstream.retry import (BACKOFF_BASE_S, BACKOFF_CAP_S, DOWNLOAD_RETRIES, JITTER, RETRY_AFTER_CAP_S,
                                    delay_s, is_rate_limit, is_retryable, parse_retry_after, retrying, should_retry)
from testkit.images import JPEG


class Sleeps(list):
    """Record the waits asked for instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


# -- what is retried -----------------------------------------------------------------------------

@pytest.mark.parametrize("status, retried", [(400, False), (401, False), (403, False), (404, False), (413, False),
                                             (422, False), (408, True), (409, True), (425, True), (429, True),
                                             (500, True), (502, True), (503, True), (504, True), (None, False)])
def test_statuses(status, retried):
    assert is_retryable(StatusError("x", http_status=status)) is retried


@pytest.mark.parametrize("kind, code, retried", [
    ("rate_limit_error", "rate_limit_exceeded", True), ("server_error", "", True), ("", "upstream_error", True),
    ("", "upstream_stream_interrupted", True), ("overloaded_error", "", True), ("", "service_unavailable", True),
    ("invalid_request_error", "", False), ("", "content_policy_violation", False), ("", "", False),
])
def test_in_stream_errors_by_their_type_and_code_words(kind, code, retried):
    assert is_retryable(StreamError("a message in any language", kind=kind, code=code)) is retried


@pytest.mark.parametrize("error, retried", [
    (TransportError("reset"), True), (TimeoutError_("read timeout"), True), (ResponseError("no image"), False),
    (TooLargeError("cap"), False), (BlockedURLError("private"), False), (ProfileProblem("no model"), False),
    (UpstreamError("other"), False),
])
def test_other_errors(error, retried):
    assert is_retryable(error) is retried


def test_should_retry_counts_retries_left():
    error = TransportError("reset")
    assert should_retry(error, 0, 2) and should_retry(error, 1, 2) and not should_retry(error, 2, 2)
    assert not should_retry(error, 0, 0)


# -- how long to wait ----------------------------------------------------------------------------

def test_backoff_doubles_up_to_the_cap_with_jitter_that_only_shortens():
    for retries_done in range(8):
        full = min(BACKOFF_BASE_S * 2**retries_done, BACKOFF_CAP_S)
        waits = [delay_s(retries_done, rand=random.Random(seed)) for seed in range(50)]
        assert all(full * (1 - JITTER) <= wait <= full for wait in waits)
    assert delay_s(20) <= BACKOFF_CAP_S


def test_retry_after_wins_up_to_its_cap():
    assert delay_s(5, 3.0) == 3.0
    assert delay_s(0, 0.0) == 0.0
    assert delay_s(0, 10_000.0) == RETRY_AFTER_CAP_S


@pytest.mark.parametrize("value, expected", [("3", 3.0), (" 1.5 ", 1.5), ("-4", 0.0), ("", None), (None, None),
                                             ("soon", None), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0)])
def test_parse_retry_after(value, expected):
    now = 1445412480.0  # 2015-10-21 07:28:00 GMT
    assert parse_retry_after(value, now=now) == expected


# -- the loop ----------------------------------------------------------------------------------

def run_loop(failures: list[UpstreamError], max_retries: int):
    """Run `retrying` over an attempt that raises `failures` in turn, then succeeds."""
    sleeps, heard, seen = Sleeps(), [], []

    async def once(attempt: int) -> str:
        seen.append(attempt)
        if attempt <= len(failures):
            raise failures[attempt - 1]
        return f"ok after {attempt}"

    def on_failure(error, attempt, wait):
        heard.append((type(error).__name__, attempt, wait is not None))

    outcome = asyncio.run(retrying(once, max_retries, sleeps, on_failure))
    return outcome, sleeps, heard, seen


def test_the_loop_retries_transient_failures_then_returns():
    outcome, sleeps, heard, seen = run_loop([TransportError("reset"), StatusError("x", http_status=429,
                                                                                   retry_after=2.0)], 2)
    assert outcome == "ok after 3" and seen == [1, 2, 3] and sleeps[1] == 2.0 and len(sleeps) == 2
    assert heard == [("TransportError", 1, True), ("StatusError", 2, True)]


def test_the_loop_gives_up_with_the_attempt_count():
    failures = [StatusError("x", http_status=502) for _ in range(5)]
    with pytest.raises(StatusError) as caught:
        run_loop(failures, 2)
    assert caught.value is failures[2] and caught.value.attempts == 3


def test_the_loop_does_not_retry_a_permanent_failure():
    with pytest.raises(StatusError) as caught:
        run_loop([StatusError("x", http_status=401)], 5)
    assert caught.value.attempts == 1


def test_the_loop_lets_other_exceptions_through_at_once():
    calls = []

    async def once(attempt: int) -> None:
        calls.append(attempt)
        raise KeyError("a bug, not an upstream failure")

    with pytest.raises(KeyError):
        asyncio.run(retrying(once, 3, Sleeps()))
    assert calls == [1]


# -- downloads use the same loop -------------------------------------------------------------------

def download(statuses: list[int]) -> tuple[bytes | UpstreamError, Sleeps, list[str], DebugLog]:
    """Download through an in-process transport that answers `statuses` in turn (then 200)."""
    requests: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        status = statuses[len(requests) - 1] if len(requests) <= len(statuses) else 200
        return httpx.Response(status, content=JPEG if status == 200 else b"busy", headers={"content-type": "image/jpeg"})

    async def go() -> bytes | UpstreamError:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            policy = UrlPolicy("download URL", allow_private=True)
            downloader = Downloader(http, policy, 1 << 20, 5.0, debug, sleeps)
            try:
                return await downloader.get("http://127.0.0.1:9/files/a.jpg")
            except UpstreamError as exc:
                return exc

    sleeps, debug = Sleeps(), DebugLog()
    return asyncio.run(go()), sleeps, requests, debug


def test_a_download_retries_a_transient_status():
    body, sleeps, requests, debug = download([502, 503])
    assert body == JPEG and len(requests) == 3 and len(sleeps) == 2
    assert "download failed (HTTP 502 downloading http://127.0.0.1:9/files/a.jpg); retrying in" in debug.text()


def test_a_download_gives_up_after_its_retries():
    error, sleeps, requests, _ = download([502] * 10)
    assert isinstance(error, StatusError) and error.http_status == 502
    assert len(requests) == DOWNLOAD_RETRIES + 1 and len(sleeps) == DOWNLOAD_RETRIES


def test_a_download_is_not_retried_after_a_permanent_status():
    error, sleeps, requests, _ = download([404])
    assert isinstance(error, StatusError) and len(requests) == 1 and sleeps == []


# -- a router's cooldown after a failure (LiteLLM) ------------------------------------------------

COOLDOWN_TEXT = ("HTTP 429: No deployments available for selected model, Try again in 5 seconds. Passed model=m. "
                 "pre-call-checks=False, cooldown_list=['7f4c']")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refusal(text: str = COOLDOWN_TEXT, retry_after: float | None = None) -> StatusError:
    return StatusError(text, http_status=429, retry_after=retry_after)


def test_a_cooldown_refusal_after_a_failure_stands_for_that_failure():
    clock = Clock()
    deployment = Deployment(clock)
    failure = StatusError("HTTP 500: the deployment is broken", http_status=500, kind="None", code="500")
    deployment.failed(failure)
    clock.now += 3
    explained = deployment.explain(refusal())
    assert isinstance(explained, CooldownError) and explained.cause is failure
    assert str(explained).startswith("HTTP 500: the deployment is broken (then the gateway's router held this "
                                     "deployment in cooldown: HTTP 429: No deployments available")
    assert explained.http_status == 500 and explained.retry_after == 5.0
    assert not is_rate_limit(explained) and is_retryable(explained)
    assert delay_s(0, explained.retry_after) == 5.0  # the next attempt waits out the named cooldown
    deployment.failed(explained)  # an echo does not restart the memory
    clock.now += 56  # 59 s after the failure
    assert isinstance(deployment.explain(refusal()), CooldownError)
    clock.now += 1.5  # 60.5 s: too long ago to be what the router is cooling down from
    assert not isinstance(deployment.explain(refusal()), CooldownError)


@pytest.mark.parametrize("before, later", [
    (None, refusal()),  # no failure before it
    (StatusError("HTTP 500: broken", http_status=500), refusal(retry_after=3)),  # the gateway named its wait
    (StatusError("HTTP 500: broken", http_status=500),
     refusal("HTTP 429: Rate limit reached for gpt-image-1 in organization org-x on images per minute")),
    (StatusError("HTTP 429: Rate limit reached", http_status=429), refusal()),  # it follows a rate limit
    (StatusError("HTTP 429: quota", http_status=503, code="insufficient_quota"), refusal()),
    (ResponseError("no image in the answer"), refusal()),  # the deployment answered
])
def test_a_true_rate_limit_stays_a_rate_limit(before, later):
    deployment = Deployment(Clock())
    if before is not None:
        deployment.failed(before)
    assert deployment.explain(later) is later and is_rate_limit(later)


def test_a_success_forgets_the_failure_and_a_longer_named_cooldown_is_remembered_longer():
    clock = Clock()
    deployment = Deployment(clock)
    deployment.failed(TransportError("connection reset"))
    deployment.succeeded()
    assert deployment.explain(refusal()).__class__ is StatusError
    deployment.failed(TimeoutError_("read timeout after 120s"))
    clock.now += 200
    long = refusal(COOLDOWN_TEXT.replace("5 seconds", "300 seconds"))
    assert isinstance(deployment.explain(long), CooldownError) and deployment.explain(long).retry_after == 300
    assert not isinstance(deployment.explain(refusal()), CooldownError)  # 5 s named: the 60 s memory is over


def test_each_deployment_has_its_own_memory_and_old_ones_are_forgotten():
    known = Deployments(Clock())
    first = known.get("http://gw/v1/chat/completions", "m", "sk-a")
    first.failed(StatusError("HTTP 502: bad gateway", http_status=502))
    assert known.get("http://gw/v1/chat/completions", "m", "sk-a") is first
    assert not isinstance(known.get("http://gw/v1/chat/completions", "m", "sk-b").explain(refusal()), CooldownError)
    assert not isinstance(known.get("http://gw/v1/chat/completions", "n", "sk-a").explain(refusal()), CooldownError)
    for number in range(MAX_DEPLOYMENTS):
        known.get(f"http://gw{number}/v1", "m", "k")
    assert known.get("http://gw/v1/chat/completions", "m", "sk-a") is not first
