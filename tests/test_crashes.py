"""Crashes: `kill -9` the server at random moments of a run, ten times, restarting each time.

After every kill: the database passes `PRAGMA integrity_check`; every result it refers to is in
the cache and decodes; after the restart no task is `running` or `pending` and no partial file
is left. A final resume completes the run, and no task the console had recorded as done is ever
paid for again (the fake's `paid` scenario logs every call per source).
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from testkit.fake_scenarios import call_log
from tests.figures import record
from tests.helpers import CHAT, make_sources
from tests.run_checks import Poller, digest_of, integrity, partial_files, unreadable_results
from testkit.server_process import ServerProcess

KILLS = 10
TASKS = 80
SEED = 13


def statuses(server: ServerProcess, run_id: str) -> dict[str, dict]:
    return {task["source_name"]: task for task in server.get(f"/api/runs/{run_id}/tasks").json()["tasks"]}


@pytest.mark.timeout(240)
def test_ten_kill_9s_at_random_moments_lose_nothing_and_pay_nothing_twice(tmp_path, fake):
    rng = random.Random(SEED)
    folder, data = make_sources(tmp_path / "src", TASKS), tmp_path / "data"
    names = {digest_of(path): path.name for path in folder.iterdir()}
    segment = "paid.s=0.3"
    api = {"api_url": fake.url(segment, CHAT), "model": "m", "allow_private_api": True, "concurrency": 4,
           "max_retries": 0, "timeout_s": 20}
    server = ServerProcess(data)
    answer = server.post("/api/runs", {"input_path": str(folder), "prompt": "crash me", "api": api})
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["run_id"]
    paid_when_done: dict[str, int] = {}  # source -> calls paid when the console first showed it done
    figures = Counter()
    for kill in range(KILLS):
        poller = Poller(server.get, lambda: f"/api/runs/{run_id}/tasks?since=0", every=0.1)
        time.sleep(rng.uniform(0.2, 1.5))
        poller.stop()
        server.kill()
        figures["server_errors"] += poller.server_errors
        assert integrity(data / "console.db") == "ok"
        assert unreadable_results(data) == []
        figures["partial_files_left_by_kills"] += len(partial_files(data))

        server = ServerProcess(data)
        assert partial_files(data) == []  # swept at start
        tasks = statuses(server, run_id)
        assert {t["status"] for t in tasks.values()} <= {"done", "stopped"}, Counter(t["status"] for t in tasks.values())
        assert all(t["error"] == "interrupted" for t in tasks.values() if t["status"] == "stopped" and t["attempts"])
        paid = Counter(entry["digest"] for entry in call_log(segment))
        for digest, name in names.items():
            if tasks[name]["status"] == "done":
                assert tasks[name]["results"], tasks[name]
                paid_when_done.setdefault(name, paid[digest])
                assert paid[digest] == paid_when_done[name], f"{name} was paid for again after it was done"
        figures["interrupted"] += sum(1 for t in tasks.values() if t["status"] == "stopped" and t["attempts"])
        figures["done_at_kills"] = len(paid_when_done)
        resumed = server.post(f"/api/runs/{run_id}/resume")
        assert resumed.status_code == 200, resumed.text

    listing = server.wait_idle(run_id, timeout=120)
    server.stop()
    assert Counter(t["status"] for t in listing["tasks"]) == {"done": TASKS}
    paid = Counter(entry["digest"] for entry in call_log(segment))
    duplicates = sum(paid[digest] - paid_when_done[name] for digest, name in names.items() if name in paid_when_done)
    assert duplicates == 0
    assert integrity(data / "console.db") == "ok" and unreadable_results(data) == [] and partial_files(data) == []
    record("crashes", kills=KILLS, tasks=TASKS, crashes_survived=KILLS, duplicate_paid_calls=duplicates,
           paid_calls=sum(paid.values()), calls_lost_in_flight=sum(paid.values()) - TASKS,
           done_before_final_resume=figures["done_at_kills"], interrupted_tasks_resumed=figures["interrupted"],
           partial_files_swept=figures["partial_files_left_by_kills"], server_errors=figures["server_errors"],
           integrity_checks_ok=KILLS + 1)
