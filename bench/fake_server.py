"""Run the fake gateway (testkit/fake_upstream.py) as a process of its own, for the throughput bench.

    python -m bench.fake_server        # prints "port N", serves 127.0.0.1:N until stdin closes

The throughput budget wants the fake "in its own process": inside the bench process it would share one GIL
with the bench's client and poller. Commands on stdin, one per line, each answered with one JSON
line on stdout:

    stats   {"requests": n, "connections_opened": n, "open_connections": n, "in_flight": n,
             "max_in_flight": n, "cpu_s": x}
    reset   forget the request and connection counts and max in flight, answer {"ok": true}

Unlike the test fake it keeps no request bodies (1,000 uploads of 0.5 MB would pile up in memory),
only their count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from testkit.fake_upstream import FakeUpstream, Recorded

ROOT = Path(__file__).resolve().parent.parent


class CountingFake(FakeUpstream):
    """The fake gateway, counting requests instead of recording them."""

    def __init__(self) -> None:
        self.count = 0
        self.opened = 0
        super().__init__()

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.count += 1

    def _connection_opened(self, sock) -> None:
        with self._lock:
            self.opened += 1
        super()._connection_opened(sock)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.count = 0
            self.opened = 0


def main() -> int:
    with CountingFake() as fake:
        print(f"port {fake.port}", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                times = os.times()
                answer: dict[str, Any] = {"requests": fake.count, "connections_opened": fake.opened,
                                          "open_connections": fake.open_connections, "in_flight": fake.in_flight,
                                          "max_in_flight": fake.max_in_flight, "cpu_s": times.user + times.system}
            elif command == "reset":
                fake.reset()
                answer = {"ok": True}
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    return 0


class FakeProcess:
    """`python -m bench.fake_server` as a child process; stopped on exit."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen([sys.executable, "-m", "bench.fake_server"], cwd=ROOT, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("port "):
            self.process.kill()
            raise RuntimeError(f"fake gateway did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, scenario: str, path: str) -> str:
        return f"{self.base_url}/{scenario}{path}"

    def command(self, name: str) -> dict[str, Any]:
        with self._lock:
            self.process.stdin.write(name + "\n")
            self.process.stdin.flush()
            return json.loads(self.process.stdout.readline())

    def stats(self) -> dict[str, Any]:
        return self.command("stats")

    def reset(self) -> None:
        self.command("reset")

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "FakeProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(main())
