"""The engine without Flask: limiter, scheduling, live concurrency, stop, resume, retry, crash recovery."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from console.engine import Busy, Conflict, Engine, EngineError, Limiter, NotFound
from tests.helpers import api, make_sources, wait_for


def wait_idle(engine: Engine, run_id: str) -> dict:
    wait_for(lambda: not engine.is_running(run_id), timeout=20)
    return engine.store.progress(run_id)


def statuses(engine: Engine, run_id: str) -> dict[str, str]:
    return {t.source_name: t.status for t in engine.store.tasks_since(run_id).tasks}


# -- the limiter ---------------------------------------------------------------------------------


def test_limiter_admits_up_to_its_limit_and_a_raised_limit_wakes_waiters():
    async def scenario() -> list[int]:
        limiter, seen = Limiter(2), []

        async def worker() -> None:
            await limiter.acquire()
            seen.append(limiter.used)
            await asyncio.sleep(0.05)

        workers = [asyncio.create_task(worker()) for _ in range(5)]
        await asyncio.sleep(0.01)
        assert limiter.used == 2 and len(seen) == 2
        limiter.set_limit(4)
        await asyncio.sleep(0.01)
        assert limiter.used == 4
        for _ in range(4):
            limiter.release()
        await asyncio.gather(*workers)
        return seen

    assert max(asyncio.run(scenario())) <= 4


# -- runs ------------------------------------------------------------------------------------------


def test_a_run_completes_and_records_each_attempt_in_order(engine, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    run_id, count = engine.create_run(str(folder), False, "edit", api(fake, "fail_then_ok.status=500.times=1",
                                                                          max_retries=2))
    assert count == 3
    assert wait_idle(engine, run_id)["done"] == 3
    tasks = engine.store.tasks_since(run_id).tasks
    assert sorted(t.attempts for t in tasks) == [1, 1, 2]  # the segment fails once for the whole run


def test_live_concurrency_and_stop(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 8)), False, "edit",
                                  api(fake, "stall", concurrency=2))
    wait_for(lambda: fake.in_flight == 2)
    engine.set_concurrency(run_id, 5)
    wait_for(lambda: fake.in_flight == 5)
    assert engine.stop_run(run_id) == 8
    assert not engine.is_running(run_id)
    assert set(statuses(engine, run_id).values()) == {"stopped"}
    assert fake.wait_for_connections(0, timeout=10)
    assert engine.store.run_profile(run_id)["concurrency"] == 5  # kept for a resume
    with pytest.raises(EngineError, match="between 1 and 64"):
        engine.set_concurrency(run_id, 65)


def test_tasks_prepared_ahead_are_not_started_until_a_slot_frees(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 6)), False, "edit",
                                  api(fake, "stall", concurrency=1))
    wait_for(lambda: fake.in_flight == 1)
    # The start transaction goes to the store while the call goes out: it may land just after the fake sees the call.
    wait_for(lambda: [t.status for t in engine.store.tasks_since(run_id).tasks].count("running") == 1)
    tasks = engine.store.tasks_since(run_id).tasks
    assert sorted(t.status for t in tasks) == ["pending"] * 5 + ["running"]
    assert sum(t.attempts for t in tasks) == 1  # look-ahead reads sources, it calls nobody
    assert engine.stop_run(run_id) == 6
    assert set(statuses(engine, run_id).values()) == {"stopped"}  # prepared ones included


def test_a_profile_changed_while_tasks_wait_is_the_one_they_are_sent_with(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 3)), False, "edit",
                                  api(fake, "stall", concurrency=1))
    wait_for(lambda: fake.in_flight == 1)  # the other two are prepared for the stalling profile
    engine.resume(run_id, api(fake, "g3_stream_dataurl", concurrency=2))
    wait_for(lambda: engine.store.progress(run_id)["done"] == 2)
    assert engine.store.progress(run_id)["running"] == 1  # the first call still stalls on the old profile
    engine.stop_run(run_id)


def test_resume_with_overrides_finishes_a_stopped_run(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 4)), False, "edit", api(fake, "stall"))
    wait_for(lambda: fake.in_flight == 4)
    engine.stop_run(run_id)
    assert engine.resume(run_id, api(fake, "g3_stream_dataurl")) == 4
    assert wait_idle(engine, run_id)["done"] == 4


def test_retry_failed_and_one_task(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 2)), False, "edit", api(fake, "err_401_g16"))
    assert wait_idle(engine, run_id)["failed"] == 2
    task = engine.store.tasks_since(run_id).tasks[0]
    assert task.http_status == 401 and "Invalid authentication token" in task.error
    assert engine.retry_failed(run_id, api(fake, "g3_stream_dataurl")) == 2
    assert wait_idle(engine, run_id)["done"] == 2
    engine.retry_task(task.id, keep_results=False)
    assert wait_idle(engine, run_id)["done"] == 2
    with pytest.raises(NotFound):
        engine.retry_task("no-such-task")
    with pytest.raises(NotFound):
        engine.resume("no-such-run")


def test_a_running_task_cannot_be_retried(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 1)), False, "edit", api(fake, "stall"))
    wait_for(lambda: fake.in_flight == 1)
    task_id = engine.store.tasks_since(run_id).tasks[0].id
    with pytest.raises(Conflict):
        engine.retry_task(task_id)
    engine.stop_all()


def test_delete_cancels_and_frees(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 2)), False, "edit", api(fake, "stall"))
    wait_for(lambda: fake.in_flight == 2)
    task_id = engine.store.tasks_since(run_id).tasks[0].id
    engine.delete_task(task_id)
    assert engine.store.task(task_id) is None
    engine.delete_run(run_id)
    assert engine.store.run(run_id) is None and not engine.is_running(run_id)
    assert fake.wait_for_connections(0, timeout=10)


def test_bad_runs_are_refused_before_anything_is_stored(engine, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 1)
    with pytest.raises(EngineError, match="prompt is empty"):
        engine.create_run(str(folder), False, "  ", api(fake, "g3_stream_dataurl"))
    with pytest.raises(EngineError, match="no model set"):
        engine.create_run(str(folder), False, "edit", {**api(fake, "x"), "model": ""})
    with pytest.raises(EngineError, match="does not exist|no such|not found|No such"):
        engine.create_run(str(tmp_path / "missing"), False, "edit", api(fake, "g3_stream_dataurl"))
    assert engine.store.runs() == []


# -- crash recovery and lifecycle ----------------------------------------------------------------------


def test_start_turns_tasks_a_crash_left_running_or_pending_into_stopped(parts, tmp_path):
    store, cache, settings, configs = parts
    run_id = store.create_run("/in", False, "p", {"model": "m"}, [("a.png", "/in/a.png"), ("b.png", "/in/b.png")])
    first = store.task_ids(run_id, ["pending"])[0]
    assert store.start_task(first)
    engine = Engine(store, cache, settings, configs)
    engine.start()
    try:
        tasks = store.tasks_since(run_id).tasks
        assert {(t.status, t.error) for t in tasks} == {("stopped", "interrupted")}
        assert not engine.is_running(run_id)
    finally:
        engine.close()


def test_a_closed_engine_is_busy(parts):
    store, cache, settings, configs = parts
    engine = Engine(store, cache, settings, configs)
    engine.start()
    engine.close()
    with pytest.raises(Busy):
        engine.stop_all()


def test_the_store_is_never_called_from_the_loop_thread(engine, fake, tmp_path):
    # The loop only waits, so it stays responsive under load; SQLite work runs in the pools, also on stop.
    on_loop: list[str] = []
    store = engine.store
    for name in ("start_task", "task", "add_attempt", "finish_task", "set_status"):
        original = getattr(store, name)

        def traced(*args, _name=name, _original=original, **kw):
            if threading.current_thread().name == "console-engine":
                on_loop.append(_name)
            return _original(*args, **kw)

        setattr(store, name, traced)
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 4)), False, "edit",
                                  api(fake, "fail_then_ok.status=500.times=1", max_retries=1, concurrency=2))
    wait_idle(engine, run_id)
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src2", 4)), False, "edit", api(fake, "stall", concurrency=2))
    wait_for(lambda: fake.in_flight == 2)
    engine.stop_run(run_id)
    assert set(statuses(engine, run_id).values()) == {"stopped"}
    assert on_loop == []


def test_attempts_count_upstream_calls_only(engine, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 1)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really")
    run_id, _ = engine.create_run(str(folder), False, "edit", api(fake, "fail_then_ok.status=502.times=2",
                                                                  max_retries=3))
    wait_idle(engine, run_id)
    tasks = {t.source_name: t for t in engine.store.tasks_since(run_id).tasks}
    assert tasks["broken.png"].status == "failed" and tasks["broken.png"].attempts == 0
    assert "not a usable image" in tasks["broken.png"].error
    assert tasks["img1.png"].status == "done" and tasks["img1.png"].attempts == 3
    assert len(fake.requests) == 3  # the broken source never went out


# -- rate limits ------------------------------------------------------------------------------------


def test_a_third_of_calls_rate_limited_and_quota_gone_at_200_pauses_the_run_and_resume_finishes_it(
        engine, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 300)
    run_id, _ = engine.create_run(str(folder), False, "edit", api(
        fake, "ratelimited.every=3.retry_after=0.05.quota_after=200", concurrency=16))  # max_retries 0
    wait_for(lambda: not engine.is_running(run_id), timeout=60)
    progress = engine.store.progress(run_id)
    assert progress["failed"] == 0  # not one task failed for a rate limit
    assert 200 <= progress["done"] < 300 and progress["done"] + progress["stopped"] == 300
    stopped = [t for t in engine.store.tasks_since(run_id).tasks if t.status == "stopped"]
    assert {t.error for t in stopped} == {
        "paused: 429 from the gateway (upstream_quota_exhausted); resume when the quota is back"}
    assert engine.cooling(run_id) == {"paused": stopped[0].error, "reason": stopped[0].error}
    assert engine.resume(run_id, api(fake, "ratelimited.every=3.retry_after=0.05", concurrency=16)) == len(stopped)
    wait_for(lambda: not engine.is_running(run_id), timeout=60)
    assert engine.store.progress(run_id)["done"] == 300 and engine.cooling(run_id) is None


def test_a_cooling_run_shows_why_and_until_when_with_fewer_calls_at_once(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 6)), False, "edit",
                                  api(fake, "ratelimited.every=1.retry_after=30", concurrency=4))
    wait_for(lambda: (engine.cooling(run_id) or {}).get("concurrency") == 1)
    cooling = engine.cooling(run_id)
    assert cooling["reason"] == "429 from the gateway (upstream_cooling)" and cooling["target"] == 4
    assert cooling["until"] > time.time() + 20
    assert engine.store.progress(run_id)["failed"] == 0
    assert engine.stop_run(run_id) == 6  # a cooling run stops at once


def test_tasks_fail_for_rate_limits_only_after_the_profiles_patience(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 2)), False, "edit",
                                  api(fake, "ratelimited.every=1.retry_after=0.1", concurrency=2, rate_limit_wait_s=0.5))
    wait_for(lambda: not engine.is_running(run_id), timeout=30)
    tasks = engine.store.tasks_since(run_id).tasks
    assert {t.status for t in tasks} == {"failed"}
    assert all(t.error.startswith("rate limited for longer than 0.5s without a call getting through; last: HTTP 429")
               for t in tasks)
    assert all(t.attempts > 1 for t in tasks)


def test_a_task_re_prompted_while_prepared_is_sent_with_its_new_prompt(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 3)), False, "old prompt",
                                  api(fake, "latency.s=1", concurrency=1))
    wait_for(lambda: fake.in_flight == 1)  # the other two are prepared with the old prompt
    last = engine.store.tasks_since(run_id).tasks[-1]
    assert last.status == "pending"
    engine.retry_task(last.id, prompt="new prompt")
    wait_for(lambda: not engine.is_running(run_id), timeout=20)
    prompts = [r.json["messages"][0]["content"][0]["text"] for r in fake.requests if r.method == "POST"]
    assert prompts == ["old prompt", "old prompt", "new prompt"]


# -- the call's place and the answers being checked -------------------------------------------------


def _chat_calls(fake) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/chat/completions"))


def test_the_next_call_goes_out_while_an_answer_is_still_being_stored(engine, fake, tmp_path, monkeypatch):
    """Concurrency 1: the first answer's images are held up on their way to disk, yet the second call
    goes out; the second answer then waits for a place among the answers being checked (as many as
    calls), so its call's place stays taken and no third call goes out until the first is stored."""
    from console.engine.tasks import TaskRunner

    held = threading.Event()
    keep = TaskRunner._keep_file

    def slow_keep(self, pins, unkept, image):
        held.wait(20)
        return keep(self, pins, unkept, image)

    monkeypatch.setattr(TaskRunner, "_keep_file", slow_keep)
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 3)), False, "edit",
                                  api(fake, "g16_stream_dataurl", concurrency=1))
    wait_for(lambda: _chat_calls(fake) == 2)
    time.sleep(0.5)
    assert _chat_calls(fake) == 2  # the second answer holds its call's place: memory stays bounded
    assert engine.store.progress(run_id)["done"] == 0
    held.set()
    assert wait_idle(engine, run_id)["done"] == 3
    assert fake.max_in_flight == 1  # never two calls at once


def test_an_answer_with_images_to_download_keeps_its_place_until_they_are_fetched(engine, fake, tmp_path):
    """The download is another call to the gateway: the call's place is held through it."""
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 2)), False, "edit",
                                  api(fake, f"link_to.ip=127.0.0.1.port={fake.port}.slow=red_png", concurrency=1))
    wait_for(lambda: any(r.path == "/files/slow/red_png" for r in fake.requests))
    time.sleep(0.5)  # the slow file takes 2 s
    assert _chat_calls(fake) == 1
    assert wait_idle(engine, run_id)["done"] == 2


def test_a_stop_keeps_answers_that_have_already_come_back(engine, fake, tmp_path, monkeypatch):
    """Concurrency 1. The stop lands while the first answer's image is on its way to disk and the
    second answer, read, waits for its turn to be checked: both calls are over and paid for, so both
    tasks end done with their images; the queued ones are stopped."""
    from console.engine.tasks import TaskRunner

    held, holding = threading.Event(), threading.Event()
    keep = TaskRunner._keep_file

    def slow_keep(self, pins, unkept, image):
        if not held.is_set():
            holding.set()
            held.wait(20)
        return keep(self, pins, unkept, image)

    monkeypatch.setattr(TaskRunner, "_keep_file", slow_keep)
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 5)), False, "edit",
                                  api(fake, "g16_stream_dataurl", concurrency=1))
    assert holding.wait(20)
    wait_for(lambda: _chat_calls(fake) == 2 and fake.in_flight == 0)  # the second answer is read
    stopped: list[int] = []
    stopping = threading.Thread(target=lambda: stopped.append(engine.stop_run(run_id)))
    stopping.start()
    time.sleep(0.3)
    held.set()  # the first image reaches the disk after the stop began
    stopping.join(20)
    assert stopped == [3]  # the queued tasks
    tasks = engine.store.tasks_since(run_id).tasks
    assert sorted(t.status for t in tasks) == ["done", "done", "stopped", "stopped", "stopped"]
    for task in tasks:
        if task.status == "done":
            assert [engine.cache.path(r.sha256, r.format).is_file() for r in task.results] == [True]
    assert _chat_calls(fake) == 2
