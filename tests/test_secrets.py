"""Secrets (issue 13): the API key never appears in an API answer, a log line, a debug log, an export (unless
allowed), an error message or a file the tests produced; checked by grepping all of it.

A canary key goes through every path a key takes (settings, presets, runs, retries, failures,
connection tests, debug logs, config and ZIP exports, saved datasets). Every answer body the
server sent is kept and searched, then every file under the data folder except the three that
store the key on purpose (settings.json, presets.json and console.db with its WAL, all 0600),
every saved file, and tests/artifacts (screenshots included, byte for byte).
"""

from __future__ import annotations

import io
import re
import secrets
import sqlite3
import zipfile
from pathlib import Path

import httpx
import pytest

from console.datadir import secret_files
from tests.figures import record
from tests.helpers import CHAT, make_sources
from tests.server_process import ServerProcess

KEY = "sk-canary-" + secrets.token_hex(12)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
KEY_STORES = {"settings.json", "presets.json", "console.db", "console.db-wal", "console.db-shm", "console.lock"}


class Recorder:
    """Keep every answer body a client received."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.bodies.append((f"{response.request.method} {response.request.url.path}", response.content))

    def leaks(self, secret: str) -> list[str]:
        needle = secret.encode()
        found = [where for where, body in self.bodies if needle in body]
        for where, body in self.bodies:  # and inside ZIP files, whose members are compressed
            if body[:2] == b"PK":
                with zipfile.ZipFile(io.BytesIO(body)) as archive:
                    found += [f"{where}!{name}" for name in archive.namelist() if needle in archive.read(name)]
        return found


def recorded(server: ServerProcess) -> Recorder:
    recorder = Recorder()
    server.http.event_hooks["response"] = [recorder]
    return recorder


def files_with(folder: Path, secret: str, skip: set[str] = frozenset()) -> list[str]:
    needle = secret.encode()
    return [str(path) for path in folder.rglob("*") if path.is_file() and path.name not in skip
            and needle in path.read_bytes()]


def api(fake, scenario: str, **fields) -> dict:
    return {"api_url": fake.url(scenario, CHAT), "model": "m", "allow_private_api": True, "max_retries": 1,
            "timeout_s": 10, **fields}


def exercise(server: ServerProcess, fake, tmp_path: Path, scenarios: list[str]) -> Path:
    """Send the key down every path: settings, presets, runs that succeed and fail, retries, exports, saves."""
    http = server.http
    assert http.put("/api/settings", json={"api": api(fake, scenarios[0], api_key=KEY)}).status_code == 200
    assert http.put("/api/presets/api/canary", json=api(fake, scenarios[0], api_key=KEY)).status_code == 200
    http.get("/api/settings")
    http.get("/api/presets")
    http.post("/api/presets/api/canary/apply")
    http.post("/api/test-connection", json={"api": {"api_key": KEY}})
    folder = make_sources(tmp_path / "src", 3)
    out = tmp_path / "out"
    for scenario in scenarios:
        answer = http.post("/api/runs", json={"input_path": str(folder), "prompt": "p",
                                              "api": api(fake, scenario, api_key=KEY)})
        assert answer.status_code == 201, answer.text
        run_id = answer.json()["run_id"]
        listing = server.wait_idle(run_id)
        for task in listing["tasks"]:
            http.get(f"/api/tasks/{task['id']}")
            http.get(f"/api/tasks/{task['id']}/debug")
        http.post(f"/api/runs/{run_id}/retry-failed", json={"api": {"api_key": KEY}})
        http.post(f"/api/tasks/{listing['tasks'][0]['id']}/retry", json={"keep_results": True})
        listing = server.wait_idle(run_id)
        http.get(f"/api/runs/{run_id}")
        http.get("/api/runs")
        http.get(f"/api/runs/{run_id}/tasks")
        http.get(f"/api/runs/{run_id}/export.zip")
        http.post(f"/api/runs/{run_id}/save", json={"output_dir": str(out), "only_selected": False,
                                                    "layout": "aitoolkit_edit"})
    http.get("/api/config/export")
    return out


def test_the_key_is_in_no_answer_log_debug_log_export_or_saved_file(tmp_path, fake):
    server = ServerProcess(tmp_path / "data")
    recorder = recorded(server)
    try:
        out = exercise(server, fake, tmp_path, ["g3_stream_dataurl", "err_401_g16", "fail_then_ok.status=503",
                                                "garbage_dataurl", "refusal_text"])
    finally:
        server.stop()
    assert recorder.leaks(KEY) == []
    assert files_with(tmp_path / "data", KEY, KEY_STORES) == []
    assert files_with(out, KEY) == [] and any(out.rglob("*.png"))
    assert KEY in (tmp_path / "data" / "settings.json").read_text()  # where it belongs, 0600
    db = sqlite3.connect(tmp_path / "data" / "console.db")
    try:
        for table, columns in (("tasks", "*"), ("results", "*"), ("attempts", "*")):
            for row in db.execute(f"SELECT {columns} FROM {table}"):
                assert KEY not in repr(row), (table, row)
    finally:
        db.close()
    for path in secret_files(tmp_path / "data"):
        assert path.stat().st_mode & 0o077 == 0, path
    record("secrets", answers_checked=len(recorder.bodies),
           files_checked=sum(1 for p in (tmp_path / "data").rglob("*") if p.is_file()) + sum(
               1 for p in out.rglob("*") if p.is_file()), leaks=0)


def test_a_config_export_carries_the_key_only_when_allowed(tmp_path, fake):
    from console.settings import resolve
    from console.web import create_app

    for allowed in (False, True):
        app = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / f"data{allowed}"),
                                           "EXPORT_INCLUDE_SECRETS": "1" if allowed else "0"}))
        try:
            client = app.test_client()
            client.put("/api/settings", json={"api": api(fake, "g3_stream_dataurl", api_key=KEY)})
            client.put("/api/presets/api/p", json=api(fake, "g3_stream_dataurl", api_key=KEY))
            export = client.get("/api/config/export")
            assert export.headers["Cache-Control"] == "no-store"
            assert (KEY in export.get_data(as_text=True)) is allowed
            assert export.get_json()["settings"]["api"]["api_key"] == (KEY if allowed else "")
            assert export.get_json()["presets"]["api"]["p"]["api_key"] == (KEY if allowed else "")
        finally:
            app.extensions["console.engine"].close()


def test_a_gateway_that_quotes_the_key_back_does_not_leak_it(tmp_path, fake):
    # A careless gateway repeats the Authorization header in its 401: the console shows the
    # upstream's message verbatim (DESIGN §4), but never the key inside it.
    server = ServerProcess(tmp_path / "data")
    recorder = recorded(server)
    try:
        exercise(server, fake, tmp_path, ["echo_key"])
    finally:
        server.stop()
    assert any(b"Invalid token" in body for _, body in recorder.bodies)  # the message did arrive
    leaks = recorder.leaks(KEY) + files_with(tmp_path / "data", KEY, KEY_STORES)
    record("secrets", quoted_key_leaks=len(leaks))
    assert leaks == []


def known_test_keys() -> set[str]:
    """The keys the browser journeys type, read from their source."""
    keys = set()
    for path in Path(__file__).resolve().parent.glob("test_*.py"):
        keys |= set(re.findall(r"\bsk-[A-Za-z0-9_-]{6,}", path.read_text(encoding="utf-8")))
    return {key for key in keys if not key.startswith("sk-canary-")} | {KEY}


def test_no_artifact_the_tests_left_holds_a_key():
    if not ARTIFACTS.is_dir():
        pytest.fail("tests/artifacts is missing: the browser tests write their screenshots there")
    files = [path for path in ARTIFACTS.rglob("*") if path.is_file()]
    keys = known_test_keys()
    assert len(keys) > 3
    leaks = [(str(path), key) for path in files for key in keys if key.encode() in path.read_bytes()]
    assert leaks == []
    record("secrets", artifacts_checked=len(files), keys_searched=len(keys))
