"""Read the older console's API presets file (~/.image-batch-console/presets.json), whose exact format is unknown."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..profile import ApiProfile, ProfileError
from .validation import ConfigError, _preset_name

log = logging.getLogger(__name__)

LEGACY_MAX_BYTES = 16 * 1024 * 1024
PROFILE_FIELDS = frozenset(f.name for f in fields(ApiProfile))
# Field names the older console may have used; camelCase is converted first.
LEGACY_ALIASES = {"base_url": "api_url", "url": "api_url", "endpoint": "api_url", "api_base": "api_url",
                  "key": "api_key", "apikey": "api_key", "mode": "api_mode"}


def read_legacy_presets(path: Path) -> dict[str, ApiProfile]:
    """Return the usable presets of a legacy file by name; skip (and log) the others; raise on a bad file."""
    if not path.is_file():
        return {}
    if path.stat().st_size > LEGACY_MAX_BYTES:
        log.warning("legacy presets %s skipped: larger than %d bytes", path, LEGACY_MAX_BYTES)
        return {}
    imported: dict[str, ApiProfile] = {}
    for name, entry in _legacy_entries(json.loads(path.read_text(encoding="utf-8-sig"))):
        try:
            imported[_preset_name(name)] = ApiProfile.from_dict(_legacy_fields(entry))
        except (ConfigError, ProfileError) as exc:
            log.warning("legacy preset %r from %s skipped: %s", name, path, exc)
    return imported


def _legacy_entries(data: Any) -> list[tuple[Any, Any]]:
    """Return (name, entry) pairs from a dict of name → entry or a list of entries with a "name"."""
    for _ in range(3):  # unwrap {"presets": …}, {"api": …} or both
        wrapped = next((data[key] for key in ("presets", "api")
                        if isinstance(data, dict) and _is_collection(data.get(key))), None)
        if wrapped is None:
            break
        data = wrapped
    if isinstance(data, list):
        return [(item.get("name") if isinstance(item, dict) else None, item) for item in data]
    if isinstance(data, dict):
        return list(data.items())
    raise ConfigError("expected a JSON object or list of presets")


def _is_collection(value: Any) -> bool:
    # A wrapper's value is a list, or an object whose values are all objects (a single preset
    # named "api" has string values, so it is not mistaken for a wrapper).
    if isinstance(value, list):
        return True
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


def _legacy_fields(entry: Any) -> dict:
    """Map a legacy entry to ApiProfile fields: known names and aliases kept, the rest dropped."""
    if not isinstance(entry, dict):
        raise ConfigError("not a JSON object")
    mapped: dict[str, Any] = {}
    for key, value in entry.items():
        snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", str(key)).lower()
        name = LEGACY_ALIASES.get(snake, snake)
        if name in PROFILE_FIELDS and (name not in mapped or key == name):
            mapped[name] = value
    return mapped
