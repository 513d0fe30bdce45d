"""The server as a real process: start, health, port in use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "app.py", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--no-browser", "--status-ui", "none"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"on (http://127\.0\.0\.1:(\d+)/)", line)
    assert match, line + process.stderr.read()
    yield process, match.group(1), int(match.group(2)), tmp_path / "data"
    process.terminate()
    process.wait(timeout=10)


def test_health_and_data_dir(server):
    _, url, _, data = server
    answer = httpx.get(url + "api/health", timeout=5)
    assert answer.json()["ok"] is True and answer.json()["version"]
    assert data.is_dir()


def test_unknown_route_is_json_404(server):
    _, url, _, _ = server
    answer = httpx.get(url + "api/nope", timeout=5)
    assert answer.status_code == 404 and answer.json()["ok"] is False


def test_port_in_use_names_the_holder_and_exits_2(server, tmp_path):
    process, _, port, _ = server
    done = subprocess.run([sys.executable, "app.py", "--port", str(port), "--data-dir", str(tmp_path / "d2"),
                           "--no-browser"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert f"Port {port} on 127.0.0.1 is already in use" in done.stderr
    assert f"held by pid {process.pid}" in done.stderr
    assert process.poll() is None  # never kills anything


def test_bad_environment_value_is_a_clear_error(tmp_path):
    env = {**os.environ, "PORT": "eighty"}
    done = subprocess.run([sys.executable, "app.py", "--data-dir", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "PORT='eighty'" in done.stderr


def test_sigterm_stops_the_runs_in_order_and_exits_cleanly(fake, tmp_path):
    """SIGTERM mid-run: the calls in flight are hung up, the tasks stopped on purpose (not "interrupted",
    as after a crash), the process exits 0, and a restart finds nothing running."""
    from testkit.server_process import ServerProcess
    from tests.helpers import CHAT, make_sources

    server = ServerProcess(tmp_path / "data")
    try:
        api = {"api_url": fake.url("stall", CHAT), "model": "grok-imagine-1.0-edit", "max_retries": 0,
               "allow_private_api": True, "concurrency": 3}
        answer = server.post("/api/runs", {"input_path": str(make_sources(tmp_path / "src", 6)), "prompt": "blue",
                                           "api": api})
        assert answer.status_code == 201, answer.text
        run_id = answer.json()["run_id"]
        deadline = time.monotonic() + 30
        while fake.in_flight < 3:
            assert time.monotonic() < deadline, "the stalled calls never reached the gateway"
            time.sleep(0.05)
    finally:
        status = server.stop()
    assert status == 0
    assert fake.wait_for_connections(0, timeout=10)  # every stream was closed
    again = ServerProcess(tmp_path / "data")
    try:
        tasks = again.get(f"/api/runs/{run_id}/tasks").json()["tasks"]
        assert {t["status"] for t in tasks} == {"stopped"}
        assert "interrupted" not in {t["error"] for t in tasks}
    finally:
        again.stop()
