"""Gemini's native API: the request, and the client against the fake's Gemini."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from console.profile import ApiProfile
from console.settings import resolve
from console.upstream import ProfileProblem, ResponseError, StatusError, check_profile, gemini
from console.upstream.client import CallOutcome, UpstreamClient, make_http_client
from console.upstream.debuglog import DebugLog
from console.upstream.payload import Source, build, endpoint, input_limit, resolve_mode
from console.upstream.retry import is_rate_limit, is_retryable
from testkit.fake_upstream import IMAGES, FakeUpstream
from testkit.images import JPEG, PNG
from tests.test_upstream_cli import run as run_cli

MODEL = "gemini-2.5-flash-image"
GOOGLE = "https://generativelanguage.googleapis.com"
SOURCE = Source("cat.jpg", JPEG, "image/jpeg")
REFERENCE = Source("style.png", PNG, "image/png")


def profile(api_url: str = GOOGLE + "/v1beta", **fields: Any) -> ApiProfile:
    return ApiProfile.from_dict({"api_url": api_url, "api_key": "AIza-test-key", "model": MODEL, **fields})


# -- where it goes ------------------------------------------------------------------------------


@pytest.mark.parametrize("api_url", [GOOGLE, GOOGLE + "/", GOOGLE + "/v1beta", GOOGLE + "/v1beta/models",
                                     GOOGLE + "/v1beta/models/gemini-2.5-flash-image:generateContent",
                                     GOOGLE + "/v1beta/models/other-model:streamGenerateContent?alt=sse"])
def test_every_form_of_the_url_posts_to_the_profiles_model(api_url):
    assert resolve_mode(profile(api_url)) == "gemini"  # auto: Google's host
    assert endpoint(profile(api_url, stream=False), "gemini", True) == f"{GOOGLE}/v1beta/models/{MODEL}:generateContent"
    assert endpoint(profile(api_url), "gemini", True) == f"{GOOGLE}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"


def test_auto_picks_gemini_for_a_generate_content_url_on_any_host():
    relay = "https://relay.example.com/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert resolve_mode(profile(relay)) == "gemini"
    assert resolve_mode(profile("https://relay.example.com/v1beta")) == "chat_completions"  # a root says nothing
    assert resolve_mode(profile("https://relay.example.com/v1beta", api_mode="gemini")) == "gemini"
    chosen = profile("https://relay.example.com/v1beta", api_mode="gemini", model="models/x-1.5", stream=False)
    assert endpoint(chosen, "gemini", True) == "https://relay.example.com/v1beta/models/x-1.5:generateContent"


def test_the_key_goes_in_x_goog_api_key_and_never_as_a_bearer_token():
    headers = build(profile(extra_headers={"X-Trace": "1"}), "p", SOURCE).headers
    assert headers["x-goog-api-key"] == "AIza-test-key" and headers["X-Trace"] == "1"
    assert "Authorization" not in headers and headers["Content-Type"] == "application/json"


def test_the_body_holds_the_prompt_then_every_input_then_the_config():
    request = build(profile(size="16:9 2K", system_prompt="Keep faces.", temperature=0.4), "make it blue", SOURCE,
                    [REFERENCE])
    body = json.loads(request.content)
    parts = body["contents"][0]["parts"]
    assert body["contents"][0]["role"] == "user" and parts[0] == {"text": "make it blue"}
    assert [p["inline_data"]["mime_type"] for p in parts[1:]] == ["image/jpeg", "image/png"]
    assert [base64.b64decode(p["inline_data"]["data"]) for p in parts[1:]] == [JPEG, PNG]
    assert body["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"], "temperature": 0.4,
                                        "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}}
    assert body["systemInstruction"] == {"parts": [{"text": "Keep faces."}]}
    assert request.stream is True and "stream" not in body and "model" not in body
    assert request.summary["contents"][0]["parts"][1]["inline_data"]["data"].endswith("chars>")  # logs stay short


@pytest.mark.parametrize("size, config", [("", None), ("auto", None), ("1:1", {"aspectRatio": "1:1"}),
                                          ("1024x1536", {"aspectRatio": "2:3"}), ("4k", {"imageSize": "4K"}),
                                          ("21:9, 1K", {"aspectRatio": "21:9", "imageSize": "1K"})])
def test_size_becomes_an_aspect_ratio_and_an_image_size(size, config):
    body = json.loads(build(profile(size=size), "p", None).content)
    assert body["generationConfig"].get("imageConfig") == config


def test_a_size_gemini_cannot_take_refuses_the_run_naming_the_field(fake):
    bad = profile(fake.url("gemini", "/v1beta"), api_mode="gemini", size="large", allow_private_api=True)
    with pytest.raises(ProfileProblem, match=r"size 'large' cannot be sent to Gemini: use an aspect ratio"):
        asyncio.run(check_profile(bad, resolve({})))


def test_extra_body_reaches_the_generation_config():
    body = json.loads(build(profile(size="3:4", extra_body={"generationConfig": {"imageConfig": {"imageSize": "2K"}},
                                                            "safetySettings": []}), "p", None).content)
    assert body["generationConfig"]["imageConfig"] == {"aspectRatio": "3:4", "imageSize": "2K"}
    assert body["safetySettings"] == []


def test_a_run_may_send_up_to_fourteen_inputs():
    assert input_limit(profile()) == (14, "gemini")
    with pytest.raises(ProfileProblem, match="15 input images .* Gemini takes at most 14"):
        build(profile(), "p", SOURCE, [REFERENCE] * 14)


# -- against the fake's Gemini --------------------------------------------------------------------


def call(fake: FakeUpstream, scenario: str, path: str = "/v1beta", *, source: Source | None = SOURCE,
         **fields: Any) -> CallOutcome:
    """One call to the fake's Gemini; raise what the client raises."""
    fields = {"api_mode": "gemini", "api_key": "AIza-good", "allow_private_api": True, "max_retries": 2,
              "timeout_s": 20, **fields}
    chosen = profile(fake.url(scenario, path), **fields)

    async def go() -> CallOutcome:
        async with make_http_client() as http:
            return await UpstreamClient(http, resolve({}), sleep=asyncio.sleep).call(chosen, "make it blue", source)

    return asyncio.run(go())


@pytest.mark.parametrize("segment", ["gemini", "gemini.snake=1", "gemini.relay=md", "gemini.relay=url",
                                     "gemini.thought=1"])
@pytest.mark.parametrize("stream", [True, False])
def test_every_answer_shape_yields_exactly_the_image(fake, segment, stream):
    outcome = call(fake, segment, stream=stream)
    assert [image.data for image in outcome.images] == fake.expected(segment) == [IMAGES["cyan_png"]]
    assert outcome.attempts == 1 and outcome.warnings == [] and "Here is the edited picture." in outcome.text
    sent = next(r for r in fake.requests if r.method == "POST")  # relay=url: then a GET of the image
    method = ":streamGenerateContent" if stream else ":generateContent"
    assert sent.path == f"/{segment}/v1beta/models/{MODEL}{method}"
    assert sent.query == ({"alt": "sse"} if stream else {})


def test_the_gateway_gets_the_key_header_and_the_inputs(fake):
    call(fake, "gemini.gkey=AIza-good")
    sent = fake.requests[0]
    assert sent.headers["x-goog-api-key"] == "AIza-good" and "authorization" not in sent.headers
    inline = sent.json["contents"][0]["parts"][1]["inline_data"]
    assert base64.b64decode(inline["data"]) == JPEG and inline["mime_type"] == "image/jpeg"


def test_a_real_edit_comes_back_from_the_source(fake):
    image = call(fake, "gemini.edit=1").images[0]
    assert image.format == "png" and (image.width, image.height) == (32, 24)  # the source's size (testkit.images)


def test_a_wrong_key_shows_googles_message_and_is_not_retried(fake):
    with pytest.raises(StatusError) as caught:
        call(fake, "gemini.gkey=AIza-good", api_key="AIza-wrong")
    error = caught.value
    assert str(error) == "HTTP 400: API key not valid. Please pass a valid API key. (INVALID_ARGUMENT, 400)"
    assert error.attempts == 1 and len(fake.requests) == 1 and "AIza-wrong" not in str(error)


@pytest.mark.parametrize("reason, said", [
    ("IMAGE_SAFETY", "the model stopped without an image (finishReason IMAGE_SAFETY): Unable to show the generated "
                     "image: it may violate the usage policy; the API said: I can't create that image"),
    ("SAFETY", "the model stopped without an image (finishReason SAFETY); the API said: I can't"),
    ("PROHIBITED_CONTENT", "(finishReason PROHIBITED_CONTENT); the API said"),
    ("NO_IMAGE", "the model stopped without an image (finishReason NO_IMAGE)"),
    ("block", "the prompt was blocked (blockReason PROHIBITED_CONTENT)"),
])
@pytest.mark.parametrize("stream", [True, False])
def test_a_refusal_fails_the_task_with_its_reason_and_is_not_retried(fake, reason, said, stream):
    with pytest.raises(ResponseError) as caught:
        call(fake, f"gemini_refusal.reason={reason}", stream=stream, max_retries=5)
    error = caught.value
    assert said in str(error) and error.attempts == 1 and len(fake.requests) == 1
    assert error.kind == "refusal" and error.code == ("PROHIBITED_CONTENT" if reason == "block" else reason)
    assert not is_retryable(error) and not is_rate_limit(error)


def test_test_connection_lists_the_gemini_models(fake):
    chosen = profile(fake.url("gemini.gkey=AIza-good", "/v1beta/models/gemini-2.5-flash-image:generateContent"),
                     api_key="AIza-good", allow_private_api=True)

    async def go():
        async with make_http_client() as http:
            return await UpstreamClient(http, resolve({})).models(chosen)

    status, models = asyncio.run(go())
    assert status == 200 and models[:2] == ["gemini-2.5-flash-image", "gemini-3-pro-image-preview"]
    sent = fake.requests[0]
    assert (sent.method, sent.path, sent.query) == ("GET", "/gemini.gkey=AIza-good/v1beta/models", {"pageSize": "1000"})
    assert sent.headers["x-goog-api-key"] == "AIza-good" and "authorization" not in sent.headers


def test_the_command_line_checks_a_gemini_gateway(fake, tmp_path):
    source = tmp_path / "cat.jpg"
    source.write_bytes(JPEG)
    code, report, stderr = run_cli(["--api-url", fake.url("gemini.gkey=AIza-cli", "/v1beta"), "--mode", "gemini",
                                    "--model", MODEL, "--size", "16:9", "--image", str(source), "--prompt", "blue",
                                    "--out", str(tmp_path / "out"), "--debug"],
                                   ALLOW_PRIVATE_API_URL="1", API_KEY="AIza-cli")
    assert code == 0 and report["ok"] is True, report
    assert [open(p, "rb").read() for p in report["images"]] == [IMAGES["cyan_png"]]
    assert fake.requests[0].json["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    assert "AIza-cli" not in stderr and ":streamGenerateContent" in stderr


def test_the_debug_log_never_shows_the_key_header():
    log = DebugLog([])  # even a key too short to be redacted by its value
    headers = build(profile(api_key="AIz"), "p", None).headers
    log.request("POST", "https://x/v1beta/models/m:generateContent", headers, {})
    assert '"x-goog-api-key": "[redacted]"' in log.text() and "AIz\"" not in log.text()


@pytest.mark.parametrize("per, code, quota", [("minute", "429", False), ("day", "daily_quota_exhausted", True)])
def test_a_resource_exhausted_429_waits_as_google_says_and_a_daily_quota_is_a_quota(fake, per, code, quota):
    from console.upstream import is_quota
    with pytest.raises(StatusError) as caught:
        call(fake, f"gemini.quota={per}", max_retries=0)
    error = caught.value
    assert error.http_status == 429 and is_rate_limit(error) and is_quota(error) is quota
    assert error.retry_after == 37.0 and error.code == code and error.kind == "RESOURCE_EXHAUSTED"
    assert str(error) == f"HTTP 429: You exceeded your current quota, please check your plan and billing details. " \
                         f"(RESOURCE_EXHAUSTED, {code})"


def test_a_gemini_run_out_of_its_daily_quota_pauses_instead_of_failing(engine, fake, tmp_path):
    from tests.helpers import make_sources, wait_for
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 4)), False, "edit", {
        "api_url": fake.url("gemini.quota=day", "/v1beta"), "api_mode": "gemini", "model": "gemini-2.5-flash-image",
        "api_key": "AIza-good", "allow_private_api": True, "max_retries": 0, "concurrency": 2})
    wait_for(lambda: not engine.is_running(run_id), timeout=30)
    progress = engine.store.progress(run_id)
    assert progress["failed"] == 0 and progress["stopped"] == 4
    assert engine.cooling(run_id)["paused"].startswith(
        "paused: 429 from the gateway (daily_quota_exhausted); resume when the quota is back")


def test_a_relays_query_stays_after_every_path_and_ours_are_not_doubled():
    relay = "https://relay.example.com/v1beta/models/m:streamGenerateContent?alt=sse&tenant=7"
    assert endpoint(profile(relay), "gemini", True) == \
        f"https://relay.example.com/v1beta/models/{MODEL}:streamGenerateContent?tenant=7&alt=sse"
    assert endpoint(profile(relay, stream=False), "gemini", True) == \
        f"https://relay.example.com/v1beta/models/{MODEL}:generateContent?tenant=7"
    assert gemini.models_url(relay) == "https://relay.example.com/v1beta/models?tenant=7&pageSize=1000"
