"""The API's one error shape: {"ok": false, "error": "<readable message>"} with a 4xx status."""

from __future__ import annotations

from typing import Callable

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException


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
        return jsonify(ok=False, error=str(exc)), code

    app.register_error_handler(error, handle)


def init_app(app: Flask) -> None:
    """Answer every error in the one JSON shape, never an HTML page or a traceback."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(ok=False, error=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify(ok=False, error=exc.description or exc.name), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        current_app.logger.exception("unhandled error")
        return jsonify(ok=False, error=f"internal error: {type(exc).__name__}: {exc}"), 500
