"""The engine's messages carry their codes: paused runs, parked and cooling keys, budgets, batches, captioning
jobs, refusals and the data folder's faults reach the JSON as `<field>_msg`, and a page in Chinese says them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from console.diskfault import FULL, GONE, READ_ONLY, StorageFault
from console.engine import Conflict, EngineError, NotFound
from console.engine.budget import Budget
from console.engine.lanes import Lanes
from console.engine.throttle import Limiter, Throttle
from console.messages import Message, carried
from console.profile import ApiProfile
from console.upstream import StatusError
from tests.helpers import api, make_sources, wait_for, wait_idle
from tests.test_batches import batch_api
from tests.test_caption_jobs import KEY, RED, GREEN, BLUE, finished, generate, picture, seed, started

GOOD = "sk-good-key-0001-AAAA"
BAD = "sk-revoked-key-0003-CCCC"
WORSE = "sk-also-revoked-0004"
WAIT_MS = 30_000


def code(msg: dict | None) -> str | None:
    return msg["code"] if msg else None


def start(client, body: dict) -> str:
    answer = client.post("/api/runs", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json["run_id"]


def refused_pool(fake) -> dict:
    """A profile whose two keys the gateway refuses (401): every key is parked and the run pauses."""
    return api(fake, f"g3_stream_dataurl.key={GOOD}", api_key=BAD, key_pool=[WORSE], concurrency=2)


# -- paused runs and keys ------------------------------------------------------------------------------


def test_a_run_whose_keys_are_all_refused_pauses_with_the_reason_nested(client, fake, tmp_path):
    run_id = start(client, {"input_path": str(make_sources(tmp_path / "src", 4)), "prompt": "blue",
                            "api": refused_pool(fake)})
    listing = wait_idle(client, run_id, timeout=60)
    run = client.get(f"/api/runs/{run_id}").json
    cooling = run["cooling"]
    assert cooling["paused"].startswith("paused: every key is parked (key 1 ••••••••CCCC: refused by the gateway: ")
    paused = cooling["paused_msg"]
    assert paused["code"] == "engine.paused" and cooling["reason_msg"] == paused
    reason = paused["params"]["reason"]
    assert reason["code"] == "engine.pause_keys" and reason["text"] == cooling["paused"].removeprefix("paused: ")
    keys = reason["params"]["keys"]
    assert [key["code"] for key in keys] == ["engine.parked_key", "engine.parked_key"]
    assert [key["params"]["number"] for key in keys] == [1, 2] and keys[0]["params"]["key"] == "••••••••CCCC"
    assert keys[0]["params"]["reason"]["code"] == "engine.key_refused"
    assert [code(key["reason_msg"]) for key in run["keys"]] == ["engine.key_refused", "engine.key_refused"]
    assert {key["state"] for key in run["keys"]} == {"parked"}
    stopped = [task for task in listing["tasks"] if task["status"] == "stopped"]
    assert stopped and {code(task["error_msg"]) for task in stopped} == {"engine.paused"}


def test_a_single_key_out_of_quota_pauses_the_run_with_the_gateways_status_and_code(client, fake, tmp_path):
    run_id = start(client, {"input_path": str(make_sources(tmp_path / "src", 3)), "prompt": "blue",
                            "api": api(fake, f"g3_stream_dataurl.spent_key={GOOD}", api_key=GOOD, concurrency=1)})
    wait_idle(client, run_id, timeout=60)
    cooling = client.get(f"/api/runs/{run_id}").json["cooling"]
    assert cooling["paused"] == "paused: 429 from the gateway (upstream_quota_exhausted); resume when the quota is back"
    reason = cooling["paused_msg"]["params"]["reason"]
    assert reason["code"] == "engine.pause_quota"
    assert reason["params"]["reason"] == {"code": "engine.throttle_status_code", "text": "429 from the gateway "
                                          "(upstream_quota_exhausted)",
                                          "params": {"status": 429, "error_code": "upstream_quota_exhausted"}}


def test_a_cooling_key_says_why_with_a_code(client, fake, tmp_path):
    other = "sk-good-key-0002-BBBB"
    run_id = start(client, {"input_path": str(make_sources(tmp_path / "src", 6)), "prompt": "blue",
                            "api": api(fake, f"g3_stream_dataurl.busy_key={other}.busy_s=60", api_key=GOOD,
                                       key_pool=[other], concurrency=2)})
    wait_idle(client, run_id, timeout=60)
    keys = client.get(f"/api/runs/{run_id}").json["keys"]
    assert keys[1]["state"] == "cooling" and keys[1]["reason"] == "429 from the gateway (upstream_cooling)"
    assert keys[1]["reason_msg"] == {"code": "engine.throttle_status_code",
                                     "params": {"status": 429, "error_code": "upstream_cooling"}}


@pytest.mark.parametrize("status, error_code, expected, text", [
    (429, "upstream_cooling", "engine.throttle_status_code", "429 from the gateway (upstream_cooling)"),
    (429, "", "engine.throttle_status", "429 from the gateway"),
    (None, "rate_limited", "engine.throttle_rate_limit_code", "rate limit from the gateway (rate_limited)"),
    (None, "", "engine.throttle_rate_limit", "rate limit from the gateway"),
])
def test_a_throttles_reason_keeps_todays_words(status, error_code, expected, text):
    throttle = Throttle(Limiter(4), 30.0, clock=lambda: 100.0)
    throttle.hit(StatusError("HTTP 429: slow down", http_status=status, code=error_code, retry_after=1.0))
    assert throttle.reason == text and throttle.reason.code == expected


def test_a_lanes_park_reasons_and_a_jobs_reason_are_codes():
    lanes = Lanes(ApiProfile.from_dict({"api_url": "https://x.test/v1", "model": "m", "api_key": "sk-first-key-0001-1111",
                                        "key_pool": ["sk-second-key-0002-2222"]}))
    for lane in lanes.lanes:
        lanes.failed(lane, StatusError("HTTP 401: no", http_status=401))
    reason = lanes.pause_reason()
    assert reason.code == "engine.paused" and reason.params["reason"].code == "engine.pause_keys"
    assert reason == ("paused: every key is parked (key 1 ••••••••1111: refused by the gateway: HTTP 401: no; "
                      "key 2 ••••••••2222: refused by the gateway: HTTP 401: no); fix or replace the keys, "
                      "or wait for the quota, then resume")
    job = lanes.job_reason()
    assert job.code == "engine.job_stopped_early" and job.params["reason"].code == "engine.job_keys"
    assert job == ("stopped early: every key is parked (key 1 ••••••••1111: refused by the gateway: HTTP 401: no; "
                   "key 2 ••••••••2222: refused by the gateway: HTTP 401: no); fix or replace the keys, "
                   "or wait for the quota, then start a new job")


# -- budget ----------------------------------------------------------------------------------------------


def test_a_budget_hold_says_the_budget_and_the_cost_of_a_call(client, fake, tmp_path):
    run_id = start(client, {"input_path": str(make_sources(tmp_path / "src", 6)), "prompt": "blue", "budget": 0.5,
                            "api": api(fake, "openrouter.cost=0.25.s=0.05.seg=msgb", concurrency=1)})
    wait_idle(client, run_id, timeout=60)
    cooling = client.get(f"/api/runs/{run_id}").json["cooling"]
    assert cooling["paused"] == ("paused: the budget of 0.50 USD is reached: the next call could pass it at about "
                                 "0.25 USD a call; raise the budget and resume")
    reason = cooling["paused_msg"]["params"]["reason"]
    assert reason["code"] == "engine.budget_reached_per_call"
    assert reason["params"] == {"budget": "0.50 USD", "per_call": "0.25 USD"}


def test_a_budget_with_no_cost_per_call_known_yet():
    reason = Budget(2.0, "USD").reason()
    assert reason == "paused: the budget of 2.00 USD is reached: the next call could pass it; raise the budget and resume"
    assert reason.params["reason"].code == "engine.budget_reached"


def test_a_budget_for_a_batch_run_is_refused_with_a_code(client, fake, tmp_path):
    answer = client.post("/api/runs", json={"input_path": str(make_sources(tmp_path / "src", 1)), "prompt": "blue",
                                            "budget": 1, "api": batch_api(fake)})
    assert answer.status_code == 400 and code(answer.json["error_msg"]) == "engine.budget_batch_run"


# -- batch delivery --------------------------------------------------------------------------------------


def test_an_expired_batch_fails_its_tasks_with_a_code(client, fake, tmp_path):
    run_id = start(client, {"input_path": str(make_sources(tmp_path / "src", 4)), "prompt": "blue",
                            "api": batch_api(fake, "batch.batch_s=1.batch_expire=1")})
    listing = wait_idle(client, run_id, timeout=60)
    failed = [task for task in listing["tasks"] if task["status"] == "failed"]
    assert failed and all(task["error"] == "the batch expired before this task was done" for task in failed)
    assert {code(task["error_msg"]) for task in failed} == {"engine.batch_expired"}


def test_a_batch_that_cannot_be_submitted_pauses_the_run_and_keeps_its_code_in_the_store(client, fake, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    run_id = start(client, {"input_path": str(make_sources(tmp_path / "src", 2)), "prompt": "blue",
                            "api": {**batch_api(fake), "api_url": f"http://127.0.0.1:{port}/v1/images/edits"}})
    wait_idle(client, run_id, timeout=60)
    run = client.get(f"/api/runs/{run_id}").json
    assert code(run["cooling"]["paused_msg"]) == "engine.batch_unsent_paused"
    (batch,) = run["batches"]
    assert batch["status"] == "not submitted" and batch["error"] == run["cooling"]["paused"]
    assert code(batch["error_msg"]) == "engine.batch_unsent_paused"  # read back from batches.error_msg


# -- captioning jobs ---------------------------------------------------------------------------------------


def test_a_caption_job_out_of_quota_stops_early_with_the_reason_nested(app, client, fake):
    run_id, _ = seed(app, [picture((32, 24), RED), picture((32, 24), GREEN), picture((32, 24), BLUE)])
    done = finished(client, started(client, run_id, fake, f"vision_caption.spent_key={KEY}",
                                    api_fields={"api_key": KEY, "concurrency": 1}))
    assert done["reason"] == ("stopped early: 429 from the gateway (upstream_quota_exhausted); start a new job when "
                              "the quota is back")
    assert code(done["reason_msg"]) == "engine.job_stopped_early"
    assert done["reason_msg"]["params"]["reason"]["code"] == "engine.job_quota"


def test_nothing_to_caption_says_why_with_codes(app, client, fake):
    run_id, _ = seed(app, [])
    answer = generate(client, run_id, fake)
    assert answer.status_code == 400 and answer.json["error"] == "nothing to caption: this run has no results yet"
    assert answer.json["error_msg"]["params"]["reason"]["code"] == "engine.no_results_yet"
    run_id, _ = seed(app, [picture((32, 24), RED)])
    finished(client, started(client, run_id, fake))
    answer = generate(client, run_id, fake)
    assert answer.json["error"] == ("nothing to caption: 1 result(s) already have a caption (set 'overwrite' to "
                                    "replace them)")
    assert [part["code"] for part in answer.json["error_msg"]["params"]["reason"]] == ["engine.results_have_caption"]


# -- refusals of the engine's controls -------------------------------------------------------------------


def test_the_engines_refusals_carry_codes(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 1)), False, "blue", api(fake, "g3_stream_dataurl"))
    wait_for(lambda: not engine.is_running(run_id), timeout=30)
    cases = [
        (NotFound, "engine.no_run", lambda: engine.stop_run("r-none")),
        (NotFound, "engine.no_task", lambda: engine.retry_task("t-none")),
        (NotFound, "engine.no_result", lambda: engine.delete_result("x-none")),
        (EngineError, "engine.concurrency_range", lambda: engine.set_concurrency(run_id, 0)),
        (Conflict, "engine.no_held_tasks", lambda: engine.release_pilot(run_id)),
        (EngineError, "engine.no_api_url", lambda: engine.test_connection(ApiProfile.from_dict({}))),
    ]
    for kind, expected, call in cases:
        with pytest.raises(kind) as raised:
            call()
        assert code(carried(raised.value).as_json()) == expected, expected


def test_a_missing_run_is_a_404_with_its_code(client):
    answer = client.post("/api/runs/r-none/resume", json={})
    assert answer.status_code == 404 and answer.json["error_msg"]["code"].endswith("no_run")


# -- the data folder ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, free, expected, text", [
    (FULL, 1_500_000, "engine.disk_full_free",
     "the disk holding the data folder /d is full (1.5 MB free); free some space, then resume"),
    (FULL, None, "engine.disk_full", "the disk holding the data folder /d is full; free some space, then resume"),
    (READ_ONLY, None, "engine.read_only",
     "the data folder /d cannot be written (read-only or not allowed); make it writable, then resume"),
    (GONE, None, "engine.folder_gone", "the data folder /d was removed while the console was running; restart the "
                                       "console (runs and results are in the data folder)"),
])
def test_a_storage_fault_says_todays_words_with_a_code(kind, free, expected, text):
    fault = StorageFault(kind, Path("/d"), free)
    message = carried(fault)
    assert str(fault) == text and isinstance(message, Message) and message.code == expected
    if kind != GONE:
        assert message.as_json()["params"]["then"]["code"] == "engine.then_resume"


# -- the page in Chinese ---------------------------------------------------------------------------------


@pytest.mark.browser
def test_a_paused_run_shows_its_reason_and_its_keys_in_chinese(page, server, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 4)
    answer = server.post("/api/runs", {"input_path": str(folder), "prompt": "blue", "api": refused_pool(fake)})
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["run_id"]
    wait_for(lambda: not server.get(f"/api/runs/{run_id}").json()["running"], timeout=60)
    page.evaluate("localStorage.setItem('ibc.lang', 'zh')")
    page.goto(f"{server.url}?run={run_id}")
    page.wait_for_selector("body[data-ready=true]", timeout=10_000)
    page.wait_for_function("document.querySelector('[data-testid=cooling]')?.textContent.includes('所有密钥都已停用')",
                           timeout=WAIT_MS)
    shown = page.inner_text("[data-testid=cooling]")
    assert shown.startswith("已暂停：所有密钥都已停用（密钥 1 ••••••••CCCC：被网关拒绝："), shown
    assert "然后点“继续”" in shown and "paused" not in shown and "every key" not in shown, shown
    page.wait_for_function("document.querySelectorAll('[data-testid=keys] tbody tr').length === 2", timeout=WAIT_MS)
    rows = [row.split("\t") for row in page.locator("[data-testid=keys] tbody tr").all_inner_texts()]
    assert all(row[5].startswith("已停用：被网关拒绝：") for row in rows), rows
    page.screenshot(path=str(Path(__file__).resolve().parent / "artifacts" / "messages_engine_paused_zh.png"))
