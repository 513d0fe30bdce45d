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
