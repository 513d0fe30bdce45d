"""Captioning a run's results with a vision model: jobs through the engine, against the loopback fake.

A real engine, store and cache behind the HTTP API; the vision model is the fake's `vision_caption`
(it answers `a photo of a <colour> scene, <w>x<h>` about the image it got, so each caption says which
image was sent and at what size), `vision_refuse` and `vision_empty`. Results are real images in the
real cache, attached to a run in the real store; the crash is a real server process killed with -9.
"""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
from PIL import Image

from console.cache import ImageCache
from console.captioning import NoCaption, caption_from
from console.settings import resolve
from console.store import NewResult, NewTask, Store
from console.web import create_app
from tests import figures
from tests.disks import small_disk  # noqa: F401  (fixture)
from tests.helpers import api, make_sources, wait_for, wait_idle
from testkit.images import make

RESPONSES = "/v1/responses"
CHAT = "/v1/chat/completions"
RED, GREEN, BLUE = (220, 30, 30), (30, 180, 60), (30, 70, 220)
KEY = "sk-caption-secret-0123456789"


# -- helpers ----------------------------------------------------------------------------------------

def picture(size: tuple[int, int], colour: tuple[int, ...], fmt: str = "PNG", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, fmt)
    return buffer.getvalue()


def seed(app, results: list[bytes | list[bytes]], sources: list[str] | None = None) -> tuple[str, list[str]]:
    """Store a finished run whose task i has the image(s) results[i] as its results; return (run id, result ids)."""
    store, cache = app.extensions["console.store"], app.extensions["console.cache"]
    names = [f"img{i + 1}.png" for i in range(len(results))]
    paths = sources or [""] * len(results)
    run_id = store.create_run("/in", False, "make it blue", {"api_url": "http://127.0.0.1:9/v1", "model": "img"},
                              [NewTask(name, path) for name, path in zip(names, paths)])
    ids = []
    for task_id, images in zip(store.task_ids(run_id, ["pending"]), results):
        stored = []
        for data in images if isinstance(images, list) else [images]:
            with Image.open(io.BytesIO(data)) as opened:
                fmt, width, height = opened.format.lower(), opened.width, opened.height
            stored.append(NewResult(cache.put(data, fmt), fmt, width, height, len(data), "inline"))
        store.finish_task(task_id, "done", results=stored)
        ids.extend(result.id for result in store.task(task_id).results)
    return run_id, ids


def vision(fake, segment: str = "vision_caption", path: str = CHAT, **fields) -> dict:
    return {**api(fake, segment, **fields), "api_url": fake.url(segment, path), "model": "vision-captioner-1"}


def generate(client, run_id: str, fake=None, segment: str = "vision_caption", path: str = CHAT,
             instruction: str = "Describe the image.", api_fields: dict | None = None, **body):
    payload = {"instruction": instruction, **body}
    if fake is not None:
        payload["api"] = vision(fake, segment, path, **(api_fields or {}))
    return client.post(f"/api/runs/{run_id}/captions/generate", json=payload)


def started(client, run_id: str, fake, segment: str = "vision_caption", path: str = CHAT, **body) -> dict:
    answer = generate(client, run_id, fake, segment, path, **body)
    assert answer.status_code == 202, answer.json
    return answer.json


def finished(client, job: dict, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snapshot = client.get(f"/api/caption-jobs/{job['job']}").json
        if snapshot["finished"]:
            return snapshot
        time.sleep(0.03)
    raise AssertionError(f"job still running: {snapshot}")


def captions(app, ids: list[str]) -> list[str | None]:
    db = sqlite3.connect(app.extensions["console.store"].path)
    try:
        found = dict(db.execute(f"SELECT id, caption FROM results WHERE id IN ({','.join('?' * len(ids))})", ids))
    finally:
        db.close()
    return [found.get(result_id) for result_id in ids]


def caption_calls(store_path: Path) -> list[tuple]:
    db = sqlite3.connect(store_path)
    try:
        return db.execute("SELECT task_id, number, kind, profile, cost, input_tokens FROM attempts WHERE kind = 'caption' "
                          "ORDER BY id").fetchall()
    finally:
        db.close()


def posts(fake) -> list:
    return [r for r in fake.requests if r.method == "POST" and r.scenario and r.scenario.startswith("vision")]


def sent_image(record) -> Image.Image:
    """The image a chat or Responses request carried, decoded."""
    body = record.json
    part = (body["messages"][-1]["content"][1]["image_url"]["url"] if "messages" in body
            else body["input"][0]["content"][1]["image_url"])
    assert part.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(part.split(",", 1)[1])))


# -- captioning ---------------------------------------------------------------------------------------

def test_each_result_gets_a_caption_of_its_own_image_sent_shrunk_to_1024(app, client, fake):
    run_id, ids = seed(app, [picture((3000, 1500), RED), picture((200, 100), GREEN, "JPEG"),
                             picture((1600, 2400), (*BLUE, 255), mode="RGBA")])
    job = started(client, run_id, fake)
    assert job["phase"] == "running" and job["total"] == 3 and job["job"].startswith("cap-")
    done = finished(client, job)
    assert (done["captioned"], done["failed"], done["skipped"], done["done"]) == (3, 0, 0, 3)
    assert captions(app, ids) == ["a photo of a red scene, 1024x512", "a photo of a green scene, 200x100",
                                  "a photo of a blue scene, 683x1024"]
    calls = posts(fake)
    assert len(calls) == 3
    for record in calls:  # the instruction and one JPEG, streamed as the profile says; nothing about images out
        body = record.json
        assert body["stream"] is True and body["model"] == "vision-captioner-1"
        content = body["messages"][0]["content"]
        assert content[0] == {"type": "text", "text": "Describe the image."} and content[1]["type"] == "image_url"
        assert not {"size", "n", "modalities", "tools", "response_format", "image_config"} & set(body)
        assert max(sent_image(record).size) <= 1024
    listing = client.get(f"/api/runs/{run_id}/tasks").json
    assert all(task["attempts"] == 0 for task in listing["tasks"])  # image calls only


@pytest.mark.parametrize("path, stream", [(CHAT, False), (RESPONSES, True), (RESPONSES, False)])
def test_chat_and_responses_streamed_or_not(app, client, fake, path, stream):
    run_id, ids = seed(app, [picture((64, 48), BLUE), picture((48, 64), GREEN)])
    done = finished(client, started(client, run_id, fake, path=path, api_fields={"stream": stream}))
    assert done["captioned"] == 2
    assert captions(app, ids) == ["a photo of a blue scene, 64x48", "a photo of a green scene, 48x64"]
    for record in posts(fake):
        assert record.path.endswith(path) and record.json["stream"] is stream
        if path == RESPONSES:
            content = record.json["input"][0]["content"]
            assert content[0] == {"type": "input_text", "text": "Describe the image."}
            assert content[1]["type"] == "input_image"


def test_a_transparent_result_is_sent_flattened_on_white(app, client, fake):
    run_id, ids = seed(app, [picture((64, 48), (0, 0, 255, 0), mode="RGBA")])
    finished(client, started(client, run_id, fake))
    assert captions(app, ids) == ["a photo of a grey scene, 64x48"]  # white, not the hidden blue
    assert sent_image(posts(fake)[0]).getpixel((5, 5)) >= (250, 250, 250)


def test_a_caption_bumps_its_tasks_revision_so_polling_pages_see_it(fake, tmp_path):
    # without the review flags, which bump revisions of their own in the background
    app = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / "data"), "REVIEW_FLAGS": "0"}))
    client = app.test_client()
    run_id, ids = seed(app, [picture((64, 48), RED), picture((64, 48), GREEN)])
    since = client.get(f"/api/runs/{run_id}/tasks").json["rev"]
    assert client.get(f"/api/runs/{run_id}/tasks?since={since}").json["tasks"] == []
    finished(client, started(client, run_id, fake))
    changed = client.get(f"/api/runs/{run_id}/tasks?since={since}").json["tasks"]
    assert [result["caption"] for task in changed for result in task["results"]] == [
        "a photo of a red scene, 64x48", "a photo of a green scene, 64x48"]


@pytest.mark.parametrize("text, caption", [
    ("  “A red fox in snow.”  ", "A red fox in snow."),
    ('"a cat" and "a dog"', '"a cat" and "a dog"'),
    ("<think>hmm\nlet me see</think>\n\n'tags: fox, snow'", "tags: fox, snow"),
    ("A fox.<think>cut off while thinking", "A fox."),
    ("é" * 5000, "é" * 4096),  # 8 KiB of UTF-8, cut at a character
])
def test_an_answer_becomes_a_caption(text, caption):
    assert caption_from(text) == caption


@pytest.mark.parametrize("text, refusal, reason", [
    ("", None, "the model answered with no text"),
    ("<think>I should refuse</think>", None, "held only its reasoning"),
    ("", "I can't help with that.", "the model declined: I can't help with that."),
])
def test_no_caption_says_why(text, refusal, reason):
    with pytest.raises(NoCaption, match=reason):
        caption_from(text, refusal)


def test_thinking_and_quotes_are_taken_out(app, client, fake):
    run_id, ids = seed(app, [picture((64, 48), RED)])
    finished(client, started(client, run_id, fake, "vision_caption.think=1"))
    assert captions(app, ids) == ["a photo of a red scene, 64x48"]


def test_results_with_a_caption_are_skipped_unless_overwrite(app, client, fake):
    run_id, ids = seed(app, [picture((64, 48), RED), picture((64, 48), GREEN), picture((64, 48), BLUE)])
    app.extensions["console.store"].write_generated_caption(ids[1], "my own words", replace=True)
    done = finished(client, started(client, run_id, fake))
    assert (done["total"], done["captioned"], done["skipped"], done["skipped_reasons"]) == (2, 2, 1, {"has_caption": 1})
    assert captions(app, ids)[1] == "my own words" and len(posts(fake)) == 2
    fake.reset()
    done = finished(client, started(client, run_id, fake, overwrite=True))
    assert done["captioned"] == 3 and captions(app, ids)[1] == "a photo of a green scene, 64x48"
    assert len(posts(fake)) == 3


def test_only_selected_results(app, client, fake):
    run_id, ids = seed(app, [picture((64, 48), RED), picture((64, 48), GREEN), picture((64, 48), BLUE)])
    app.extensions["console.store"].edit_result(ids[2], selected=True)
    done = finished(client, started(client, run_id, fake, only_selected=True))
    assert done["total"] == 1 and captions(app, ids) == [None, None, "a photo of a blue scene, 64x48"]


def test_source_images_are_sent_instead_and_generate_tasks_are_skipped(app, client, fake, tmp_path):
    source = tmp_path / "source.png"
    source.write_bytes(picture((2048, 1024), RED))
    # task 1: an edit of a red source with two (blue) results; task 2: a generation, no source
    run_id, ids = seed(app, [[picture((64, 48), BLUE), picture((64, 48), (40, 80, 200))], picture((64, 48), BLUE)],
                       sources=[str(source), ""])
    done = finished(client, started(client, run_id, fake, source="source"))
    assert (done["captioned"], done["skipped_reasons"]) == (2, {"no_source": 1})
    assert captions(app, ids) == ["a photo of a red scene, 1024x512"] * 2 + [None]
    assert len(posts(fake)) == 1  # one call per source image, its caption for each result of the task


def test_a_refusal_or_an_empty_answer_leaves_the_caption_and_says_why(app, client, fake):
    run_id, ids = seed(app, [picture((64, 48), RED), picture((64, 48), GREEN)])
    done = finished(client, started(client, run_id, fake, "vision_refuse"))
    assert (done["captioned"], done["failed"]) == (0, 2)
    assert {failure["result_id"] for failure in done["failures"]} == set(ids)
    assert all("declined" in f["error"] and "can't help" in f["error"] for f in done["failures"])
    assert {failure["source_name"] for failure in done["failures"]} == {"img1.png", "img2.png"}
    done = finished(client, started(client, run_id, fake, "vision_refuse", RESPONSES, api_fields={"stream": False}))
    assert done["failed"] == 2 and "declined" in done["failures"][0]["error"]
    done = finished(client, started(client, run_id, fake, "vision_empty"))
    assert done["failed"] == 2 and done["failures"][0]["error"] == "the model answered with no text"
    assert captions(app, ids) == [None, None]


def test_concurrency_is_the_profiles(app, client, fake):
    run_id, ids = seed(app, [picture((32, 24), RED)] * 1 + [picture((32, 24), (i * 9, 200, 40)) for i in range(7)])
    done = finished(client, started(client, run_id, fake, "vision_caption.s=0.3", api_fields={"concurrency": 2}))
    assert done["captioned"] == 8 and fake.max_in_flight == 2


def test_a_key_pool_spreads_calls_and_no_key_reaches_the_log(app, client, fake):
    other = "sk-caption-other-9876543210"
    run_id, ids = seed(app, [picture((32, 24), RED) for _ in range(6)])
    fields = {"api_key": KEY, "key_pool": [{"api_key": other}], "concurrency": 2}
    done = finished(client, started(client, run_id, fake, f"vision_caption.s=0.2.key={KEY}~{other}",
                                    api_fields=fields))
    assert done["captioned"] == 6
    used = [record.headers["authorization"] for record in posts(fake)]
    assert used.count(f"Bearer {KEY}") >= 2 and used.count(f"Bearer {other}") >= 2
    store = app.extensions["console.store"]
    task_id = client.get(f"/api/runs/{run_id}/tasks").json["tasks"][0]["id"]
    log = store.debug_log(task_id)
    assert f"--- caption call (job {done['job']}) ---" in log and "a photo of a red scene" in log
    assert KEY not in log and other not in log
    assert KEY not in json.dumps(done) and KEY not in client.get(f"/api/tasks/{task_id}").get_data(as_text=True)


def test_a_rate_limit_sends_the_item_back_to_the_queue_not_to_failure(app, client, fake):
    run_id, ids = seed(app, [picture((32, 24), RED), picture((32, 24), GREEN), picture((32, 24), BLUE)])
    done = finished(client, started(client, run_id, fake, "vision_caption.rl=2", api_fields={"max_retries": 0}))
    assert (done["captioned"], done["failed"]) == (3, 0)
    assert len(posts(fake)) == 5 and done["spend"]["calls"] == 5
    assert len(caption_calls(app.extensions["console.store"].path)) == 5


def test_a_used_up_quota_ends_the_job_early_with_the_reason_and_fails_nothing(app, client, fake):
    run_id, ids = seed(app, [picture((32, 24), RED), picture((32, 24), GREEN), picture((32, 24), BLUE)])
    done = finished(client, started(client, run_id, fake, f"vision_caption.spent_key={KEY}",
                                    api_fields={"api_key": KEY, "concurrency": 1}))
    assert (done["captioned"], done["failed"], done["done"]) == (0, 0, 0)
    assert "upstream_quota_exhausted" in done["reason"] and "start a new job" in done["reason"]
    assert len(posts(fake)) == 1 and captions(app, ids) == [None, None, None]


def test_deleting_the_run_cancels_its_job(app, client, fake):
    run_id, ids = seed(app, [picture((32, 24), RED), picture((32, 24), GREEN), picture((32, 24), BLUE)])
    job = started(client, run_id, fake, "vision_caption.s=30", api_fields={"concurrency": 1})
    wait_for(lambda: fake.in_flight == 1)
    assert client.delete(f"/api/runs/{run_id}").status_code == 200
    snapshot = client.get(f"/api/caption-jobs/{job['job']}").json
    assert snapshot["cancelled"] and snapshot["finished"]
    wait_for(lambda: fake.in_flight == 0, timeout=3)
    assert len(posts(fake)) == 1


def test_a_503_is_retried_by_the_clients_policy(app, client, fake):
    run_id, ids = seed(app, [picture((32, 24), RED)])
    done = finished(client, started(client, run_id, fake, "vision_caption.fail=1", api_fields={"max_retries": 1}))
    assert (done["captioned"], done["failed"]) == (1, 0)
    assert [call[1] for call in caption_calls(app.extensions["console.store"].path)] == [1, 2]
    fake.reset()
    done = finished(client, started(client, run_id, fake, "vision_caption.fail=3", overwrite=True,
                                    api_fields={"max_retries": 1}))
    assert done["failed"] == 1 and "HTTP 503" in done["failures"][0]["error"]
    assert captions(app, ids) == ["a photo of a red scene, 32x24"]  # the earlier caption stays


def test_cancel_stops_calls_in_flight_and_starts_no_more(app, client, fake):
    run_id, ids = seed(app, [picture((32, 24), (i * 20, 40, 200)) for i in range(10)])
    job = started(client, run_id, fake, "vision_caption.s=30.fast=2", api_fields={"concurrency": 2})
    wait_for(lambda: client.get(f"/api/caption-jobs/{job['job']}").json["captioned"] == 2 and fake.in_flight == 2)
    asked = time.monotonic()
    answer = client.post(f"/api/caption-jobs/{job['job']}/cancel")
    took = time.monotonic() - asked
    assert answer.status_code == 200 and answer.json["ok"] is True
    snapshot = answer.json
    assert snapshot["cancelled"] and snapshot["finished"] and snapshot["phase"] == "done"
    calls = len(posts(fake))
    wait_for(lambda: fake.in_flight == 0, timeout=3)  # the calls in flight were hung up on
    time.sleep(1.0)
    assert len(posts(fake)) == calls  # nothing new started
    written = [caption for caption in captions(app, ids) if caption is not None]
    assert len(written) == snapshot["captioned"] == 2
    assert took < 5
    figures.record("caption_cancel", cancel_s=round(took, 3), calls_after_cancel=len(posts(fake)) - calls,
                   captions_kept=len(written), results=10)
    assert client.post(f"/api/caption-jobs/{job['job']}/cancel").json["cancelled"]  # twice is fine


def test_one_running_job_per_run(app, client, fake):
    run_id, ids = seed(app, [picture((32, 24), RED), picture((32, 24), GREEN)])
    job = started(client, run_id, fake, "vision_caption.s=1", api_fields={"concurrency": 1})
    second = generate(client, run_id, fake)
    assert second.status_code == 409 and job["job"] in second.json["error"]
    assert [j["job"] for j in client.get(f"/api/caption-jobs?run={run_id}").json["jobs"]] == [job["job"]]
    client.post(f"/api/caption-jobs/{job['job']}/cancel")
    again = started(client, run_id, fake, overwrite=True)
    assert [j["job"] for j in client.get(f"/api/caption-jobs?run={run_id}").json["jobs"]] == [again["job"], job["job"]]


def test_nothing_to_caption_says_why(app, client, fake):
    empty, _ = seed(app, [])
    answer = generate(client, empty, fake)
    assert answer.status_code == 400 and answer.json["error"] == "nothing to caption: this run has no results yet"
    run_id, ids = seed(app, [picture((32, 24), RED)])
    answer = generate(client, run_id, fake, only_selected=True)
    assert answer.status_code == 400 and "no result of this run is selected" in answer.json["error"]
    app.extensions["console.store"].write_generated_caption(ids[0], "mine", replace=True)
    answer = generate(client, run_id, fake)
    assert answer.status_code == 400 and "already have a caption" in answer.json["error"]
    assert "'overwrite'" in answer.json["error"]
    assert posts(fake) == []


@pytest.mark.parametrize("body, fragment", [
    ({"instruction": ""}, "'instruction'"),
    ({"instruction": "   "}, "'instruction'"),
    ({"instruction": 12}, "'instruction'"),
    ({"instruction": "x" * 4097}, "at most 4 KiB"),
    ({"instruction": "Describe", "colour": "red"}, "unknown field 'colour'"),
    ({"instruction": "Describe", "overwrite": "yes"}, "'overwrite'"),
    ({"instruction": "Describe", "source": "upstream"}, "'source'"),
    ({"instruction": "Describe", "api": "fast"}, "'api'"),
    ({"instruction": "Describe", "api_preset": "nope"}, "'api_preset'"),
    ({"instruction": "Describe", "api_preset": 3}, "'api_preset'"),
    ({"instruction": "Describe", "api": {"api_mode": "images"}}, "'api.api_mode'"),
    ({"instruction": "Describe", "api": {"model": ""}}, "model"),
    ({"instruction": "Describe", "api": {"api_url": ""}}, "URL"),
])
def test_bad_requests_are_400s_naming_the_field(app, client, fake, body, fragment):
    run_id, _ = seed(app, [picture((32, 24), RED)])
    if isinstance(body.get("api"), dict):
        body = {**body, "api": {**vision(fake), **body["api"]}}
    answer = client.post(f"/api/runs/{run_id}/captions/generate", json=body)
    assert answer.status_code == 400, answer.json
    assert fragment in answer.json["error"]
    assert posts(fake) == []


def test_images_endpoint_url_is_refused(app, client, fake):
    run_id, _ = seed(app, [picture((32, 24), RED)])
    answer = generate(client, run_id, fake, path="/v1/images/generations")
    assert answer.status_code == 400 and "captioning needs a chat model that answers text" in answer.json["error"]


def test_unknown_run_and_job_are_404s(client, fake):
    assert generate(client, "r-nope", fake).status_code == 404
    assert client.get("/api/caption-jobs/cap-nope").status_code == 404
    assert client.post("/api/caption-jobs/cap-nope/cancel").status_code == 404
    assert client.get("/api/caption-jobs?run=r-nope").json == {"jobs": []}


def test_presets_list_three_instructions_and_the_long_side(client):
    answer = client.get("/api/caption-presets").json
    assert [item["id"] for item in answer["instructions"]] == ["tags", "sentence", "detailed"]
    assert all(item["instruction"] for item in answer["instructions"]) and answer["long_side"] == 1024


def test_an_api_preset_is_used_with_its_stored_key(app, client, fake):
    run_id, ids = seed(app, [picture((32, 24), GREEN)])
    preset = {**vision(fake, f"vision_caption.key={KEY}"), "api_key": KEY}
    assert client.put("/api/presets/api/vision", json=preset).status_code in (200, 201)
    answer = client.post(f"/api/runs/{run_id}/captions/generate",
                         json={"instruction": "Describe", "api_preset": "vision", "api": {"concurrency": 1}})
    assert answer.status_code == 202, answer.json
    assert finished(client, answer.json)["captioned"] == 1
    assert [r.headers["authorization"] for r in posts(fake)] == [f"Bearer {KEY}"]


# -- spend -----------------------------------------------------------------------------------------

def test_caption_calls_count_in_the_runs_and_the_days_spend(app, client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "make it blue",
                                            "api": api(fake, "openrouter.cost=0.25")})
    run_id = answer.json["run_id"]
    wait_idle(client, run_id)
    store = app.extensions["console.store"]
    image_run = json.loads(json.dumps(store.run_profile(run_id)))
    history = store.call_history(image_run["api_url"], image_run["model"])
    done = finished(client, started(client, run_id, fake, "vision_caption.cost=0.002"))
    assert done["captioned"] == 2
    assert done["spend"]["calls"] == 2 and done["spend"]["cost"] == pytest.approx(0.004)
    spend = client.get(f"/api/runs/{run_id}").json["spend"]
    assert spend["calls"] == 4 and spend["cost"] == pytest.approx(0.5 + 0.004)
    profiles = client.get("/api/spend?days=1").json["days"][0]["profiles"]
    by_model = {p["model"]: p for p in profiles}
    assert by_model["vision-captioner-1"]["calls"] == 2
    assert by_model["vision-captioner-1"]["cost"] == pytest.approx(0.004)
    assert by_model["grok-imagine-1.0-edit"]["calls"] == 2
    assert [task["attempts"] for task in client.get(f"/api/runs/{run_id}/tasks").json["tasks"]] == [1, 1]
    # an image run's estimate never averages caption calls in
    assert store.call_history(image_run["api_url"], image_run["model"]) == history


def test_prices_price_caption_calls(app, client, fake):
    run_id, _ = seed(app, [picture((32, 24), RED), picture((32, 24), GREEN)])
    prices = {"call": 0.001, "input_mtok": 1.0, "output_mtok": 4.0, "currency": "EUR"}
    done = finished(client, started(client, run_id, fake, "vision_caption.usage=1", api_fields={"prices": prices}))
    each = 0.001 + 1100 * 1.0 / 1e6 + 24 * 4.0 / 1e6
    assert done["spend"]["cost"] == pytest.approx(2 * each) and done["spend"]["currency"] == "EUR"
    rows = caption_calls(app.extensions["console.store"].path)
    assert [row[4] for row in rows] == [pytest.approx(each)] * 2 and [row[5] for row in rows] == [1100, 1100]
    assert json.loads(rows[0][3]) == {"api_url": fake.url("vision_caption.usage=1", CHAT),
                                      "model": "vision-captioner-1", "prices": prices}


# -- restarts and crashes ----------------------------------------------------------------------------

def test_closing_the_app_mid_job_hangs_nothing_and_a_new_app_has_no_job(fake, tmp_path):
    settings = resolve({"APP_DATA_DIR": str(tmp_path / "data")})
    first = create_app(settings=settings)
    client = first.test_client()
    run_id, ids = seed(first, [picture((32, 24), (i * 20, 200, 40)) for i in range(8)])
    job = started(client, run_id, fake, "vision_caption.s=0.5", api_fields={"concurrency": 2})
    wait_for(lambda: client.get(f"/api/caption-jobs/{job['job']}").json["captioned"] >= 2)
    began = time.monotonic()
    first.extensions["console.engine"].close()
    assert time.monotonic() - began < 10
    closed = first.extensions["console.engine"].captions.job(job["job"])
    assert closed["finished"] and closed["cancelled"]  # the engine's close cancelled it
    written = sum(caption is not None for caption in captions(first, ids))
    wait_for(lambda: fake.in_flight == 0, timeout=3)
    second = create_app(settings=settings)
    try:
        client = second.test_client()
        assert client.get(f"/api/caption-jobs?run={run_id}").json == {"jobs": []}
        fake.reset()
        done = finished(client, started(client, run_id, fake))
        assert done["skipped"] == written and done["captioned"] == 8 - written
        assert len(posts(fake)) == 8 - written
        assert all(caption is not None for caption in captions(second, ids))
    finally:
        second.extensions["console.engine"].close()


def test_a_killed_server_keeps_the_captions_written_and_a_new_job_calls_only_the_rest(fake, tmp_path):
    from testkit.server_process import ServerProcess

    data = tmp_path / "data"
    data.mkdir()
    store, cache = Store(data / "console.db"), ImageCache(data, 168, 1 << 30)
    seeded = _Seeded(store, cache)
    run_id, ids = seed(seeded, [picture((32, 24), (i * 12, 60, 200)) for i in range(12)])
    store.close()
    server = ServerProcess(data)
    body = {"instruction": "Describe", "api": vision(fake, "vision_caption.s=0.3", concurrency=2)}
    try:
        job = server.post(f"/api/runs/{run_id}/captions/generate", body).json()
        wait_for(lambda: server.get(f"/api/caption-jobs/{job['job']}").json()["captioned"] >= 3, timeout=20)
    finally:
        server.kill()
    calls_before = len(posts(fake))
    reader = _Seeded(Store(data / "console.db"), cache)
    written = [caption for caption in captions(reader, ids) if caption is not None]
    assert len(written) >= 3
    assert all(caption.startswith("a photo of a ") for caption in written)
    server = ServerProcess(data)
    try:
        assert server.get(f"/api/caption-jobs?run={run_id}").json() == {"jobs": []}
        fake.reset()
        job = server.post(f"/api/runs/{run_id}/captions/generate",
                          {"instruction": "Describe", "api": vision(fake, concurrency=2)}).json()
        wait_for(lambda: server.get(f"/api/caption-jobs/{job['job']}").json()["finished"], timeout=20)
        done = server.get(f"/api/caption-jobs/{job['job']}").json()
    finally:
        server.stop()
    assert done["skipped"] == len(written) and done["captioned"] == 12 - len(written)
    assert len(posts(fake)) == 12 - len(written)  # only the results still without a caption
    assert all(caption is not None for caption in captions(reader, ids))
    figures.record("caption_kill", results=12, written_before_kill=len(written), calls_before_kill=calls_before,
                   calls_after_restart=len(posts(fake)), calls_repeated=len(posts(fake)) - (12 - len(written)))


class _Seeded:
    """What `seed` and `captions` read from an app, for a store and cache outside one."""

    def __init__(self, store: Store, cache: ImageCache) -> None:
        self.extensions = {"console.store": store, "console.cache": cache}


@pytest.mark.timeout(120)
def test_a_disk_that_fills_mid_job_stops_it_with_the_reason_and_a_new_job_finishes(small_disk, fake):  # noqa: F811
    from testkit.server_process import ServerProcess

    data = small_disk.path / "data"
    data.mkdir()
    store, cache = Store(data / "console.db"), ImageCache(data, 168, 1 << 30)
    run_id, ids = seed(_Seeded(store, cache), [picture((32, 24), (i * 12, 60, 200)) for i in range(12)])
    store.close()
    server = ServerProcess(data)
    try:
        body = {"instruction": "Describe", "api": vision(fake, "vision_caption.s=0.3", concurrency=2)}
        job = server.post(f"/api/runs/{run_id}/captions/generate", body).json()
        wait_for(lambda: server.get(f"/api/caption-jobs/{job['job']}").json()["captioned"] >= 2, timeout=20)
        small_disk.fill()
        wait_for(lambda: server.get(f"/api/caption-jobs/{job['job']}").json()["finished"], timeout=30)
        done = server.get(f"/api/caption-jobs/{job['job']}").json()
        assert done["reason"] and "full" in done["reason"], done
        # An answer that came back as the disk filled is paid for: it is held, and the next job writes it.
        assert all("full" in failure["error"] and "written by the next job, without a call" in failure["error"]
                   for failure in done["failures"]), done["failures"]
        calls = len(posts(fake))
        time.sleep(1)
        assert len(posts(fake)) == calls  # nothing more is sent
        assert server.post(f"/api/runs/{run_id}/captions/generate", body).status_code == 507
        small_disk.free()
        fake.reset()
        body["api"] = vision(fake, concurrency=2)
        again = server.post(f"/api/runs/{run_id}/captions/generate", body).json()
        wait_for(lambda: server.get(f"/api/caption-jobs/{again['job']}").json()["finished"], timeout=30)
        after = server.get(f"/api/caption-jobs/{again['job']}").json()
    finally:
        server.stop()
    reader = _Seeded(Store(data / "console.db"), cache)
    assert all(caption is not None for caption in captions(reader, ids))
    assert after["captioned"] == 12 - after["skipped"] and after["skipped"] == done["captioned"]
    assert len(posts(fake)) == 12 - done["captioned"] - done["failed"]  # the held ones are not called again
    figures.record("caption_full_disk", results=12, captioned_before_full=done["captioned"],
                   calls_before_stop=calls, held_when_full=done["failed"], calls_after_free=len(posts(fake)))
