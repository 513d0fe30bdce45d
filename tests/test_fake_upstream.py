"""Check that the fake upstream answers every scenario with the framing the real gateway sends."""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import httpx
import pytest
from PIL import Image

from testkit import images
from testkit.fake_upstream import FILES, IMAGES, SCENARIOS, FakeUpstream, g2_path, g3_path

CHAT = {"model": "grok-imagine-image", "messages": [{"role": "user", "content": "a red fox"}], "stream": True}
OWN_TESTS = {"stall", "oversize_stream", "reset_midstream", "router_cooldown"}  # endless, aborting or timed: below
FAST_SEGMENTS = {"slow_headers": "slow_headers.s=0.05", "latency": "latency.s=0.05",
                 "big_dataurl": "big_dataurl.mb=0.5"}
ERROR_STATUS = {"err_401_g16": 401, "err_401_g2": 401, "err_403_g2": 403, "err_400_g16": 400, "err_429_g2": 429,
                "err_502_g16": 502, "err_503_g3": 503, "err_400_g3_provider": 400, "err_text_plain_500": 500,
                "fail_then_ok": 429, "g4_fault": 503, "echo_key": 401, "echo_request": 401}
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{100,}={0,2}")
LOCAL_PATH = re.compile(r"(?:http://127\.0\.0\.1:\d+)?(/v1/files/image[^\s)\"\\]*|/v1/media/images/img_[\w-]{32}"
                        r"|/images/users-[\w-]+\.jpg|/files/redirect\?to=[^\s)\"\\]+)")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """Return an httpx client with short timeouts."""
    with httpx.Client(timeout=httpx.Timeout(5.0)) as c:
        yield c


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll predicate until it holds or timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def send(client: httpx.Client, fake: FakeUpstream, segment: str, **overrides: Any) -> httpx.Response:
    """Post the request that makes sense for a scenario (by its name) and read the whole answer."""
    name = segment.split(".")[0]
    edits = fake.url(segment, "/v1/images/edits")
    if name == "edits_g16_multipart":
        return client.post(edits, data={"prompt": "x"}, files={"image": ("a.png", IMAGES["red_png"], "image/png")})
    if name == "edits_g2_multipart":
        return client.post(edits, data={"prompt": "x"}, files={"image[]": ("a.png", IMAGES["red_png"], "image/png")})
    if name == "edits_g3_json":
        image = {"url": "data:image/png;base64," + base64.b64encode(IMAGES["red_png"]).decode()}
        return client.post(edits, json={"model": "grok-imagine-image-edit", "prompt": "x", "images": [image]})
    if name.startswith("images_"):
        body = {"model": "grok-imagine-image", "prompt": "a red fox", "n": 1, "stream": "stream" in name}
        return client.post(fake.url(segment, "/v1/images/generations"), json=body)
    if name.startswith("gemini"):  # Gemini's own route, key header and body
        body = {"contents": [{"role": "user", "parts": [{"text": "a red fox"}]}]}
        return client.post(fake.url(segment, "/v1beta/models/gemini-2.5-flash-image:generateContent"), json=body,
                           headers={"x-goog-api-key": "AIza-fake"})
    if name == "seedream":  # the source as a data URL in `image`
        image = "data:image/png;base64," + base64.b64encode(IMAGES["red_png"]).decode()
        return client.post(fake.url(segment, "/v1/images/generations"), json={"model": "m", "prompt": "x", "image": image})
    if name.startswith("responses_"):
        body = {"model": "grok-imagine-image", "input": "a red fox", "stream": "stream" in name or "failed" in name}
        return client.post(fake.url(segment, "/v1/responses"), json=body)
    return client.post(fake.url(segment, "/v1/chat/completions"), json={**CHAT, **overrides})


def payloads(text: str) -> list[Any]:
    """Parse every SSE event's data (any line ending, joined data lines) or NDJSON line as JSON."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for block in text.split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln and not ln.startswith(":")]
        data = [ln[5:].removeprefix(" ") for ln in lines if ln.startswith("data:")]
        raw = "\n".join(data) if data else "\n".join(ln for ln in lines if not ln.startswith("event:"))
        for piece in [raw] if data else raw.split("\n"):
            if piece and piece != "[DONE]":
                out.append(json.loads(piece))
    return out


def strings_under(obj: Any, keys: set[str]) -> Iterator[str]:
    """Yield every string value stored under one of keys, at any depth."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in keys and isinstance(value, str):
                yield value
            else:
                yield from strings_under(value, keys)
    elif isinstance(obj, list):
        for value in obj:
            yield from strings_under(value, keys)


def images_on_wire(client: httpx.Client, fake: FakeUpstream, text: str) -> set[bytes]:
    """Collect every base64 blob and every downloadable local image the answer mentions."""
    joined = "".join(strings_under(payloads(text), {"content", "token", "delta"}))
    haystack = (text + "\n" + joined).replace("\\u0026", "&")
    found = set()
    for run in BASE64_RUN.findall(haystack):
        try:
            found.add(base64.b64decode(run, validate=True))
        except binascii.Error:
            pass
    for path in set(LOCAL_PATH.findall(haystack)):
        found.add(client.get(fake.base_url + path, follow_redirects=True).content)
    return found


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - OWN_TESTS))
def test_every_scenario_answers(fake: FakeUpstream, client: httpx.Client, name: str) -> None:
    segment = FAST_SEGMENTS.get(name, name)
    response = send(client, fake, segment)
    assert response.status_code == ERROR_STATUS.get(name, 200), response.text[:300]
    if response.status_code != 200:
        return
    wanted = fake.expected(segment)
    on_wire = images_on_wire(client, fake, response.text)
    assert all(image in on_wire for image in wanted)
    assert fake.requests[0].scenario == segment


def test_g16_stream_frame_layout(fake: FakeUpstream, client: httpx.Client) -> None:
    response = send(client, fake, "g16_stream_url")
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text.startswith('event: chat.completion.chunk\ndata: {"id":"chatcmpl-')
    assert response.text.endswith("}\n\ndata: [DONE]\n\n")
    frame = payloads(response.text)[0]
    assert list(frame) == ["id", "object", "created", "model", "choices", "usage"]
    assert frame["choices"][0]["finish_reason"] == "stop"


def test_g16_stream_n2_indexes(fake: FakeUpstream, client: httpx.Client) -> None:
    frames = payloads(send(client, fake, "g16_stream_n2").text)
    assert [f["choices"][0]["index"] for f in frames] == [0, 1]
    assert [f["choices"][0]["finish_reason"] for f in frames] == ["stop", "stop"]


def sorted_everywhere(obj: Any) -> bool:
    """Tell whether every dict in obj has its keys in sorted order."""
    if isinstance(obj, dict):
        return list(obj) == sorted(obj) and all(sorted_everywhere(v) for v in obj.values())
    if isinstance(obj, list):
        return all(sorted_everywhere(v) for v in obj)
    return True


def test_serializer_styles(fake: FakeUpstream, client: httpx.Client) -> None:
    g1 = send(client, fake, "g1_nonstream", stream=False).text
    assert '"object": "chat.completion", ' in g1 and g1.endswith('"usage": null}')
    g3 = send(client, fake, "g3_nonstream_md", stream=False).text
    assert "?sig=1\\u0026exp=2)" in g3 and "&" not in g3
    assert sorted_everywhere(json.loads(g3)) and json.loads(g3)["id"].startswith("chatcmpl_")
    g2 = send(client, fake, "g2_nonstream_md", stream=False)
    assert "图片正在生成 100% (1/1)" in g2.text and '","' in g2.text and ", " not in g2.text.split("content")[0]
    assert int(g2.headers["content-length"]) == len(g2.content)
    for frame in payloads(send(client, fake, "g3_stream_dataurl").text):
        assert sorted_everywhere(frame)


def test_g3_stream_single_delta_holds_both_images(fake: FakeUpstream, client: httpx.Client) -> None:
    response = send(client, fake, "g3_stream_dataurl")
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert "event:" not in response.text and response.text.endswith("data: [DONE]\n\n")
    role, content, final = payloads(response.text)
    text = content["choices"][0]["delta"]["content"]
    assert text.startswith("![image](data:image/jpeg;base64,") and "\n\n![image](data:image/png;base64," in text
    assert final["usage"]["total_tokens"] == 180003 and role["choices"][0]["finish_reason"] is None


def test_g1_stream_b64_slices(fake: FakeUpstream, client: httpx.Client) -> None:
    frames = payloads(send(client, fake, "g1_stream_b64").text)
    contents = [f["choices"][0]["delta"]["content"] for f in frames]
    slices = contents[1:-2]
    assert len(slices) >= 3 and all(len(s) == 8192 for s in slices[:-1])
    assert [f["choices"][0]["index"] for f in frames] == list(range(len(frames)))
    assert len({f["id"] for f in frames}) == len(frames)
    assert all(f["system_fingerprint"] is None and f["model"] == "grok-3" for f in frames)
    text = "".join(contents)
    assert text.startswith("![Generated Image](data:image/jpeg;base64,") and text.endswith(")\n")
    assert base64.b64decode(text.split(",", 1)[1][:-2]) == fake.expected("g1_stream_b64")[0]


def test_g1_stream_url_has_no_done(fake: FakeUpstream, client: httpx.Client) -> None:
    text = send(client, fake, "g1_stream_url").text
    assert "[DONE]" not in text and '"finish_reason": "stop"' in text and "/images/users-" in text


def test_g2_stream_progress_omits_finish_reason(fake: FakeUpstream, client: httpx.Client) -> None:
    frames = payloads(send(client, fake, "g2_stream_progress").text)
    assert all("finish_reason" not in f["choices"][0] for f in frames[:-1])
    assert frames[-1]["choices"][0] == {"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": "stop"}
    assert all(f["choices"][0]["delta"]["role"] == "assistant" for f in frames)


def test_tiny_chunks_are_real_chunks(fake: FakeUpstream) -> None:
    with httpx.Client(timeout=5) as c, c.stream("POST", fake.url("tiny_chunks", "/v1/chat/completions"),
                                                json=CHAT) as response:
        pieces = list(response.iter_raw())
    body = b"".join(pieces)
    assert max(len(p) for p in pieces) <= 7 and len(pieces) > 50
    assert b"\r\n\r\n" in body and "\u2028".encode() in body and "图片 ✓".encode() in body


def test_proxy_line_endings(fake: FakeUpstream, client: httpx.Client) -> None:
    crlf = send(client, fake, "proxy_crlf").text
    assert ": ping\r\n" in crlf and "\ndata:{" in crlf and crlf.count("\n") == crlf.count("\r\n")
    cr = send(client, fake, "proxy_cr").text
    assert "\n" not in cr and "\rdata:{" in cr
    for text in (crlf, cr):
        frames = payloads(text)
        assert len(frames) == 3 and frames[2]["usage"]["prompt_tokens"] == 3


def test_gzip_stream(fake: FakeUpstream) -> None:
    with httpx.Client(timeout=5) as c, c.stream("POST", fake.url("gzip_stream", "/v1/chat/completions"),
                                                json=CHAT) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip" and raw[:2] == b"\x1f\x8b"
    text = gzip.decompress(raw).decode()
    assert text.endswith("data: [DONE]\n\n") and len(payloads(text)) == 3


def test_ndjson(fake: FakeUpstream, client: httpx.Client) -> None:
    response = send(client, fake, "ndjson_tokens")
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.text.splitlines()
    assert lines[-1] == "[DONE]" and all(ln.startswith('{"result":{"response":{"token":') for ln in lines[:-1])
    tokens = "".join(json.loads(ln)["result"]["response"]["token"] for ln in lines[:-1])
    assert tokens.endswith(f"![image]({fake.base_url}{g3_path('magenta_jpeg')})")
    assert not send(client, fake, "ndjson_no_done").text.rstrip().endswith("[DONE]")


def test_responses_official_stream_order(fake: FakeUpstream, client: httpx.Client) -> None:
    text = send(client, fake, "responses_official_stream").text
    events = payloads(text)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types.count("response.image_generation_call.partial_image") == 2 and types[-1] == "response.completed"
    assert "[DONE]" not in text and re.findall(r"^event: (.+)$", text, re.M) == types
    item = events[-1]["response"]["output"][0]
    assert item["status"] == "generating" and base64.b64decode(item["result"]) == IMAGES["cyan_png"]


def test_responses_gateway_streams(fake: FakeUpstream, client: httpx.Client) -> None:
    g2 = send(client, fake, "responses_g2_stream").text
    assert g2.endswith("data: [DONE]\n\n") and "sequence_number" not in g2
    g3 = payloads(send(client, fake, "responses_g3_stream").text)
    assert {"type": "keepalive", "sequence_number": 3} in g3
    assert all("response_id" in e for e in g3 if e["type"] != "keepalive")


def test_images_streams(fake: FakeUpstream, client: httpx.Client) -> None:
    edit = client.post(fake.url("images_g3_stream", "/v1/images/edits"), json={"prompt": "x", "stream": True})
    types = [e["type"] for e in payloads(edit.text)]
    assert types == ["image_edit.partial_image", "image_edit.completed"] and "[DONE]" not in edit.text
    assert payloads(edit.text)[1]["usage"]["total_tokens"] == 0
    g16 = payloads(send(client, fake, "images_g16_stream_url").text)
    assert [e.get("stage") for e in g16] == ["preview", "medium", "final"]
    assert g16[0]["url"] == "" and "progress" in g16[0] and g16[2]["url"].startswith(fake.base_url)


def test_fail_then_ok_counts_per_segment(fake: FakeUpstream, client: httpx.Client) -> None:
    segment = "fail_then_ok.times=2.retry_after=1"
    first, second, third = (send(client, fake, segment) for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["retry-after"] == "1" and "data: [DONE]" in third.text
    assert send(client, fake, "fail_then_ok").status_code == 429  # another segment, another counter
    fake.reset()
    response = send(client, fake, segment)
    assert response.status_code == 429 and len(fake.requests) == 1


def test_fail_then_ok_with_options(fake: FakeUpstream, client: httpx.Client) -> None:
    segment = "fail_then_ok.status=503.then=g16_nonstream_url"
    failed, ok = send(client, fake, segment), send(client, fake, segment)
    assert failed.status_code == 503 and "retry-after" not in failed.headers
    assert ok.json()["object"] == "chat.completion"
    assert fake.expected(segment) == [IMAGES["green_jpeg"]]


def test_files_served_byte_identical(fake: FakeUpstream, client: httpx.Client) -> None:
    for path, (data, ctype) in FILES.items():
        response = client.get(fake.base_url + path)
        assert response.content == data and response.headers["content-type"] == ctype
    assert client.get(fake.base_url + g2_path("red_png")).headers["content-type"] == "application/octet-stream"
    head = client.head(fake.base_url + g3_path("red_png"))
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(
        len(IMAGES["red_png"]))
    assert client.get(fake.base_url + "/v1/files/image/nope.jpg").status_code == 404
    assert all(r.scenario is None for r in fake.requests) and fake.max_in_flight == 0


def test_fault_file_routes(fake: FakeUpstream, client: httpx.Client) -> None:
    html = client.get(fake.base_url + "/files/html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    garbage = client.get(fake.base_url + "/files/garbage.png")
    assert garbage.headers["content-type"] == "image/png" and len(garbage.content) == 4096
    target = fake.base_url + g3_path("purple_png")
    redirect = client.get(fake.base_url + "/files/redirect", params={"to": target})
    assert redirect.status_code == 302 and redirect.headers["location"] == target
    with client.stream("GET", fake.base_url + "/files/huge") as huge:
        first = next(huge.iter_raw())
    assert first.startswith(b"\x89PNG\r\n\x1a\n") and "content-length" not in huge.headers
    started = time.monotonic()
    assert client.get(fake.base_url + "/files/slow/red_png", timeout=10).content == IMAGES["red_png"]
    assert time.monotonic() - started >= 1.9


def test_edits_validation(fake: FakeUpstream, client: httpx.Client) -> None:
    files = {"image[]": ("a.png", IMAGES["red_png"], "image/png")}
    wrong_g16 = client.post(fake.url("edits_g16_multipart", "/v1/images/edits"), data={"prompt": "x"}, files=files)
    assert wrong_g16.status_code == 400 and wrong_g16.json()["error"]["param"] == "image"
    files = {"image": ("a.png", IMAGES["red_png"], "image/png")}
    wrong_g2 = client.post(fake.url("edits_g2_multipart", "/v1/images/edits"), data={"prompt": "x"}, files=files)
    assert wrong_g2.status_code == 400 and wrong_g2.json()["detail"][0]["loc"] == ["body", "image[]"]
    wrong_g3 = client.post(fake.url("edits_g3_json", "/v1/images/edits"), data={"prompt": "x"}, files=files)
    assert wrong_g3.status_code == 415
    form = fake.requests[-1].form
    assert form is not None and form["image"] == [("a.png", "image/png", IMAGES["red_png"])]
    assert form["prompt"] == [(None, None, b"x")] and fake.requests[-1].json is None


def test_recorded_request(fake: FakeUpstream, client: httpx.Client) -> None:
    client.post(fake.url("g3_nonstream_md", "/v1/chat/completions?x=1"), json=CHAT,
                headers={"Authorization": "Bearer k"})
    [rec] = fake.requests
    assert (rec.method, rec.path, rec.query, rec.scenario) == ("POST", "/g3_nonstream_md/v1/chat/completions",
                                                               {"x": "1"}, "g3_nonstream_md")
    assert rec.headers["authorization"] == "Bearer k" and rec.json == CHAT and rec.form is None


def test_models_unknown_and_connection_close(fake: FakeUpstream, client: httpx.Client) -> None:
    models = client.get(fake.url("g16_stream_url", "/v1/models")).json()
    assert models["object"] == "list" and set(models["data"][0]) == {"id", "object", "created", "owned_by"}
    assert client.get(fake.url("err_403_g2", "/v1/models")).status_code == 403
    assert client.post(fake.url("no_such_thing", "/v1/chat/completions"), json=CHAT).status_code == 404
    closing = client.post(fake.url("g3_nonstream_md", "/v1/chat/completions"), json=CHAT,
                          headers={"Connection": "close"})
    assert closing.status_code == 200 and closing.headers["connection"] == "close"


def test_expected_parses_options(fake: FakeUpstream) -> None:
    assert fake.expected("latency.s=0.5") == fake.expected("latency") == [IMAGES["gradient512_png"]]
    assert fake.expected("err_429_g2") == [] and fake.expected("html_url") == []
    [big] = fake.expected("big_dataurl.mb=0.5")
    assert Image.open(io.BytesIO(big)).format == "PNG" and 0.3e6 < len(big) < 0.5e6
    assert len(set(IMAGES.values())) == len(IMAGES)
    for data in IMAGES.values():
        Image.open(io.BytesIO(data)).load()


def test_in_flight_under_concurrency(fake: FakeUpstream) -> None:
    url = fake.url("latency.s=0.4", "/v1/chat/completions")
    limits = httpx.Limits(max_connections=64)
    with httpx.Client(timeout=10, limits=limits) as c, ThreadPoolExecutor(64) as pool:
        statuses = list(pool.map(lambda _: c.post(url, json={**CHAT, "stream": False}).status_code, range(64)))
    assert statuses == [200] * 64 and fake.max_in_flight >= 48
    assert wait_until(lambda: fake.in_flight == 0)


def test_stall_then_disconnect_closes_connection(fake: FakeUpstream) -> None:
    assert fake.wait_for_connections(0)  # earlier tests' clients are closed; let the server notice
    baseline = fake.open_connections
    c = httpx.Client(timeout=5)
    with c.stream("POST", fake.url("stall", "/v1/chat/completions"), json=CHAT) as response:
        chunks = response.iter_raw()  # keep a reference: a dropped iterator closes the response
        first = next(chunks)
        assert first.startswith(b"data: {") and fake.in_flight == 1
        assert fake.open_connections == baseline + 1
    c.close()
    assert wait_until(lambda: fake.open_connections == baseline and fake.in_flight == 0)


def test_reset_midstream(fake: FakeUpstream) -> None:
    received = []
    with pytest.raises(httpx.TransportError), httpx.Client(timeout=5) as c:
        with c.stream("POST", fake.url("reset_midstream", "/v1/chat/completions"), json=CHAT) as response:
            for piece in response.iter_raw():
                received.append(piece)
    assert b"data: {" in b"".join(received)


def test_oversize_stream_stops_when_client_leaves(fake: FakeUpstream) -> None:
    with httpx.Client(timeout=5) as c:
        with c.stream("POST", fake.url("oversize_stream", "/v1/chat/completions"), json=CHAT) as response:
            total = 0
            for piece in response.iter_raw():
                total += len(piece)
                if total > 2_000_000:
                    break
    assert wait_until(lambda: fake.in_flight == 0)


def test_close_ends_stalled_handlers() -> None:
    own = FakeUpstream()
    errors: list[BaseException] = []

    def stall_client() -> None:
        try:
            with httpx.Client(timeout=10) as c:
                with c.stream("POST", own.url("stall", "/v1/chat/completions"), json=CHAT) as response:
                    for _ in response.iter_raw():
                        pass
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=stall_client)
    thread.start()
    assert wait_until(lambda: own.in_flight == 1)
    own.close()
    thread.join(10)  # close() ends the stalled stream instead of waiting for it (the thread would hang)
    assert own.open_connections == 0 and not thread.is_alive()


# --------------------------------------------------------------------------- key checks and picky


def chat_with_image(image: bytes) -> dict:
    """Return a chat request that uploads one source image as a data URL, as the console does."""
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    content = [{"type": "text", "text": "make it blue"}, {"type": "image_url", "image_url": {"url": url}}]
    return {**CHAT, "messages": [{"role": "user", "content": content}]}


def test_key_option_requires_one_of_the_keys(fake: FakeUpstream, client: httpx.Client) -> None:
    segment = "g3_stream_dataurl.key=sk-A1~sk-B2"
    chat, models = fake.url(segment, "/v1/chat/completions"), fake.url(segment, "/v1/models")
    for key in ("sk-A1", "sk-B2"):
        assert client.post(chat, json=CHAT, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert client.get(models, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    wrong = ["Bearer ••••••••".encode(), "Bearer  sk-A1", "Bearer sk-A1x", "bearer sk-A1", "sk-A1"]
    for header in [{"Authorization": value} for value in wrong] + [{}]:
        for answer in (client.post(chat, json=CHAT, headers=header), client.get(models, headers=header)):
            assert answer.status_code == 401, header
            error = answer.json()["error"]
            assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
            assert "sk-A1" not in error["message"]  # redacted like OpenAI's own message
    answer = client.post(chat, json=CHAT, headers={"Authorization": "Bearer sk-live-wrong-key"}).json()
    assert answer["error"]["message"] == "Incorrect API key provided: sk-**********-key."
    assert fake.authorizations()[:4] == ["Bearer sk-A1", "Bearer sk-A1", "Bearer sk-B2", "Bearer sk-B2"]
    assert fake.authorizations()[-1] == "Bearer sk-live-wrong-key"


def test_key_calls_revokes_each_key_after_n_image_calls(fake: FakeUpstream, client: httpx.Client) -> None:
    segment = "g3_stream_dataurl.key=sk-A1~sk-B2.key_calls=2"
    chat, models = fake.url(segment, "/v1/chat/completions"), fake.url(segment, "/v1/models")
    a, b = {"Authorization": "Bearer sk-A1"}, {"Authorization": "Bearer sk-B2"}
    assert [client.post(chat, json=CHAT, headers=a).status_code for _ in range(3)] == [200, 200, 401]
    assert client.get(models, headers=a).status_code == 200  # listing models is free
    revoked = client.post(chat, json=CHAT, headers=a).json()["error"]
    assert "revoked" in revoked["message"] and "2 image calls" in revoked["message"]
    assert revoked["code"] == "invalid_api_key"
    assert [client.post(chat, json=CHAT, headers=b).status_code for _ in range(3)] == [200, 200, 401]
    fake.reset()  # counters are per test
    assert client.post(chat, json=CHAT, headers=a).status_code == 200


def test_picky_refuses_the_first_call_of_every_third_source(fake: FakeUpstream, client: httpx.Client) -> None:
    url = fake.url("picky", "/v1/chat/completions")
    sources = [images.make("PNG", (16, 12), (index * 20, 40, 90)) for index in range(7)]

    def outcome(source: bytes) -> str:
        answer = client.post(url, json=chat_with_image(source))
        assert answer.status_code == 200
        if answer.headers["content-type"].startswith("application/json"):
            assert answer.json()["choices"][0]["message"]["content"] == "I can't help with that image."
            return "refused"
        assert IMAGES["orange_jpeg"] in images_on_wire(client, fake, answer.text)
        return "image"

    assert [outcome(s) for s in sources] == ["image", "image", "refused", "image", "image", "refused", "image"]
    assert [outcome(s) for s in (sources[2], sources[5], sources[0])] == ["image"] * 3  # retries succeed


def test_picky_counts_calls_the_key_check_turned_away(fake: FakeUpstream, client: httpx.Client) -> None:
    url = fake.url("picky.key=sk-A1~sk-B2.key_calls=1.every=2.image=red_png", "/v1/chat/completions")
    first, second = (images.make("PNG", (16, 12), color) for color in ((1, 2, 3), (4, 5, 6)))
    a, b = {"Authorization": "Bearer sk-A1"}, {"Authorization": "Bearer sk-B2"}
    assert client.post(url, json=chat_with_image(first), headers=a).status_code == 200
    assert client.post(url, json=chat_with_image(second), headers=a).status_code == 401  # 2nd source, 1st call
    retried = client.post(url, json=chat_with_image(second), headers=b)
    assert retried.headers["content-type"].startswith("text/event-stream")  # not its first call: no refusal
    assert IMAGES["red_png"] in images_on_wire(client, fake, retried.text)
    assert fake.expected("picky.image=red_png") == [IMAGES["red_png"]]


def test_router_cooldown_replays_litellms_cooldown_after_each_failure(fake: FakeUpstream,
                                                                      client: httpx.Client) -> None:
    url = fake.url("router_cooldown.cooldown=0.4", "/v1/chat/completions")
    body = {**CHAT, "model": "gpt-image-1"}
    failed = client.post(url, json=body)
    assert failed.status_code == 500
    said = failed.json()["error"]["message"]
    assert said.startswith("litellm.InternalServerError: InternalServerError: OpenAIException")
    cooling = [client.post(url, json=body) for _ in range(3)]
    assert {answer.status_code for answer in cooling} == {429}
    assert all("retry-after" not in answer.headers for answer in cooling)
    assert cooling[0].text == (
        '{"error":{"message":"No deployments available for selected model, Try again in 0.4 seconds. '
        "Passed model=gpt-image-1. pre-call-checks=False, cooldown_list=['7f4c2b9e0d1a6c3e5b8f2a4d9c1e0b7a6f3d2c1b0a9e8d"
        '7c6b5a4f3e2d1c0b9a\']","type":"None","param":"None","code":"429"}}')
    time.sleep(0.5)
    assert client.post(url, json=body).status_code == 500  # the cooldown is over: the broken deployment again
    assert client.post(url, json=body).status_code == 429


def test_router_cooldown_with_fails_recovers_and_limit_plays_a_true_rate_limit(fake: FakeUpstream,
                                                                                client: httpx.Client) -> None:
    flaky = fake.url("router_cooldown.cooldown=0.3.fails=1", "/v1/chat/completions")
    assert [client.post(flaky, json=CHAT).status_code for _ in range(2)] == [500, 429]
    time.sleep(0.4)
    assert client.post(flaky, json=CHAT).status_code == 200
    limited = fake.url("router_cooldown.cooldown=0.3.fails=1.limit=1", "/v1/chat/completions")
    first = client.post(limited, json=CHAT)
    assert first.status_code == 429 and "Rate limit reached" in first.json()["error"]["message"]
    assert "No deployments available" in client.post(limited, json=CHAT).json()["error"]["message"]
