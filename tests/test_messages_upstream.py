"""Why a task failed, in the page's language: the upstream family of messages (`upstream.*`).

Tasks fail against the fake gateway through the real engine and app in the ways a gateway makes
them fail (an HTTP error with its message, a 200 with text and no image, a refusal, a timeout, an
answer over the cap, garbage for an image); each task's JSON carries `error_msg` with the code and
the upstream's own words verbatim as a parameter, and the English `error` is what it always was.
A page switched to Chinese shows the reason in Chinese on the card and in the viewer, the
upstream's words quoted as they came.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from console.captioning import NoCaption, caption_from
from console.messages import Message, carried, say
from console.settings import resolve
from console.upstream import ProfileProblem
from console.upstream.answer import AnswerParser
from console.upstream.debuglog import DebugLog
from console.upstream.errors import CooldownError, StatusError
from console.upstream.explain import no_image_message, redacted
from console.upstream.gemini import image_config
from console.upstream.payload import too_many_images
from testkit.fake_scenarios import REFUSAL
from tests.helpers import api, make_sources, wait_idle

ROOT = Path(__file__).resolve().parents[1]
CHINESE = json.loads((ROOT / "static/js/messages/upstream.js").read_text(encoding="utf-8")
                     .split("\nexport default", 1)[1].strip().rstrip(";"))
GEMINI = {"api_mode": "gemini", "model": "gemini-2.5-flash-image", "api_key": "AIza-test"}
BLOCKED_SAID = "Unable to show the generated image: it may violate the usage policy"
GEMINI_SAID = "I can't create that image, as it may go against my safety guidelines."


@pytest.fixture
def small_app(tmp_path):
    """The app with a 2 MiB answer cap (an endless stream passes it at once)."""
    from console.web import create_app

    application = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / "data"),
                                               "MAX_RESPONSE_BYTES": str(2 * 1024 * 1024)}))
    yield application
    application.extensions["console.engine"].close()


def failed_task(client, fake, tmp_path, scenario: str, path: str = "/v1/chat/completions", **fields) -> dict:
    """Run one source against `scenario` and return its task as the listing gives it (failed)."""
    profile = {**api(fake, scenario, **fields), "api_url": fake.url(scenario, path)}
    answer = client.post("/api/runs", json={"input_path": str(make_sources(tmp_path / "src", 1)),
                                            "prompt": "make it blue", "api": profile})
    assert answer.status_code == 201, answer.json
    listing = wait_idle(client, answer.json["run_id"], timeout=60)
    [task] = listing["tasks"]
    assert task["status"] == "failed", task
    return task


CASES = {
    # scenario: (path, profile fields, code, params that must be there, English text)
    "err_400_g3_provider": (
        "/v1/chat/completions", {}, "upstream.http_status",
        {"status": 400, "said": "Image generation failed: the requested size is not supported (invalid_request_error)"},
        "HTTP 400: Image generation failed: the requested size is not supported (invalid_request_error)"),
    "err_text_plain_500": (
        "/v1/chat/completions", {}, "upstream.http_status", {"status": 500, "said": "Internal Server Error"},
        "HTTP 500: Internal Server Error"),
    "refusal_text": (
        "/v1/chat/completions", {}, "upstream.no_image_said", {"said": REFUSAL},
        f"no image in the answer; the API said: {REFUSAL}"),
    "instream_error_g2": (
        "/v1/chat/completions", {}, "upstream.said",
        {"said": "Upstream returned 502 while generating the image (upstream_error)"},
        "Upstream returned 502 while generating the image (upstream_error)"),
    "gemini_refusal.reason=block": (
        "/v1beta", GEMINI, "upstream.gemini_blocked", {"reason": "PROHIBITED_CONTENT"},
        "the prompt was blocked (blockReason PROHIBITED_CONTENT)"),
    "gemini_refusal": (
        "/v1beta", GEMINI, "upstream.refused_said", {"said": GEMINI_SAID},
        f"the model stopped without an image (finishReason IMAGE_SAFETY): {BLOCKED_SAID}; the API said: {GEMINI_SAID}"),
    "stall": (
        "/v1/chat/completions", {"timeout_s": 1}, "upstream.no_answer_within|upstream.timeout_read", {"seconds": 1},
        None),
    "garbage_dataurl": (
        "/v1/chat/completions", {}, "upstream.no_usable_image", {}, None),
}


@pytest.mark.parametrize("scenario", list(CASES))
def test_a_failed_task_says_why_with_a_code_and_the_upstreams_words(client, fake, tmp_path, scenario):
    path, fields, code, params, english = CASES[scenario]
    task = failed_task(client, fake, tmp_path, scenario, path, **fields)
    msg = task["error_msg"]
    assert msg is not None and msg["code"] in code.split("|"), task
    assert msg["params"].items() >= params.items(), msg
    assert msg["code"] in CHINESE
    if english is not None:
        assert task["error"] == english  # the English is what it always was


def test_the_reason_nests_what_it_is_made_of(client, fake, tmp_path):
    task = failed_task(client, fake, tmp_path, "gemini_refusal", "/v1beta", **GEMINI)
    refusal = task["error_msg"]["params"]["refusal"]
    assert refusal["code"] == "upstream.gemini_stopped_said"
    assert refusal["params"] == {"reason": "IMAGE_SAFETY", "said": BLOCKED_SAID}  # its full stop goes before "; "
    garbage = failed_task(client, fake, tmp_path / "g", "garbage_dataurl")
    [problem] = garbage["error_msg"]["params"]["problems"]
    assert problem["code"] == "upstream.image_inline_rejected" and problem["params"]["origin"] == "data_url"
    assert garbage["error"].startswith("no usable image in the answer: image data_url (")


def test_an_answer_over_the_cap_says_the_cap(small_app, fake, tmp_path):
    task = failed_task(small_app.test_client(), fake, tmp_path, "oversize_stream")
    assert task["error_msg"] == {"code": "upstream.answer_over_cap", "params": {"cap": "2 MiB"}}
    assert task["error"] == "the answer passed the cap of 2 MiB"  # not 2097152 bytes: nobody counts digits


def test_a_redacted_message_keeps_its_code_and_the_key_leaves_every_parameter():
    error = StatusError(say("upstream.http_status", status=401, said="bad key sk-secret-123 (invalid_api_key)"),
                        http_status=401)
    redacted(error, DebugLog(["sk-secret-123"]))
    message = carried(error)
    assert message is not None and message.code == "upstream.http_status"
    assert "sk-secret-123" not in str(message) and "sk-secret-123" not in message.params["said"]
    assert str(error) == str(message)


def test_the_words_of_the_other_failures():
    cooled = CooldownError(StatusError(say("upstream.http_status", status=500, said="boom"), http_status=500),
                           StatusError(say("upstream.http_status", status=429, said="cooling"), http_status=429), 5)
    assert cooled.message.code == "upstream.cooldown"
    assert str(cooled) == ("HTTP 500: boom (then the gateway's router held this deployment in cooldown: "
                           "HTTP 429: cooling)")
    assert cooled.message.as_json()["params"]["cause"]["code"] == "upstream.http_status"
    with pytest.raises(ProfileProblem) as caught:
        image_config("large")
    assert caught.value.message.code == "upstream.gemini_size" and caught.value.message.params == {"size": "'large'"}
    assert str(caught.value).startswith("size 'large' cannot be sent to Gemini: use an aspect ratio such as 16:9")
    many = too_many_images(5, 1, "chat_completions")
    assert many.code == "upstream.too_many_inputs_multipart" and many.params["form"].code == "upstream.form_chat_completions"
    assert many == ("5 input images (source and references) in one request, but chat completions takes at most 1: "
                    "use fewer references; the images API with a multipart upload takes up to 16")
    with pytest.raises(NoCaption) as declined:
        caption_from("", "I won't.")
    assert carried(declined.value).as_json() == {"code": "upstream.caption_declined", "params": {"refusal": "I won't."}}
    with pytest.raises(NoCaption) as empty:
        caption_from("  ")
    assert carried(empty.value).code == "upstream.caption_no_text"


def test_an_answer_with_nothing_and_one_with_previews_only():
    parser = AnswerParser()
    parser.feed({"choices": [{"delta": {"content": ""}}]})
    assert no_image_message(parser).code == "upstream.empty_answer"
    parser.partial_images = 2
    said = no_image_message(parser)
    assert isinstance(said, Message) and said.as_json() == {"code": "upstream.partial_only", "params": {"count": 2}}
    failed = AnswerParser()
    for index in (0, 1):
        failed.feed({"type": "image_generation.partial_failed", "image_index": index,
                     "error": {"code": "OutputImageSensitiveContentDetected", "message": "sensitive"}})
    both = no_image_message(failed)
    assert both.code == "upstream.refusals" and [item.code for item in both.params["refusals"]] == \
        ["upstream.image_failed", "upstream.image_failed"]
    assert both == ("image 0 failed: sensitive (OutputImageSensitiveContentDetected); "
                    "image 1 failed: sensitive (OutputImageSensitiveContentDetected)")


# -- the page in Chinese ----------------------------------------------------------------------------

@pytest.mark.browser
def test_the_card_and_the_viewer_say_why_in_chinese(page, server, fake, tmp_path):
    run_id = server.post("/api/runs", {"input_path": str(make_sources(tmp_path / "src", 2)), "prompt": "make it blue",
                                       "api": api(fake, "refusal_text")}).json()["run_id"]
    listing = server.wait_idle(run_id)
    assert {task["status"] for task in listing["tasks"]} == {"failed"}
    page.evaluate("(run) => { localStorage.setItem('ibc.lang', 'zh'); localStorage.setItem('ibc.run', run); }", run_id)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    card = page.locator("[data-testid=task-card][data-status=failed]").first
    card.wait_for(timeout=20_000)
    expected = f"HTTP 200 · 响应中没有图片；API 返回：{REFUSAL}"
    page.wait_for_function("(text) => document.querySelector('[data-testid=task-card] .error')?.textContent === text",
                           arg=expected, timeout=10_000)
    assert card.locator(".error").inner_text() == expected
    card.locator(".source-thumb").click()
    error = page.locator("[data-testid=viewer-error]")
    error.wait_for(state="visible")
    assert error.inner_text() == expected
    assert not re.search(r"no image in the answer", page.locator("[data-testid=viewer]").inner_text())


def test_an_error_body_that_says_nothing_readable_is_framed_in_our_words_with_a_code():
    from console.upstream.faults import read_error

    empty = read_error(b"", 502).message
    assert empty == "Bad Gateway" and empty.as_json() == {"code": "upstream.empty_body", "params": {"phrase": "Bad Gateway"}}
    html = read_error(b"<!DOCTYPE html><html><body>nginx</body></html>", 503).message
    assert html == "Service Unavailable (an HTML error page)" and html.code == "upstream.html_error_page"
    unknown = read_error(b"", 599).message
    assert unknown == "no message" and unknown.code == "upstream.no_message"
    assert read_error(b"upstream is down", 502).message == "upstream is down"  # the gateway's words, verbatim
