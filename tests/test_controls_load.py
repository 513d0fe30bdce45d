"""Controls under load: stop, resume, retry, delete, save and settings changes fired from many
threads at once while runs go, against the real server: no deadlock, no stuck task, no 5xx."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Callable

import httpx
import pytest

from tests.figures import record
from tests.helpers import CHAT, make_sources

THREADS = 12
SECONDS = 8.0
REQUEST_TIMEOUT_S = 30.0  # an answer slower than this is taken for a deadlock
STUCK_AFTER_S = 30.0  # a resumed 40-task run against a 0.15 s gateway is idle long before this
OK_STATUSES = {200, 201, 202, 404, 409}  # 404: deleted by another thread; 409: that task is running


class Barrage:
    """What the threads know: the runs, and the ids seen so far (some deleted by now)."""

    def __init__(self, http: httpx.Client, fake, folder, out) -> None:
        self.http, self.fake, self.folder, self.out = http, fake, folder, out
        self.runs: list[str] = []
        self.tasks: list[str] = []
        self.results: list[str] = []
        self.statuses: Counter = Counter()
        self.actions: Counter = Counter()
        self.failures: list[str] = []
        self.slowest = 0.0
        self.lock = threading.Lock()

    def api(self, scenario: str = "latency.s=0.15", **fields) -> dict:
        return {"api_url": self.fake.url(scenario, CHAT), "model": "m", "allow_private_api": True,
                "max_retries": 1, "timeout_s": 20, **fields}

    def send(self, action: str, method: str, path: str, body: dict | None = None) -> httpx.Response | None:
        started = time.monotonic()
        try:
            answer = self.http.request(method, path, json=body, timeout=REQUEST_TIMEOUT_S)
        except httpx.TimeoutException:
            with self.lock:
                self.failures.append(f"{action}: no answer within {REQUEST_TIMEOUT_S}s (deadlock?)")
            return None
        took = time.monotonic() - started
        with self.lock:
            self.statuses[answer.status_code] += 1
            self.actions[action] += 1
            self.slowest = max(self.slowest, took)
            if answer.status_code not in OK_STATUSES:
                self.failures.append(f"{action} {method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer

    def learn(self, run_id: str) -> None:
        answer = self.http.get(f"/api/runs/{run_id}/tasks", timeout=REQUEST_TIMEOUT_S)
        if answer.status_code == 200:
            tasks = answer.json()["tasks"]
            with self.lock:
                self.tasks += [t["id"] for t in tasks]
                self.results += [r["id"] for t in tasks for r in t["results"]]

    def pick(self, rng: random.Random, items: list[str]) -> str:
        with self.lock:
            return rng.choice(items) if items else "x-none"


def actions(b: Barrage, rng: random.Random) -> list[tuple[str, Callable[[], object]]]:
    run = lambda: b.pick(rng, b.runs)  # noqa: E731
    task = lambda: b.pick(rng, b.tasks)  # noqa: E731
    result = lambda: b.pick(rng, b.results)  # noqa: E731
    rule = lambda: {"output_dir": str(b.out / f"t{rng.randrange(3)}"), "only_selected": False,  # noqa: E731
                    "conflict": rng.choice(["skip", "rename", "overwrite"]), "dry_run": rng.random() < 0.3}
    return [
        ("stop", lambda: b.send("stop", "POST", f"/api/runs/{run()}/stop")),
        ("resume", lambda: b.send("resume", "POST", f"/api/runs/{run()}/resume",
                                  {"api": b.api(concurrency=rng.randint(1, 16))} if rng.random() < 0.5 else None)),
        ("retry_failed", lambda: b.send("retry_failed", "POST", f"/api/runs/{run()}/retry-failed")),
        ("retry_task", lambda: b.send("retry_task", "POST", f"/api/tasks/{task()}/retry",
                                      {"keep_results": rng.random() < 0.5})),
        ("delete_task", lambda: b.send("delete_task", "DELETE", f"/api/tasks/{task()}")),
        ("delete_result", lambda: b.send("delete_result", "DELETE", f"/api/results/{result()}")),
        ("select", lambda: b.send("select", "PATCH", f"/api/results/{result()}", {"selected": rng.random() < 0.5})),
        ("concurrency", lambda: b.send("concurrency", "PATCH", f"/api/runs/{run()}",
                                       {"concurrency": rng.randint(1, 64)})),
        ("save", lambda: b.send("save", "POST", f"/api/runs/{run()}/save", rule())),
        ("save_one", lambda: b.send("save_one", "POST", f"/api/results/{result()}/save", rule())),
        ("settings", lambda: b.send("settings", "PUT", "/api/settings",
                                    {"api": b.api(concurrency=rng.randint(1, 64))})),
        ("preset", lambda: b.send("preset", "PUT", f"/api/presets/api/p{rng.randrange(3)}", b.api())),
        ("apply", lambda: b.send("apply", "POST", f"/api/presets/api/p{rng.randrange(3)}/apply")),
        ("poll", lambda: b.send("poll", "GET", f"/api/runs/{run()}/tasks?since={rng.randrange(50)}")),
        ("zip", lambda: b.send("zip", "GET", f"/api/runs/{run()}/export.zip")),
        ("runs", lambda: b.send("runs", "GET", "/api/runs")),
        ("new_run", lambda: new_run(b)),
        ("delete_run", lambda: b.send("delete_run", "DELETE", f"/api/runs/{b.runs[-1] if len(b.runs) > 3 else 'x'}")),
        ("emergency_stop", lambda: b.send("emergency_stop", "POST", "/api/stop") if rng.random() < 0.2 else None),
    ]


def new_run(b: Barrage) -> None:
    answer = b.send("new_run", "POST", "/api/runs", {"input_path": str(b.folder), "prompt": "more",
                                                     "api": b.api("picky.every=4")})
    if answer is not None and answer.status_code == 201:
        with b.lock:
            b.runs.append(answer.json()["run_id"])


@pytest.mark.timeout(180)
def test_controls_fired_from_many_threads_during_runs(server, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 40)
    barrage = Barrage(server.http, fake, folder, tmp_path / "out")
    for scenario in ("latency.s=0.15", "picky.every=3"):
        answer = server.post("/api/runs", {"input_path": str(folder), "prompt": "load", "api": barrage.api(scenario)})
        assert answer.status_code == 201, answer.text
        barrage.runs.append(answer.json()["run_id"])
    time.sleep(1.0)
    for run_id in barrage.runs:
        barrage.learn(run_id)

    def fire(seed: int) -> None:
        rng = random.Random(seed)
        menu = actions(barrage, rng)
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            menu[rng.randrange(len(menu))][1]()
            if rng.random() < 0.1:
                barrage.learn(barrage.pick(rng, barrage.runs))

    threads = [threading.Thread(target=fire, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SECONDS + 3 * REQUEST_TIMEOUT_S)
    deadlocks = sum(thread.is_alive() for thread in threads)

    # Afterwards every surviving run can be finished: nothing is stuck running or queued for ever.
    live = [run["id"] for run in server.get("/api/runs").json()]
    for run_id in live:
        assert server.post(f"/api/runs/{run_id}/resume").status_code == 200
        assert server.post(f"/api/runs/{run_id}/retry-failed").status_code == 200
    stuck = {}
    for run_id in live:
        try:
            listing = server.wait_idle(run_id, timeout=STUCK_AFTER_S)
        except AssertionError:
            listing = server.get(f"/api/runs/{run_id}/tasks").json()
        left = Counter(t["status"] for t in listing["tasks"] if t["status"] not in ("done", "failed"))
        if left or listing["running"]:
            stuck[run_id] = dict(left)
    log = (server.data_dir / "logs" / "console.log").read_text(encoding="utf-8")
    record("controls", threads=THREADS, seconds=SECONDS, requests=sum(barrage.statuses.values()),
           server_errors=sum(n for status, n in barrage.statuses.items() if status >= 500), deadlocks=deadlocks,
           stuck=sum(sum(left.values()) for left in stuck.values()), statuses={str(k): v for k, v in
                                                                             sorted(barrage.statuses.items())},
           actions=dict(sorted(barrage.actions.items())), slowest_answer_s=round(barrage.slowest, 2), runs=len(live),
           tracebacks_in_log=log.count("Traceback"))
    assert deadlocks == 0, "a control thread never came back (deadlock)"
    assert barrage.failures == [], barrage.failures[:10]
    assert stuck == {}, f"tasks left queued with nothing running: {stuck}"
    assert "Traceback" not in log and "unhandled" not in log, log[log.find("Traceback") - 300:][:3000]
