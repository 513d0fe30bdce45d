"""Reach the app's services from a request: one accessor each, no string keys in the routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from ..cache import ImageCache
    from ..config import ConfigStore
    from ..engine import Engine
    from ..settings import Settings
    from ..store import Store

_PREFIX = "console."
ENGINE = _PREFIX + "engine"  # the key errors.py looks up when an app may have no engine


def init_app(app: Flask, *, settings: "Settings", config: "ConfigStore", store: "Store", cache: "ImageCache",
             engine: "Engine") -> None:
    """Register the services of one app."""
    app.extensions.update({_PREFIX + name: service for name, service in
                           {"settings": settings, "config": config, "store": store, "cache": cache,
                            "engine": engine}.items()})


def settings() -> "Settings":
    """Return the resolved settings."""
    return current_app.extensions[_PREFIX + "settings"]


def config() -> "ConfigStore":
    """Return the settings and presets store."""
    return current_app.extensions[_PREFIX + "config"]


def store() -> "Store":
    """Return the SQLite store of runs, tasks and results."""
    return current_app.extensions[_PREFIX + "store"]


def cache() -> "ImageCache":
    """Return the image cache."""
    return current_app.extensions[_PREFIX + "cache"]


def engine() -> "Engine":
    """Return the engine."""
    return current_app.extensions[ENGINE]
