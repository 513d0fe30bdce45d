"""HTTP routes for settings, presets, config import/export and the rules the page checks input by (docs/api.md)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, Response, current_app

from ..captioning import INSTRUCTION_MAX_BYTES
from ..config import ConfigError, ConfigStore, NotFound, checked_snippets
from ..messages import say
from ..profile import BATCH_DISCOUNT, BATCH_DISCOUNT_DEFAULT, DELIVERIES, LIMITS, POOL_MAX
from ..upstream import BATCH_MODES
from ..saving import SaveRule
from ..sources import COUNT, RUN_MODES
from ..store_captions import CAPTION_MAX_BYTES
from . import captions_api, compare_api, services
from .errors import ApiError, answer_as
from .guards import json_body

EXPORT_FILENAME = "image-batch-console-config.json"

bp = Blueprint("config_api", __name__, url_prefix="/api")


def init_app(app: Flask) -> None:
    """Register the config routes and answer ConfigError in the API's error shape."""
    app.register_blueprint(bp)
    answer_as(app, ConfigError, lambda exc: 404 if isinstance(exc, NotFound) else 400)


def _store() -> ConfigStore:
    return services.config()


@bp.after_request
def _no_store(response: Response) -> Response:
    # Settings and exports may hold keys (EXPORT_INCLUDE_SECRETS): keep them out of caches.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/rules")
def get_rules():
    """Return the bounds and choices the page's inputs and own checks use, from where the server defines them."""
    return rules()


def rules() -> dict[str, Any]:
    """Return the limits of what the server accepts, each from the module that checks it."""
    low, high = COUNT
    return {
        "profile": {name: bounds.as_json() for name, bounds in LIMITS.items()},
        "key_pool_max": POOL_MAX,
        "batch": {"deliveries": list(DELIVERIES), "modes": list(BATCH_MODES), "batch_discount": BATCH_DISCOUNT.as_json(),
                  "batch_discount_default": BATCH_DISCOUNT_DEFAULT},
        "run_modes": list(RUN_MODES),
        "run": {"count": {"min": low, "max": high, "whole": True}},
        "save": SaveRule.limits(),
        "compare": {"sample": compare_api.SAMPLE.as_json(), "variants_min": compare_api.VARIANTS_MIN,
                    "variants_max": compare_api.VARIANTS_MAX, "name_max_chars": compare_api.NAME_MAX},
        "captions": {"caption_max_bytes": CAPTION_MAX_BYTES, "instruction_max_bytes": INSTRUCTION_MAX_BYTES,
                     "find_max_chars": captions_api.FIND_MAX_CHARS},
    }


@bp.get("/settings")
def get_settings():
    """Return the settings, key masked."""
    return _store().settings()


@bp.put("/settings")
def put_settings():
    """Apply a partial settings update; return the new settings, key masked."""
    return _store().update_settings(json_body())


@bp.get("/presets")
def get_presets():
    """Return every preset, keys masked."""
    return _store().presets()


@bp.put("/presets/<kind>/<name>")
def put_preset(kind: str, name: str):
    """Create or replace one preset."""
    stored = _store().put_preset(kind, name, json_body())
    return {"ok": True, "kind": kind, "name": stored}


@bp.post("/presets/<kind>/<name>/apply")
def apply_preset(kind: str, name: str):
    """Make a preset the stored settings, its key included; return the settings, key masked."""
    return _store().apply_preset(kind, name)


@bp.delete("/presets/<kind>/<name>")
def delete_preset(kind: str, name: str):
    """Delete one preset."""
    _store().delete_preset(kind, name)
    return {"ok": True}


@bp.post("/test-connection")
def test_connection():
    """List the upstream's models (GET …/models) with the stored profile plus the body's overrides."""
    overrides = json_body(required=False).get("api") or {}
    if not isinstance(overrides, dict):
        raise ApiError(say("config.api_not_object"))
    return services.engine().test_connection(_store().profile_with(overrides))


@bp.get("/config/export")
def export_config():
    """Download settings and presets as one JSON file (keys only when allowed)."""
    include_secrets = services.settings().export_include_secrets
    body = json.dumps(_store().export(include_secrets), indent=2, ensure_ascii=False) + "\n"
    response = current_app.response_class(body, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{EXPORT_FILENAME}"'
    return response


@bp.post("/config/import")
def import_config():
    """Import an export file without wiping a stored key."""
    return _store().import_config(json_body())


# -- saved prompts (on the server, no longer in the browser) -----------------------------------

@bp.get("/snippets")
def get_snippets():
    """Return every saved prompt: [{"name", "text"}], by name."""
    items = _store().snippets.all()
    return {"snippets": [{"name": name, "text": items[name]} for name in sorted(items, key=str.casefold)]}


@bp.put("/snippets/<name>")
def put_snippet(name: str):
    """Create or replace one saved prompt: {"text"}."""
    return {"ok": True, "name": _store().snippets.put(name, json_body().get("text"))}


@bp.post("/snippets/<name>/rename")
def rename_snippet(name: str):
    """Rename one saved prompt: {"name": new name}."""
    return {"ok": True, "name": _store().snippets.rename(name, json_body().get("name"))}


@bp.delete("/snippets/<name>")
def delete_snippet(name: str):
    """Delete one saved prompt."""
    _store().snippets.delete(name)
    return {"ok": True}


@bp.post("/snippets/migrate")
def migrate_snippets():
    """Take the saved prompts a page kept in its browser ({"snippets": {name: text}}), never losing one."""
    return {"ok": True, **_store().snippets.merge(checked_snippets(json_body().get("snippets")), replace=False)}
