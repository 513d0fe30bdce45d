"""Batch delivery end to end against the fake batch services: submit, poll, answers, failures, stop, restart."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from console.cache import ImageCache
from console.config import ConfigStore
from console.engine import Engine
from console.panel import RunLine, Snapshot
from console.profile import ApiProfile, ProfileError
from console.settings import resolve
from console.sources import RunSpec
from console.store import Store
from console.upstream import Usage, priced
from testkit.server_process import ServerProcess
from tests.disks import small_disk  # noqa: F401  (fixture)
from tests.figures import record
from tests.helpers import make_sources, wait_for
from tests.test_panel import progress, text_of

EDITS = "/v1/images/edits"


def batch_api(fake, segment: str = "batch.batch_s=1", **fields) -> dict:
    """Profile fields that send a run to the fake OpenAI batch service under `segment`."""
    return {"api_url": fake.url(segment, EDITS), "model": "gpt-image-1", "api_key": "sk-batch",
            "allow_private_api": True, "max_retries": 0, "timeout_s": 20, "delivery": "batch", "batch_poll_s": 1,
            **fields}


def wait_idle(engine: Engine, run_id: str, timeout: float = 30) -> dict:
    wait_for(lambda: not engine.is_running(run_id), timeout=timeout)
    return engine.store.progress(run_id)


def tasks_of(engine: Engine, run_id: str) -> dict[str, object]:
    return {task.source_name: task for task in engine.store.tasks_since(run_id).tasks}


@pytest.fixture
def sent(fake):
    """The submissions the fake saw since the test began (the fake keeps every earlier test's too)."""
    before = len(fake.batches())
    return lambda: fake.batches()[before:]


def submitted(batches: list[dict]) -> Counter:
    """How many times each task was submitted in a batch."""
    return Counter(key for batch in batches for key in batch["keys"])


# -- a batch run -------------------------------------------------------------------------------------


def test_a_batch_run_goes_in_chunks_and_stores_each_answer_like_a_live_call(engine, fake, tmp_path, sent):
    folder = make_sources(tmp_path / "src", 5)
    run_id, _ = engine.create_run(str(folder), False, "make it blue",
                                  batch_api(fake, "batch.batch_s=1.batch_fail=1", batch_max_requests=2,
                                            prices={"image": 0.04}))
    assert wait_idle(engine, run_id)["done"] == 2
    assert [len(batch["keys"]) for batch in sent()] == [2, 2, 1]
    assert set(submitted(sent()).values()) == {1}  # every task in one batch, once
    tasks = tasks_of(engine, run_id)
    done = [task for task in tasks.values() if task.status == "done"]
    failed = [task for task in tasks.values() if task.status == "failed"]
    assert len(failed) == 3 and all("moderation_blocked" in task.error for task in failed)  # the provider's error
    assert all(task.attempts == 1 and task.batch is None for task in tasks.values())
    for task in done:
        (result,) = task.results
        assert result.prompt == "make it blue" and engine.cache.path(result.sha256, result.format).exists()
        assert "answered by batch" in engine.store.debug_log(task.id)
    run = engine.store.run(run_id)
    assert run.delivery == "batch" and [b.status for b in run.batches] == ["completed"] * 3
    assert all(b.done and b.finished_at and b.provider_id.startswith("batch_") for b in run.batches)
    assert run.spend["calls"] == 5 and run.spend["cost"] == pytest.approx(2 * 0.04 * 0.5)  # half price


def test_a_batch_holds_lines_up_to_its_size_and_the_rest_go_in_the_next(engine, fake, tmp_path, sent, monkeypatch):
    from console.engine import batches

    monkeypatch.setattr(batches, "BATCH_BYTES_MAX", 1)  # one line fills a batch
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 3)), False, "blue", batch_api(fake))
    wait_idle(engine, run_id)
    assert [len(batch["keys"]) for batch in sent()] == [1, 1, 1]
    assert {task.status for task in tasks_of(engine, run_id).values()} == {"done"}


def test_a_gemini_batch_run_stores_its_answers_and_fails_its_failing_lines(engine, fake, tmp_path, sent):
    model = "gemini-2.5-flash-image"
    api = {**batch_api(fake), "api_url": fake.url("batch.batch_s=1.batch_fail=1", f"/v1beta/models/{model}:generateContent"),
           "model": model, "api_mode": "gemini", "api_key": "g-batch", "prices": {"image": 0.04}}
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 3)), False, "blue", api)
    wait_idle(engine, run_id)
    (batch,) = sent()
    assert batch["service"] == "gemini" and len(batch["keys"]) == 3
    tasks = tasks_of(engine, run_id).values()
    assert sorted(task.status for task in tasks) == ["done", "done", "failed"]
    assert all(len(task.results) == 1 for task in tasks if task.status == "done")
    (record_,) = engine.store.run(run_id).batches
    assert record_.service == "gemini" and record_.provider_id.startswith("batches/") and record_.status == "succeeded"
    assert engine.store.run(run_id).spend["cost"] == pytest.approx(2 * 0.02)


def test_a_batch_the_provider_refuses_fails_its_tasks_with_the_reason(engine, fake, tmp_path, sent):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 2)), False, "blue",
                                  batch_api(fake, "batch.key=sk-right"))
    wait_idle(engine, run_id)
    tasks = tasks_of(engine, run_id).values()
    assert {task.status for task in tasks} == {"failed"} and {task.http_status for task in tasks} == {401}
    assert all(task.error.startswith("the batch could not be submitted: ") for task in tasks)
    assert "sk-batch" not in "".join(engine.store.debug_log(task.id) or "" for task in tasks)
    assert sent() == [] and engine.store.run(run_id).batches[0].status == "failed"


def test_a_submission_that_cannot_get_through_pauses_the_run_and_resume_sends_it(engine, fake, tmp_path, sent):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 3)), False, "blue",
                                  {**batch_api(fake), "api_url": f"http://127.0.0.1:{port}/v1/images/edits"})
    wait_idle(engine, run_id)
    assert {task.status for task in tasks_of(engine, run_id).values()} == {"pending"}
    paused = engine.cooling(run_id)
    assert paused and "could not be submitted" in paused["paused"] and "resume" in paused["paused"]
    assert engine.store.run(run_id).batches[0].status == "not submitted"
    assert engine.resume(run_id, batch_api(fake)) == 3
    wait_idle(engine, run_id)
    assert {task.status for task in tasks_of(engine, run_id).values()} == {"done"} and len(sent()) == 1
    assert engine.cooling(run_id) is None


@pytest.mark.timeout(120)
def test_a_cache_that_cannot_be_written_pauses_the_run_and_resume_stores_the_answers_from_the_provider(
        small_disk, fake, tmp_path, sent):
    data = small_disk.path / "data"
    data.mkdir()
    settings = resolve({"APP_DATA_DIR": str(data)})
    engine = Engine(Store(data / "console.db"), ImageCache(data, 168, 1 << 30), settings, ConfigStore(data))
    engine.start()
    try:
        run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 3)), False, "blue",
                                      batch_api(fake, "batch.batch_s=2"))
        wait_for(lambda: engine.store.run(run_id).batches and engine.store.run(run_id).batches[0].provider_id)
        small_disk.read_only_folder(data / "cache")
        wait_for(lambda: engine.cooling(run_id) is not None, timeout=20)
        assert "cannot be written" in engine.cooling(run_id)["paused"]
        assert "stored on resume" in engine.cooling(run_id)["paused"] and not engine.is_running(run_id)
        assert {task.status for task in tasks_of(engine, run_id).values()} == {"running"}
        assert engine.store.run(run_id).batches[0].finished_at is None  # still active: its answers wait
        small_disk.writable_again()
        engine.resume(run_id)
        wait_idle(engine, run_id)
        assert {task.status for task in tasks_of(engine, run_id).values()} == {"done"}, \
            [task.error for task in tasks_of(engine, run_id).values()]
        assert len(sent()) == 1 and engine.cooling(run_id) is None
    finally:
        engine.close()


def test_a_batch_runs_estimate_is_at_the_batch_price_and_a_budget_is_refused(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 4)
    body = {"input_path": str(folder), "prompt": "blue", "api": batch_api(fake, prices={"image": 0.04})}
    assert client.post("/api/runs/estimate", json=body).json["cost"] == pytest.approx(4 * 0.02)
    live = {**body, "api": {**body["api"], "delivery": "live"}}
    assert client.post("/api/runs/estimate", json=live).json["cost"] == pytest.approx(4 * 0.04)
    refused = client.post("/api/runs", json={**body, "budget": 1})
    assert refused.status_code == 400 and "'budget'" in refused.json["error"] and "batch" in refused.json["error"]
    run_id = client.post("/api/runs", json=body).json["run_id"]
    patched = client.patch(f"/api/runs/{run_id}", json={"budget": 1})
    assert patched.status_code == 400 and "'budget'" in patched.json["error"]
    assert client.patch(f"/api/runs/{run_id}", json={"budget": None}).status_code == 200
    wait_for(lambda: not client.get(f"/api/runs/{run_id}/tasks").json["running"], timeout=20)


def test_resume_says_how_many_tasks_wait_at_the_provider_when_it_queues_none(client, fake, tmp_path):
    # Resume on a batch run follows its batches again; "queued 0" alone would read as "nothing resumed".
    folder = make_sources(tmp_path / "src", 3)
    run_id = client.post("/api/runs", json={"input_path": str(folder), "prompt": "blue",
                                            "api": batch_api(fake, "batch.batch_s=3")}).json["run_id"]
    wait_for(lambda: (client.get(f"/api/runs/{run_id}").json["batches"] or [{}])[0].get("provider_id"), timeout=20)
    answer = client.post(f"/api/runs/{run_id}/resume", json={}).json
    assert answer == {"ok": True, "queued": 0, "at_provider": 3}
    wait_for(lambda: not client.get(f"/api/runs/{run_id}/tasks").json["running"], timeout=30)
    assert {task["status"] for task in client.get(f"/api/runs/{run_id}/tasks").json["tasks"]} == {"done"}
    assert client.post(f"/api/runs/{run_id}/resume", json={}).json == {"ok": True, "queued": 0}  # none waits


def test_a_key_revoked_while_a_batch_runs_pauses_the_run_and_resume_with_a_new_key_stores_its_answers(
        client, fake, tmp_path, sent):
    # Polling with a refused key again and again changes nothing: the run pauses and says so.
    folder = make_sources(tmp_path / "src", 3)
    api = batch_api(fake, "batch.batch_s=3", api_key="sk-soon-revoked-0001")
    run_id = client.post("/api/runs", json={"input_path": str(folder), "prompt": "blue", "api": api}).json["run_id"]
    wait_for(lambda: (client.get(f"/api/runs/{run_id}").json["batches"] or [{}])[0].get("provider_id"), timeout=20)
    fake.revoke("sk-soon-revoked-0001")
    wait_for(lambda: (client.get(f"/api/runs/{run_id}").json.get("cooling") or {}).get("paused"), timeout=20)
    run = client.get(f"/api/runs/{run_id}").json
    assert "batch 1 could not be read at the provider: the key was refused" in run["cooling"]["paused"]
    assert "HTTP 401" in run["cooling"]["paused"]
    assert run["cooling"]["paused_msg"]["code"] == "engine.batch_poll_refused_paused"
    assert "sk-soon-revoked-0001" not in str(run)
    tasks = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
    assert {task["status"] for task in tasks} == {"running"}  # their answers wait at the provider
    answer = client.post(f"/api/runs/{run_id}/resume", json={"api": {**api, "api_key": "sk-the-new-key-0002"}}).json
    assert answer == {"ok": True, "queued": 0, "at_provider": 3}
    wait_for(lambda: not client.get(f"/api/runs/{run_id}/tasks").json["running"], timeout=30)
    tasks = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
    assert {task["status"] for task in tasks} == {"done"} and len(sent()) == 1  # nothing submitted twice
    assert client.get(f"/api/runs/{run_id}").json.get("cooling") is None


def test_a_provider_that_does_not_answer_for_a_while_is_said_on_the_run_and_asked_again(client, fake, tmp_path, sent):
    # Looks that fail (503) are tried again at the poll interval; from the second in a row the run says so.
    folder = make_sources(tmp_path / "src", 2)
    api = batch_api(fake, "batch.batch_s=2.batch_poll_fail=3")
    run_id = client.post("/api/runs", json={"input_path": str(folder), "prompt": "blue", "api": api}).json["run_id"]
    seen = []
    wait_for(lambda: seen.append(client.get(f"/api/runs/{run_id}").json) or seen[-1].get("cooling"), timeout=20)
    cooling = seen[-1]["cooling"]
    assert cooling["retrying"] is True and "paused" not in cooling and seen[-1]["running"] is True  # not paused
    assert cooling["reason"].startswith("batch 1 could not be read at the provider 2 times in a row (")  # as its chip
    assert "HTTP 503" in cooling["reason"] and "trying again every 1 s" in cooling["reason"]
    assert cooling["reason_msg"]["code"] == "engine.batch_looks_failing"
    wait_for(lambda: not client.get(f"/api/runs/{run_id}/tasks").json["running"], timeout=30)
    assert {task["status"] for task in client.get(f"/api/runs/{run_id}/tasks").json["tasks"]} == {"done"}
    assert client.get(f"/api/runs/{run_id}").json.get("cooling") is None and len(sent()) == 1


def test_the_batch_discount_applies_to_the_profiles_prices_only():
    usage = Usage(images=2, input_tokens=1000)
    assert priced(usage, {"image": 0.04}, batch=True) == (0.04, "prices")
    assert priced(usage, {"image": 0.04, "batch_discount": 0.25}, batch=True) == (pytest.approx(0.06), "prices")
    assert priced(usage, {"image": 0.04}) == (0.08, "prices")
    assert priced(Usage(images=2, cost=0.03), {"image": 0.04}, batch=True) == (0.03, "gateway")  # taken as is


def test_an_expired_batch_fails_the_rest_and_retry_failed_sends_only_those_in_a_new_batch(engine, fake, tmp_path,
                                                                                         sent):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 4)), False, "blue",
                                  batch_api(fake, "batch.batch_s=1.batch_expire=1"))
    wait_idle(engine, run_id)
    tasks = tasks_of(engine, run_id)
    expired = sorted(task.id for task in tasks.values() if task.status == "failed")
    assert len(expired) == 2 and {task.status for task in tasks.values()} == {"done", "failed"}
    assert all(tasks[name].error == "the batch expired before this task was done"
               for name in tasks if tasks[name].status == "failed")
    assert engine.store.run(run_id).batches[0].status == "expired"
    assert engine.retry_failed(run_id, batch_api(fake, "batch.batch_s=1")) == 2
    wait_idle(engine, run_id)
    assert sorted(sent()[-1]["keys"]) == expired and len(sent()) == 2
    assert {task.status for task in tasks_of(engine, run_id).values()} == {"done"}
    assert all(count == 1 for key, count in submitted(sent()).items() if key not in expired)


def test_a_batch_that_fails_validation_fails_every_task_with_its_reason(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 2)), False, "blue",
                                  batch_api(fake, "batch.batch_s=1.batch_reject=1"))
    wait_idle(engine, run_id)
    tasks = tasks_of(engine, run_id).values()
    assert {task.status for task in tasks} == {"failed"}
    assert all(task.error.startswith("the batch failed: ") and len(task.error) > 20 for task in tasks)


def test_stop_cancels_the_batch_keeps_what_finished_and_resume_sends_the_rest_in_a_new_batch(engine, fake, tmp_path,
                                                                                            sent):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 6)), False, "blue",
                                  batch_api(fake, "batch.batch_s=6"))
    wait_for(lambda: any(b.completed for b in engine.store.run(run_id).batches), timeout=15)
    assert engine.stop_run(run_id) == 6  # every task was waiting in the batch
    wait_idle(engine, run_id)
    batch = engine.store.run(run_id).batches[0]
    assert batch.status == "cancelled" and batch.finished_at is not None
    tasks = tasks_of(engine, run_id).values()
    kept = [task for task in tasks if task.status == "done"]
    stopped = [task for task in tasks if task.status == "stopped"]
    assert kept and stopped and len(kept) + len(stopped) == 6
    assert all(task.error == "stopped: the batch was cancelled" for task in stopped)
    assert engine.resume(run_id, batch_api(fake, "batch.batch_s=1")) == len(stopped)
    wait_idle(engine, run_id)
    assert sorted(sent()[-1]["keys"]) == sorted(task.id for task in stopped)
    assert {task.status for task in tasks_of(engine, run_id).values()} == {"done"}
    assert all(submitted(sent())[task.id] == 1 for task in kept)  # what finished was never sent again


def test_resume_while_the_cancel_goes_through_sends_only_what_the_cancelled_batch_left(engine, fake, tmp_path, sent):
    api = batch_api(fake, "batch.batch_s=6.batch_cancel_s=2")
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 6)), False, "blue", api)
    wait_for(lambda: any(b.completed for b in engine.store.run(run_id).batches), timeout=15)
    engine.stop_run(run_id)
    assert engine.resume(run_id) == 0  # every task still waits in the batch being cancelled
    wait_idle(engine, run_id)
    first, *later = sent()
    assert {task.status for task in tasks_of(engine, run_id).values()} == {"done"}
    assert len(later) == 1 and 0 < len(later[0]["keys"]) < 6  # what the cancel left, sent again once
    assert max(submitted(sent()).values()) == 2 and all(len(task.results) == 1 for task in tasks_of(engine, run_id).values())


def test_a_task_waiting_in_a_batch_shows_it_and_counts_as_running(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "blue",
                                            "api": batch_api(fake, "batch.batch_s=4")})
    assert answer.status_code == 201, answer.json
    run_id = answer.json["run_id"]
    wait_for(lambda: client.get(f"/api/runs/{run_id}").json["batches"]
             and client.get(f"/api/runs/{run_id}").json["batches"][0]["provider_id"], timeout=10)
    run = client.get(f"/api/runs/{run_id}").json
    assert run["delivery"] == "batch" and run["progress"]["running"] == 3
    (batch,) = run["batches"]
    assert list(batch) == ["id", "provider_id", "service", "status", "done", "total", "completed", "failed", "error",
                           "created_at", "finished_at"]
    assert batch["service"] == "openai" and batch["total"] == 3 and batch["finished_at"] is None
    tasks = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
    assert {task["batch"] for task in tasks} == {batch["id"]}
    wait_for(lambda: client.get(f"/api/runs/{run_id}").json["progress"]["eta_s"] is not None, timeout=10)
    wait_for(lambda: not client.get(f"/api/runs/{run_id}/tasks").json["running"], timeout=20)
    tasks = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
    assert {task["status"] for task in tasks} == {"done"} and {task["batch"] for task in tasks} == {None}
    assert client.get("/api/runs").json[0]["batches"][0]["status"] == "completed"


# -- the profile ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fields, named", [
    ({"delivery": "mail"}, "delivery"),
    ({"batch_poll_s": 0}, "batch_poll_s"),
    ({"batch_poll_s": 3601}, "batch_poll_s"),
    ({"batch_max_requests": 50_001}, "batch_max_requests"),
    ({"batch_max_requests": 1.5}, "batch_max_requests"),
    ({"prices": {"image": 0.04, "batch_discount": 1.5}}, "prices.batch_discount"),
    ({"key_pool": ["sk-two"]}, "delivery"),
    ({"api_mode": "images", "edit_format": "json_image"}, "delivery"),
])
def test_the_profile_refuses_what_batch_delivery_cannot_do_naming_the_field(client, fake, tmp_path, fields, named,
                                                                            sent):
    folder = make_sources(tmp_path / "src", 1)
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "blue",
                                            "api": {**batch_api(fake), **fields}})
    assert answer.status_code == 400 and named in answer.json["error"], answer.json
    assert sent() == []


def test_json_image_is_refused_for_batch_naming_it_and_live_delivery_keeps_it():
    base = {"api_url": "http://127.0.0.1:9/v1/images/edits", "model": "m", "edit_format": "json_image"}
    with pytest.raises(ProfileError, match="json_image"):
        ApiProfile.from_dict({**base, "delivery": "batch"})
    assert ApiProfile.from_dict(base).delivery == "live"
    assert ApiProfile.from_dict({**base, "edit_format": "multipart", "delivery": "batch"}).batch_max_requests == 1000


def test_the_rules_serve_the_batch_bounds(client):
    rules = client.get("/api/rules").json
    assert rules["profile"]["batch_poll_s"] == {"min": 1, "max": 3600, "whole": False}
    assert rules["profile"]["batch_max_requests"] == {"min": 1, "max": 50_000, "whole": True}
    assert rules["batch"] == {"deliveries": ["live", "batch"], "modes": ["images", "chat_completions", "responses",
                                                                          "gemini"],
                              "batch_discount": {"min": 0, "max": 1, "whole": False}, "batch_discount_default": 0.5}


# -- restarts -----------------------------------------------------------------------------------------


def test_a_restart_leaves_batch_tasks_alone_and_follows_the_same_batch(parts, fake, tmp_path, sent):
    folder = make_sources(tmp_path / "src", 3)
    first = Engine(*parts)
    first.start()
    run_id, _ = first.create_run(str(folder), False, "blue", batch_api(fake, "batch.batch_s=3"))
    wait_for(lambda: first.store.run(run_id).batches and first.store.run(run_id).batches[0].provider_id, timeout=10)
    first.close()  # the batch goes on at the provider
    second = Engine(*parts)
    second.start()
    try:
        assert {task.status for task in tasks_of(second, run_id).values()} <= {"running", "done"}
        wait_idle(second, run_id)
        assert {task.status for task in tasks_of(second, run_id).values()} == {"done"}
        assert len(sent()) == 1
    finally:
        second.close()


def test_a_batch_written_but_not_stored_as_submitted_is_found_by_its_label_not_sent_twice(parts, fake, tmp_path,
                                                                                          sent):
    store: Store = parts[0]
    api = batch_api(fake, "batch.batch_s=1")
    first = Engine(*parts)
    first.start()
    run_id, _ = first.create_run(str(make_sources(tmp_path / "src", 3)), False, "blue", api)
    wait_idle(first, run_id)
    first.close()
    # A crash between the provider's answer and the store's write leaves the batch `preparing`, no provider id.
    db = store._db()
    label = store.run_batches(run_id)[0].id
    with store._tx() as tx:
        tx.execute("UPDATE batches SET provider_id = NULL, status = 'preparing', done = 0, finished_at = NULL "
                   "WHERE id = ?", (label,))
        tx.execute("UPDATE tasks SET status = 'running', batch_id = ? WHERE run_id = ?", (label, run_id))
        tx.execute("DELETE FROM results")
    assert db.execute("SELECT COUNT(*) FROM tasks WHERE status = 'running'").fetchone()[0] == 3
    second = Engine(*parts)
    second.start()
    try:
        wait_idle(second, run_id)
        assert {task.status for task in tasks_of(second, run_id).values()} == {"done"}
        assert len(sent()) == 1 and set(submitted(sent()).values()) == {1}
        assert second.store.run(run_id).batches[0].provider_id == sent()[0]["id"]
    finally:
        second.close()


def test_a_batch_the_provider_never_got_is_submitted_once_after_the_restart(parts, fake, tmp_path, sent):
    store: Store = parts[0]
    first = Engine(*parts)
    first.start()
    run_id, _ = first.create_run(str(make_sources(tmp_path / "src", 2)), False, "blue",
                                 batch_api(fake, "batch.batch_s=1"))
    wait_idle(first, run_id)
    first.close()
    with store._tx() as tx:  # as if killed after writing the batch, before submitting it
        tx.execute("UPDATE batches SET id = 'bnever', provider_id = NULL, status = 'preparing', done = 0, "
                   "finished_at = NULL")
        tx.execute("UPDATE tasks SET status = 'running', batch_id = 'bnever'")
        tx.execute("DELETE FROM results")
    second = Engine(*parts)
    second.start()
    try:
        wait_idle(second, run_id)
        assert {task.status for task in tasks_of(second, run_id).values()} == {"done"}
        assert len(sent()) == 2 and sent()[1]["label"] != "bnever"
        assert [b.status for b in second.store.run_batches(run_id)][-1] == "not submitted"
    finally:
        second.close()


def test_a_batch_the_provider_no_longer_knows_fails_its_tasks_saying_so(parts, fake, tmp_path):
    first = Engine(*parts)
    first.start()
    run_id, _ = first.create_run(str(make_sources(tmp_path / "src", 2)), False, "blue",
                                 batch_api(fake, "batch.batch_s=3"))
    wait_for(lambda: first.store.run(run_id).batches and first.store.run(run_id).batches[0].provider_id, timeout=10)
    first.close()
    with parts[0]._tx() as tx:  # as if deleted at the provider while the console was down
        tx.execute("UPDATE batches SET provider_id = 'batch_gone'")
    second = Engine(*parts)
    second.start()
    try:
        wait_idle(second, run_id)
        tasks = tasks_of(second, run_id).values()
        assert {task.status for task in tasks} == {"failed"} and {task.http_status for task in tasks} == {404}
        assert all(task.error.startswith("the provider no longer knows this batch") for task in tasks)
        assert second.store.run(run_id).batches[0].finished_at is not None
    finally:
        second.close()


@pytest.mark.timeout(120)
def test_kill_9_mid_batch_then_restart_polls_the_same_batch_and_submits_nothing_twice(tmp_path, fake, sent):
    folder, data = make_sources(tmp_path / "src", 8), tmp_path / "data"
    server = ServerProcess(data)
    answer = server.post("/api/runs", {"input_path": str(folder), "prompt": "blue",
                                       "api": batch_api(fake, "batch.batch_s=4", batch_max_requests=4)})
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["run_id"]
    deadline = time.monotonic() + 15
    while len(sent()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    killed_at = time.monotonic()
    server = ServerProcess(data)
    try:
        listing = server.get(f"/api/runs/{run_id}/tasks").json()
        waiting = sum(1 for task in listing["tasks"] if task["status"] == "running" and task["batch"])
        listing = server.wait_idle(run_id, timeout=60)
        finished_after = time.monotonic() - killed_at
    finally:
        server.stop()
    assert Counter(task["status"] for task in listing["tasks"]) == {"done": 8}
    twice = sum(count - 1 for count in submitted(sent()).values())
    assert twice == 0 and len(sent()) == 2
    record("batch_restart", kills=1, tasks=8, batches=len(sent()), tasks_waiting_after_restart=waiting,
           tasks_submitted_twice=twice, done=8, seconds_to_finish_after_kill=round(finished_after, 1))


# -- the terminal panel -------------------------------------------------------------------------------


def test_the_panel_lists_a_batch_runs_batches():
    batches = ({"id": "b2", "status": "in_progress", "completed": 300, "failed": 40, "total": 1000, "error": None,
                "finished_at": None},
               {"id": "b1", "status": "expired", "completed": 10, "failed": 0, "total": 20,
                "error": "the batch expired", "finished_at": 5.0})
    text = text_of(Snapshot("0.1.0", "http://127.0.0.1:1/", "/d", 5,
                            (RunLine("r1", "blue", True, progress(running=660), batches=batches),)))
    assert "r1 batch b2 · in progress · 340/1000 · 40 failed" in text
    assert "r1 batch b1 · expired · 10/20 · the batch expired" in text


def test_a_run_mixing_edits_and_generations_sends_one_batch_per_endpoint(engine, fake, tmp_path, sent):
    folder = make_sources(tmp_path / "src", 2)
    first, second = sorted(str(path) for path in folder.iterdir())
    table = tmp_path / "rows.csv"
    table.write_text(f"source,prompt\n{first},make it blue\n,a red barn\n{second},make it green\n", encoding="utf-8")
    run_id, count, _ = engine.start_run(RunSpec(mode="table", table_path=str(table)), batch_api(fake))
    assert count == 3
    wait_idle(engine, run_id)
    # A batch serves one endpoint: the edits go together, the generation in a batch of its own, each once.
    assert sorted(len(batch["keys"]) for batch in sent()) == [1, 2]
    assert set(submitted(sent()).values()) == {1}
    assert {task.status for task in tasks_of(engine, run_id).values()} == {"done"}
