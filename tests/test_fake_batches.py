"""The fakes of OpenAI's and Gemini's batch services speak the documented wire shapes, driven by plain httpx."""

from __future__ import annotations

import base64
import io
import json
import re
import time

import httpx
import pytest
from PIL import Image

from testkit import fake_batches
from testkit.fake_scenarios import restyled
from testkit.fake_upstream import FakeUpstream
from testkit.images import data_url, make

SOURCE = make("PNG", (40, 30), color=(30, 120, 200))
OPENAI_STATES = ["validating", "in_progress", "finalizing", "completed"]


def _lines(count: int, url: str = "/v1/images/edits", source: bytes | None = SOURCE) -> list[dict]:
    """Return `count` JSONL request objects for an endpoint (edits carry the source as a data URL)."""
    lines = []
    for i in range(count):
        if url == "/v1/images/edits":
            body: dict = {"model": "gpt-image-1", "prompt": f"dusk {i}", "images": [{"image_url": data_url(source)}]}
        elif url == "/v1/chat/completions":
            body = {"model": "grok-imagine-1.0", "messages": [{"role": "user", "content": f"a fox {i}"}]}
        elif url == "/v1/responses":
            body = {"model": "gpt-5", "input": f"a fox {i}", "tools": [{"type": "image_generation"}]}
        else:
            body = {"model": "gpt-image-1", "prompt": f"a fox {i}"}
        lines.append({"custom_id": f"t{i}", "method": "POST", "url": url, "body": body})
    return lines


def _submit(fake: FakeUpstream, segment: str, lines: list[dict], label: str = "b-test",
            endpoint: str | None = None, key: str = "sk-one") -> dict:
    """Upload the lines as a batch input file, create the batch, and return the batch object."""
    base, auth = fake.api_base(segment), {"Authorization": f"Bearer {key}"}
    jsonl = "".join(json.dumps(line) + "\n" for line in lines).encode()
    upload = httpx.post(f"{base}/files", data={"purpose": "batch"}, headers=auth,
                        files={"file": ("batch.jsonl", jsonl, "application/jsonl")})
    assert upload.status_code == 200, upload.text
    file = upload.json()
    assert file["object"] == "file" and file["purpose"] == "batch" and file["bytes"] == len(jsonl)
    assert re.fullmatch(r"file-[A-Za-z0-9]{22}", file["id"])
    created = httpx.post(f"{base}/batches", headers=auth, json={
        "input_file_id": file["id"], "endpoint": endpoint or lines[0]["url"], "completion_window": "24h",
        "metadata": {"console_batch": label}})
    assert created.status_code == 200, created.text
    return created.json()


def _poll(fake: FakeUpstream, segment: str, batch_id: str, until: set[str], limit: float = 10.0,
          key: str = "sk-one") -> list[dict]:
    """Poll a batch every 50 ms until its status is in `until`; return every object seen."""
    seen, deadline = [], time.monotonic() + limit
    while time.monotonic() < deadline:
        got = httpx.get(f"{fake.api_base(segment)}/batches/{batch_id}", headers={"Authorization": f"Bearer {key}"})
        assert got.status_code == 200, got.text
        seen.append(got.json())
        if seen[-1]["status"] in until:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} never reached {until}: last {seen[-1]['status']}")


def _jsonl(fake: FakeUpstream, segment: str, file_id: str) -> list[dict]:
    """Download a file's content and parse its JSON lines."""
    got = httpx.get(f"{fake.api_base(segment)}/files/{file_id}/content")
    assert got.status_code == 200, got.text
    return [json.loads(row) for row in got.text.splitlines()]


def _image(b64_text: str) -> Image.Image:
    """Decode base64 image bytes fully (a truncated or fake image raises)."""
    image = Image.open(io.BytesIO(base64.b64decode(b64_text)))
    image.load()
    return image


# --------------------------------------------------------------------------- OpenAI


def test_openai_batch_moves_through_its_states_and_answers_each_line_with_the_source_recoloured(fake):
    segment = "batch.batch_s=1"
    batch = _submit(fake, segment, _lines(6))
    assert batch["object"] == "batch" and batch["status"] == "validating"
    assert re.fullmatch(r"batch_[0-9a-f]{32}", batch["id"])
    assert batch["endpoint"] == "/v1/images/edits" and batch["completion_window"] == "24h"
    assert batch["metadata"] == {"console_batch": "b-test"} and batch["model"] == "gpt-image-1"
    assert batch["expires_at"] == batch["created_at"] + 24 * 3600
    assert batch["request_counts"] == {"total": 6, "completed": 0, "failed": 0}
    seen = _poll(fake, segment, batch["id"], {"completed"})
    statuses = [s["status"] for s in seen]
    changes = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert changes == [s for s in OPENAI_STATES if s in changes]  # in order, never back
    assert {"in_progress", "finalizing", "completed"} <= set(changes)
    done = [s["request_counts"]["completed"] for s in seen]
    assert done == sorted(done) and 0 < len(set(done))  # counts only move forward
    final = seen[-1]
    assert final["request_counts"] == {"total": 6, "completed": 6, "failed": 0}
    assert final["error_file_id"] is None and final["completed_at"] >= final["in_progress_at"]
    rows = _jsonl(fake, segment, final["output_file_id"])
    assert sorted(r["custom_id"] for r in rows) == [f"t{i}" for i in range(6)]
    expected = restyled(SOURCE, 0)
    for row in rows:
        assert row["error"] is None and row["id"].startswith("batch_req_")
        assert row["response"]["status_code"] == 200 and row["response"]["request_id"].startswith("req_")
        body = row["response"]["body"]
        assert set(body) >= {"created", "data", "usage"} and body["usage"]["output_tokens"] > 0
        assert base64.b64decode(body["data"][0]["b64_json"]) == expected
        assert _image(body["data"][0]["b64_json"]).size == (40, 30)


def test_openai_batch_takes_batch_s_seconds(fake):
    segment = "batch.batch_s=0.8"
    started = time.monotonic()
    batch = _submit(fake, segment, _lines(2))
    seen = _poll(fake, segment, batch["id"], {"completed"})
    took = time.monotonic() - started
    assert 0.8 <= took < 2.5
    assert "validating" in [s["status"] for s in seen[:3]] or seen[0]["status"] != "completed"


def test_openai_failing_lines_answer_http_400_in_the_error_file(fake):
    segment = "batch.batch_s=0.3.batch_fail=2"
    batch = _submit(fake, segment, _lines(5))
    final = _poll(fake, segment, batch["id"], {"completed"})[-1]
    assert final["request_counts"] == {"total": 5, "completed": 3, "failed": 2}
    errors = _jsonl(fake, segment, final["error_file_id"])
    assert sorted(r["custom_id"] for r in errors) == ["t0", "t1"]
    for row in errors:
        assert row["error"] is None and row["response"]["status_code"] == 400
        assert row["response"]["body"]["error"]["code"] == "moderation_blocked"
        assert "safety system" in row["response"]["body"]["error"]["message"]
    assert sorted(r["custom_id"] for r in _jsonl(fake, segment, final["output_file_id"])) == ["t2", "t3", "t4"]


def test_openai_all_lines_failing_leave_no_output_file(fake):
    segment = "batch.batch_s=0.2.batch_fail=9"
    final = _poll(fake, segment, _submit(fake, segment, _lines(3))["id"], {"completed"})[-1]
    assert final["output_file_id"] is None and final["error_file_id"]
    assert final["request_counts"] == {"total": 3, "completed": 0, "failed": 3}


def test_openai_expired_batch_answers_half_and_writes_batch_expired_lines(fake):
    segment = "batch.batch_s=0.4.batch_expire=1"
    final = _poll(fake, segment, _submit(fake, segment, _lines(6))["id"], {"expired", "completed"})[-1]
    assert final["status"] == "expired" and final["expired_at"] and final["completed_at"] is None
    assert final["request_counts"] == {"total": 6, "completed": 3, "failed": 3}
    assert sorted(r["custom_id"] for r in _jsonl(fake, segment, final["output_file_id"])) == ["t0", "t1", "t2"]
    errors = _jsonl(fake, segment, final["error_file_id"])
    assert sorted(r["custom_id"] for r in errors) == ["t3", "t4", "t5"]
    assert all(r["response"] is None and r["error"]["code"] == "batch_expired" for r in errors)


def test_openai_rejected_batch_fails_validation_with_errors_and_no_files(fake):
    segment = "batch.batch_s=0.2.batch_reject=1"
    final = _poll(fake, segment, _submit(fake, segment, _lines(2))["id"], {"failed", "completed"})[-1]
    assert final["status"] == "failed" and final["failed_at"]
    assert final["errors"]["object"] == "list" and final["errors"]["data"][0]["message"]
    assert final["output_file_id"] is None and final["error_file_id"] is None
    assert final["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


def test_openai_bad_input_lines_fail_validation_naming_the_line(fake):
    segment = "batch.batch_s=0.1"
    lines = _lines(3)
    lines[1]["custom_id"] = "t0"  # duplicate
    lines[2]["url"] = "/v1/images/generations"  # not the batch's endpoint
    final = _poll(fake, segment, _submit(fake, segment, lines)["id"], {"failed", "completed"})[-1]
    assert final["status"] == "failed"
    assert [(e["code"], e["line"]) for e in final["errors"]["data"]] == [("duplicate_custom_id", 2),
                                                                        ("mismatched_endpoint", 3)]


def test_openai_cancel_keeps_what_was_done_and_refuses_a_finished_batch(fake):
    segment = "batch.batch_s=2.batch_cancel_s=0.3"
    base = fake.api_base(segment)
    batch = _submit(fake, segment, _lines(10))
    _poll(fake, segment, batch["id"], {"in_progress"})
    time.sleep(0.6)
    cancelling = httpx.post(f"{base}/batches/{batch['id']}/cancel", headers={"Authorization": "Bearer sk-one"})
    assert cancelling.status_code == 200 and cancelling.json()["status"] == "cancelling"
    assert cancelling.json()["cancelling_at"]
    final = _poll(fake, segment, batch["id"], {"cancelled"})[-1]
    done = final["request_counts"]["completed"]
    assert 0 < done < 10 and final["cancelled_at"]
    assert len(_jsonl(fake, segment, final["output_file_id"])) == done
    assert final["error_file_id"] is None  # unfinished lines are simply absent
    again = httpx.post(f"{base}/batches/{batch['id']}/cancel")
    assert again.status_code == 400 and "cancelled" in again.json()["error"]["message"]


def test_openai_list_pages_newest_first_and_shows_only_the_callers_batches(fake):
    segment = "batch.batch_s=5.list=1"
    ids = [_submit(fake, segment, _lines(1), label=f"b{i}", key="sk-lister")["id"] for i in range(3)]
    _submit(fake, segment, _lines(1), label="other", key="sk-someone-else")
    base, auth = fake.api_base(segment), {"Authorization": "Bearer sk-lister"}
    first = httpx.get(f"{base}/batches", params={"limit": 2}, headers=auth).json()
    assert first["object"] == "list" and [b["id"] for b in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True and first["first_id"] == ids[2] and first["last_id"] == ids[1]
    rest = httpx.get(f"{base}/batches", params={"limit": 2, "after": first["last_id"]}, headers=auth).json()
    assert [b["id"] for b in rest["data"]] == [ids[0]] and rest["has_more"] is False
    assert [b["metadata"]["console_batch"] for b in first["data"] + rest["data"]] == ["b2", "b1", "b0"]
    assert httpx.get(f"{base}/batches", params={"limit": 0}, headers=auth).status_code == 400


def test_openai_chat_and_responses_lines_answer_the_live_shapes_with_distinct_generated_images(fake):
    segment = "batch.batch_s=0.1"
    chat = _poll(fake, segment, _submit(fake, segment, _lines(2, "/v1/chat/completions"))["id"], {"completed"})[-1]
    pictures = []
    for row in _jsonl(fake, segment, chat["output_file_id"]):
        body = row["response"]["body"]
        assert body["object"] == "chat.completion" and body["choices"][0]["finish_reason"] == "stop"
        content = body["choices"][0]["message"]["content"]
        found = re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", content.strip())
        assert found, content[:80]
        pictures.append(_image(found.group(1)).tobytes())
        assert body["usage"]["total_tokens"] > 0
    assert pictures[0] != pictures[1]  # marked by the line's key
    resp = _poll(fake, segment, _submit(fake, segment, _lines(1, "/v1/responses"))["id"], {"completed"})[-1]
    body = _jsonl(fake, segment, resp["output_file_id"])[0]["response"]["body"]
    assert body["object"] == "response" and body["status"] == "completed" and body["usage"]["input_tokens"]
    call = next(item for item in body["output"] if item["type"] == "image_generation_call")
    assert _image(call["result"]).format == "PNG"


def test_openai_errors_for_unknown_ids_bad_bodies_and_batch_input_downloads(fake):
    base = fake.api_base("batch")
    assert httpx.get(f"{base}/batches/batch_0000").status_code == 404
    assert httpx.get(f"{base}/files/file-nothere/content").status_code == 404
    missing = httpx.post(f"{base}/batches", json={"endpoint": "/v1/images/edits", "completion_window": "24h"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "input_file_id"
    upload = httpx.post(f"{base}/files", data={"purpose": "batch"},
                        files={"file": ("in.jsonl", b"{}\n", "application/jsonl")}).json()
    window = httpx.post(f"{base}/batches", json={"input_file_id": upload["id"], "endpoint": "/v1/images/edits",
                                                 "completion_window": "1h"})
    assert window.status_code == 400 and window.json()["error"]["param"] == "completion_window"
    assert httpx.get(f"{base}/files/{upload['id']}/content").status_code == 400  # purpose=batch
    assert httpx.get(f"{base}/files/{upload['id']}").json()["id"] == upload["id"]


def test_the_fake_records_every_submission_with_its_keys(fake):
    before = len(fake.batches())
    batch = _submit(fake, "batch.batch_s=3.rec=1", _lines(3), label="b-rec")
    fake.reset()  # a test's reset forgets requests, not the provider's batches
    record = fake.batches()[before]
    assert record["service"] == "openai" and record["id"] == batch["id"] and record["label"] == "b-rec"
    assert record["keys"] == ["t0", "t1", "t2"] and record["endpoint"] == "/v1/images/edits"


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_openai_batch_routes_check_the_key_like_every_route(fake, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    got = httpx.get(f"{fake.api_base('batch.key=sk-right')}/batches", headers=headers)
    assert got.status_code == 401


def test_openai_streaming_lines_fail_validation(fake):
    segment = "batch.batch_s=0.1"
    lines = _lines(2, "/v1/chat/completions")
    lines[1]["body"]["stream"] = True
    final = _poll(fake, segment, _submit(fake, segment, lines)["id"], {"failed", "completed"})[-1]
    assert final["status"] == "failed"
    assert [(e["param"], e["line"]) for e in final["errors"]["data"]] == [("body.stream", 2)]


def test_the_batch_clock_can_be_moved_forward_and_output_files_know_their_size(fake):
    segment = "batch.batch_s=86400"
    batch = _submit(fake, segment, _lines(2))
    fake_batches.book(fake).advance(86400)
    final = _poll(fake, segment, batch["id"], {"completed"}, limit=1.0)[-1]
    assert final["request_counts"]["completed"] == 2
    file = httpx.get(f"{fake.api_base(segment)}/files/{final['output_file_id']}").json()
    assert file["purpose"] == "batch_output" and file["bytes"] > 0
    content = httpx.get(f"{fake.api_base(segment)}/files/{final['output_file_id']}/content").content
    assert len(content) == file["bytes"]


# --------------------------------------------------------------------------- Gemini

GEMINI_KEY = {"x-goog-api-key": "g-test"}
GEMINI_MODEL = "gemini-2.5-flash-image"


def _requests(count: int, keyed: bool = True) -> list[dict]:
    """Return `count` inline GenerateContentRequests carrying the source image, keyed t0, t1, …"""
    part = {"inline_data": {"mime_type": "image/png", "data": base64.b64encode(SOURCE).decode()}}
    items = []
    for i in range(count):
        item: dict = {"request": {"contents": [{"role": "user", "parts": [{"text": f"dusk {i}"}, part]}],
                                  "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}}
        if keyed:
            item["metadata"] = {"key": f"t{i}"}
        items.append(item)
    return items


def _gemini_submit(fake: FakeUpstream, segment: str, items: list[dict] | None = None, label: str = "b-gem",
                   config: dict | None = None, headers: dict = GEMINI_KEY) -> httpx.Response:
    """Create a Gemini batch of inline requests (or of `config`) and return the HTTP answer."""
    config = config or {"requests": {"requests": items}}
    return httpx.post(fake.url(segment, f"/v1beta/models/{GEMINI_MODEL}:batchGenerateContent"), headers=headers,
                      json={"batch": {"display_name": label, "input_config": config}})


def _gemini_poll(fake: FakeUpstream, segment: str, name: str, limit: float = 10.0) -> list[dict]:
    """Poll a Gemini batch every 50 ms until its Operation is done; return every Operation seen."""
    seen, deadline = [], time.monotonic() + limit
    while time.monotonic() < deadline:
        got = httpx.get(fake.url(segment, f"/v1beta/{name}"), headers=GEMINI_KEY)
        assert got.status_code == 200, got.text
        seen.append(got.json())
        if seen[-1].get("done"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{name} never finished: {seen[-1]['metadata']['state']}")


def test_gemini_batch_is_an_operation_that_ends_with_inlined_responses_keyed_by_metadata(fake):
    segment = "batch.batch_s=1"
    created = _gemini_submit(fake, segment, _requests(4))
    assert created.status_code == 200, created.text
    op = created.json()
    assert re.fullmatch(r"batches/[a-z0-9]+", op["name"]) and "done" not in op
    meta = op["metadata"]
    assert meta["@type"].endswith(".GenerateContentBatch") and meta["name"] == op["name"]
    assert meta["state"] == "BATCH_STATE_PENDING" and meta["displayName"] == "b-gem"
    assert meta["model"] == f"models/{GEMINI_MODEL}" and meta["createTime"].endswith("Z")
    assert meta["batchStats"] == {"requestCount": "4", "pendingRequestCount": "4"}  # int64 as strings, no zeros
    seen = _gemini_poll(fake, segment, op["name"])
    states = [s["metadata"]["state"] for s in seen]
    assert "BATCH_STATE_RUNNING" in states and states[-1] == "BATCH_STATE_SUCCEEDED"
    assert all("done" not in s for s in seen[:-1])
    final = seen[-1]
    assert final["metadata"]["batchStats"] == {"requestCount": "4", "successfulRequestCount": "4"}
    assert final["metadata"]["endTime"].endswith("Z")
    assert final["response"]["@type"].endswith(".GenerateContentBatchOutput")
    assert final["metadata"]["output"]["inlinedResponses"] == final["response"]["inlinedResponses"]
    answers = final["response"]["inlinedResponses"]["inlinedResponses"]
    assert [a["metadata"] for a in answers] == [{"key": f"t{i}"} for i in range(4)]
    for answer in answers:
        candidate = answer["response"]["candidates"][0]
        assert candidate["finishReason"] == "STOP" and answer["response"]["usageMetadata"]["totalTokenCount"]
        inline = next(p["inlineData"] for p in candidate["content"]["parts"] if "inlineData" in p)
        assert inline["mimeType"] == "image/png"
        assert base64.b64decode(inline["data"]) == restyled(SOURCE, 0)


def test_gemini_requests_without_a_key_are_answered_in_order(fake):
    segment = "batch.batch_s=0.1"
    final = _gemini_poll(fake, segment, _gemini_submit(fake, segment, _requests(2, keyed=False)).json()["name"])[-1]
    answers = final["response"]["inlinedResponses"]["inlinedResponses"]
    assert len(answers) == 2 and all("response" in a for a in answers)
    assert fake.batches()[-1]["keys"] == ["0", "1"]


def test_gemini_failing_expired_and_rejected_batches(fake):
    failing = "batch.batch_s=0.2.batch_fail=1"
    final = _gemini_poll(fake, failing, _gemini_submit(fake, failing, _requests(3)).json()["name"])[-1]
    answers = final["response"]["inlinedResponses"]["inlinedResponses"]
    assert answers[0]["metadata"] == {"key": "t0"} and answers[0]["error"]["code"] == 3
    assert "response" not in answers[0] and all("response" in a for a in answers[1:])
    assert final["metadata"]["batchStats"]["failedRequestCount"] == "1"
    expiring = "batch.batch_s=0.3.batch_expire=1"
    final = _gemini_poll(fake, expiring, _gemini_submit(fake, expiring, _requests(4)).json()["name"])[-1]
    assert final["metadata"]["state"] == "BATCH_STATE_EXPIRED"
    answers = final["response"]["inlinedResponses"]["inlinedResponses"]
    assert ["response" in a for a in answers] == [True, True, False, False]
    assert answers[3]["error"]["code"] == 4 and "expired" in answers[3]["error"]["message"]
    rejected = "batch.batch_s=0.2.batch_reject=1"
    final = _gemini_poll(fake, rejected, _gemini_submit(fake, rejected, _requests(2)).json()["name"])[-1]
    assert final["metadata"]["state"] == "BATCH_STATE_FAILED" and final["error"]["message"]
    assert "response" not in final


def test_gemini_cancel_keeps_what_was_done(fake):
    segment = "batch.batch_s=2.batch_cancel_s=0.3"
    name = _gemini_submit(fake, segment, _requests(10)).json()["name"]
    time.sleep(0.9)
    cancel = httpx.post(fake.url(segment, f"/v1beta/{name}:cancel"), headers=GEMINI_KEY, json={})
    assert cancel.status_code == 200 and cancel.json() == {}
    final = _gemini_poll(fake, segment, name)[-1]
    assert final["metadata"]["state"] == "BATCH_STATE_CANCELLED"
    answers = final["response"]["inlinedResponses"]["inlinedResponses"]
    assert 0 < len(answers) < 10 and [a["metadata"]["key"] for a in answers] == [f"t{i}" for i in range(len(answers))]
    assert final["metadata"]["batchStats"]["successfulRequestCount"] == str(len(answers))


def test_gemini_list_pages_the_callers_batches_newest_first(fake):
    segment = "batch.batch_s=5.glist=1"
    names = [_gemini_submit(fake, segment, _requests(1), label=f"g{i}").json()["name"] for i in range(3)]
    _gemini_submit(fake, segment, _requests(1), label="other", headers={"x-goog-api-key": "g-other"})
    first = httpx.get(fake.url(segment, "/v1beta/batches"), params={"pageSize": 2}, headers=GEMINI_KEY).json()
    assert [op["name"] for op in first["operations"]] == names[::-1][:2] and first["nextPageToken"]
    rest = httpx.get(fake.url(segment, "/v1beta/batches"), headers=GEMINI_KEY,
                     params={"pageSize": 2, "pageToken": first["nextPageToken"]}).json()
    assert [op["name"] for op in rest["operations"]] == [names[0]] and "nextPageToken" not in rest
    assert [op["metadata"]["displayName"] for op in first["operations"] + rest["operations"]] == ["g2", "g1", "g0"]


def test_gemini_batch_from_an_uploaded_file_answers_in_a_responses_file(fake):
    segment = "batch.batch_s=0.2.batch_fail=1"
    jsonl = "".join(json.dumps({"key": f"t{i}", "request": item["request"]}) + "\n"
                    for i, item in enumerate(_requests(3))).encode()
    start = httpx.post(fake.url(segment, "/upload/v1beta/files"), json={"file": {"display_name": "b-file"}},
                       headers={**GEMINI_KEY, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                                "X-Goog-Upload-Header-Content-Length": str(len(jsonl))})
    assert start.status_code == 200 and start.headers["x-goog-upload-status"] == "active"
    done = httpx.post(start.headers["x-goog-upload-url"], content=jsonl,
                      headers={**GEMINI_KEY, "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    assert done.status_code == 200 and done.headers["x-goog-upload-status"] == "final"
    file = done.json()["file"]
    assert re.fullmatch(r"files/[a-z0-9]+", file["name"]) and file["sizeBytes"] == str(len(jsonl))
    created = _gemini_submit(fake, segment, config={"file_name": file["name"]})
    assert created.status_code == 200, created.text
    final = _gemini_poll(fake, segment, created.json()["name"])[-1]
    responses_file = final["response"]["responsesFile"]
    got = httpx.get(fake.url(segment, f"/download/v1beta/{responses_file}:download"), params={"alt": "media"},
                    headers=GEMINI_KEY)
    rows = [json.loads(row) for row in got.text.splitlines()]
    assert [r["key"] for r in rows] == ["t0", "t1", "t2"] and "error" in rows[0]
    assert base64.b64decode(rows[1]["response"]["candidates"][0]["content"]["parts"][1]["inlineData"]["data"]) == \
        restyled(SOURCE, 0)


def test_gemini_batch_routes_answer_googles_errors(fake):
    segment = "batch.gkey=g-test"
    assert _gemini_submit(fake, segment, _requests(1), headers={}).status_code == 403
    assert _gemini_submit(fake, segment, _requests(1), headers={"x-goog-api-key": "nope"}).status_code == 400
    empty = _gemini_submit(fake, segment, config={"requests": {"requests": []}})
    assert empty.status_code == 400 and empty.json()["error"]["status"] == "INVALID_ARGUMENT"
    missing = httpx.get(fake.url(segment, "/v1beta/batches/nothere"), headers=GEMINI_KEY)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    assert _gemini_submit(fake, segment, config={"file_name": "files/nothere"}).status_code == 404
