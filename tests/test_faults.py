"""Faults: a 200-task run against a gateway that misbehaves at random, through the real server.

The fake's `chaos` scenario picks one fault per call from a seeded random draw (429 with and
without Retry-After, 5xx, resets mid-stream, stalls, in-stream errors, garbage images, empty
answers, zero-event streams, 400s, or a good image) and logs what it did. Every task must end
`done` or `failed` with a readable reason, the console never answers 5xx, its log holds no
traceback, and the calls each task made follow the retry policy (docs/gateways.md, *Errors and retries*):

- nothing follows a good answer or a fault that is not transient (400, garbage, empty, policy);
- 5xx, resets and stalls are retried at most `max_retries` times in a row, each wait at least
  the backoff's (1 s doubling, less up to 25 % jitter), and a task that runs out fails with it;
- a rate limit (429, an in-stream rate-limit error) sends the task back to the queue: the next
  call waits for `Retry-After`, or a backoff when there is none, and starts a fresh retry count.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from console.upstream.retry import BACKOFF_BASE_S, BACKOFF_CAP_S, JITTER
from testkit.fake_scenarios import CHAOS_FAULTS, call_log
from tests.figures import record
from tests.helpers import CHAT, make_sources
from tests.run_checks import Poller, digest_of

TASKS = 200
MAX_RETRIES = 3
TIMEOUT_S = 1.0  # a stalled answer costs this much per attempt
RETRY_AFTER_S = 0.2
SEED = "issue13"
# What the task's error must say after the last call's fault (the upstream's words, or the console's).
REASONS = {
    "429_retry_after": "HTTP 429: chaos: HTTP 429", "429": "HTTP 429: chaos: HTTP 429", "500": "HTTP 500",
    "502": "HTTP 502", "503": "HTTP 503", "reset": "connection to 127.0.0.1", "stall": "1s",
    "instream_transient": "No available tokens", "instream_fatal": "content policy", "garbage": "no usable image",
    "empty": "empty", "zero_events": "closed the stream without sending anything", "400": "HTTP 400: chaos: HTTP 400",
}


RATE_LIMITS = {"429_retry_after", "429", "instream_transient"}
TRANSIENT = {name for name, (_, retried) in CHAOS_FAULTS.items() if retried} - RATE_LIMITS
FINAL = {name for name, (_, retried) in CHAOS_FAULTS.items() if not retried}  # ok and the faults not retried


def check_calls(faults: list[str], gaps: list[float]) -> int:
    """Check one task's calls against the policy; return how many were retries."""
    assert all(fault not in FINAL for fault in faults[:-1]), faults  # nothing after ok or a final fault
    streak = 0  # transient faults in a row: the retry loop's count
    for number, fault in enumerate(faults):
        if fault in TRANSIENT:
            assert streak <= MAX_RETRIES, faults
            if number + 1 < len(faults):
                assert gaps[number] >= min(BACKOFF_BASE_S * 2**streak, BACKOFF_CAP_S) * (1 - JITTER) - 0.05, \
                    (faults, number, gaps[number])
            streak += 1
        else:
            streak = 0
            if fault == "429_retry_after" and number + 1 < len(faults):
                assert gaps[number] >= RETRY_AFTER_S - 0.05, (faults, number, gaps[number])
            elif fault in RATE_LIMITS and number + 1 < len(faults):
                assert gaps[number] >= BACKOFF_BASE_S * (1 - JITTER) - 0.05, (faults, number, gaps[number])
    if faults[-1] in TRANSIENT:
        assert streak == MAX_RETRIES + 1, faults  # given up only when no retry was left
    return len(faults) - 1


@pytest.mark.timeout(240)
def test_a_200_task_run_through_random_faults_ends_every_task_readably(server, fake, tmp_path):
    folder = make_sources(tmp_path / "src", TASKS)
    names = {digest_of(path): path.name for path in folder.iterdir()}
    assert len(names) == TASKS
    segment = f"chaos.seed={SEED}.ra={RETRY_AFTER_S}"
    api = {"api_url": fake.url(segment, CHAT), "model": "m", "allow_private_api": True, "concurrency": 32,
           "max_retries": MAX_RETRIES, "timeout_s": TIMEOUT_S}
    started = time.monotonic()
    answer = server.post("/api/runs", {"input_path": str(folder), "prompt": "chaos", "api": api})
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["run_id"]
    poller = Poller(server.get, lambda: f"/api/runs/{run_id}/tasks?since=0")
    try:
        listing = server.wait_idle(run_id, timeout=200)
    finally:
        poller.stop()
    elapsed = time.monotonic() - started

    calls: dict[str, list[dict]] = {}
    for entry in call_log(segment):
        calls.setdefault(entry["digest"], []).append(entry)
    assert set(calls) == set(names)  # every source was called, nothing else
    tasks = {task["source_name"]: task for task in listing["tasks"]}
    retries = 0
    for digest, made in calls.items():
        task = tasks[names[digest]]
        made.sort(key=lambda entry: entry["call"])
        faults = [entry["fault"] for entry in made]
        assert [entry["call"] for entry in made] == list(range(len(made)))
        assert task["attempts"] == len(made), (task["source_name"], faults, task["attempts"])
        retries += check_calls(faults, [after["at"] - before["at"] for before, after in zip(made, made[1:])])
        last = faults[-1]
        if last == "ok":
            assert task["status"] == "done" and task["results"], task
        else:
            assert task["status"] == "failed", task
            assert REASONS[last] in task["error"], (last, task["error"])
            assert "Traceback" not in task["error"] and "bug" not in task["error"]

    statuses = Counter(task["status"] for task in listing["tasks"])
    assert set(statuses) <= {"done", "failed"} and sum(statuses.values()) == TASKS  # nothing stuck
    assert not listing["running"] and server.get(f"/api/runs/{run_id}").json()["running"] is False
    assert poller.server_errors == 0 and poller.requests > 5
    log = (server.data_dir / "logs" / "console.log").read_text(encoding="utf-8")
    assert "Traceback" not in log and "crashed" not in log and "unhandled" not in log
    injected = Counter(entry["fault"] for made in calls.values() for entry in made if entry["fault"] != "ok")
    record("faults", tasks=TASKS, calls=sum(len(made) for made in calls.values()), faults_injected=sum(injected.values()),
           fault_kinds=dict(sorted(injected.items())), retries=retries, done=statuses["done"],
           failed=statuses["failed"], stuck=TASKS - statuses["done"] - statuses["failed"],
           server_errors=poller.server_errors, polls=poller.requests, seconds=round(elapsed, 1),
           concurrency=32, max_retries=MAX_RETRIES)
