"""Tiny HTTP servers on other loopback addresses (127.0.0.2, 127.0.0.3) for the SSRF tests.

A `Target` answers every GET with one real image and counts every TCP connection it accepts, so
a canary that must never be reached proves it by a count of zero, even for a request that was
cut off before its first byte.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testkit.fake_upstream import IMAGES


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = IMAGES["purple_png"]
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.connections = 0
        self.lock = threading.Lock()

    def get_request(self):  # counted before any byte is read
        accepted = super().get_request()
        with self.lock:
            self.connections += 1
        return accepted


class Target:
    """An image server on `ip:port` (port 0: any free one) that counts connections."""

    def __init__(self, ip: str, port: int = 0) -> None:
        self._server = _Server((ip, port))
        self.ip, self.port = ip, self._server.server_address[1]
        self.url = f"http://{ip}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"target-{ip}:{self.port}")
        self._thread.start()

    @property
    def hits(self) -> int:
        """Return how many connections were accepted."""
        with self._server.lock:
            return self._server.connections

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
