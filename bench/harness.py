"""Shared plumbing for `python -m bench`: a server process, sources on disk, polling, /proc readings."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from testkit.images import make
from testkit.server_process import ServerProcess

CHAT = "/v1/chat/completions"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LINKS_PER_INODE = 10_000  # ext4 caps hard links per inode at 65,000: spread them over several sources


@dataclass
class Row:
    """One line of the table."""

    figure: str
    value: str
    budget: str
    ok: bool | None  # None: informational, no budget
    note: str = ""


class Server(ServerProcess):
    """The real server (`python app.py`) on a throw-away data dir, private API URLs allowed."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        env = dict(os.environ, ALLOW_PRIVATE_API_URL="1", PYTHONUNBUFFERED="1", **(extra_env or {}))
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
        super().__init__(data_dir, env)
        # Only the first line is read by ServerProcess; drain the rest so a full pipe never blocks the server.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            for _ in self.process.stdout:
                pass
        except (OSError, ValueError):
            pass

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """Return user + system CPU seconds the server process has used so far (all threads)."""
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        """Return the server's resident set size (VmRSS) in bytes."""
        return rss_bytes(self.pid)

    def start_run(self, folder: Path, api_url: str, concurrency: int, **fields: Any) -> str:
        api = {"api_url": api_url, "model": "m", "allow_private_api": True, "concurrency": concurrency,
               "max_retries": 0, **fields}
        answer = self.post("/api/runs", {"input_path": str(folder), "prompt": "edit", "api": api})
        if answer.status_code != 201:
            raise RuntimeError(f"POST /api/runs answered {answer.status_code}: {answer.text[:300]}")
        return answer.json()["run_id"]

    polls = 0

    def progress(self, run_id: str) -> dict[str, Any]:
        self.polls += 1
        return self.get(f"/api/runs/{run_id}").json()["progress"]

    def open_fds(self) -> int:
        """Return how many file descriptors the server process holds."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def wait_progress(self, run_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                      interval: float = 0.05) -> dict[str, Any]:
        """Poll the run's progress until predicate(progress) holds; return that progress."""
        deadline = time.monotonic() + timeout
        while True:
            progress = self.progress(run_id)
            if predicate(progress):
                return progress
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} did not get there in {timeout:g}s: {progress}")
            time.sleep(interval)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # fields from the 3rd (state) on
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime is field 14, stime field 15


def rss_bytes(pid: int) -> int:
    """VmRSS of a process from /proc/<pid>/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def make_sources(folder: Path, count: int, seeds: Path | None = None) -> Path:
    """Fill folder with count small PNG files (img1.png …), hard links of a few real PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = seeds or folder.parent / f".seeds-{folder.name}"
    seeds.mkdir(parents=True, exist_ok=True)
    seed_path = None
    for index in range(count):
        if index % LINKS_PER_INODE == 0:
            seed_path = seeds / f"seed{index // LINKS_PER_INODE}.png"
            seed_path.write_bytes(make("PNG", (16, 12), ((index // LINKS_PER_INODE) * 37 % 256, 40, 90)))
        target = folder / f"img{index + 1}.png"
        try:
            os.link(seed_path, target)
        except OSError:  # a file system without hard links: copy
            shutil.copyfile(seed_path, target)
    return folder


def make_photo_sources(folder: Path, count: int, side: int, distinct: int = 16) -> Path:
    """Fill folder with count photo-like side×side PNGs (img0001.png …): `distinct` real files, hard-linked."""
    from testkit.fake_scenarios import photo

    folder.mkdir(parents=True, exist_ok=True)
    seeds = folder.parent / f".seeds-{folder.name}"
    seeds.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(min(distinct, count)):
        path = seeds / f"seed{seed}.png"
        path.write_bytes(photo(side, seed=1000 + seed, fmt="PNG"))
        paths.append(path)
    width = len(str(count))
    for index in range(count):
        target = folder / f"img{index + 1:0{width}d}.png"
        try:
            os.link(paths[index % len(paths)], target)
        except OSError:
            shutil.copyfile(paths[index % len(paths)], target)
    return folder


def median(values: list[float]) -> float:
    return statistics.median(values)


class Workspace:
    """A temporary directory removed on exit, whatever happens."""

    def __init__(self, prefix: str = "ibc-bench-") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.path = Path(self._tmp.name)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()


class Servers:
    """Start servers that are all stopped on exit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Server] = []

    def start(self, name: str = "data", env: dict[str, str] | None = None) -> Server:
        server = Server(self.root / f"{name}-{len(self.started)}", env)
        self.started.append(server)
        return server

    def __enter__(self) -> "Servers":
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.started:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                pass
