"""Serve the app over HTTP: werkzeug's threaded server, with a cap on its threads and a deadline for each request's head.

werkzeug's own threaded server starts a thread per connection, with no cap and no timeout: a
client that opens connections and sends nothing holds a thread (and its stack) for each, for
ever. Here a connection waits at most `header_timeout_s` for each request line and headers
(an idle keep-alive connection included) and `IDLE_TIMEOUT_S` for any later read or write, and
at most `max_threads` connections are served at once; one more is answered 503 at once and
closed, without a thread, so the console stays responsive and its thread count bounded.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

IDLE_TIMEOUT_S = 120.0  # a request whose client stops reading or sending for this long is dropped
BUSY_BODY = b'{"ok": false, "error": "the console is serving too many connections; try again in a moment"}'
BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
               b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(BUSY_BODY)) + BUSY_BODY


class Deadlines:
    """Mixed into a werkzeug request handler: a deadline for each request's line and headers."""

    connection: socket.socket
    header_timeout_s = 10.0  # set per server by `CappedServer`

    def handle_one_request(self) -> None:
        """Wait at most `header_timeout_s` for the request line and headers, then serve the request."""
        self.connection.settimeout(self.header_timeout_s)
        super().handle_one_request()

    def parse_request(self) -> bool:
        """Read the headers, then give the body and the answer the longer idle timeout."""
        parsed = super().parse_request()
        self.connection.settimeout(IDLE_TIMEOUT_S)
        return parsed


class CappedServer(ThreadedWSGIServer):
    """A threaded WSGI server that serves at most `max_threads` connections at once."""

    def __init__(self, host: str, port: int, app: Any, *, fd: int, max_threads: int, header_timeout_s: float,
                 request_handler: type[WSGIRequestHandler] = WSGIRequestHandler) -> None:
        handler = type("TimedHandler", (Deadlines, request_handler), {"header_timeout_s": header_timeout_s})
        super().__init__(host, port, app, handler, fd=fd)
        self.max_threads = max_threads
        self._slots = threading.BoundedSemaphore(max_threads)
        self.refused = 0  # connections answered 503 because every thread was busy

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection on a thread of its own if one is free, else answer 503 and close it."""
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            _answer_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection, then give its thread's place back."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _answer_busy(request: socket.socket) -> None:
    """Send the 503 without waiting: a client that does not read it just loses it."""
    try:
        request.setblocking(False)
        request.send(BUSY_ANSWER)
    except OSError:
        pass
