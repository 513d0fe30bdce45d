"""The one-file binaries: build both with the shipped scripts, then use each as a user would.

The build runs once per session (module fixture, a few minutes): `./build_onefile.sh` and
`./build_onefile_slim.sh`, exactly as the README says. Each binary is then started on a temp data dir
and a free port, serves the page and its scripts, completes a small run against the fake gateway,
refuses a port in use with exit status 2, honours the environment as `start.sh` does, draws the Rich
panel on a terminal, and exits cleanly on SIGTERM (its in-flight tasks `stopped`, its unpack dir
removed). Sizes, build and start-up times land in `tests/artifacts/binaries.json` (BENCHMARKS.md).
Skip all of it with `-m "not slow"`.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from PIL import Image

from console.settings import SETTINGS
from testkit.fake_upstream import FakeUpstream
from tests.helpers import make_sources

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHAT = "/v1/chat/completions"
BUILDS = {"image-batch-console": "build_onefile.sh", "image-batch-console-slim": "build_onefile_slim.sh"}
BUILD_TIMEOUT_S = 1200
START_TIMEOUT_S = 60


# --------------------------------------------------------------------------- running a binary


def base_env(**extra: str) -> dict[str, str]:
    """The test's environment without the console's own variables, plus `extra`."""
    names = {row.env for row in SETTINGS} | {"STATUS_WINDOW", "APP_NAME"}
    env = {name: value for name, value in os.environ.items() if name not in names}
    return {**env, **extra}


class Binary:
    """One binary started headless (`--port 0 --no-browser --status-ui none` unless `args` say otherwise)."""

    def __init__(self, command: list[str], data_dir: Path, tmp: Path, args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        """Start it with TMPDIR=`tmp` (where the bootloader unpacks) and wait for its first line."""
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        if args is None:
            args = ["--host", "127.0.0.1", "--port", "0", "--data-dir", str(data_dir), "--no-browser",
                    "--status-ui", "none"]
        self.stderr = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the server
        started = time.monotonic()
        self.process = subprocess.Popen([*command, *args], cwd=tmp, env=base_env(TMPDIR=str(tmp), **(env or {})),
                                        stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:(\d+)/) \(data: (.+)\)", line)
        if not match:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{command} did not start: {line!r}\n{self.read_stderr()}")
        self.url, self.port, self.data_dir = match.group(1), int(match.group(2)), Path(match.group(3))
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.started_s = wait_healthy(self.http, started)

    def terminate(self, timeout: float = 30) -> tuple[int, str]:
        """Send SIGTERM to the bootloader; return the exit status and what was printed on stderr."""
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the binary did not exit within 30 s of SIGTERM") from None
        return self.process.returncode, self.read_stderr()

    def read_stderr(self) -> str:
        """Return what the program printed on stderr so far."""
        self.stderr.seek(0)
        return self.stderr.read()

    def close(self) -> None:
        """Stop it if it still runs and let go of its output."""
        if self.process.poll() is None:
            self.terminate()
        self.process.stdout.close()
        self.stderr.close()


def wait_healthy(http: httpx.Client, started: float) -> float:
    """Poll /api/health until it answers ok; return the seconds since `started`."""
    deadline = started + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if http.get("/api/health").json().get("ok") is True:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise AssertionError("/api/health did not answer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Return `pid` and every process below it (the onefile bootloader runs the app as its child)."""
    found, todo = {pid}, [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            for child in map(int, task.read_text().split()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def start_run(binary: Binary, fake: FakeUpstream, folder: Path, scenario: str, **fields) -> str:
    api = {"api_url": fake.url(scenario, CHAT), "model": "grok-imagine-1.0-edit", "max_retries": 0,
           "allow_private_api": True, **fields}
    answer = binary.http.post("/api/runs", json={"input_path": str(folder), "prompt": "make it blue", "api": api})
    assert answer.status_code == 201, answer.text
    return answer.json()["run_id"]


def wait_idle(binary: Binary, run_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = binary.http.get(f"/api/runs/{run_id}/tasks").json()
        if not listing["running"]:
            return listing
        time.sleep(0.1)
    raise AssertionError(f"run still running after {timeout}s: {listing['progress']}")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def figures() -> Iterator[dict]:
    """Sizes, build and start-up times, written to tests/artifacts/binaries.json at the end."""
    data: dict = {}
    yield data
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "binaries.json").write_text(json.dumps(data, indent=2) + "\n")


@pytest.fixture(scope="module")
def binaries(figures: dict) -> dict[str, Path]:
    """Build both binaries once with the shipped scripts; return name -> path."""
    built = {}
    ARTIFACTS.mkdir(exist_ok=True)
    for name, script in BUILDS.items():
        log = ARTIFACTS / f"build_{name}.log"
        started = time.monotonic()
        with log.open("w") as out:
            done = subprocess.run([f"./{script}"], cwd=ROOT, env=base_env(), stdout=out, stderr=subprocess.STDOUT,
                                  timeout=BUILD_TIMEOUT_S)
        tail = "\n".join(log.read_text().splitlines()[-30:])
        assert done.returncode == 0, f"{script} failed ({done.returncode}):\n{tail}"
        path = ROOT / "dist" / name
        assert path.is_file() and os.access(path, os.X_OK), f"{script} made no dist/{name}:\n{tail}"
        built[name] = path
        figures[name] = {"bytes": path.stat().st_size, "build_s": round(time.monotonic() - started, 1)}
    return built


@pytest.fixture(params=list(BUILDS))
def binary_path(request, binaries: dict[str, Path]) -> Path:
    return binaries[request.param]


@pytest.fixture
def running(binary_path: Path, tmp_path: Path) -> Iterator[Binary]:
    binary = Binary([str(binary_path)], tmp_path / "data", tmp_path / "tmp")
    yield binary
    binary.close()


def slow(test):
    """Mark a test that needs the binaries: slow (skip with -m "not slow"), and allowed the build's time."""
    return pytest.mark.slow(pytest.mark.timeout(BUILD_TIMEOUT_S * 2)(test))


# --------------------------------------------------------------------------- the binaries


@slow
def test_health_page_and_its_scripts(running: Binary):
    health = running.http.get("/api/health").json()
    assert health["ok"] is True and health["version"]
    page = running.http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert "/static/js/main.js" in assets and "/static/css/app.css" in assets
    # main.js imports the other modules: every one of static/js/ must be inside the binary.
    scripts = sorted(p.name for p in (ROOT / "static" / "js").glob("*.js"))
    for name in scripts:
        answer = running.http.get(f"/static/js/{name}")
        assert answer.status_code == 200 and "javascript" in answer.headers["content-type"], name
        assert answer.content == (ROOT / "static" / "js" / name).read_bytes(), name
    assert (running.data_dir / "console.db").is_file() and (running.data_dir / "logs" / "console.log").is_file()
    # The working directory (also TMPDIR here) holds only the bootloader's unpack dir: state lives in the data dir.
    assert [p.name[:4] for p in running.tmp.iterdir()] == ["_MEI"]


@slow
def test_a_small_run_completes_with_images(running: Binary, fake: FakeUpstream, tmp_path: Path):
    folder = make_sources(tmp_path / "src", 3)
    run_id = start_run(running, fake, folder, "g3_stream_dataurl", concurrency=3)
    listing = wait_idle(running, run_id)
    assert listing["progress"]["done"] == 3, listing["progress"]
    expected = fake.expected("g3_stream_dataurl")
    for task in listing["tasks"]:
        images = [running.http.get(f"/api/results/{r['id']}/image").content for r in task["results"]]
        assert images == expected, task["id"]
        thumb = running.http.get(f"/api/results/{task['results'][0]['id']}/image", params={"thumb": 1})
        with Image.open(io.BytesIO(thumb.content)) as image:  # thumbnails are WebP: Pillow's codecs are inside
            assert image.format == "WEBP" and max(image.size) <= 256
    archive = running.http.get(f"/api/runs/{run_id}/export.zip")
    assert archive.status_code == 200 and archive.content[:2] == b"PK"


@slow
def test_port_in_use_exits_2_and_names_the_holder(running: Binary, binary_path: Path, tmp_path: Path):
    done = subprocess.run([str(binary_path), "--port", str(running.port), "--data-dir", str(tmp_path / "d2"),
                           "--no-browser", "--status-ui", "none"], cwd=tmp_path, env=base_env(TMPDIR=str(running.tmp)),
                          capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert done.returncode == 2, done.stderr
    assert f"Port {running.port} on 127.0.0.1 is already in use" in done.stderr
    holders = {int(pid) for pid in re.findall(r"held by pid (\d+)", done.stderr)}
    assert holders and holders <= descendants(running.process.pid), done.stderr
    assert running.process.poll() is None  # it never kills anything
    assert running.http.get("/api/health").json()["ok"] is True


@slow
def test_sigterm_stops_the_runs_and_exits_cleanly(binary_path: Path, fake: FakeUpstream, tmp_path: Path):
    data, tmp = tmp_path / "data", tmp_path / "tmp"
    binary = Binary([str(binary_path)], data, tmp)
    run_id = start_run(binary, fake, make_sources(tmp_path / "src", 6), "stall", concurrency=3)
    deadline = time.monotonic() + 30
    while fake.in_flight < 3:
        assert time.monotonic() < deadline, "the stalled calls never reached the gateway"
        time.sleep(0.05)
    status, stderr = binary.terminate()
    assert status == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert fake.wait_for_connections(0, timeout=10)  # every stream was closed
    assert list(tmp.iterdir()) == [], "the bootloader left its unpack dir behind"
    again = Binary([str(binary_path)], data, tmp)
    try:
        tasks = again.http.get(f"/api/runs/{run_id}/tasks").json()["tasks"]
        assert {t["status"] for t in tasks} == {"stopped"}
        assert "interrupted" not in {t["error"] for t in tasks}  # stopped on purpose, not recovered from a crash
    finally:
        again.close()


@slow
def test_environment_is_honoured_as_start_sh_does(binary_path: Path, fake: FakeUpstream, tmp_path: Path):
    # Only environment variables, no flags: HOST, PORT, APP_DATA_DIR, OPEN_BROWSER, STATUS_UI, and two
    # switches whose effect shows through the API.
    port, data = free_port(), tmp_path / "env-data"
    env = {"HOST": "127.0.0.1", "PORT": str(port), "APP_DATA_DIR": str(data), "OPEN_BROWSER": "0",
           "STATUS_UI": "none", "ALLOW_PRIVATE_API_URL": "1", "EXPORT_INCLUDE_SECRETS": "1"}
    binary = Binary([str(binary_path)], data, tmp_path / "tmp", args=[], env=env)
    try:
        assert binary.port == port and binary.data_dir == data.resolve()
        key = "sk-test-binary-env-0123456789"
        assert binary.http.put("/api/settings", json={"api": {"api_key": key}}).status_code == 200
        assert json.loads(binary.http.get("/api/config/export").content)["settings"]["api"]["api_key"] == key
        run_id = start_run(binary, fake, make_sources(tmp_path / "src", 1), "g3_stream_dataurl",
                           allow_private_api=False)  # loopback allowed server-wide by ALLOW_PRIVATE_API_URL
        assert wait_idle(binary, run_id)["progress"]["done"] == 1
    finally:
        binary.close()
    helped = subprocess.run([str(binary_path), "--help"], env=base_env(TMPDIR=str(tmp_path / "tmp")),
                            capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert helped.returncode == 0
    assert [row.env for row in SETTINGS if row.env not in helped.stdout] == []
    refused = subprocess.run([str(binary_path), "--no-browser"], env=base_env(PORT="eighty", TMPDIR=str(tmp_path)),
                             capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert refused.returncode == 2 and "PORT='eighty'" in refused.stderr


@slow
def test_the_rich_panel_draws_on_a_terminal(binary_path: Path, tmp_path: Path):
    leader, follower = pty.openpty()
    env = base_env(TMPDIR=str(tmp_path), COLUMNS="100", LINES="30", TERM="xterm-256color")
    process = subprocess.Popen([str(binary_path), "--port", "0", "--data-dir", str(tmp_path / "data"), "--no-browser"],
                               env=env, stdin=follower, stdout=follower, stderr=follower, cwd=tmp_path)
    os.close(follower)
    screen = b""
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"No runs yet" not in screen and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.5)[0]:
                screen += os.read(leader, 65536)
        text = screen.decode("utf-8", "replace")
        assert "No runs yet" in text and "status" in text and "╭" in text, text[-2000:]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)


@slow
def test_start_up_times(binaries: dict[str, Path], figures: dict, tmp_path: Path):
    """Record the time to a healthy /api/health (median of three starts), with `python app.py` beside it."""
    commands = {name: [str(path)] for name, path in binaries.items()}
    commands["python app.py"] = [sys.executable, str(ROOT / "app.py")]
    for number, (name, command) in enumerate(commands.items()):
        times = []
        for attempt in range(3):
            binary = Binary(command, tmp_path / f"data-{number}-{attempt}", tmp_path / "tmp")
            times.append(binary.started_s)
            binary.close()
        figures.setdefault(name, {})["start_s"] = round(statistics.median(times), 2)
    assert list(tmp_path.joinpath("tmp").iterdir()) == []  # every unpack dir was removed


# --------------------------------------------------------------------------- the slim build's exclusions


SLIM_SCRIPT = ROOT / "build_onefile_slim.sh"


def slim_exclusions() -> list[str]:
    """The modules build_onefile_slim.sh leaves out (its `excluded=( … )` list)."""
    block = re.search(r"excluded=\((.*?)\)", SLIM_SCRIPT.read_text(), re.DOTALL)
    assert block, "build_onefile_slim.sh has no excluded=( … ) list"
    return block.group(1).split()


@pytest.mark.timeout(120)
def test_the_slim_build_leaves_out_only_what_the_console_never_imports(fake: FakeUpstream, tmp_path: Path):
    """Run the console from source (a real run, thumbnails, a ZIP, a save, the panel, every module); none of the left-out modules loads."""
    folder = make_sources(tmp_path / "src", 2)
    program = f"""
import json, sys, time
from console.settings import resolve
from console.web import create_app
app = create_app(settings=resolve({{"APP_DATA_DIR": {str(tmp_path / 'data')!r}}}))
client = app.test_client()
api = {{"api_url": {fake.url('g3_stream_dataurl', CHAT)!r}, "model": "m", "allow_private_api": True, "max_retries": 0}}
run = client.post("/api/runs", json={{"input_path": {str(folder)!r}, "prompt": "p", "api": api}}).json["run_id"]
while client.get(f"/api/runs/{{run}}/tasks").json["running"]:
    time.sleep(0.05)
tasks = client.get(f"/api/runs/{{run}}/tasks").json["tasks"]
assert all(t["status"] == "done" for t in tasks), tasks
for task in tasks:
    client.get(f"/api/tasks/{{task['id']}}/source?thumb=1")
    client.get(f"/api/results/{{task['results'][0]['id']}}/image?thumb=1")
assert client.get(f"/api/runs/{{run}}/export.zip").status_code == 200
rule = {{"output_dir": {str(tmp_path / 'out')!r}, "layout": "aitoolkit_edit", "only_selected": False, "conform": "pad"}}
assert client.post(f"/api/runs/{{run}}/save", json=rule).status_code == 200
import io
from rich.console import Console
from console import panel
Console(file=io.StringIO(), width=100).print(panel.render(panel.collect(app, "http://x/", time.time())))
app.extensions["console.engine"].close()
import console, importlib, pkgutil  # and every module of the console, for what they import when loaded
for module in pkgutil.walk_packages(console.__path__, "console."):
    importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=base_env(HOME=str(tmp_path)),
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    excluded = slim_exclusions()
    assert "tkinter" in excluded and "PIL.ImageFont" in excluded
    assert [m for m in loaded if m in excluded or m.split(".")[0] in excluded] == []
