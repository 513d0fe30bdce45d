"""Helpers the tests share: source folders, profiles for the fake gateway, starting and waiting for runs."""

from __future__ import annotations

import time
from pathlib import Path

from testkit.images import make

CHAT = "/v1/chat/completions"


def make_sources(folder: Path, count: int) -> Path:
    """Write `count` small PNG sources (img1.png …) into `folder` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (folder / f"img{index + 1}.png").write_bytes(make("PNG", (16, 12), (index * 7 % 256, 40, 90)))
    return folder


def api(fake, scenario: str, **fields) -> dict:
    """Return profile fields that call `scenario` on the fake gateway."""
    return {"api_url": fake.url(scenario, CHAT), "model": "grok-imagine-1.0-edit", "allow_private_api": True,
            "max_retries": 0, "timeout_s": 20, **fields}


def start(client, fake, folder: Path, scenario: str = "g3_stream_dataurl", **fields) -> str:
    """Start a run over `folder` through the API and return its id."""
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "make it blue",
                                            "api": api(fake, scenario, **fields)})
    assert answer.status_code == 201, answer.json
    return answer.json["run_id"]


def wait_idle(client, run_id: str, timeout: float = 20) -> dict:
    """Poll the run's tasks until nothing is queued or in flight; return the listing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = client.get(f"/api/runs/{run_id}/tasks").json
        if not listing["running"]:
            return listing
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still running: {listing['progress']}")


def wait_for(predicate, timeout: float = 10) -> None:
    """Wait until `predicate()` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def words(value):
    """Return an answer without the `<field>_msg` codes beside its messages: the English words alone."""
    if isinstance(value, list):
        return [words(item) for item in value]
    if isinstance(value, dict):
        return {key: words(item) for key, item in value.items() if not key.endswith("_msg")}
    return value
