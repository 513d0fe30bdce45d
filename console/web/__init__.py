"""The Flask application factory: settings, store, cache, engine, guards and blueprints."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from flask import Flask

from .. import __version__, resources
from ..cache import ImageCache
from ..config import ConfigStore
from ..engine import Engine
from ..settings import Settings, data_dir, resolve
from ..store import Store
from . import (caption_jobs_api, captions_api, compare_api, config_api, errors, guards, runs_api, save_api, services,
               sources_api, uploads_api)
from . import answers
from .handler import RequestHandler

DB_NAME = "console.db"
__all__ = ["create_app", "DB_NAME", "RequestHandler"]


def create_app(config: Mapping[str, Any] | None = None, settings: Settings | None = None, *,
               config_store: ConfigStore | None = None) -> Flask:
    """Build the app and start its engine; call `app.extensions["console.engine"].close()` to stop."""
    settings = settings or resolve()
    folder = data_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    app = Flask(__name__, static_folder=str(resources.static_dir()), static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=16 * 1024 * 1024)
    app.config.update(config or {})
    app.json = answers.MessageJSON(app)  # a message's code and parameters beside its English text

    configs = config_store or ConfigStore(folder, legacy_presets=Path.home() / ".image-batch-console" / "presets.json")
    configs.import_legacy()  # the older console's API presets, once, for users moving over
    store = Store(folder / DB_NAME)
    cache = ImageCache(folder, settings.cache_ttl_hours, settings.cache_max_bytes)
    engine = Engine(store, cache, settings, configs)
    engine.start()
    services.init_app(app, settings=settings, config=configs, store=store, cache=cache, engine=engine)
    errors.init_app(app)
    guards.init_app(app)
    caption_jobs_api.init_app(app)
    captions_api.init_app(app)
    compare_api.init_app(app)
    config_api.init_app(app)
    runs_api.init_app(app)
    save_api.init_app(app)
    sources_api.init_app(app)
    uploads_api.init_app(app)

    @app.get("/api/health")
    def health():
        return {"ok": True, "version": __version__}

    @app.get("/")
    def index():
        return app.send_static_file("index.html")

    return app
