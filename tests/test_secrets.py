"""Secrets: the API key never appears in an API answer, a log line, a debug log, an export (unless
allowed), an error message or a file the tests produced; checked by grepping all of it.

A canary key goes through every path a key takes (settings, presets, runs, retries, failures,
connection tests, debug logs, config and ZIP exports, saved datasets). Every answer body the
server sent is kept and searched, then every file under the data folder except the three that
store the key on purpose (settings.json, presets.json and console.db with its WAL, all 0600),
every saved file, and tests/artifacts (screenshots included, byte for byte).
"""

from __future__ import annotations

import io
import json
import re
import secrets
import sqlite3
import time
import zipfile
from pathlib import Path
from typing import Callable

import httpx
import pytest

from console.datadir import secret_files
from console.profile import ApiProfile
from tests.figures import record
from tests.helpers import CHAT, make_sources
from testkit.server_process import ServerProcess

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


def exercise(server: ServerProcess, fake, tmp_path: Path, scenarios: list[str],
             profile: Callable[[str], dict] | None = None) -> Path:
    """Send the key down every path: settings, presets, runs that succeed and fail, retries, exports, saves."""
    profile = profile or (lambda scenario: api(fake, scenario, api_key=KEY))
    http = server.http
    assert http.put("/api/settings", json={"api": profile(scenarios[0])}).status_code == 200
    assert http.put("/api/presets/api/canary", json=profile(scenarios[0])).status_code == 200
    http.get("/api/settings")
    http.get("/api/presets")
    http.post("/api/presets/api/canary/apply")
    http.post("/api/test-connection", json={"api": {"api_key": KEY}})
    folder = make_sources(tmp_path / "src", 3)
    out = tmp_path / "out"
    for scenario in scenarios:
        answer = http.post("/api/runs", json={"input_path": str(folder), "prompt": "p", "api": profile(scenario)})
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
    # upstream's message verbatim, but never the key inside it.
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


# --------------------------------------------------------------------------- credentials in headers and URLs

HEADER_BEARER = "hb-canary-" + secrets.token_hex(12)  # Authorization: Bearer …
AZURE_KEY = secrets.token_hex(16)  # Azure's api-key header
HEADER_TOKEN = "tk-canary-" + secrets.token_hex(12)  # X-Auth-Token
COOKIE = "ck-canary-" + secrets.token_hex(12)  # Cookie: session=…
QUERY_KEY = "AIza" + secrets.token_hex(18)[:35]  # Gemini's documented ?key=
QUERY_TOKEN = "qt-canary-" + secrets.token_hex(12)  # ?access_token=
POOL_QUERY = "pq-canary-" + secrets.token_hex(12)  # ?api_key= in a pooled key's URL
SECRETS = {"Authorization": HEADER_BEARER, "api-key": AZURE_KEY, "X-Auth-Token": HEADER_TOKEN, "Cookie": COOKIE,
           "?key=": QUERY_KEY, "?access_token=": QUERY_TOKEN, "pool ?api_key=": POOL_QUERY}
HEADERS = {"Authorization": f"Bearer {HEADER_BEARER}", "api-key": AZURE_KEY, "X-Auth-Token": HEADER_TOKEN,
           "Cookie": f"session={COOKIE}", "X-Title": "visible-title"}


def with_query(url: str) -> str:
    return f"{url}?alt=x&key={QUERY_KEY}&access_token={QUERY_TOKEN}"


def credentialed(fake, scenario: str) -> dict:
    """A profile whose credentials are in its extra headers and its URL's query, not only in api_key."""
    return api(fake, scenario, api_key=KEY, api_url=with_query(fake.url(scenario, CHAT)), extra_headers=HEADERS)


def leaked(text: str) -> list[str]:
    return [name for name, secret in SECRETS.items() if secret in text]


def test_header_and_query_credentials_are_in_no_answer_log_debug_log_export_or_saved_file(tmp_path, fake):
    server = ServerProcess(tmp_path / "data")
    recorder = recorded(server)
    try:
        out = exercise(server, fake, tmp_path, ["g3_stream_dataurl", "err_401_g16", "echo_request",
                                                "fail_then_ok.status=503"], lambda s: credentialed(fake, s))
    finally:
        server.stop()
    posts = [r for r in fake.requests if r.method == "POST" and r.scenario]
    assert posts and all(r.headers["authorization"] == f"Bearer {HEADER_BEARER}" and r.headers["api-key"] == AZURE_KEY
                         and r.query["key"] == QUERY_KEY and r.query["access_token"] == QUERY_TOKEN for r in posts)
    assert any(b"Not authorized: POST" in body for _, body in recorder.bodies)  # the gateway's echo did arrive
    leaks = [(name, where) for name, secret in SECRETS.items() for where in recorder.leaks(secret)]
    leaks += [(name, path) for name, secret in SECRETS.items()
              for path in files_with(tmp_path / "data", secret, KEY_STORES) + files_with(out, secret)]
    db = sqlite3.connect(tmp_path / "data" / "console.db")
    try:
        rows = [repr(row) for table in ("tasks", "results", "attempts") for row in db.execute(f"SELECT * FROM {table}")]
    finally:
        db.close()
    leaks += [(name, "console.db") for row in rows for name in leaked(row)]
    record("secrets", header_query_kinds=len(SECRETS) - 1, header_query_answers_checked=len(recorder.bodies),
           header_query_leaks=len(leaks))
    assert leaks == []
    assert HEADER_BEARER in (tmp_path / "data" / "settings.json").read_text()  # where it belongs, 0600


@pytest.fixture
def console(tmp_path):
    """A test client of the app on a fresh data dir, secrets kept out of exports."""
    from console.settings import resolve
    from console.web import create_app

    app = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / "data")}))
    yield app.test_client()
    app.extensions["console.engine"].close()


def gateway_profile() -> dict:
    return {"api_url": "https://gw.example.com/v1beta?alt=sse&key=" + QUERY_KEY, "api_key": KEY, "model": "m",
            "extra_headers": HEADERS,
            "key_pool": [{"api_key": "sk-pool-" + "p" * 20, "api_url": "https://gw2.example.com/v1?api_key=" + POOL_QUERY}]}


def hint(secret: str) -> str:
    return "••••••••" + secret[-4:]


def test_header_and_query_credentials_are_masked_like_the_key(console):
    put = console.put("/api/settings", json={"api": gateway_profile()})
    assert put.status_code == 200, put.get_json()
    assert console.put("/api/presets/api/gw", json=gateway_profile()).status_code == 200
    for shown in (put.get_json()["api"], console.get("/api/settings").get_json()["api"],
                  console.get("/api/presets").get_json()["api"]["gw"]):
        assert shown["extra_headers"] == {"Authorization": "Bearer " + hint(HEADER_BEARER), "api-key": hint(AZURE_KEY),
                                          "X-Auth-Token": hint(HEADER_TOKEN), "Cookie": hint(COOKIE),
                                          "X-Title": "visible-title"}
        assert shown["api_url"] == "https://gw.example.com/v1beta?alt=sse&key=" + hint(QUERY_KEY)
        assert shown["key_pool"][0]["api_url"] == "https://gw2.example.com/v1?api_key=" + hint(POOL_QUERY)
    for path in ("/api/settings", "/api/presets", "/api/config/export"):
        assert leaked(console.get(path).get_data(as_text=True)) == [], path
    export = console.get("/api/config/export").get_json()
    assert export["settings"]["api"]["extra_headers"] == {"Authorization": "", "api-key": "", "X-Auth-Token": "",
                                                          "Cookie": "", "X-Title": "visible-title"}
    assert export["settings"]["api"]["api_url"] == "https://gw.example.com/v1beta?alt=sse&key="
    assert export["presets"]["api"]["gw"]["key_pool"][0]["api_url"] == "https://gw2.example.com/v1?api_key="


def stored_api(tmp_path, file: str = "settings.json") -> dict:
    data = json.loads((tmp_path / "data" / file).read_text())
    return data["api"] if file == "settings.json" else data["api"]["gw"]


def test_a_masked_header_or_url_sent_back_keeps_the_stored_value(console, tmp_path):
    original = gateway_profile()
    console.put("/api/settings", json={"api": original})
    shown = console.get("/api/settings").get_json()["api"]
    again = console.put("/api/settings", json={"api": {**shown, "model": "m2"}})  # the page saves its form unchanged
    assert again.status_code == 200, again.get_json()
    stored = stored_api(tmp_path)
    assert stored["extra_headers"] == HEADERS and stored["api_url"] == original["api_url"]
    assert stored["key_pool"][0]["api_url"] == original["key_pool"][0]["api_url"] and stored["model"] == "m2"
    # A new preset saved from the form: its masks stand for the settings' values.
    assert console.put("/api/presets/api/gw", json=shown).status_code == 200
    assert stored_api(tmp_path, "presets.json")["extra_headers"] == HEADERS
    # The form saved over a preset whose own credentials differ: its masks still stand for the settings'.
    console.put("/api/presets/api/other", json={**original, "extra_headers": {"Authorization": "Bearer other-" + "o" * 20}})
    assert console.put("/api/presets/api/other", json=shown).status_code == 200
    assert json.loads((tmp_path / "data" / "presets.json").read_text())["api"]["other"]["extra_headers"] == HEADERS
    # An export without secrets imported back keeps what is stored.
    export = console.get("/api/config/export").get_json()
    assert console.post("/api/config/import", json=export).status_code == 200
    stored = stored_api(tmp_path)
    assert stored["extra_headers"] == HEADERS and stored["api_url"] == original["api_url"]
    assert stored["key_pool"][0]["api_url"] == original["key_pool"][0]["api_url"]
    assert stored_api(tmp_path, "presets.json")["api_url"] == original["api_url"]


def test_a_masked_url_and_headers_in_run_overrides_reach_the_upstream_as_stored(console, fake, tmp_path):
    console.put("/api/settings", json={"api": credentialed(fake, "g3_stream_dataurl")})
    form = console.get("/api/settings").get_json()["api"]
    assert QUERY_KEY not in form["api_url"] and HEADER_BEARER not in json.dumps(form)
    folder = make_sources(tmp_path / "src", 1)
    answer = console.post("/api/runs", json={"input_path": str(folder), "prompt": "p", "api": form})
    assert answer.status_code == 201, answer.get_json()
    run_id = answer.get_json()["run_id"]
    for _ in range(200):
        run = console.get(f"/api/runs/{run_id}").get_json()
        if not run["running"] and run["progress"]["done"] == 1:
            break
        time.sleep(0.05)
    assert run["progress"]["done"] == 1, run
    assert run["api_url"] == with_query(fake.url("g3_stream_dataurl", CHAT)).replace(QUERY_KEY, hint(QUERY_KEY)).replace(
        QUERY_TOKEN, hint(QUERY_TOKEN))
    assert leaked(console.get("/api/runs").get_data(as_text=True)) == []
    posts = [r for r in fake.requests if r.method == "POST"]
    assert [(r.headers["authorization"], r.headers["api-key"], r.headers["cookie"], r.query["key"]) for r in posts] == [
        (f"Bearer {HEADER_BEARER}", AZURE_KEY, f"session={COOKIE}", QUERY_KEY)]


def test_a_new_clear_value_replaces_the_stored_one_and_a_stray_mask_is_refused(console, tmp_path):
    console.put("/api/settings", json={"api": gateway_profile()})
    shown = console.get("/api/settings").get_json()["api"]
    new_url = shown["api_url"].replace(hint(QUERY_KEY), "AIza-new-clear-value")
    headers = {**shown["extra_headers"], "api-key": "new-azure-key"}
    assert console.put("/api/settings", json={"api": {"api_url": new_url, "extra_headers": headers}}).status_code == 200
    stored = stored_api(tmp_path)
    assert stored["api_url"].endswith("key=AIza-new-clear-value") and stored["extra_headers"]["api-key"] == "new-azure-key"
    assert stored["extra_headers"]["Authorization"] == f"Bearer {HEADER_BEARER}"
    for field, value, named in (
            ("api_url", "https://gw.example.com/v1beta?key=••••••••zzzz", "api_url"),
            ("extra_headers", {"Authorization": "Bearer ••••••••zzzz"}, "extra_headers['Authorization']"),
            ("extra_headers", {"X-Other": "••••••••"}, "extra_headers['X-Other']"),
            ("key_pool", [{"api_key": "sk-pool-" + "q" * 20, "api_url": "https://gw2.example.com/v1?api_key=••••"}],
             "key_pool: key 2 api_url")):
        refused = console.put("/api/settings", json={"api": {field: value}})
        assert refused.status_code == 400 and refused.get_json()["error"].startswith(named), refused.get_json()
        assert "stands for no stored value" in refused.get_json()["error"]
    assert stored_api(tmp_path)["api_url"].endswith("key=AIza-new-clear-value")


@pytest.mark.parametrize("url", ["https://user:pw-canary-123@gw.example.com/v1?key=AIzaXYZ123456",
                                 "https://tk-canary-123@gw.example.com/v1"])
def test_a_user_name_or_password_in_the_api_url_is_refused(console, url):
    for body in ({"api_url": url}, {"key_pool": [{"api_key": "sk-pool-" + "r" * 20, "api_url": url}]}):
        refused = console.put("/api/settings", json={"api": body})
        assert refused.status_code == 400
        message = refused.get_json()["error"]
        assert "cannot hold a user name or password" in message and "canary" not in message and "XYZ" not in message
    assert console.post("/api/runs", json={"input_path": "/nowhere", "prompt": "p", "api": {"api_url": url}}
                        ).status_code == 400


def test_the_debug_log_redacts_headers_and_url_credentials_by_name_and_shape():
    from console.upstream import DebugLog

    profile = ApiProfile.from_dict(gateway_profile())
    debug = DebugLog(profile.secrets())
    debug.request("POST", profile.api_url, {**profile.extra_headers, "x-goog-api-key": "goog-key-value"}, {"p": 1})
    debug.note("redirected to https://cdn.example.com/i.png?token=unknown-token-value&w=1")
    debug.raw(f'{{"error": "bad key {QUERY_KEY} for {HEADER_TOKEN}", "cookie": "session={COOKIE}"}}'.encode())
    text = debug.text()
    assert leaked(text) == [] and "goog-key-value" not in text and "unknown-token-value" not in text
    assert "visible-title" in text and "gw.example.com/v1beta?alt=sse&key=[redacted]" in text


def test_the_terminal_and_file_logs_redact_url_and_bearer_credentials(tmp_path, capsys):
    import logging

    from console import logs

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        path = logs.setup(tmp_path, [], terminal=True)
        try:
            raise ValueError(f"upstream said no to https://gw.example.com/v1?key={QUERY_KEY}")
        except ValueError:
            logging.getLogger("console.test").exception("call failed with Authorization: Bearer %s", HEADER_BEARER)
        for handler in logging.getLogger().handlers:
            handler.flush()
        terminal, file = capsys.readouterr().err, path.read_text()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved
    assert "call failed" in terminal and "call failed" in file and "Traceback" in file
    assert leaked(terminal) == [] and leaked(file) == []


def test_pages_forbid_framing_and_inline_code_and_name_no_server_version(tmp_path):
    import socket

    server = ServerProcess(tmp_path / "data")
    try:
        answers = [server.get(path) for path in ("/", "/static/js/main.js", "/api/health", "/api/nothing")]
        with socket.create_connection(("127.0.0.1", server.port)) as raw:  # Werkzeug answers this one itself
            raw.sendall(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")  # 414
            refused = raw.recv(4096).decode("latin-1")
    finally:
        server.stop()
    for answer in answers:
        assert "server" not in answer.headers, (answer.url, answer.headers.get("server"))
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert answer.headers["x-frame-options"] == "DENY"
    assert refused.startswith("HTTP/1.1 414") and "\r\nserver:" not in refused.lower(), refused


def test_a_refused_url_is_quoted_with_its_credentials_masked(console, tmp_path):
    # The SSRF policy names the URL it refuses: a private address with the private switch off.
    url = "http://10.0.0.1/v1/chat/completions?key=" + QUERY_KEY
    assert console.put("/api/settings", json={"api": {"api_url": url, "model": "m"}}).status_code == 200
    folder = make_sources(tmp_path / "src", 1)
    answers = [console.post("/api/test-connection", json={}),
               console.post("/api/runs", json={"input_path": str(folder), "prompt": "p"})]
    texts = [answer.get_data(as_text=True) for answer in answers]
    assert all("private or loopback" in text for text in texts), texts
    assert all("key=" + hint(QUERY_KEY) in json.loads(text)["error"] for text in texts), texts
    assert [leaked(text) for text in texts] == [[], []]


def test_url_masks_touch_only_credential_values_and_come_back_to_what_they_stand_for():
    from console.masking import blank_url, keep_url, mask_url

    long, short = "AIza" + "x" * 30 + "WXYZ", "abc"
    url = f"https://gw.example.com/v1beta?alt=sse&KEY={long}&api%5Fkey={short}&key=&keys=1&token#key={long}"
    masked = mask_url(url)
    assert masked == f"https://gw.example.com/v1beta?alt=sse&KEY=••••••••WXYZ&api%5Fkey=••••••••&key=&keys=1&token#key={long}"
    assert keep_url(masked, [url], empty_keeps=False) == url
    assert blank_url(url) == "https://gw.example.com/v1beta?alt=sse&KEY=&api%5Fkey=&key=&keys=1&token#key=" + long
    assert keep_url(blank_url(url), [url], empty_keeps=True) == url.replace("&key=&", f"&key={long}&")
    assert keep_url(masked.replace("WXYZ", "ABCD"), [url], empty_keeps=False).count("••••••••ABCD") == 1
    assert mask_url("https://gw.example.com/v1") == "https://gw.example.com/v1" and mask_url("") == ""
