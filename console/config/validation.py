"""Check settings and presets input: preset names, profiles, JSON objects and import documents."""

from __future__ import annotations

import unicodedata
from typing import Any, Mapping

from ..fields import FieldError, plain_json
from ..messages import say, told
from ..profile import ApiProfile, ProfileError
from ..scan import is_text

EXPORT_FORMAT = "image-batch-console-config"
EXPORT_VERSION = 1
KINDS = ("api", "save")
SETTINGS_SECTIONS = ("api", "save")
NAME_MAX = 100


class ConfigError(ValueError):
    """Bad settings/presets input; str(e) is a readable message (→ HTTP 400)."""


class NotFound(ConfigError):
    """The named preset does not exist (→ HTTP 404)."""


def _kind(kind: Any) -> str:
    if kind not in KINDS:
        raise ConfigError(say("config.preset_kind", kind=kind))
    return kind


def _preset_name(name: Any, where: str = "") -> str:
    if not isinstance(name, str):
        raise ConfigError(_at(where, say("config.preset_name_not_string")))
    name = name.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise ConfigError(_at(where, say("config.preset_name_length", limit=NAME_MAX)))
    if "/" in name or not is_text(name) or any(unicodedata.category(char) == "Cc" for char in name):
        raise ConfigError(_at(where, say("config.preset_name_chars", name=name)))
    return name


def _profile(data: Any, base: ApiProfile, stored: ApiProfile, *, empty_keeps: bool, where: str,
             fallback: ApiProfile | None = None) -> ApiProfile:
    """Validate `data` over `base`; a masked or absent secret (or empty, on import) keeps `stored`'s."""
    try:
        return ApiProfile.from_input(data, base, stored, empty_keeps=empty_keeps, fallback=fallback)
    except ProfileError as exc:
        raise ConfigError(_at(where, told(exc))) from None


def _at(where: str, message: str) -> str:
    """Prefix a message with where in the input it applies, when that is not obvious."""
    return say("config.at", where=where, problem=message) if where else message


def _json_object(value: Any, what: str) -> dict:
    """Return a deep copy of a JSON object; raise ConfigError for anything else."""
    if not isinstance(value, Mapping):
        raise ConfigError(say("config.not_object", field=what))
    try:
        return plain_json(value, what)
    except FieldError as exc:
        raise ConfigError(told(exc)) from None


def _is_json_object(value: Any) -> bool:
    try:
        _json_object(value, "")
    except ConfigError:
        return False
    return True


def _check_document(data: Any) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(say("config.import_not_object"))
    if data.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
        raise ConfigError(say("config.import_format", format=data["format"]))
    if data.get("version", EXPORT_VERSION) != EXPORT_VERSION:
        raise ConfigError(say("config.import_version", version=data["version"]))
    if "settings" not in data and "presets" not in data and "snippets" not in data:
        raise ConfigError(say("config.import_nothing"))


# Lenient checks of our own files: keep every good field, report the rest.


def _lenient_profile(data: Any) -> tuple[ApiProfile, list[str]]:
    """Return the profile built field by field from `data`, and the fields that were dropped."""
    if not isinstance(data, Mapping):
        return ApiProfile(), ["not a JSON object"]
    profile, problems = ApiProfile(), []
    for name, value in data.items():
        try:
            profile = ApiProfile.from_dict({name: value}, base=profile)
        except ProfileError as exc:
            problems.append(str(exc))
    return profile, problems


def _lenient_preset(kind: str, name: str, value: Any, problems: list[str]) -> tuple[str, Any] | None:
    """Return (name, preset) as far as it can be used, or None; append what was dropped to `problems`."""
    try:
        name = _preset_name(name)
    except ConfigError as exc:
        problems.append(f"{kind}: {exc}")
        return None
    if kind == "save":
        if _is_json_object(value):
            return name, value
        problems.append(f"save preset '{name}': not a JSON object")
        return None
    if not isinstance(value, Mapping):
        problems.append(f"api preset '{name}': not a JSON object")
        return None
    profile, bad = _lenient_profile(value)
    problems += [f"api preset '{name}': {text}" for text in bad]
    return name, profile
