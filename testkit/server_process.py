"""Start the console as a real process (`python app.py …`) for end-to-end tests."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """`python app.py --port 0 --no-browser --status-ui none` on a data dir, with an httpx client."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, port: int = 0, host: str = "127.0.0.1") -> None:
        """Start on `port` (0: any free port; a fixed one lets a test restart a server where the page expects it).

        With a `host` that is not loopback (0.0.0.0: reached through 127.0.0.1) the server prints a
        URL with an access token: `token` holds it and `http` sends it.
        """
        self.data_dir = data_dir
        self.process = subprocess.Popen(
            [sys.executable, "app.py", "--host", host, "--port", str(port), "--data-dir", str(data_dir),
             "--no-browser", "--status-ui", "none"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:(\d+)/)(\?token=([\w-]+))?", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.url, self.port, self.token = match.group(1), int(match.group(2)), match.group(4)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=self.url, timeout=30, headers=headers)

    def get(self, path: str, **kw) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return self.http.post(path, json=body if body is not None else {})

    def wait_idle(self, run_id: str, timeout: float = 60) -> dict:
        """Poll the run's tasks until nothing is queued or in flight; return the listing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listing = self.get(f"/api/runs/{run_id}/tasks").json()
            if not listing["running"]:
                return listing
            time.sleep(0.1)
        raise AssertionError(f"run still running after {timeout}s: {listing['progress']}")

    def kill(self) -> None:
        """Kill -9: no chance to clean up, like a crash or a power cut."""
        self.process.kill()
        self.process.wait(timeout=10)
        self.http.close()

    def stop(self) -> int:
        """Terminate politely and return the exit code."""
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()
