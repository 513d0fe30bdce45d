"""The Flask application factory: settings, blueprints, one JSON error shape."""

from __future__ import annotations

from typing import Any, Mapping

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from .. import __version__, resources
from ..settings import Settings, resolve


def create_app(config: Mapping[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """Build the app; `config` overrides Flask config, `settings` the resolved server settings."""
    app = Flask(__name__, static_folder=str(resources.static_dir()), static_url_path="/static")
    app.config.update(JSON_SORT_KEYS=False, MAX_CONTENT_LENGTH=16 * 1024 * 1024)
    app.config.update(config or {})
    app.extensions["console.settings"] = settings or resolve()
    _register_errors(app)

    @app.get("/api/health")
    def health():
        return {"ok": True, "version": __version__}

    @app.get("/")
    def index():
        return app.send_static_file("index.html")

    return app


def _register_errors(app: Flask) -> None:
    """Answer every error as {"ok": false, "error": message}, never an HTML page or a traceback."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify(ok=False, error=exc.description or exc.name), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return jsonify(ok=False, error=f"internal error: {type(exc).__name__}"), 500
