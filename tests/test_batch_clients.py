"""The batch services' clients (OpenAI's Batch API, Gemini's batch mode): line bodies, states, answers, the wire."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from console.profile import ApiProfile
from console.settings import resolve
from console.upstream import (BatchLine, BlockedURLError, DebugLog, ProfileProblem, ResponseError, Source, StatusError,
                              UpstreamClient, batch_request, line_body, make_http_client, service_for)
from console.upstream.batch import gemini as gemini_batches
from console.upstream.batch import openai as openai_batches
from console.upstream.batch.wire import Wire, create_once
from testkit.images import JPEG, PNG, data_url

SETTINGS = resolve({})
SOURCE = Source("cat.jpg", JPEG, "image/jpeg")
KEY = "sk-batch-secret-key-0123456789"


def profile(**fields: Any) -> ApiProfile:
    values = {"api_url": "http://127.0.0.1:9/v1/chat/completions", "model": "gpt-image-1", "api_key": KEY,
              "allow_private_api": True, "max_retries": 1, **fields}
    return ApiProfile.from_dict(values)


def run(coro_factory):
    """Run `coro_factory(client)` with a real upstream client; return what it returns."""
    async def go():
        async with make_http_client() as http:
            return await coro_factory(UpstreamClient(http, SETTINGS, sleep=_no_wait))
    return asyncio.run(go())


async def _no_wait(seconds: float) -> None:
    return None


# -- the line bodies -----------------------------------------------------------------------------

@pytest.mark.parametrize("edit_format", ["multipart", "multipart_array", "json"])
def test_an_images_edit_goes_as_json_with_image_urls_whatever_the_edit_format(edit_format):
    chosen = profile(api_url="http://127.0.0.1:9/v1/images/edits", api_mode="images", edit_format=edit_format,
                     stream=True)
    request = batch_request(chosen, "make it blue", SOURCE, [Source("ref.png", PNG, "image/png")])
    body = line_body(request)
    assert request.url.endswith("/v1/images/edits") and request.files == []
    assert body["images"] == [{"image_url": data_url(JPEG, "image/jpeg")}, {"image_url": data_url(PNG)}]
    assert "stream" not in body and body["prompt"] == "make it blue"


@pytest.mark.parametrize("mode", ["chat_completions", "responses"])
def test_stream_is_off_in_a_batch_line(mode):
    request = batch_request(profile(api_mode=mode, stream=True, extra_body={"stream": True}), "hi", SOURCE)
    assert request.stream is False and "stream" not in line_body(request)


def test_a_seedream_profile_has_no_batch_route():
    chosen = profile(api_url="http://127.0.0.1:9/v1/images/generations", api_mode="images", edit_format="json_image")
    with pytest.raises(ProfileProblem, match="json_image"):
        batch_request(chosen, "hi", SOURCE)
    with pytest.raises(ProfileProblem, match="json_image"):
        service_for(chosen, None)


def test_auto_is_resolved_before_the_service_is_chosen():
    assert service_for(profile(), None).name == "openai"
    assert service_for(profile(api_url="https://generativelanguage.googleapis.com/v1beta"), None).name == "gemini"


def test_the_openai_input_file_holds_one_request_per_task():
    requests = [batch_request(profile(), f"prompt {n}", SOURCE) for n in range(2)]
    lines = [BatchLine(f"t{n}", request) for n, request in enumerate(requests)]
    endpoint = openai_batches.batch_endpoint(requests[0].url)
    rows = [json.loads(raw) for raw in openai_batches.jsonl(lines, endpoint).splitlines()]
    assert endpoint == "/v1/chat/completions"
    assert [(row["custom_id"], row["method"], row["url"]) for row in rows] == [
        ("t0", "POST", "/v1/chat/completions"), ("t1", "POST", "/v1/chat/completions")]
    assert rows[1]["body"]["messages"][0]["content"][0] == {"type": "text", "text": "prompt 1"}


def test_the_gemini_input_file_holds_key_and_request_lines():
    request = batch_request(profile(api_url="http://127.0.0.1:9/v1beta", api_mode="gemini",
                                    model="gemini-2.5-flash-image"), "hi", SOURCE)
    row = json.loads(gemini_batches.jsonl([BatchLine("t7", request)]))
    assert row["key"] == "t7"
    assert row["request"]["contents"][0]["parts"][1]["inline_data"]["data"] == base64.b64encode(JPEG).decode()


# -- OpenAI: states and answer lines ---------------------------------------------------------------

def batch(status: str, **more: Any) -> dict[str, Any]:
    return {"id": "batch_1", "object": "batch", "status": status,
            "request_counts": {"total": 4, "completed": 3, "failed": 1}, **more}


@pytest.mark.parametrize("status, done", [("validating", False), ("in_progress", False), ("finalizing", False),
                                          ("cancelling", False), ("completed", True), ("failed", True),
                                          ("expired", True), ("cancelled", True)])
def test_openai_states_are_mapped(status, done):
    state = openai_batches.state_of(batch(status))
    assert (state.provider_id, state.status, state.done) == ("batch_1", status, done)
    assert (state.total, state.completed, state.failed) == (4, 3, 1)


def test_openai_failure_and_expiry_say_why():
    failed = batch("failed", errors={"object": "list", "data": [
        {"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.", "line": 2}]})
    error = openai_batches.state_of(failed).error
    assert error == "invalid_json_line: This line is not parseable as valid JSON. (line 2)"
    # The provider's words stay verbatim; the line number is the console's, said in the page's language.
    assert error.as_json() == {"code": "upstream.batch_errors", "params": {"errors": [
        {"code": "upstream.said_at_line", "params": {"said": "invalid_json_line: This line is not parseable as valid "
                                                              "JSON.", "line": 2},
         "text": "invalid_json_line: This line is not parseable as valid JSON. (line 2)"}]}}
    two = batch("failed", errors={"data": [{"message": "bad model", "line": 1}, {"message": "too big"}]})
    assert openai_batches.state_of(two).error == "bad model (line 1); too big"
    assert "expired" in openai_batches.state_of(batch("expired")).error
    assert openai_batches.state_of(batch("in_progress")).error is None


def test_openai_output_and_error_lines_are_read_by_custom_id():
    body = {"id": "chatcmpl-1", "choices": [{"message": {"content": "done"}}]}
    content = "\n".join(json.dumps(row) for row in [
        {"id": "r1", "custom_id": "t1", "response": {"status_code": 200, "request_id": "q", "body": body},
         "error": None},
        {"id": "r2", "custom_id": "t2", "response": {"status_code": 400, "body": {"error": {
            "message": "Your request was rejected by the safety system.", "code": "content_policy_violation"}}},
         "error": None},
        {"id": "r3", "custom_id": "t3", "response": None,
         "error": {"code": "batch_expired", "message": "This request could not be executed before the completion "
                                                      "window expired."}},
    ]).encode() + b"\n{cut"
    answers = {answer.key: answer for answer in openai_batches.read_lines(content)}
    assert answers["t1"].payload == body and answers["t1"].http_status == 200 and answers["t1"].error is None
    assert answers["t2"].payload is None and answers["t2"].http_status == 400
    assert answers["t2"].error == "content_policy_violation: Your request was rejected by the safety system."
    assert answers["t3"].error.startswith("batch_expired: This request could not be executed")
    assert len(answers) == 3


# -- Gemini: states and answers --------------------------------------------------------------------

def operation(state: str, done: bool = False, **more: Any) -> dict[str, Any]:
    return {"name": "batches/abc", "done": done, "metadata": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "name": "batches/abc", "displayName": "b1", "state": state,
        "batchStats": {"requestCount": "5", "successfulRequestCount": "3", "failedRequestCount": "1",
                       "pendingRequestCount": "1"}}, **more}


@pytest.mark.parametrize("state, status, done", [
    ("BATCH_STATE_PENDING", "pending", False), ("BATCH_STATE_RUNNING", "running", False),
    ("BATCH_STATE_SUCCEEDED", "succeeded", True), ("BATCH_STATE_FAILED", "failed", True),
    ("BATCH_STATE_CANCELLED", "cancelled", True), ("BATCH_STATE_EXPIRED", "expired", True)])
def test_gemini_states_are_mapped_and_string_counts_read(state, status, done):
    found = gemini_batches.state_of(operation(state, done))
    assert (found.provider_id, found.status, found.done) == ("batches/abc", status, done)
    assert (found.total, found.completed, found.failed) == (5, 3, 1)


def test_a_failed_gemini_batch_says_why():
    failed = operation("BATCH_STATE_FAILED", True, error={"code": 3, "message": "Request payload is invalid"})
    assert gemini_batches.state_of(failed).error == "the batch failed: Request payload is invalid"


def test_gemini_inline_answers_are_matched_by_key_else_by_order():
    good = {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]}}]}
    items = [{"response": good, "metadata": {"key": "t2"}},
             {"error": {"code": 3, "message": "bad image", "status": "INVALID_ARGUMENT"}},
             {"response": good}]
    answers = gemini_batches.read_inlined(items, keys=["t1", "t5", "t9"])
    assert [(a.key, a.http_status, a.error) for a in answers] == [
        ("t2", 200, None), ("t5", 400, "INVALID_ARGUMENT: bad image"), ("t9", 200, None)]
    assert answers[0].payload == good


def test_gemini_answers_are_read_from_the_response_or_the_batch_output():
    good = {"candidates": []}
    inline = {"inlinedResponses": {"inlinedResponses": [{"response": good, "metadata": {"key": "t1"}}]}}
    in_response = operation("BATCH_STATE_SUCCEEDED", True, response={
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput", **inline})
    in_output = operation("BATCH_STATE_SUCCEEDED", True)
    in_output["metadata"]["output"] = inline
    for raw in (in_response, in_output):
        state = gemini_batches.state_of(raw)
        answers = run(lambda client: gemini_batches.GeminiBatches(client).answers(profile(), state, DebugLog()))
        assert [(a.key, a.payload) for a in answers] == [("t1", good)]


def test_a_gemini_responses_file_is_read_by_key():
    content = b'{"key":"t1","response":{"candidates":[]}}\n{"key":"t2","error":{"code":8,"message":"quota"}}\n'
    answers = [gemini_batches.read_line(raw, index) for index, raw in enumerate(content.splitlines())]
    assert [(a.key, a.http_status, a.error) for a in answers] == [("t1", 200, None), ("t2", 429, "quota")]


def test_a_gemini_responses_file_is_read_as_it_arrives_and_a_line_over_the_cap_keeps_the_order():
    # A thousand images answered are gigabytes: the file is read line by line, never whole. Lines without a
    # key take the batch's keys in order, so a line left out (over the cap) must still count as one.
    import http.server
    import threading

    good = {"candidates": [{"content": {"parts": [{"text": "ok"}]}}]}
    rows = [{"response": good}, {"response": {"candidates": [{"content": {"parts": [{"text": "x" * 5000}]}}]}},
            {"error": {"code": 8, "message": "quota"}}, {"key": "t9", "response": good}]
    content = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    asked: list[str] = []

    class Files(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            for start in range(0, len(content), 700):  # in pieces, as a network delivers it
                self.wfile.write(content[start:start + 700])
                self.wfile.flush()

        def log_message(self, *args):
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        chosen = profile(api_url=f"http://127.0.0.1:{server.server_port}/v1beta/models/m:generateContent",
                         api_mode="gemini", model="m")
        state = gemini_batches.state_of({"name": "batches/b1", "done": True,
                                         "metadata": {"state": "BATCH_STATE_SUCCEEDED"},
                                         "response": {"responsesFile": "files/out1"}})
        debug = DebugLog(chosen.secrets())

        async def go():
            async with make_http_client() as http:
                client = UpstreamClient(http, resolve({"MAX_RESPONSE_BYTES": "4096"}), sleep=_no_wait)
                service = gemini_batches.GeminiBatches(client)
                return [answer async for answer in service.each_answer(chosen, state, debug, ["t0", "t1", "t2"])]

        answers = asyncio.run(go())
    finally:
        server.shutdown()
        server.server_close()
    assert [(a.key, a.payload is not None, a.error) for a in answers] == [("t0", True, None), ("t2", False, "quota"),
                                                                          ("t9", True, None)]
    assert asked == ["/download/v1beta/files/out1:download?alt=media"]
    assert "a line over 4096 bytes was left out" in debug.text()


def test_gemini_urls_sit_beside_the_api_version():
    chosen = profile(api_url="http://127.0.0.1:9/relay/v1beta/models/x:generateContent?key=k", api_mode="gemini")
    assert gemini_batches._upload_url(chosen) == "http://127.0.0.1:9/relay/upload/v1beta/files?key=k"
    assert gemini_batches._download_url(chosen, "files/r1") == (
        "http://127.0.0.1:9/relay/download/v1beta/files/r1:download?key=k&alt=media")
    assert gemini_batches._url(chosen, "/batches", "pageSize=100") == (
        "http://127.0.0.1:9/relay/v1beta/batches?key=k&pageSize=100")
    with pytest.raises(ResponseError):
        gemini_batches._download_url(chosen, "../x")


# -- outcome_of: an answer body read elsewhere becomes verified images -----------------------------

def test_an_answer_payload_becomes_verified_images_with_its_usage():
    request = batch_request(profile(), "make it blue", SOURCE)
    payload = {"id": "c1", "choices": [{"message": {"role": "assistant", "content": f"![x]({data_url(PNG)})"}}],
               "usage": {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}}
    kept = []
    outcome = run(lambda client: client.outcome_of(profile(), request, payload, DebugLog(), kept.append))
    assert [image.data for image in outcome.images] == [PNG] and kept == outcome.images
    assert outcome.usage.input_tokens == 11 and outcome.usage.output_tokens == 22


def test_an_answer_payload_without_an_image_is_a_response_error_with_its_usage():
    request = batch_request(profile(), "make it blue", SOURCE)
    payload = {"choices": [{"message": {"content": f"I cannot do that, {KEY}"}}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 7}}
    with pytest.raises(ResponseError) as caught:
        run(lambda client: client.outcome_of(profile(), request, payload, DebugLog([KEY])))
    assert "I cannot do that" in str(caught.value) and KEY not in str(caught.value)
    assert caught.value.usage.output_tokens == 7


# -- create at most once ----------------------------------------------------------------------------

def test_an_ambiguous_create_failure_looks_for_the_batch_before_trying_again():
    calls, found = [], [None, "adopted"]

    async def create(retry: bool):
        calls.append(retry)
        raise StatusError("HTTP 502: bad gateway", http_status=502)

    async def find():
        return found.pop(0)

    async def go(client):
        return await create_once(create, find, Wire(client, profile(), DebugLog()), "the batch creation", 3)

    assert run(go) == "adopted"
    assert calls == [False, False]  # the second create came only after the first look found nothing


def test_a_refused_create_is_not_tried_again():
    calls = []

    async def create(retry: bool):
        calls.append(retry)
        raise StatusError("HTTP 400: bad file", http_status=400)

    async def find():
        raise AssertionError("a refusal made no batch: nothing to look for")

    with pytest.raises(StatusError):
        run(lambda client: create_once(create, find, Wire(client, profile(), DebugLog()), "the batch creation", 3))
    assert calls == [False]


# -- OpenAI against the fake Batch API ------------------------------------------------------------

def openai_profile(fake, segment: str, path: str = "/v1/images/edits", **fields: Any) -> ApiProfile:
    return profile(api_url=fake.url(segment, path), api_mode="images" if "images" in path else "auto",
                   **fields)


def lines_for(chosen: ApiProfile, count: int, source: Source | None = SOURCE) -> list[BatchLine]:
    return [BatchLine(f"t{n}", batch_request(chosen, f"dusk {n}", source)) for n in range(count)]


async def until_done(service, chosen: ApiProfile, state, debug: DebugLog, limit: float = 10.0):
    """Poll every 50 ms until the batch is done; return its last state."""
    deadline = asyncio.get_running_loop().time() + limit
    while not state.done:
        assert asyncio.get_running_loop().time() < deadline, f"still {state.status}"
        await asyncio.sleep(0.05)
        state = await service.poll(chosen, state.provider_id, debug)
    return state


def test_openai_submit_poll_and_answers_with_a_failed_line(fake):
    chosen = openai_profile(fake, "batch.batch_s=0.5.batch_fail=1")
    debug = DebugLog(chosen.secrets())

    async def go(client):
        service = service_for(chosen, client)
        state = await service.submit(chosen, lines_for(chosen, 3), "b-one", debug)
        first = state
        state = await until_done(service, chosen, state, debug)
        answers = await service.answers(chosen, state, debug)
        good = next(answer for answer in answers if answer.payload is not None)
        outcome = await client.outcome_of(chosen, lines_for(chosen, 1)[0].request, good.payload, debug)
        return first, state, answers, outcome

    first, state, answers, outcome = run(go)
    assert first.provider_id.startswith("batch_") and not first.done and first.status == "validating"
    assert (state.status, state.done, state.total, state.completed, state.failed) == ("completed", True, 3, 2, 1)
    by_key = {answer.key: answer for answer in answers}
    assert sorted(by_key) == ["t0", "t1", "t2"]
    assert by_key["t0"].payload is None and by_key["t0"].http_status == 400 and "safety system" in by_key["t0"].error
    assert by_key["t1"].payload["data"][0]["b64_json"] and by_key["t2"].http_status == 200
    assert outcome.images and outcome.usage.output_tokens
    submitted = [entry for entry in fake.batches() if entry["label"] == "b-one"]
    assert len(submitted) == 1 and submitted[0]["keys"] == ["t0", "t1", "t2"]
    assert submitted[0]["endpoint"] == "/v1/images/edits"
    upload = next(r for r in fake.requests if r.path.endswith("/v1/files"))
    assert upload.headers["authorization"] == f"Bearer {KEY}" and upload.form["purpose"][0][2] == b"batch"
    created = next(r for r in fake.requests if r.path.endswith("/v1/batches") and r.method == "POST")
    assert created.json["metadata"] == {"console_batch": "b-one"} and created.json["completion_window"] == "24h"
    assert KEY not in debug.text() and "→ POST" in debug.text()


def test_openai_chat_lines_go_to_the_chat_endpoint(fake):
    chosen = openai_profile(fake, "batch.batch_s=0.2", "/v1/chat/completions", stream=True)

    async def go(client):
        service = service_for(chosen, client)
        debug = DebugLog()
        state = await until_done(service, chosen, await service.submit(chosen, lines_for(chosen, 1), "b-chat", debug),
                                 debug)
        answers = await service.answers(chosen, state, debug)
        return await client.outcome_of(chosen, lines_for(chosen, 1)[0].request, answers[0].payload, debug)

    assert run(go).images
    assert [entry["endpoint"] for entry in fake.batches() if entry["label"] == "b-chat"] == ["/v1/chat/completions"]


def test_openai_find_follows_the_list_pages(fake, monkeypatch):
    monkeypatch.setattr(openai_batches, "LIST_PAGE", 1)
    chosen = openai_profile(fake, "batch.batch_s=30.find=1", api_key="sk-finder-0123456789")

    async def go(client):
        service, debug = service_for(chosen, client), DebugLog()
        made = [await service.submit(chosen, lines_for(chosen, 1), f"b-find-{n}", debug) for n in range(3)]
        oldest = await service.find(chosen, "b-find-0", debug)
        missing = await service.find(chosen, "b-never", debug)
        return made, oldest, missing

    made, oldest, missing = run(go)
    assert oldest.provider_id == made[0].provider_id and missing is None
    pages = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/v1/batches")]
    assert [r.query.get("after") for r in pages[:3]] == [None, made[2].provider_id, made[1].provider_id]


def test_openai_cancel_then_read_what_finished(fake):
    chosen = openai_profile(fake, "batch.batch_s=2.batch_cancel_s=0.2")

    async def go(client):
        service, debug = service_for(chosen, client), DebugLog()
        state = await service.submit(chosen, lines_for(chosen, 10), "b-cancel", debug)
        while state.completed == 0:
            await asyncio.sleep(0.05)
            state = await service.poll(chosen, state.provider_id, debug)
        cancelling = await service.cancel(chosen, state.provider_id, debug)
        final = await until_done(service, chosen, cancelling, debug)
        return cancelling, final, await service.answers(chosen, final, debug)

    cancelling, final, answers = run(go)
    assert cancelling.status == "cancelling" and not cancelling.done
    assert final.status == "cancelled" and final.done and final.error == "the batch was cancelled"
    assert 0 < len(answers) == final.completed < 10 and all(answer.payload for answer in answers)


def test_openai_expiry_and_rejection_say_why(fake):
    async def go(client, segment):
        chosen = openai_profile(fake, segment)
        service, debug = service_for(chosen, client), DebugLog()
        state = await until_done(service, chosen, await service.submit(chosen, lines_for(chosen, 4), "b-end", debug),
                                 debug)
        return state, await service.answers(chosen, state, debug)

    expired, answers = run(lambda client: go(client, "batch.batch_s=0.3.batch_expire=1"))
    assert expired.status == "expired" and "expired" in expired.error
    assert sorted(answer.error is None for answer in answers) == [False, False, True, True]
    assert any("batch_expired" in (answer.error or "") for answer in answers)
    rejected, answers = run(lambda client: go(client, "batch.batch_s=0.3.batch_reject=1"))
    assert rejected.status == "failed" and rejected.error and answers == []


def test_openai_http_errors_are_readable_and_redacted(fake):
    chosen = openai_profile(fake, "batch")

    with pytest.raises(StatusError) as caught:
        run(lambda client: service_for(chosen, client).poll(chosen, "batch_0000", DebugLog(chosen.secrets())))
    assert str(caught.value).startswith("the batch service answered HTTP 404 for the batch status: No batch found")
    wrong = openai_profile(fake, "batch.key=sk-right", api_key="sk-wrong-key-0123456789")
    debug = DebugLog(wrong.secrets())
    with pytest.raises(StatusError) as caught:
        run(lambda client: service_for(wrong, client).find(wrong, "b", debug))
    assert "HTTP 401 for the batch list" in str(caught.value)
    assert "sk-wrong-key-0123456789" not in str(caught.value) + debug.text()


def test_the_url_policy_applies_to_every_batch_call(fake):
    chosen = openai_profile(fake, "batch", allow_private_api=False)
    with pytest.raises(BlockedURLError):
        run(lambda client: service_for(chosen, client).submit(chosen, lines_for(chosen, 1), "b-blocked", DebugLog()))
    with pytest.raises(BlockedURLError):
        run(lambda client: service_for(chosen, client).find(chosen, "b-blocked", DebugLog()))
    assert fake.requests == []


def test_a_key_the_service_quotes_back_is_redacted_from_the_error(fake):
    chosen = openai_profile(fake, "echo_key", "/v1/chat/completions")
    debug = DebugLog(chosen.secrets())

    async def go(client):
        return await Wire(client, chosen, debug).json("POST", fake.url("echo_key", "/v1/chat/completions"),
                                                      "the batch creation", body={"input_file_id": "file-1"})

    with pytest.raises(StatusError) as caught:
        run(go)
    assert str(caught.value).startswith("the batch service answered HTTP 401 for the batch creation: Invalid token")
    assert KEY not in str(caught.value) and KEY not in debug.text()


# -- Gemini against the fake batch mode -----------------------------------------------------------

def gemini_profile(fake, segment: str, **fields: Any) -> ApiProfile:
    values = {"model": "gemini-2.5-flash-image", **fields}
    return profile(api_url=fake.url(segment, f"/v1beta/models/{values['model']}:generateContent"), api_mode="gemini",
                   **values)


def gemini_round(fake, segment: str, count: int, label: str, service_args: dict | None = None, **fields: Any):
    """Submit `count` lines, poll until done and read the answers; return (first state, last, answers, outcome)."""
    chosen = gemini_profile(fake, segment, **fields)
    debug = DebugLog(chosen.secrets())

    async def go(client):
        service = gemini_batches.GeminiBatches(client, **(service_args or {}))
        lines = lines_for(chosen, count)
        first = await service.submit(chosen, lines, label, debug)
        state = await until_done(service, chosen, first, debug)
        answers = await service.answers(chosen, state, debug, [line.key for line in lines])
        good = next((answer for answer in answers if answer.payload is not None), None)
        outcome = good and await client.outcome_of(chosen, lines[0].request, good.payload, debug)
        return first, state, answers, outcome

    return (*run(go), debug)


def test_gemini_inline_batch_submit_poll_and_answers(fake):
    first, state, answers, outcome, debug = gemini_round(fake, "batch.batch_s=0.5.batch_fail=1", 3, "b-gem")
    assert first.provider_id.startswith("batches/") and not first.done
    assert (state.status, state.done, state.total, state.completed, state.failed) == ("succeeded", True, 3, 2, 1)
    by_key = {answer.key: answer for answer in answers}
    assert sorted(by_key) == ["t0", "t1", "t2"] and by_key["t0"].payload is None and by_key["t0"].error
    assert outcome.images and outcome.usage is not None
    created = next(r for r in fake.requests if r.path.endswith(":batchGenerateContent"))
    assert created.headers["x-goog-api-key"] == KEY and "authorization" not in created.headers
    batch = created.json["batch"]
    assert batch["display_name"] == "b-gem"
    assert [item["metadata"] for item in batch["input_config"]["requests"]["requests"]] == [
        {"key": "t0"}, {"key": "t1"}, {"key": "t2"}]
    assert KEY not in debug.text()


def test_a_gemini_batch_past_the_inline_limit_is_uploaded_as_a_file(fake):
    first, state, answers, outcome, _ = gemini_round(fake, "batch.batch_s=0.3", 3, "b-file",
                                                     {"inline_limit": 1000})
    assert state.status == "succeeded" and sorted(answer.key for answer in answers) == ["t0", "t1", "t2"]
    assert outcome.images
    start, finish = [r for r in fake.requests if "/upload/v1beta/files" in r.path]
    assert start.headers["x-goog-upload-command"] == "start" and start.headers["x-goog-upload-protocol"] == "resumable"
    assert finish.headers["x-goog-upload-command"] == "upload, finalize" and finish.query.get("upload_id")
    assert [json.loads(row)["key"] for row in finish.body.splitlines()] == ["t0", "t1", "t2"]
    created = next(r for r in fake.requests if r.path.endswith(":batchGenerateContent"))
    assert created.json["batch"]["input_config"]["file_name"].startswith("files/")
    assert any("/download/v1beta/files/" in r.path for r in fake.requests)


def test_gemini_find_cancel_and_expiry(fake, monkeypatch):
    monkeypatch.setattr(gemini_batches, "LIST_PAGE", 1)
    chosen = gemini_profile(fake, "batch.batch_s=2.batch_cancel_s=0.2.gfind=1", api_key="gm-finder-0123456789")

    async def go(client):
        service, debug = gemini_batches.GeminiBatches(client), DebugLog()
        made = [await service.submit(chosen, lines_for(chosen, 6), f"g-find-{n}", debug) for n in range(2)]
        found = await service.find(chosen, "g-find-0", debug)
        missing = await service.find(chosen, "g-never", debug)
        state = made[1]
        while state.completed == 0:
            await asyncio.sleep(0.05)
            state = await service.poll(chosen, state.provider_id, debug)
        cancelled = await until_done(service, chosen, await service.cancel(chosen, state.provider_id, debug), debug)
        return made, found, missing, cancelled, await service.answers(chosen, cancelled, debug)

    made, found, missing, cancelled, answers = run(go)
    assert found.provider_id == made[0].provider_id and missing is None
    assert cancelled.status == "cancelled" and cancelled.error == "the batch was cancelled"
    assert 0 < len([answer for answer in answers if answer.payload]) < 6
    _, expired, answers, _, _ = gemini_round(fake, "batch.batch_s=0.3.batch_expire=1", 4, "g-exp")
    assert expired.status == "expired" and "expired" in expired.error
    assert len([answer for answer in answers if answer.payload]) == 2


def test_gemini_http_errors_are_readable(fake):
    chosen = gemini_profile(fake, "batch")
    with pytest.raises(StatusError) as caught:
        run(lambda client: gemini_batches.GeminiBatches(client).poll(chosen, "batches/nothere", DebugLog()))
    assert str(caught.value).startswith("the batch service answered HTTP 404 for the batch status")


def test_an_openai_batch_refuses_lines_for_two_endpoints_before_any_call(fake):
    chosen = openai_profile(fake, "batch")
    lines = [BatchLine("t0", batch_request(chosen, "edit", SOURCE)), BatchLine("t1", batch_request(chosen, "new"))]
    with pytest.raises(ProfileProblem, match="/v1/images/edits and /v1/images/generations"):
        run(lambda client: service_for(chosen, client).submit(chosen, lines, "b-mixed", DebugLog()))
    assert fake.requests == []


def test_an_openai_batch_refuses_lines_for_two_models_before_any_call(fake):
    chosen = openai_profile(fake, "batch")
    other = openai_profile(fake, "batch", model="gpt-image-1-mini")
    lines = [BatchLine("t0", batch_request(chosen, "a", SOURCE)), BatchLine("t1", batch_request(other, "b", SOURCE))]
    with pytest.raises(ProfileProblem, match="one model, but its lines name gpt-image-1, gpt-image-1-mini"):
        run(lambda client: service_for(chosen, client).submit(chosen, lines, "b-models", DebugLog()))
    assert fake.requests == []


def test_a_gemini_batch_refuses_a_line_for_another_model_before_any_call(fake):
    chosen = gemini_profile(fake, "batch")
    other = gemini_profile(fake, "batch", model="gemini-3-pro-image-preview")
    lines = [BatchLine("t0", batch_request(chosen, "a", SOURCE)), BatchLine("t1", batch_request(other, "b", SOURCE))]
    with pytest.raises(ProfileProblem, match="some of its lines name gemini-3-pro-image-preview"):
        run(lambda client: gemini_batches.GeminiBatches(client).submit(chosen, lines, "g-models", DebugLog()))
    assert fake.requests == []


def test_a_jsonl_file_is_split_into_lines_as_it_arrives_and_an_oversized_line_is_left_out():
    from console.upstream.batch.wire import _split_lines

    async def chunks(parts):
        for part in parts:
            yield part

    async def lines(parts, cap):
        return [line async for line in _split_lines(chunks(parts), cap)]

    parts = [b'{"a":1}\n{"b"', b':2}\n', b"x" * 30, b"y" * 30 + b"\n", b'{"c":3}']
    assert asyncio.run(lines(parts, 20)) == [b'{"a":1}', b'{"b":2}', None, b'{"c":3}']
    assert asyncio.run(lines([b"one\ntwo\n"], 20)) == [b"one", b"two"]
    assert asyncio.run(lines([b"z" * 25], 20)) == [None]
