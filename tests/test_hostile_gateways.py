"""Hostile or broken gateways, end to end: a router's cooldown, a URL with a query, unbounded
streams, image URLs on other loopback ports, and connections that never send a request."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from console.httpserver import CappedServer
from console.profile import ApiProfile
from console.settings import SettingsError, resolve
from console.upstream.client import UpstreamClient, make_http_client
from console.upstream.errors import ResponseError
from testkit.fake_upstream import FakeUpstream
from tests.figures import record
from tests.helpers import api, make_sources, wait_for
from tests.loopback_servers import Target
from testkit.server_process import ROOT, ServerProcess

CHAT = "/v1/chat/completions"
AZURE_QUERY = "api-version=2025-04-01-preview"


def _client_call(fake: FakeUpstream, api_url: str, settings=None, **fields) -> object:
    """Make one real call through the upstream client (no retry waits)."""
    profile = ApiProfile.from_dict({"api_url": api_url, "model": "gpt-image-1", "allow_private_api": True,
                                    "max_retries": 0, "timeout_s": 20, **fields})

    async def go():
        async with make_http_client() as http:
            return await UpstreamClient(http, settings or resolve({})).call(profile, "make it blue")

    return asyncio.run(go())


# -- a router's cooldown hides a broken deployment (LiteLLM) ------------------------------------


def _tasks(engine, run_id: str) -> list:
    return engine.store.tasks_since(run_id).tasks


def test_a_broken_deployment_behind_a_routers_cooldown_fails_its_tasks_with_the_real_error(engine, fake, tmp_path):
    started = time.monotonic()
    profile = api(fake, "router_cooldown.cooldown=0.5", model="gpt-image-1", max_retries=2, concurrency=2,
                  rate_limit_wait_s=1800)
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 4)), False, "edit", profile)
    wait_for(lambda: not engine.is_running(run_id), timeout=40)  # not the 1800 s of a rate limit
    took = time.monotonic() - started
    tasks = _tasks(engine, run_id)
    assert {task.status for task in tasks} == {"failed"}, [task.error for task in tasks]
    assert all(task.error.startswith("HTTP 500: litellm.InternalServerError") for task in tasks)
    # At most one call more than the retries: the first two calls go out together, and the router's
    # refusal of the second can be read before the failure of the first that it echoes; that one
    # is a rate limit as far as anyone can tell, and its task goes back to the queue once.
    assert all(task.http_status == 500 and task.attempts <= 4 for task in tasks), \
        [(task.http_status, task.attempts) for task in tasks]
    assert engine.cooling(run_id) is None
    calls = len([r for r in fake.requests if r.method == "POST"])
    assert calls <= 4 * 3 + 1  # the one race above
    record("hostile_gateways", router_cooldown_tasks=4, router_cooldown_seconds_to_fail_all=round(took, 1),
           router_cooldown_calls=calls, router_cooldown_rate_limit_wait_s=1800)


def test_a_true_rate_limit_and_its_cooldown_still_hold_the_run_back_without_failing_tasks(engine, fake, tmp_path):
    profile = api(fake, "router_cooldown.cooldown=0.5.fails=1.limit=1", model="gpt-image-1", max_retries=0,
                  concurrency=2)
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 4)), False, "edit", profile)
    wait_for(lambda: not engine.is_running(run_id), timeout=40)
    tasks = _tasks(engine, run_id)
    assert {task.status for task in tasks} == {"done"}  # no retries allowed, yet no task failed: backpressure
    assert sum(task.attempts for task in tasks) > 4  # the rate-limited ones went back to the queue


# -- a URL with a query string (Azure OpenAI's ?api-version=) -------------------------------------


def test_test_connection_keeps_the_query_after_the_models_path(app, fake):
    api = {"api_url": f"{fake.api_base('g3_stream_dataurl')}?{AZURE_QUERY}", "api_key": "sk-azure",
           "allow_private_api": True}
    answer = app.test_client().post("/api/test-connection", json={"api": api})
    assert answer.status_code == 200 and answer.json["ok"] is True, answer.json
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("GET", "/g3_stream_dataurl/v1/models")
    assert sent.query == {"api-version": "2025-04-01-preview"}


def test_a_run_keeps_the_query_after_the_endpoint_path(fake):
    outcome = _client_call(fake, f"{fake.api_base('g3_stream_dataurl')}?{AZURE_QUERY}")
    assert outcome.images
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/g3_stream_dataurl/v1/chat/completions")
    assert sent.query == {"api-version": "2025-04-01-preview"}


# -- an image URL on another port of the API's host, or on the console's own ---------------------


@pytest.fixture
def neighbour() -> Iterator[Target]:
    """Another service on the fake gateway's host (127.0.0.1), on a port of its own: it must stay dark."""
    target = Target("127.0.0.1")
    yield target
    target.close()


def test_an_image_url_on_another_port_of_the_apis_host_is_refused(fake, neighbour):
    scenario = fake.url(f"link_to.ip=127.0.0.1.port={neighbour.port}", CHAT)
    with pytest.raises(ResponseError, match="private or loopback address"):
        _client_call(fake, scenario, max_retries=0)  # private API URLs allowed, private downloads not
    assert neighbour.hits == 0
    assert _client_call(fake, fake.url("link_to.ip=127.0.0.1", CHAT)).images  # the API's own port passes


def test_an_image_url_on_the_consoles_own_port_is_refused_even_with_private_downloads_on(fake, neighbour):
    settings = resolve({"ALLOW_PRIVATE_DOWNLOAD_URL": "1"}, overrides={"port": neighbour.port})
    scenario = fake.url(f"link_to.ip=127.0.0.1.port={neighbour.port}", CHAT)
    with pytest.raises(ResponseError, match="points at this console itself"):
        _client_call(fake, scenario, settings)
    assert neighbour.hits == 0
    assert _client_call(fake, scenario, resolve({"ALLOW_PRIVATE_DOWNLOAD_URL": "1"})).images  # not ours: allowed


def test_a_server_on_port_0_never_calls_itself(tmp_path):
    server = ServerProcess(tmp_path / "data")
    try:
        api = {"api_url": f"http://127.0.0.1:{server.port}/v1", "allow_private_api": True}
        answer = server.post("/api/test-connection", {"api": api}).json()
        assert answer["ok"] is False and "points at this console itself" in answer["error"], answer
    finally:
        server.stop()


# -- connections that never send a request ------------------------------------------------------

HALF_OPEN = 600


def _threads(pid: int) -> int:
    """Return the process's thread count (`Threads:` in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads: line")


def _open_silent(port: int, count: int) -> list[socket.socket]:
    """Open `count` TCP connections to the port and send nothing on them."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sockets.append(sock)
    return sockets


def test_a_connection_over_the_cap_is_answered_503_at_once_and_a_silent_one_is_closed_at_the_deadline():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    listener = socket.create_server(("127.0.0.1", 0))
    server = CappedServer("127.0.0.1", listener.getsockname()[1], app, fd=listener.fileno(), max_threads=2,
                          header_timeout_s=0.5)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    silent: list[socket.socket] = []
    try:
        silent = _open_silent(server.port, 2)
        time.sleep(0.2)  # both accepted: every thread is taken
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many connections" in answer
        assert time.monotonic() - started < 0.4 and server.refused == 1
        for sock in silent:
            assert sock.recv(1) == b""  # closed by the server once the header deadline passed
        assert httpx.get(f"http://127.0.0.1:{server.port}/", timeout=5).text == "ok"
    finally:
        for sock in silent:
            sock.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("env", [{"MAX_REQUEST_THREADS": "0"}, {"REQUEST_HEADER_TIMEOUT_S": "0"},
                                 {"MAX_REQUEST_THREADS": "-3"}])
def test_a_server_that_could_serve_nothing_is_refused_at_start(env):
    with pytest.raises(SettingsError, match=f"{next(iter(env))}=.*must be more than 0"):
        resolve(env)


def test_600_half_open_connections_hold_at_most_the_cap_of_threads(tmp_path):
    env = {**os.environ, "REQUEST_HEADER_TIMEOUT_S": "2", "MAX_REQUEST_THREADS": "64"}
    server = ServerProcess(tmp_path / "data", env=env)
    sockets: list[socket.socket] = []
    try:
        assert server.get("/api/health").status_code == 200
        before = _threads(server.process.pid)
        sockets = _open_silent(server.port, HALF_OPEN)
        peak = 0
        for _ in range(10):
            peak = max(peak, _threads(server.process.pid))
            time.sleep(0.1)
        assert peak <= before + 64 + 4, (before, peak)  # the cap, and a few of the engine's own threads at most
        busy = httpx.get(server.url + "api/health", timeout=10)  # over the cap: a fast answer, not a hang
        assert busy.status_code in (200, 503)
        time.sleep(2.5)  # the header deadline closes the silent ones
        after = _threads(server.process.pid)
        assert after <= before + 2, (before, after)
        assert server.get("/api/health").status_code == 200
        record("hostile_gateways", half_open_connections=HALF_OPEN, server_threads_before=before,
               server_threads_peak_half_open=peak, server_threads_after_header_timeout=after, request_thread_cap=64)
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


# -- answers streamed without a length, many at once --------------------------------------------

STREAMS = 8
STREAM_CAP_MIB = 32
# Runs in a process of its own, so its peak RSS is the client's alone: STREAMS calls at once, each
# to an endless data URL (no Content-Length), each read up to MAX_RESPONSE_BYTES before it fails.
STREAMS_SCRIPT = """
import asyncio, json, sys
from console.httpserver import CappedServer
from console.profile import ApiProfile
from console.settings import SettingsError, resolve
from console.upstream import UpstreamClient, UpstreamError, make_http_client

url, count = sys.argv[1], int(sys.argv[2])
profile = ApiProfile.from_dict({"api_url": url, "model": "m", "allow_private_api": True, "max_retries": 0,
                                "timeout_s": 120})

async def main():
    async with make_http_client() as http:
        client = UpstreamClient(http, resolve())
        async def one():
            try:
                await client.call(profile, "p")
                return "done"
            except UpstreamError as exc:
                return type(exc).__name__
        outcomes = await asyncio.gather(*(one() for _ in range(count)))
        return outcomes, client._budget.peak

outcomes, peak = asyncio.run(main())
# VmHWM, not getrusage's ru_maxrss: that one starts from the forking parent's size (pytest's, hundreds of MiB
# late in a full run), so both measurements read the same; VmHWM belongs to this program's own memory.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"outcomes": outcomes, "peak_held": peak, "max_rss_mib": hwm / 1024}))
"""


def _streams(fake: FakeUpstream, answers_mib: int) -> dict:
    env = {**os.environ, "MAX_RESPONSE_BYTES": str(STREAM_CAP_MIB << 20), "MAX_ANSWERS_BYTES": str(answers_mib << 20)}
    done = subprocess.run([sys.executable, "-c", STREAMS_SCRIPT, fake.url("oversize_stream", CHAT), str(STREAMS)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_answers_streamed_without_a_length_share_one_memory_budget(fake):
    unbounded = _streams(fake, STREAMS * STREAM_CAP_MIB * 2)
    bounded = _streams(fake, 2 * STREAM_CAP_MIB)
    for measured in (unbounded, bounded):
        assert measured["outcomes"] == ["TooLargeError"] * STREAMS  # each read up to its cap, none hung
    assert unbounded["peak_held"] > 6 * (STREAM_CAP_MIB << 20)  # without a shared budget: nearly all at once
    assert bounded["peak_held"] <= 3 * (STREAM_CAP_MIB << 20)  # the budget plus the oldest call's cap
    assert bounded["max_rss_mib"] < unbounded["max_rss_mib"] * 0.6
    record("hostile_gateways", streams_at_once=STREAMS, stream_cap_mib=STREAM_CAP_MIB,
           unbounded_peak_held_mib=round(unbounded["peak_held"] / 2**20), unbounded_max_rss_mib=round(unbounded["max_rss_mib"]),
           budget_mib=2 * STREAM_CAP_MIB, bounded_peak_held_mib=round(bounded["peak_held"] / 2**20),
           bounded_max_rss_mib=round(bounded["max_rss_mib"]))
