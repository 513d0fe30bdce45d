"""HTTP routes of captioning with a vision model: start a job over a run's results, follow it, cancel it."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("caption_jobs_api", __name__)


def init_app(app: Flask) -> None:
    """Register the routes."""
    app.register_blueprint(bp)
