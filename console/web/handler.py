"""Serve HTTP requests like Werkzeug does, without the `Server` header that names its and Python's versions."""

from __future__ import annotations

from werkzeug.serving import WSGIRequestHandler


class RequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler minus the version banner: versions only help someone pick an exploit."""

    def send_response(self, code: int, message: str | None = None) -> None:
        """Log the request and send the status line and `Date`, but no `Server` header."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def version_string(self) -> str:
        """Return no version, should anything else ask for one."""
        return ""
