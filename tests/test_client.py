"""The upstream client against the real fake gateway: every wire variant and fault."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from console.profile import ApiProfile
from console.settings import resolve
from console.upstream.budget import AnswerBudget
from console.upstream.client import CallOutcome, UpstreamClient, make_http_client
from console.upstream.debuglog import DebugLog
from console.upstream.errors import (BlockedURLError, CooldownError, ResponseError, StatusError, StreamError,
                                     TimeoutError_, TooLargeError, TransportError, UpstreamError)
from console.upstream.payload import Source
from console.upstream.retry import is_quota, is_rate_limit, is_retryable
from testkit.fake_upstream import FakeUpstream
from testkit.images import JPEG

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
SOURCE = Source("cat.jpg", JPEG, "image/jpeg")
SETTINGS = resolve({})


class Sleeps(list):
    """Record the waits the client asks for instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def call(fake: FakeUpstream, scenario: str, path: str = CHAT, *, source: Source | None = SOURCE,
         settings=SETTINGS, sleep=None, debug: DebugLog | None = None, **fields: Any) -> CallOutcome:
    """Make one real call to the fake; raise what the client raises."""
    profile = ApiProfile.from_dict({"api_url": fake.url(scenario, path), "model": "grok-imagine-1.0-edit",
                                    "allow_private_api": True, "max_retries": 2, "timeout_s": 20, **fields})

    async def go() -> CallOutcome:
        async with make_http_client() as http:
            client = UpstreamClient(http, settings, sleep=Sleeps() if sleep is None else sleep)
            return await client.call(profile, "make it blue", source, debug=debug)

    return asyncio.run(go())


def fails(fake: FakeUpstream, scenario: str, error: type[UpstreamError], path: str = CHAT, **kw: Any) -> UpstreamError:
    with pytest.raises(error) as caught:
        call(fake, scenario, path, **kw)
    return caught.value


# -- every answer variant yields exactly the images the server sent -----------------------------

VARIANTS = [
    ("g16_nonstream_url", CHAT, {"stream": False}),
    ("g16_nonstream_b64", CHAT, {"stream": False}),
    ("g15_chat_images_shape", CHAT, {"stream": False}),
    ("g2_nonstream_md", CHAT, {"stream": False}),
    ("g3_nonstream_md", CHAT, {"stream": False}),
    ("g1_nonstream", CHAT, {"stream": False}),
    ("g16_stream_url", CHAT, {}),
    ("g16_stream_n2", CHAT, {"n": 2}),
    ("g16_stream_relative", CHAT, {}),
    ("g16_stream_dataurl", CHAT, {}),
    ("g16_chat_think", CHAT, {}),
    ("g3_stream_dataurl", CHAT, {}),
    ("g1_stream_b64", CHAT, {}),
    ("g1_stream_url", CHAT, {}),
    ("g2_stream_progress", CHAT, {}),
    ("g2_stream_bare_url", CHAT, {}),
    ("ndjson_tokens", CHAT, {}),
    ("ndjson_no_done", CHAT, {}),
    ("proxy_crlf", CHAT, {}),
    ("proxy_cr", CHAT, {}),
    ("gzip_stream", CHAT, {}),
    ("tiny_chunks", CHAT, {}),
    ("responses_official_stream", RESPONSES, {}),
    ("responses_official_json", RESPONSES, {"stream": False}),
    ("responses_g2_stream", RESPONSES, {}),
    ("responses_g3_stream", RESPONSES, {}),
    ("images_official_json", GENERATIONS, {"stream": False}),
    ("images_g16_json_padded", GENERATIONS, {"stream": False, "n": 2}),
    ("images_g3_json", GENERATIONS, {"stream": False}),
    ("images_g3_stream", GENERATIONS, {}),
    ("images_g3_stream", EDITS, {"edit_format": "json"}),
    ("images_g16_stream_url", GENERATIONS, {}),
    ("edits_g16_multipart", EDITS, {"edit_format": "multipart"}),
    ("edits_g2_multipart", EDITS, {"edit_format": "multipart_array"}),
    ("edits_g3_json", EDITS, {"edit_format": "json"}),
    ("redirect_url", CHAT, {}),
    ("dup_images", CHAT, {}),
]


@pytest.mark.parametrize("scenario, path, fields", VARIANTS, ids=[f"{s}{p}" for s, p, _ in VARIANTS])
def test_variant_yields_exactly_the_served_images(fake, scenario, path, fields):
    generation = path == GENERATIONS
    outcome = call(fake, scenario, path, source=None if generation else SOURCE, **fields)
    assert [image.data for image in outcome.images] == fake.expected(scenario)
    assert outcome.attempts == 1 and outcome.http_status == 200
    assert len({image.sha256 for image in outcome.images}) == len(outcome.images)


def test_result_metadata_comes_from_the_bytes_not_the_label(fake):
    # grok2api G1.6 labels JPEG bytes image/png: the bytes are sniffed, not the label trusted.
    image = call(fake, "g16_stream_dataurl").images[0]
    assert image.format == "jpeg" and image.origin == "data_url" and image.width > 0


def test_url_results_record_their_absolute_url(fake):
    image = call(fake, "g16_stream_relative").images[0]
    assert image.origin == "url" and image.url.startswith(fake.base_url + "/v1/files/image/")


def test_auto_mode_from_base_url_uses_chat(fake):
    call(fake, "g3_stream_dataurl", "/v1")
    assert fake.requests[0].path.endswith(CHAT)


# -- the request the gateway received --------------------------------------------------------

def test_chat_request_carries_the_source_as_a_data_url(fake):
    call(fake, "g3_stream_dataurl", api_key="sk-test-123", system_prompt="")
    sent = fake.requests[0]
    assert sent.headers["authorization"] == "Bearer sk-test-123"
    assert sent.json["stream"] is True
    user = sent.json["messages"][-1]
    assert [m["role"] for m in sent.json["messages"]] == ["user"]
    assert user["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/")


def test_multipart_edit_sends_the_file(fake):
    call(fake, "edits_g16_multipart", EDITS, edit_format="multipart")
    form = fake.requests[0].form
    assert form["image"] == [("cat.jpg", "image/jpeg", JPEG)]
    assert form["prompt"][0][2] == b"make it blue"


@pytest.mark.parametrize("scenario, edit_format", [("edits_g16_multipart", "multipart_array"),
                                                   ("edits_g2_multipart", "multipart"),
                                                   ("edits_g3_json", "multipart")])
def test_wrong_edit_transport_is_a_clear_4xx(fake, scenario, edit_format):
    error = fails(fake, scenario, StatusError, EDITS, edit_format=edit_format)
    assert error.http_status in (400, 415, 422) and not is_retryable(error) and error.attempts == 1


# -- errors and retries ----------------------------------------------------------------------

@pytest.mark.parametrize("scenario, status, message", [
    ("err_401_g16", 401, "HTTP 401: Invalid authentication token (authentication_error, invalid_api_key)"),
    ("err_401_g2", 401, "HTTP 401: Missing or invalid Authorization header."),
    ("err_403_g2", 403, "HTTP 403: Invalid API key."),
    ("err_400_g16", 400, "HTTP 400: "),
    ("err_400_g3_provider", 400, "HTTP 400: "),
])
def test_client_errors_are_not_retried(fake, scenario, status, message):
    sleeps = Sleeps()
    error = fails(fake, scenario, StatusError, sleep=sleeps)
    assert error.http_status == status and str(error).startswith(message)
    assert error.attempts == 1 and sleeps == [] and len(fake.requests) == 1


@pytest.mark.parametrize("scenario, status", [("err_502_g16", 502), ("err_503_g3", 503), ("err_429_g2", 429),
                                              ("err_text_plain_500", 500)])
def test_transient_errors_are_retried_then_reported(fake, scenario, status):
    sleeps = Sleeps()
    error = fails(fake, scenario, StatusError, sleep=sleeps, max_retries=2)
    assert error.http_status == status and error.attempts == 3 and len(sleeps) == 2
    assert len([r for r in fake.requests if r.method == "POST"]) == 3


def test_g3_chinese_message_is_verbatim(fake):
    error = fails(fake, "err_503_g3", StatusError, max_retries=0)
    body = fake.requests[0]
    assert error.attempts == 1 and body.method == "POST"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in str(error))


def test_429_waits_retry_after_then_succeeds(fake):
    sleeps = Sleeps()
    outcome = call(fake, "fail_then_ok.status=429.times=1.retry_after=3", sleep=sleeps)
    assert sleeps == [3.0] and outcome.attempts == 2
    assert [image.data for image in outcome.images] == fake.expected("g3_stream_dataurl")


def test_retry_after_really_waits(fake):
    outcome = call(fake, "fail_then_ok.status=429.times=1.retry_after=1", sleep=asyncio.sleep)
    first, second = [r for r in fake.requests if r.method == "POST"]
    assert outcome.attempts == 2 and second.at - first.at >= 0.9


def test_5xx_backs_off_exponentially(fake):
    sleeps = Sleeps()
    outcome = call(fake, "fail_then_ok.status=502.times=2", sleep=sleeps, max_retries=3)
    assert outcome.attempts == 3 and len(sleeps) == 2 and sleeps[1] > sleeps[0] > 0


def test_max_retries_zero_means_one_attempt(fake):
    error = fails(fake, "fail_then_ok.status=500.times=1", StatusError, max_retries=0)
    assert error.attempts == 1


@pytest.mark.parametrize("scenario, message, retryable", [
    ("instream_error_g16", "No available tokens. Please try again later. (rate_limit_error, rate_limit_exceeded)", True),
    ("instream_error_g2", "(upstream_error)", True),
    ("instream_error_g3", "上游流式响应中断 (server_error, upstream_stream_interrupted)", True),
])
def test_in_stream_errors(fake, scenario, message, retryable):
    sleeps = Sleeps()
    error = fails(fake, scenario, StreamError, sleep=sleeps, max_retries=1)
    assert message in str(error) and is_retryable(error) is retryable and error.attempts == 2


def test_responses_failed_is_an_error(fake):
    error = fails(fake, "responses_failed_g3", StreamError, RESPONSES, max_retries=0)
    assert error.http_status == 200 and str(error)


def test_g1_error_text_is_shown(fake):
    error = fails(fake, "g1_error_text", ResponseError)
    assert "Error:" in str(error) and error.attempts == 1


def test_reset_midstream_is_retried_as_a_transport_error(fake):
    sleeps = Sleeps()
    error = fails(fake, "reset_midstream", TransportError, sleep=sleeps, max_retries=1)
    assert error.attempts == 2 and len(sleeps) == 1


def test_stall_times_out(fake):
    error = fails(fake, "stall", TimeoutError_, max_retries=0, timeout_s=1)
    assert "timeout" in str(error) or "within" in str(error)


def test_slow_headers_within_the_timeout_succeed(fake):
    outcome = call(fake, "slow_headers.s=1", timeout_s=10)
    assert outcome.images


def test_connection_refused_is_a_transport_error():
    profile = ApiProfile.from_dict({"api_url": "http://127.0.0.1:9/v1", "model": "m", "allow_private_api": True,
                                    "max_retries": 1})

    async def go():
        async with make_http_client() as http:
            return await UpstreamClient(http, SETTINGS, sleep=Sleeps()).call(profile, "p", None)

    with pytest.raises(TransportError, match="connection to 127.0.0.1:9 failed") as caught:
        asyncio.run(go())
    assert caught.value.attempts == 2


# -- bad answers: a clear error and no result -------------------------------------------------

@pytest.mark.parametrize("scenario, error, message", [
    ("garbage_dataurl", ResponseError, "no usable image in the answer: image data_url"),
    ("html_url", ResponseError, "an HTML page"),
    ("g16_stream_empty", ResponseError, "the answer was empty"),
    ("refusal_text", ResponseError, "no image in the answer; the API said: I can't help with that request."),
])
def test_bad_answers(fake, scenario, error, message):
    failure = fails(fake, scenario, error)
    assert message in str(failure) and failure.attempts == 1


def test_download_over_the_cap_is_refused(fake):
    failure = fails(fake, "huge_url", ResponseError, settings=SETTINGS.replace(max_download_bytes=1024 * 1024))
    assert "exceeds the cap" in str(failure) or "more than" in str(failure)


def test_stream_over_the_cap_is_refused(fake):
    failure = fails(fake, "oversize_stream", TooLargeError, settings=SETTINGS.replace(max_response_bytes=2 * 1024 * 1024))
    assert "cap" in str(failure) and failure.attempts == 1


def test_error_padding_is_ignored_not_warned(fake):
    outcome = call(fake, "images_g16_json_padded", GENERATIONS, source=None, stream=False, n=2)
    assert len(outcome.images) == 1 and outcome.warnings == []


# -- the SSRF policy ---------------------------------------------------------------------------

def test_private_api_url_blocked_unless_allowed(fake):
    error = fails(fake, "g3_stream_dataurl", BlockedURLError, allow_private_api=False)
    assert "allow private API" in str(error) and fake.requests == []


def test_private_api_url_allowed_by_server_setting(fake):
    settings = SETTINGS.replace(allow_private_api_url=True)
    assert call(fake, "g3_stream_dataurl", settings=settings, allow_private_api=False).images


def test_downloads_from_the_api_host_pass_without_the_switch(fake):
    assert call(fake, "g16_stream_url", allow_private_downloads=False).images


def test_downloads_from_another_name_of_the_api_address_pass(fake):
    # The API is reached as "localhost"; the answer's URLs name 127.0.0.1, the same address.
    profile_url = fake.url("g16_stream_url", CHAT).replace("127.0.0.1", "localhost")
    outcome = call(fake, "g16_stream_url", api_url=profile_url)
    assert outcome.images


def test_redirects_are_rechecked(fake):
    outcome = call(fake, "redirect_url")
    downloads = [r.path for r in fake.requests if r.method == "GET"]
    assert any(p.startswith("/files/redirect") for p in downloads) and len(downloads) >= 2
    assert outcome.images


# -- the debug log -------------------------------------------------------------------------------

def test_debug_log_has_request_answer_and_no_secret(fake):
    debug = DebugLog(["sk-very-secret"])
    call(fake, "g3_stream_dataurl", api_key="sk-very-secret", debug=debug,
         extra_headers={"X-Api-Key": "sk-very-secret"})
    text = debug.text()
    assert "sk-very-secret" not in text
    assert "→ POST" in text and "← HTTP 200" in text and "raw body" in text
    assert "base64 chars>" in text  # payloads are shortened, not dumped


def test_debug_log_records_each_failed_attempt(fake):
    debug = DebugLog()
    call(fake, "fail_then_ok.status=502.times=1", debug=debug)
    text = debug.text()
    assert "attempt 1 failed: StatusError: HTTP 502" in text and "retrying in" in text


def test_downloads_from_another_private_host_need_the_switch(fake):
    failure = fails(fake, "foreign_url", ResponseError)
    assert "(127.0.0.2)" in str(failure) and "allow private downloads" in str(failure)
    assert not [r for r in fake.requests if r.method == "GET"]


def test_private_download_switch_lets_the_url_through(fake):
    # The fake listens on 127.0.0.1 only, so getting as far as "connection failed" proves the
    # policy let 127.0.0.2 through.
    failure = fails(fake, "foreign_url", ResponseError, allow_private_downloads=True)
    assert "failed" in str(failure) and "private or loopback" not in str(failure)


def test_rewrite_result_host_fetches_from_the_api_host(fake):
    outcome = call(fake, "foreign_url", rewrite_result_host=True)
    assert [image.data for image in outcome.images] == fake.expected("foreign_url")


def test_one_bad_image_is_a_warning_beside_the_good_one(fake):
    outcome = call(fake, "mixed_good_bad")
    assert [image.data for image in outcome.images] == fake.expected("mixed_good_bad")
    assert len(outcome.warnings) == 1 and "an HTML page" in outcome.warnings[0]
    # "http://…/files/html: not an image (an HTML page)": the address once, not wrapped in "image <it>: <it>: …"
    assert outcome.warnings[0].count("/files/html") == 1 and outcome.warnings[0].code == "upstream.bad_image_at"


def test_cancelling_a_call_closes_its_stream_at_once(fake):
    profile = ApiProfile.from_dict({"api_url": fake.url("stall", CHAT), "model": "m", "allow_private_api": True})

    async def go() -> bool:
        async with make_http_client() as http:
            task = asyncio.create_task(UpstreamClient(http, SETTINGS).call(profile, "p", None))
            while fake.in_flight < 1:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Checked before the client is closed: the cancel itself must drop the connection.
            return await asyncio.to_thread(fake.wait_for_connections, 0, 1.0)

    assert asyncio.run(go()) is True


def test_connection_is_kept_alive_after_done(fake):
    profile = ApiProfile.from_dict({"api_url": fake.url("g3_stream_dataurl", CHAT), "model": "m",
                                    "allow_private_api": True})

    async def go() -> list[int]:
        open_after = []
        async with make_http_client() as http:
            client = UpstreamClient(http, SETTINGS)
            for _ in range(3):
                await client.call(profile, "p", None)
                open_after.append(fake.open_connections)
        return open_after

    # Reading the stream's tail after [DONE] returns the connection to the pool: one connection
    # serves all three calls (closing it instead cost a TCP handshake per task).
    assert asyncio.run(go()) == [1, 1, 1]
    assert len([r for r in fake.requests if r.method == "POST"]) == 3


# -- checking a profile before a run -------------------------------------------------------------

def check_profile(settings=SETTINGS, **fields: Any) -> str:
    """Run UpstreamClient.check_profile, reached through the package's public face."""
    import console.upstream as upstream

    profile = ApiProfile.from_dict({"api_url": "http://127.0.0.1:9/v1", "model": "m", "allow_private_api": True})
    profile = dataclasses.replace(profile, **fields)  # unchecked: the door refuses some of these earlier

    async def go() -> str:
        async with upstream.make_http_client() as http:
            return await upstream.UpstreamClient(http, settings).check_profile(profile)

    return asyncio.run(go())


@pytest.mark.parametrize("fields, settings, message", [
    ({"api_url": ""}, {}, "no API URL set: fill in the API profile first"),
    ({"model": ""}, {}, "no model set: fill in the API profile first"),
    ({"api_url": "ftp://gw.test/v1"}, {}, "API URL must start with http:// or https://"),
    ({"allow_private_api": False}, {}, "private or loopback address (127.0.0.1); turn on 'allow private API'"),
    ({}, {"api_url_host_allowlist": ("gw.example.com",)}, "host 127.0.0.1 is not on the allowlist (gw.example.com)"),
])
def test_check_profile_refuses_a_profile_that_cannot_make_requests(fields, settings, message):
    from console.upstream import ProfileProblem

    with pytest.raises(ProfileProblem) as caught:
        check_profile(SETTINGS.replace(**settings), **fields)
    assert message in str(caught.value)


def test_check_profile_returns_the_endpoint_it_would_call():
    assert check_profile() == "http://127.0.0.1:9/v1/chat/completions"
    assert check_profile(api_url="http://127.0.0.1:9/v1/images/edits") == "http://127.0.0.1:9/v1/images/edits"


def test_check_profile_as_a_function_of_the_settings():
    from console.upstream import check_profile as check

    profile = ApiProfile.from_dict({"api_url": "http://127.0.0.1:9", "model": "m", "allow_private_api": True})
    assert asyncio.run(check(profile, SETTINGS)) == "http://127.0.0.1:9/v1/chat/completions"


# -- grok2api's current faults --------------------------------------------------------------------


@pytest.mark.parametrize("kind, status, message", [
    ("not_submitted", 503, "HTTP 503: 上游请求未提交，可安全重试 (server_error, upstream_not_submitted)"),
    ("not_submitted_header", 503, "HTTP 503: upstream busy (server_error, upstream_error)"),
    ("unavailable", 503, "HTTP 503: 上游服务暂不可用 (server_error, upstream_unavailable)"),
    ("edit_incomplete", 502, "HTTP 502: 上游未返回可用的编辑图片 (server_error, image_edit_incomplete)"),
])
def test_grok2api_server_faults_are_retried_and_named(fake, kind, status, message):
    sleeps = Sleeps()
    error = fails(fake, f"g4_fault.kind={kind}.times=9", StatusError, sleep=sleeps, max_retries=1)
    assert (error.http_status, str(error), error.attempts) == (status, message, 2)
    assert error.not_submitted == kind.startswith("not_submitted")
    outcome = call(fake, f"g4_fault.kind={kind}.times=1", sleep=Sleeps(), max_retries=1)
    assert outcome.attempts == 2 and outcome.images


@pytest.mark.parametrize("kind, code, wait", [("cooling", "upstream_cooling", 7.0),
                                              ("model_cooling", "upstream_model_cooling", 5.0)])
def test_cooling_429s_carry_their_code_and_wait(fake, kind, code, wait):
    error = fails(fake, f"g4_fault.kind={kind}", StatusError, max_retries=0)
    assert (error.http_status, error.code, error.retry_after) == (429, code, wait)
    assert is_rate_limit(error) and not is_quota(error)


def test_an_exhausted_quota_is_not_retried(fake):
    sleeps = Sleeps()
    error = fails(fake, "g4_fault.kind=quota.times=9", StatusError, sleep=sleeps, max_retries=3)
    assert error.code == "upstream_quota_exhausted" and error.attempts == 1 and sleeps == []
    assert is_rate_limit(error) and is_quota(error)


def test_rate_limits_can_be_left_to_the_caller(fake):
    profile = ApiProfile.from_dict({"api_url": fake.url("g4_fault.kind=cooling", CHAT), "model": "m",
                                    "allow_private_api": True, "max_retries": 3})

    async def go() -> UpstreamError:
        async with make_http_client() as http:
            client = UpstreamClient(http, SETTINGS, sleep=Sleeps())
            request = client.prepare(profile, "make it blue", SOURCE)
            with pytest.raises(StatusError) as caught:
                await client.send(profile, request, rate_limits=False)
            return caught.value

    assert asyncio.run(go()).attempts == 1  # raised at once: the engine slows the whole run


def test_a_stream_with_zero_events_is_a_retried_fault(fake):
    error = fails(fake, "g4_fault.kind=zero_events.times=9", TransportError, max_retries=1)
    assert "closed the stream without sending anything" in str(error) and error.attempts == 2
    assert call(fake, "g4_fault.kind=zero_events.times=1", max_retries=1).attempts == 2


def test_a_huge_error_body_keeps_its_start_and_its_message(fake):
    error = fails(fake, "g4_fault.kind=huge_500.times=9", StatusError, max_retries=0)
    assert str(error) == ("HTTP 500: litellm.APIConnectionError: upstream answer could not be parsed "
                          "(api_connection_error, 500)")


# -- a router's cooldown after a failure (LiteLLM) ------------------------------------------------


def sends(fake: FakeUpstream, scenario: str, count: int,
          **fields: Any) -> tuple[list[CallOutcome | UpstreamError], Sleeps]:
    """Send `count` calls one after another through one client, as the engine does (`rate_limits=False`)."""
    profile = ApiProfile.from_dict({"api_url": fake.url(scenario, CHAT), "model": "gpt-image-1",
                                    "allow_private_api": True, "max_retries": 2, "timeout_s": 20, **fields})
    sleeps = Sleeps()

    async def go() -> list[CallOutcome | UpstreamError]:
        async with make_http_client() as http:
            client = UpstreamClient(http, SETTINGS, sleep=sleeps)
            outcomes: list[CallOutcome | UpstreamError] = []
            for _ in range(count):
                try:
                    request = client.prepare(profile, "p", SOURCE)
                    outcomes.append(await client.send(profile, request, rate_limits=False))
                except UpstreamError as exc:
                    outcomes.append(exc)
            return outcomes

    return asyncio.run(go()), sleeps


def test_a_routers_cooldown_after_a_failure_is_an_attempt_of_that_failure(fake):
    (error, later), sleeps = sends(fake, "router_cooldown", 2)
    assert isinstance(error, CooldownError) and error.attempts == 3  # 500, then two cooldown refusals
    assert str(error).startswith("HTTP 500: litellm.InternalServerError: InternalServerError: OpenAIException")
    assert "then the gateway's router held this deployment in cooldown: HTTP 429: No deployments available" \
        in str(error)
    # LiteLLM writes a missing error type as "type": "None": the tags say only its code, not "(None, 500)"
    assert "processing your request. (500) (then" in str(error) and "None" not in str(error)
    assert error.http_status == 500 and not is_rate_limit(error) and not is_quota(error)
    assert 0.75 <= sleeps[0] <= 1.0 and sleeps[1] == 5.0  # a backoff, then the cooldown the router named
    assert isinstance(later, CooldownError) and later.attempts == 3  # the next call: its first refusal counts too
    assert len([r for r in fake.requests if r.method == "POST"]) == 6


def test_a_rate_limit_and_the_cooldown_after_it_stay_rate_limits(fake):
    (first, second), sleeps = sends(fake, "router_cooldown.fails=1.limit=1", 2)
    assert isinstance(first, StatusError) and "Rate limit reached" in str(first) and first.attempts == 1
    assert isinstance(second, StatusError) and "No deployments available" in str(second) and second.attempts == 1
    assert is_rate_limit(first) and is_rate_limit(second) and sleeps == []  # raised at once: the engine slows down


def test_a_flaky_deployment_gets_through_once_the_cooldown_is_over(fake):
    async def real_sleep(seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.5))

    outcome = call(fake, "router_cooldown.cooldown=0.3.fails=1", sleep=real_sleep, max_retries=3)
    assert outcome.images and outcome.attempts in (2, 3)


# -- the memory budget of answers being read at once --------------------------------------------


def test_a_younger_call_waits_for_room_while_the_oldest_always_goes_on():
    async def go() -> list[str]:
        budget = AnswerBudget(100)
        said: list[str] = []
        first_in, release_first = asyncio.Event(), asyncio.Event()

        async def oldest() -> None:
            async with budget.reading() as share:
                await share.take(80)
                first_in.set()
                await share.take(60)  # over the budget, but the oldest call is never held back
                said.append(f"oldest holds {budget.held}")
                await release_first.wait()
            said.append("oldest done")

        async def younger() -> None:
            await first_in.wait()
            async with budget.reading() as share:
                waiting = asyncio.create_task(share.take(30))
                await asyncio.sleep(0.05)
                said.append(f"younger waiting: {not waiting.done()}")
                release_first.set()
                await waiting
                said.append(f"younger holds {budget.held}")
            said.append(f"all given back: {budget.held == 0}, peak {budget.peak}")

        await asyncio.gather(oldest(), younger())
        return said

    assert asyncio.run(go()) == ["oldest holds 140", "younger waiting: True", "oldest done", "younger holds 30",
                                 "all given back: True, peak 140"]


def test_the_budget_holds_every_call_but_the_oldest_to_its_limit():
    async def go() -> int:
        budget = AnswerBudget(1000)
        worst = 0

        async def call(number: int) -> None:
            nonlocal worst
            async with budget.reading() as share:
                for _ in range(20):
                    await share.take(50)
                    worst = max(worst, budget.held)
                    await asyncio.sleep(0)

        await asyncio.gather(*(call(number) for number in range(16)))
        return worst

    assert asyncio.run(go()) <= 1000 + 20 * 50  # 16 calls of 1000 bytes: at most the budget plus one call


def test_downloaded_images_count_against_the_budget_too(fake):
    profile = ApiProfile.from_dict({"api_url": fake.url("g16_stream_url", CHAT), "model": "m",
                                    "allow_private_api": True, "max_retries": 0, "timeout_s": 20})

    async def go() -> tuple[CallOutcome, int, int]:
        async with make_http_client() as http:
            client = UpstreamClient(http, SETTINGS, sleep=Sleeps())
            outcome = await client.call(profile, "p", SOURCE)
            return outcome, client._budget.peak, client._budget.held

    outcome, peak, held = asyncio.run(go())
    downloaded = sum(len(image.data) for image in outcome.images if image.origin == "url")
    assert downloaded and peak >= downloaded and held == 0
