"""A data folder that fills up, turns read-only or disappears while a run goes on (real tmpfs, real server).

A full disk is an expected condition, not a bug: the run pauses at the first write that fails,
nothing more is sent, no task is left running, answers already received are kept in memory and
stored on Resume without a new call, and settings writes answer 507 naming the disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.disks import small_disk  # noqa: F401  (fixture)
from testkit.fake_scenarios import call_log
from tests.figures import record
from tests.helpers import CHAT, make_sources
from tests.run_checks import digest_of, integrity
from testkit.server_process import ROOT, ServerProcess

TASKS = 20


def wait_paused(server: ServerProcess, run_id: str) -> dict:
    """Wait until the run has nothing in flight; return its answer."""
    server.wait_idle(run_id, timeout=30)
    return server.get(f"/api/runs/{run_id}").json()


def resume_to_the_end(server: ServerProcess, run_id: str, segment: str) -> int:
    """Resume the run, wait for every task to be done; return how many calls paid for a source twice."""
    assert server.post(f"/api/runs/{run_id}/resume").status_code == 200
    listing = server.wait_idle(run_id, timeout=60)
    assert Counter(t["status"] for t in listing["tasks"]) == {"done": TASKS}
    paid = Counter(entry["digest"] for entry in call_log(segment))
    assert len(paid) == TASKS
    return sum(count - 1 for count in paid.values())


def wait_done_at_least(server: ServerProcess, run_id: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.get(f"/api/runs/{run_id}").json()["progress"]["done"] >= count:
            return
        time.sleep(0.02)
    raise AssertionError("not enough tasks done")


def start_paid_run(server: ServerProcess, fake, folder, segment: str) -> str:
    api = {"api_url": fake.url(segment, CHAT), "model": "m", "allow_private_api": True, "concurrency": 3,
           "max_retries": 0, "timeout_s": 20}
    answer = server.post("/api/runs", {"input_path": str(folder), "prompt": "fill it", "api": api})
    assert answer.status_code == 201, answer.text
    return answer.json()["run_id"]


@pytest.mark.timeout(120)
def test_a_disk_that_fills_mid_run_pauses_it_and_resume_finishes_it_paying_nothing_twice(small_disk, fake, tmp_path):
    folder = make_sources(tmp_path / "src", TASKS)
    segment = "paid.s=0.3.disk=full"
    server = ServerProcess(small_disk.path / "data")
    try:
        run_id = start_paid_run(server, fake, folder, segment)
        wait_done_at_least(server, run_id, 4)
        small_disk.fill()
        run = wait_paused(server, run_id)
        tasks = server.get(f"/api/runs/{run_id}/tasks").json()["tasks"]
        statuses = Counter(task["status"] for task in tasks)
        assert statuses["running"] == 0, statuses
        assert statuses["failed"] == 0, [t["error"] for t in tasks if t["status"] == "failed"]
        assert "full" in run["cooling"]["paused"], run
        held = sum(1 for t in tasks if "its answer is kept" in (t["error"] or ""))
        calls_when_paused = len(call_log(segment))
        time.sleep(1)
        assert len(call_log(segment)) == calls_when_paused  # nothing more is sent

        small_disk.fill()  # the pause gave the folder's reserve back: take that too
        for write in (server.http.put("/api/settings", json={"api": {"model": "other"}}),
                      server.http.put("/api/presets/api/big", json={"api_url": "https://example.com/v1", "model": "m"}),
                      server.post("/api/config/import", {"settings": {"api": {"model": "imported"}}})):
            assert write.status_code == 507, write.text
            assert "is full" in write.json()["error"] and str(small_disk.path) in write.json()["error"]
        refused = server.post(f"/api/runs/{run_id}/resume")
        assert refused.status_code == 507 and "is full" in refused.json()["error"], refused.text

        small_disk.free()
        twice = resume_to_the_end(server, run_id, segment)
        assert twice == 0
        assert integrity(small_disk.path / "data" / "console.db") == "ok"
        record("full_disk", tasks=TASKS, concurrency=3, calls=len(call_log(segment)), paid_twice=twice, answers_held=held)
    finally:
        server.stop()


@pytest.mark.timeout(120)
def test_a_cache_folder_turned_read_only_mid_run_pauses_it_and_resume_finishes_it(small_disk, fake, tmp_path):
    folder = make_sources(tmp_path / "src", TASKS)
    segment = "paid.s=0.3.ro=1"
    server = ServerProcess(small_disk.path / "data")
    try:
        run_id = start_paid_run(server, fake, folder, segment)
        wait_done_at_least(server, run_id, 3)
        small_disk.read_only_folder(small_disk.path / "data" / "cache")
        run = wait_paused(server, run_id)
        assert "cannot be written" in run["cooling"]["paused"], run
        calls_when_paused = len(call_log(segment))
        time.sleep(1)
        assert len(call_log(segment)) == calls_when_paused  # nothing more is sent
        tasks = server.get(f"/api/runs/{run_id}/tasks").json()["tasks"]
        assert not [t["error"] for t in tasks if t["status"] == "failed"]
        assert not any("bug" in (t["error"] or "") for t in tasks)

        small_disk.writable_again()
        twice = resume_to_the_end(server, run_id, segment)
        assert twice == 0
        record("full_disk", read_only_tasks=TASKS, read_only_paid_twice=twice)
    finally:
        server.stop()


@pytest.mark.timeout(120)
def test_a_data_folder_removed_mid_run_pauses_it_and_says_to_restart(fake, tmp_path):
    folder = make_sources(tmp_path / "src", TASKS)
    segment = "paid.s=0.3.gone=1"
    data = tmp_path / "data"
    server = ServerProcess(data)
    try:
        run_id = start_paid_run(server, fake, folder, segment)
        wait_done_at_least(server, run_id, 3)
        shutil.rmtree(data)
        time.sleep(1.5)  # the calls in flight come back and find the folder gone
        calls_when_paused = len(call_log(segment))
        time.sleep(1)
        assert len(call_log(segment)) == calls_when_paused  # the run paused: nothing more is sent
        assert calls_when_paused < TASKS
        for answer in (server.get(f"/api/runs/{run_id}"),
                       server.http.put("/api/settings", json={"api": {"model": "other"}}),
                       server.post(f"/api/runs/{run_id}/resume")):
            assert answer.status_code == 507 and "restart the console" in answer.json()["error"], answer.text
        assert not data.exists()  # nothing recreated it behind the user's back
    finally:
        server.stop()


def test_a_read_only_data_folder_at_start_is_one_clear_line_not_a_traceback(small_disk):
    data = small_disk.path / "data"
    data.mkdir()
    small_disk.read_only()
    done = subprocess.run([sys.executable, "app.py", "--port", "0", "--no-browser", "--status-ui", "none",
                           "--data-dir", str(data)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert f"the data folder {data} cannot be written" in done.stderr, done.stderr


def test_a_full_disk_at_start_is_one_clear_line_not_a_traceback(small_disk):
    small_disk.fill()
    data = small_disk.path / "data"
    done = subprocess.run([sys.executable, "app.py", "--port", "0", "--no-browser", "--status-ui", "none",
                           "--data-dir", str(data)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert "is full" in done.stderr, done.stderr


@pytest.mark.timeout(60)
def test_a_held_answer_is_dropped_when_its_task_is_retried_with_a_new_prompt(small_disk, fake, tmp_path):
    from console.cache import ImageCache
    from console.config import ConfigStore
    from console.engine import Engine
    from console.settings import resolve
    from console.store import Store
    from tests.helpers import api

    data = small_disk.path / "data"
    data.mkdir()
    engine = Engine(Store(data / "console.db"), ImageCache(data, 168, 1 << 30),
                    resolve({"APP_DATA_DIR": str(data)}), ConfigStore(data))
    engine.start()
    try:
        segment = "paid.s=0.5.held=reprompt"
        folder = make_sources(tmp_path / "src", 2)
        run_id, _ = engine.create_run(str(folder), False, "first prompt", api(fake, segment, concurrency=1))
        small_disk.fill()  # img1's answer finds the disk full (img2's call went out as img1's answer was read,
        # its answer is held too, or stored in the room the pause gave back)
        deadline = time.monotonic() + 20
        while engine.is_running(run_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        tasks = {t.source_name: t for t in engine.store.tasks_since(run_id).tasks}
        assert tasks["img1.png"].status == "stopped" and tasks["img2.png"].status in ("stopped", "done")
        assert engine.held.peek(tasks["img1.png"].id) is not None

        small_disk.free()
        engine.retry_task(tasks["img1.png"].id, prompt="second prompt")  # a new prompt: a new call
        engine.resume(run_id)  # img2's answer is stored without one
        deadline = time.monotonic() + 20
        while engine.is_running(run_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        tasks = {t.source_name: t for t in engine.store.tasks_since(run_id).tasks}
        assert {t.status for t in tasks.values()} == {"done"}
        assert tasks["img1.png"].attempts == 2 and tasks["img2.png"].attempts == 1
        assert engine.held.count(run_id) == 0 and engine.held.bytes == 0
        names = {digest_of(path): path.name for path in folder.iterdir()}
        paid = Counter(names[entry["digest"]] for entry in call_log(segment))
        assert paid == {"img1.png": 2, "img2.png": 1}
    finally:
        engine.close()
        engine.store.close()


@pytest.mark.timeout(60)
def test_a_zip_on_a_full_temporary_folder_answers_507_naming_that_folder(small_disk, fake, tmp_path):
    spool = small_disk.path / "tmp"
    spool.mkdir()
    server = ServerProcess(tmp_path / "data", env={**os.environ, "TMPDIR": str(spool)})
    try:
        run_id = start_paid_run(server, fake, make_sources(tmp_path / "src", 3), "paid.s=0.05.zip=full")
        server.wait_idle(run_id)
        # a first export while there is room (Python settles on its temporary folder at the first use,
        # and passes over one that is full then)
        assert server.get(f"/api/runs/{run_id}/export.zip").status_code == 200
        small_disk.fill()
        answer = server.get(f"/api/runs/{run_id}/export.zip")
        assert answer.status_code == 507, answer.text
        assert f"the temporary folder {spool}" in answer.json()["error"]
        assert "data folder" not in answer.json()["error"]  # the data folder has room: it is not blamed
        small_disk.free()
        assert server.get(f"/api/runs/{run_id}/export.zip").status_code == 200
    finally:
        server.stop()
