"""HTTP routes of captions: find and replace across a run's captions."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("captions_api", __name__)


def init_app(app: Flask) -> None:
    """Register the routes."""
    app.register_blueprint(bp)
