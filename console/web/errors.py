"""The API's one error shape: {"ok": false, "error": "<readable message>"} with a 4xx status.

An error raised with a Message also says `error_msg: {"code", "params"}`, which the page says in its
own language (answers.py adds it as the answer is written).
"""

from __future__ import annotations

from typing import Callable

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ..diskfault import DataFolder, StorageFault
from ..engine import Busy, Conflict, EngineError, NotFound
from ..logs import LOG_DIR, LOG_FILE
from ..messages import Message, carried, say
from . import services


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
        return jsonify(ok=False, error=said(exc), **getattr(exc, "details", {})), code

    app.register_error_handler(error, handle)


# The engine's domain errors and their statuses (bad input is a 4xx; docs/api.md). A data folder
# that cannot take a write answers 507 Insufficient Storage, naming the folder and what to do.
ENGINE_STATUSES = ((NotFound, 404), (Conflict, 409), (Busy, 503), (EngineError, 400), (StorageFault, 507))
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def init_app(app: Flask) -> None:
    """Answer every error in the one JSON shape, never an HTML page or a traceback."""
    for error, status in ENGINE_STATUSES:
        answer_as(app, error, status)

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(ok=False, error=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify(ok=False, error=http_said(exc)), exc.code or 500

    @app.before_request
    def data_folder_present():
        # A write into a removed data folder would not fail: it would recreate the folder, or go to
        # a deleted database file, and be lost at the next start.
        folder = _data_folder()
        if folder is not None and request.method in WRITES:
            folder.check()

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        folder = _data_folder()
        fault = folder.fault(exc) if folder is not None else None
        if fault is not None:  # a full or read-only disk is the machine's state, not a bug
            current_app.logger.warning("%s %s: %s", request.method, request.path, fault)
            return jsonify(ok=False, error=said(fault), **fault.details), 507
        # Every input must be answered with a 4xx before it gets here; this is a bug.
        current_app.logger.exception("unhandled error in %s %s", request.method, request.path)
        return jsonify(ok=False, error=say("web.bug", kind=type(exc).__name__, said=str(exc),
                                           log=f"{LOG_DIR}/{LOG_FILE}")), 500


# Werkzeug's HTTP errors the page says in its own language, when their words are Werkzeug's usual ones.
HTTP_KNOWN: dict[int, Message] = {400: say("web.http_400"), 404: say("web.http_404"), 405: say("web.http_405"),
                                  413: say("web.http_413"), 415: say("web.http_415"), 416: say("web.http_416")}


def http_said(exc: HTTPException) -> Message:
    """Return what Werkzeug's HTTP error says, as a message: its own code for a status the page knows
    whose words are Werkzeug's usual ones, else its words as they are (framed on the page)."""
    text = exc.description or exc.name
    if isinstance(text, Message):
        return text
    known = HTTP_KNOWN.get(exc.code)
    return known if known is not None and known == text else say("web.http_other", said=text)




def said(exc: BaseException) -> str:
    """Return an error's message: the Message it was raised with (its code goes beside it), else its text."""
    return carried(exc) or str(exc)


def _data_folder() -> "DataFolder | None":
    """The data folder of the app's engine; None in an app without one (the guards' own tests)."""
    engine = current_app.extensions.get(services.ENGINE)
    return engine.folder if engine is not None else None
