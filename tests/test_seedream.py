"""Seedream-style images APIs: `edit_format: json_image`, and its stream events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from console.profile import ApiProfile
from console.settings import resolve
from console.upstream import ProfileProblem, ResponseError
from console.upstream.client import CallOutcome, UpstreamClient, make_http_client
from console.upstream.payload import Source, build, input_limit
from console.upstream.retry import is_retryable
from testkit.fake_upstream import IMAGES, FakeUpstream
from testkit.images import JPEG, PNG, data_url
from tests.test_upstream_cli import run as run_cli

ARK = "https://ark.cn-beijing.volces.com/api/v3"
MODEL = "doubao-seedream-4-0-250828"
SOURCE = Source("cat.jpg", JPEG, "image/jpeg")
REFERENCE = Source("style.png", PNG, "image/png")
GENERATIONS = "/v1/images/generations"


def profile(api_url: str = ARK, **fields: Any) -> ApiProfile:
    return ApiProfile.from_dict({"api_url": api_url, "api_key": "ark-key", "model": MODEL, "api_mode": "images",
                                 "edit_format": "json_image", **fields})


# -- the request --------------------------------------------------------------------------------


def test_one_input_goes_as_a_data_url_string_on_the_generations_url():
    chosen = profile(size="2K", response_format="b64_json", extra_body={"watermark": False})
    request = build(chosen, "make it blue", SOURCE)
    body = json.loads(request.content)
    assert request.url == ARK + "/images/generations"
    assert body == {"model": MODEL, "prompt": "make it blue", "size": "2K", "response_format": "b64_json",
                    "image": data_url(JPEG, "image/jpeg"), "stream": True, "watermark": False}
    assert request.headers["Authorization"] == "Bearer ark-key"


def test_several_inputs_go_as_a_list_source_first():
    body = json.loads(build(profile(stream=False), "p", SOURCE, [REFERENCE]).content)
    assert body["image"] == [data_url(JPEG, "image/jpeg"), data_url(PNG)]
    assert "stream" not in body and "images" not in body


def test_the_url_given_is_the_url_used():
    assert build(profile(ARK + "/images/generations"), "p", SOURCE).url == ARK + "/images/generations"
    assert build(profile("http://relay:3000/v1/images/edits"), "p", SOURCE).url == "http://relay:3000/v1/images/edits"
    assert build(profile(), "p", None).url == ARK + "/images/generations"  # generate: no `image` at all
    assert "image" not in json.loads(build(profile(), "p", None).content)


def test_up_to_ten_inputs():
    assert input_limit(profile()) == (10, "images_json_image")
    with pytest.raises(ProfileProblem, match=r"11 input images .*\(Seedream\) takes at most 10: use fewer references$"):
        build(profile(), "p", SOURCE, [REFERENCE] * 10)


# -- against the fake's Seedream ------------------------------------------------------------------


def call(fake: FakeUpstream, segment: str, path: str = GENERATIONS, *, references: tuple[Source, ...] = (),
         **fields: Any) -> CallOutcome:
    fields = {"allow_private_api": True, "max_retries": 2, "timeout_s": 20, **fields}
    chosen = profile(fake.url(segment, path), **fields)

    async def go() -> CallOutcome:
        async with make_http_client() as http:
            client = UpstreamClient(http, resolve({}))
            return await client.call(chosen, "make it blue", SOURCE, references=references)

    return asyncio.run(go())


@pytest.mark.parametrize("segment, fields", [
    ("seedream", {}),
    ("seedream.images=3", {}),
    ("seedream.images=2.events=1", {}),
    ("seedream.images=2", {"stream": False}),
    ("seedream.images=2", {"stream": False, "response_format": "url"}),
    ("seedream.images=3", {"response_format": "url"}),
])
def test_every_finished_image_is_a_result(fake, segment, fields):
    outcome = call(fake, segment, **fields)
    assert [image.data for image in outcome.images] == fake.expected(segment)
    assert outcome.attempts == 1 and outcome.warnings == []
    sent = next(r for r in fake.requests if r.method == "POST")
    assert sent.path == f"/{segment}{GENERATIONS}" and sent.json["image"] == data_url(JPEG, "image/jpeg")


def test_several_inputs_reach_the_gateway_as_a_list(fake):
    call(fake, "seedream", references=(REFERENCE,))
    assert fake.requests[0].json["image"] == [data_url(JPEG, "image/jpeg"), data_url(PNG)]


@pytest.mark.parametrize("stream", [True, False])
def test_one_failed_image_is_a_warning_when_another_came(fake, stream):
    outcome = call(fake, "seedream.images=3.fail=1", stream=stream)
    assert [image.data for image in outcome.images] == [IMAGES["red_png"], IMAGES["navy_png"]]
    assert outcome.warnings == ["image 1 failed: The request failed because the output image may contain sensitive "
                                "information. (OutputImageSensitiveContentDetected)"]


@pytest.mark.parametrize("stream", [True, False])
def test_every_image_failed_fails_the_task_with_the_reason_not_retried(fake, stream):
    with pytest.raises(ResponseError) as caught:
        call(fake, "seedream.images=2.fail=all", stream=stream, max_retries=4)
    error = caught.value
    assert str(error).startswith("image 0 failed: The request failed because the output image may contain sensitive")
    assert "image 1 failed" in str(error) and error.code == "OutputImageSensitiveContentDetected"
    assert error.attempts == 1 and not is_retryable(error) and len(fake.requests) == 1


@pytest.mark.parametrize("edit_format", ["json", "multipart"])
def test_the_other_transports_get_arks_400(fake, edit_format):
    with pytest.raises(Exception) as caught:
        call(fake, "seedream", "/v1/images/edits", edit_format=edit_format)
    assert "HTTP 400" in str(caught.value) and "`image`" in str(caught.value)


def test_the_command_line_sends_json_image(fake, tmp_path):
    source = tmp_path / "cat.jpg"
    source.write_bytes(JPEG)
    code, report, _ = run_cli(["--api-url", fake.url("seedream.images=2", GENERATIONS), "--mode", "images",
                               "--edit-format", "json_image", "--model", MODEL, "--size", "2K", "--image", str(source),
                               "--prompt", "blue", "--out", str(tmp_path / "out")], ALLOW_PRIVATE_API_URL="1")
    assert code == 0 and report["ok"] is True, report
    assert sorted(open(p, "rb").read() for p in report["images"]) == sorted(fake.expected("seedream.images=2"))
    sent = fake.requests[0].json
    assert sent["image"] == data_url(JPEG, "image/jpeg") and sent["size"] == "2K"
