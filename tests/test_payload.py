"""Request building for every api_mode (pure units)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from console.profile import ApiProfile
from console.upstream.errors import ProfileProblem
from console.upstream.payload import Source, build, deep_merge, endpoint, resolve_mode
from testkit.images import JPEG, PNG, data_url

SOURCE = Source("photos/cat.jpeg", JPEG, "image/jpeg")


def profile(**fields) -> ApiProfile:
    return ApiProfile.from_dict({"api_url": "http://gw.test:8000/v1", "model": "m", **fields})


def body(request) -> dict:
    return json.loads(request.content)


@pytest.mark.parametrize("url, mode", [
    ("http://gw.test/v1", "chat_completions"),
    ("http://gw.test/v1/chat/completions", "chat_completions"),
    ("http://gw.test/v1/responses/", "responses"),
    ("http://gw.test/v1/images/generations", "images"),
    ("http://gw.test/v1/images/edits", "images"),
])
def test_auto_mode_from_url(url, mode):
    assert resolve_mode(profile(api_url=url)) == mode


@pytest.mark.parametrize("url, mode, has_source, expected", [
    ("http://gw.test", "chat_completions", True, "http://gw.test/v1/chat/completions"),
    ("http://gw.test/v1/chat/completions", "responses", True, "http://gw.test/v1/responses"),
    ("http://gw.test/api/v1/", "images", True, "http://gw.test/api/v1/images/edits"),
    ("http://gw.test/v1/images/edits", "images", False, "http://gw.test/v1/images/generations"),
    ("https://x.openai.azure.com/openai/v1?api-version=1", "images", False,
     "https://x.openai.azure.com/openai/v1/images/generations?api-version=1"),
])
def test_endpoint(url, mode, has_source, expected):
    assert endpoint(profile(api_url=url), mode, has_source) == expected


def test_chat_with_source_sends_real_mime_data_url_and_no_empty_system():
    request = build(profile(api_key="sk-secret"), "make it blue", SOURCE)
    sent = body(request)
    assert request.url == "http://gw.test:8000/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-secret"
    assert sent["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "make it blue"},
        {"type": "image_url", "image_url": {"url": data_url(JPEG, "image/jpeg")}},
    ]}]
    assert sent["stream"] is True and "temperature" not in sent and "max_tokens" not in sent
    assert "sk-secret" not in json.dumps(request.summary)


def test_chat_without_source_uses_string_content_and_options():
    sent = body(build(profile(system_prompt="be brief", temperature=0.5, max_tokens=100, n=2, size="1024x1024",
                              response_format="b64_json", stream=False), "a red fox", None))
    assert sent["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a red fox"}]
    assert sent["temperature"] == 0.5 and sent["max_tokens"] == 100 and sent["stream"] is False
    assert sent["image_config"] == {"n": 2, "size": "1024x1024", "response_format": "b64_json"}


def test_whitespace_system_prompt_is_not_sent():
    assert len(body(build(profile(system_prompt="  \n"), "p", None))["messages"]) == 1


@pytest.mark.parametrize("token_field, mode, expected", [
    ("auto", "chat_completions", "max_tokens"),
    ("auto", "responses", "max_output_tokens"),
    ("max_completion_tokens", "chat_completions", "max_completion_tokens"),
    ("none", "chat_completions", None),
])
def test_token_field_rules(token_field, mode, expected):
    sent = body(build(profile(api_mode=mode, token_field=token_field, max_tokens=64), "p", None))
    fields = {k for k in sent if "tokens" in k}
    assert fields == ({expected} if expected else set())


def test_images_mode_sends_no_token_field():
    sent = body(build(profile(api_mode="images", max_tokens=64), "p", None))
    assert not any("tokens" in k for k in sent)


def test_responses_with_source():
    sent = body(build(profile(api_mode="responses", system_prompt="sys"), "edit", SOURCE))
    assert sent["instructions"] == "sys"
    assert sent["input"][0]["content"][1] == {"type": "input_image", "image_url": data_url(JPEG, "image/jpeg")}


def test_images_generation_json_stream_only_when_on():
    assert "stream" not in body(build(profile(api_mode="images", stream=False), "fox", None))
    sent = body(build(profile(api_mode="images", n=1, size="1024x1024"), "fox", None))
    assert sent == {"model": "m", "prompt": "fox", "n": 1, "size": "1024x1024", "stream": True}


def test_images_edit_json_for_g3():
    request = build(profile(api_mode="images", edit_format="json"), "edit", SOURCE)
    assert request.url.endswith("/images/edits")
    assert body(request)["images"] == [{"url": data_url(JPEG, "image/jpeg")}]


@pytest.mark.parametrize("edit_format, field", [("multipart", "image"), ("multipart_array", "image[]")])
def test_images_edit_multipart_field_names(edit_format, field):
    request = build(profile(api_mode="images", edit_format=edit_format, n=2, extra_body={"quality": "low"}), "edit", SOURCE)
    assert request.content is None
    assert request.files == [(field, ("cat.jpg", JPEG, "image/jpeg"))]
    assert request.form == {"model": "m", "prompt": "edit", "n": "2", "stream": "true", "quality": "low"}
    assert "Content-Type" not in request.headers  # httpx sets the multipart boundary


def test_extra_headers_and_deep_merged_extra_body():
    request = build(profile(extra_headers={"X-Trace": "1"}, n=1, extra_body={"image_config": {"size": "1280x720"}, "seed": 7}), "p", None)
    sent = body(request)
    assert request.headers["X-Trace"] == "1"
    assert sent["image_config"] == {"n": 1, "size": "1280x720"} and sent["seed"] == 7


def test_an_empty_extra_header_is_not_sent_and_keeps_the_keys_authorization():
    # A config exported without secrets and imported elsewhere carries "Authorization": "".
    request = build(profile(api_key="sk-abc", extra_headers={"Authorization": "", "X-Trace": "1"}), "p", None)
    assert request.headers["Authorization"] == "Bearer sk-abc" and request.headers["X-Trace"] == "1"


def test_deep_merge_does_not_mutate():
    base, extra = {"a": {"b": 1}}, {"a": {"c": [1]}}
    merged = deep_merge(base, extra)
    merged["a"]["c"].append(2)
    assert base == {"a": {"b": 1}} and extra == {"a": {"c": [1]}}


@pytest.mark.parametrize("fields, message", [
    ({"api_url": ""}, "no API URL"),
    ({"model": ""}, "no model"),
    ({"api_url": "ftp://gw.test"}, "must start with http"),
])
def test_config_errors(fields, message):
    # Built without validation: the profile refuses these at the door, the payload still checks.
    unchecked = dataclasses.replace(profile(), **fields)
    with pytest.raises(ProfileProblem, match=message):
        build(unchecked, "p", None)


# -- several input images -----------------------------------------------------------------------

REFS = [Source(f"refs/r{n}.png", PNG, "image/png") for n in range(1, 4)]


def test_chat_and_responses_carry_every_input_image_in_order():
    chat = body(build(profile(), "combine", SOURCE, REFS[:2]))["messages"][0]["content"]
    assert [part["type"] for part in chat] == ["text", "image_url", "image_url", "image_url"]
    assert [part["image_url"]["url"] for part in chat[1:]] == [data_url(JPEG, "image/jpeg"), data_url(PNG), data_url(PNG)]
    responses = body(build(profile(api_mode="responses"), "combine", SOURCE, REFS[:1]))["input"][0]["content"]
    assert responses == [{"type": "input_text", "text": "combine"},
                         {"type": "input_image", "image_url": data_url(JPEG, "image/jpeg")},
                         {"type": "input_image", "image_url": data_url(PNG)}]


def test_generate_with_references_only_is_an_edit_of_the_references():
    request = build(profile(api_mode="images", edit_format="json"), "a fox", None, REFS[:2])
    assert request.url.endswith("/images/edits") and body(request)["images"] == [{"url": data_url(PNG)}] * 2
    chat = body(build(profile(), "a fox", None, REFS[:1]))["messages"][0]["content"]
    assert [part["type"] for part in chat] == ["text", "image_url"]


@pytest.mark.parametrize("edit_format", ["multipart", "multipart_array"])
def test_multipart_edits_send_several_files_as_image_array(edit_format):
    request = build(profile(api_mode="images", edit_format=edit_format), "combine", SOURCE, REFS)
    assert [(name, file[0], file[2]) for name, file in request.files] == [
        ("image[]", "cat.jpg", "image/jpeg"), ("image[]", "r1.png", "image/png"), ("image[]", "r2.png", "image/png"),
        ("image[]", "r3.png", "image/png")]
    assert len(request.summary["image[]"]) == 4


@pytest.mark.parametrize("fields, limit", [
    ({}, 8), ({"api_mode": "responses"}, 8), ({"api_mode": "images", "edit_format": "json"}, 8),
    ({"api_mode": "images"}, 16), ({"api_mode": "images", "edit_format": "multipart_array"}, 16),
])
def test_each_form_refuses_more_images_than_it_takes(fields, limit):
    many = [Source(f"r{n}.png", PNG, "image/png") for n in range(limit)]
    assert build(profile(**fields), "p", None, many)  # exactly the limit goes
    with pytest.raises(ProfileProblem, match=f"{limit + 1} input images .* takes at most {limit}: use fewer references"):
        build(profile(**fields), "p", SOURCE, many)


def test_bodies_with_spliced_data_urls_are_exactly_what_json_dumps_gives():
    import json

    from console.upstream.payload import Source, dumps

    images = [Source(f"{n}.png", bytes(range(256)) * (n + 1), "image/png") for n in range(12)]
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": 'édit "quoted" \\u0000 \x00 猫'},
        *({"type": "image_url", "image_url": {"url": image.data_url()}} for image in images)]}],
        "extra": {"nested": [images[0].data_url(), 1.5, None, True]}, "stream": True}
    assert dumps(body) == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert dumps({"prompt": "no images"}) == b'{"prompt":"no images"}'


@pytest.mark.parametrize("url, mode, expected", [
    ("https://r.openai.azure.com/openai/v1?api-version=2025-04-01-preview", "images",
     "https://r.openai.azure.com/openai/v1/images/generations?api-version=2025-04-01-preview"),
    ("https://r.openai.azure.com/openai/v1/chat/completions?api-version=1", "chat_completions",
     "https://r.openai.azure.com/openai/v1/chat/completions?api-version=1"),
    ("http://127.0.0.1:8000/?api-version=2", "responses", "http://127.0.0.1:8000/v1/responses?api-version=2"),
])
def test_the_urls_query_stays_after_the_endpoint_path(url, mode, expected):
    assert endpoint(profile(api_url=url), mode, False) == expected
