"""The API's one error shape: {"ok": false, "error": "<readable message>"} with a 4xx status."""

from __future__ import annotations

from typing import Callable

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ..engine import Busy, Conflict, EngineError, NotFound
from ..logs import LOG_HINT


class ApiError(Exception):
    """A request the API refuses, with the status and message the client sees."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def answer_as(app: Flask, error: type[Exception], status: int | Callable[[Exception], int] = 400) -> None:
    """Answer a domain error (a readable message) in the one shape with a 4xx status."""

    def handle(exc: Exception):
        code = status(exc) if callable(status) else status
        return jsonify(ok=False, error=str(exc), **getattr(exc, "details", {})), code

    app.register_error_handler(error, handle)


# The engine's domain errors and their statuses (DESIGN §5: bad input is a 4xx).
ENGINE_STATUSES = ((NotFound, 404), (Conflict, 409), (Busy, 503), (EngineError, 400))


def init_app(app: Flask) -> None:
    """Answer every error in the one JSON shape, never an HTML page or a traceback."""
    for error, status in ENGINE_STATUSES:
        answer_as(app, error, status)

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(ok=False, error=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify(ok=False, error=exc.description or exc.name), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # Every input must be answered with a 4xx before it gets here (issue 8); this is a bug.
        current_app.logger.exception("unhandled error in %s %s", request.method, request.path)
        return jsonify(ok=False, error=f"the console hit a bug ({type(exc).__name__}: {exc}); "
                                       f"the details are in {LOG_HINT}"), 500
