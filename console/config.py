"""Keep the settings and presets JSON files: validation, key masking, atomic writes, import and export."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import threading
import time
import unicodedata
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

from . import atomic
from .profile import ApiProfile, ProfileError

log = logging.getLogger(__name__)

EXPORT_FORMAT = "image-batch-console-config"
EXPORT_VERSION = 1
KINDS = ("api", "save")
SETTINGS_SECTIONS = ("api", "save")
NAME_MAX = 100
LEGACY_MAX_BYTES = 16 * 1024 * 1024
LEGACY_MARKER = "legacy-import.json"
PROFILE_FIELDS = frozenset(f.name for f in fields(ApiProfile))
# Field names the older console may have used (DESIGN §6); camelCase is converted first.
LEGACY_ALIASES = {"base_url": "api_url", "url": "api_url", "endpoint": "api_url", "api_base": "api_url",
                  "key": "api_key", "apikey": "api_key", "mode": "api_mode"}


class ConfigError(ValueError):
    """Bad settings/presets input; str(e) is a readable message (→ HTTP 400)."""


class NotFound(ConfigError):
    """The named preset does not exist (→ HTTP 404)."""


class ConfigStore:
    """The user's settings and presets, held in memory and mirrored to two JSON files."""

    def __init__(self, data_dir: Path, legacy_presets: Path | None = None) -> None:
        self._dir = Path(data_dir)
        self._settings_path = self._dir / "settings.json"
        self._presets_path = self._dir / "presets.json"
        self._legacy = Path(legacy_presets) if legacy_presets else None
        self._lock = threading.RLock()
        self._api, self._save = self._load_settings()
        self._presets = self._load_presets()

    # Reading.

    def settings(self, *, masked: bool = True) -> dict:
        """Return {"api": profile, "save": rules}, the key masked unless asked otherwise."""
        with self._lock:
            return {"api": self._api.to_dict(mask_key=masked), "save": copy.deepcopy(self._save)}

    def profile(self) -> ApiProfile:
        """Return a copy of the stored API profile, key included (for the engine)."""
        with self._lock:
            return copy.deepcopy(self._api)

    def presets(self, *, masked: bool = True) -> dict:
        """Return {"api": {name: profile}, "save": {name: rules}}, keys masked unless asked otherwise."""
        with self._lock:
            return {"api": {name: p.to_dict(mask_key=masked) for name, p in self._presets["api"].items()},
                    "save": copy.deepcopy(self._presets["save"])}

    def profile_with(self, overrides: Any) -> ApiProfile:
        """Return the stored profile with a request's overrides applied (a masked or absent key keeps the stored one)."""
        with self._lock:
            return _profile(overrides, self._api, self._api.api_key, empty_keeps=False, where="")

    def export(self, include_secrets: bool) -> dict:
        """Return everything as one export document; keys are blank unless `include_secrets`."""
        with self._lock:
            settings, presets = self.settings(masked=False), self.presets(masked=False)
        if not include_secrets:
            for profile in [settings["api"], *presets["api"].values()]:
                profile["api_key"] = ""
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "settings": settings, "presets": presets}

    # Changing.

    def update_settings(self, patch: dict) -> dict:
        """Apply a partial {"api": …, "save": …}; return the new settings, masked."""
        with self._lock:
            api, save = self._patched_settings(patch, empty_keeps=False, where="")
            self._write_settings(api, save)
            return self.settings()

    def put_preset(self, kind: str, name: str, data: dict) -> str:
        """Create or replace one preset; return its name as stored (trimmed)."""
        kind, name = _kind(kind), _preset_name(name)
        with self._lock:
            presets = self._copy_presets()
            presets[kind][name] = self._preset_value(kind, name, data, empty_keeps=False, where="")
            self._write_presets(presets)
            return name

    def apply_preset(self, kind: str, name: str) -> dict:
        """Make a preset the stored settings (an API preset's key included); return the settings, masked."""
        kind, name = _kind(kind), _preset_name(name)
        with self._lock:
            preset = self._presets[kind].get(name)
            if preset is None:
                raise NotFound(f"there is no {kind} preset named '{name}'")
            if kind == "api":
                self._write_settings(copy.deepcopy(preset), self._save)
            else:
                self._write_settings(self._api, copy.deepcopy(preset))
            return self.settings()

    def delete_preset(self, kind: str, name: str) -> None:
        """Delete one preset; raise NotFound when there is none by that name."""
        kind, name = _kind(kind), _preset_name(name)
        with self._lock:
            if name not in self._presets[kind]:
                raise NotFound(f"there is no {kind} preset named '{name}'")
            presets = self._copy_presets()
            del presets[kind][name]
            self._write_presets(presets)

    def import_config(self, data: dict) -> dict:
        """Validate a whole export document, then apply it; return what was imported."""
        _check_document(data)
        with self._lock:
            settings = presets = None
            if "settings" in data:
                settings = self._patched_settings(data["settings"], empty_keeps=True, where="settings")
            if "presets" in data:
                presets = self._imported_presets(data["presets"])
            # Nothing is written until every part has been validated.
            if settings is not None:
                self._write_settings(*settings)
            if presets is not None:
                self._write_presets(presets)
        section = data.get("presets") or {}
        return {"ok": True, "settings": settings is not None,
                "api_presets": len(section.get("api") or {}), "save_presets": len(section.get("save") or {})}

    def import_legacy(self) -> int:
        """Import the older console's API presets once, when we have none; return how many."""
        if self._legacy is None or (self._dir / LEGACY_MARKER).exists():
            return 0
        with self._lock:
            if self._presets["api"]:
                return 0
            try:
                return self._import_legacy_file(self._legacy)
            except Exception:  # a broken legacy file must never stop the server from starting
                log.warning("could not import legacy presets from %s", self._legacy, exc_info=True)
                return 0

    # Validation helpers (callers hold the lock).

    def _patched_settings(self, patch: Any, *, empty_keeps: bool, where: str) -> tuple[ApiProfile, dict]:
        if not isinstance(patch, Mapping):
            raise ConfigError(_at(where, "expected a JSON object with api and/or save"))
        unknown = sorted(set(patch) - set(SETTINGS_SECTIONS))
        if unknown:
            raise ConfigError(_at(where, f"unknown section(s): {', '.join(unknown)} (expected api, save)"))
        api = self._api
        if "api" in patch:
            api = _profile(patch["api"], self._api, self._api.api_key, empty_keeps=empty_keeps,
                           where=where and f"{where}.api")
        save = self._save
        if "save" in patch:
            save = {**self._save, **_json_object(patch["save"], f"{where}.save" if where else "save")}
        return api, save

    def _preset_value(self, kind: str, name: str, data: Any, *, empty_keeps: bool, where: str) -> Any:
        if kind == "save":
            return _json_object(data, where or f"save preset '{name}'")
        stored = self._presets["api"].get(name)
        # A masked or absent key keeps the preset's own key; a new preset saved from the page
        # takes the key the form stands for, the stored settings' one. An import never borrows it.
        stored_key = stored.api_key if stored else ("" if empty_keeps else self._api.api_key)
        return _profile(data, ApiProfile(), stored_key, empty_keeps=empty_keeps, where=where)

    def _imported_presets(self, section: Any) -> dict:
        if not isinstance(section, Mapping):
            raise ConfigError("presets: expected a JSON object with api and/or save")
        unknown = sorted(set(section) - set(KINDS))
        if unknown:
            raise ConfigError(f"presets: unknown kind(s): {', '.join(unknown)} (expected api, save)")
        presets = self._copy_presets()
        for kind in KINDS:
            entries = section.get(kind) or {}
            if not isinstance(entries, Mapping):
                raise ConfigError(f"presets.{kind}: expected a JSON object of name to preset")
            for raw_name, value in entries.items():
                name = _preset_name(raw_name, f"presets.{kind}")
                where = f"presets.{kind}['{name}']"
                presets[kind][name] = self._preset_value(kind, name, value, empty_keeps=True, where=where)
        return presets

    def _copy_presets(self) -> dict:
        return {kind: dict(entries) for kind, entries in self._presets.items()}

    # Files.

    def _write_settings(self, api: ApiProfile, save: dict) -> None:
        _write_json(self._settings_path, _settings_document(api, save))
        self._api, self._save = api, save  # memory follows the file only once it is written

    def _write_presets(self, presets: dict) -> None:
        _write_json(self._presets_path, _presets_document(presets))
        self._presets = presets

    def _load_settings(self) -> tuple[ApiProfile, dict]:
        data, problems = _read_object(self._settings_path), []
        api, bad = _lenient_profile(data.get("api", {}))
        problems += [f"api: {text}" for text in bad]
        save = data.get("save", {})
        if not _is_json_object(save):
            problems.append("save: not a JSON object")
            save = {}
        if problems:
            _repair(self._settings_path, problems, _settings_document(api, save))
        return api, save

    def _load_presets(self) -> dict:
        data, problems = _read_object(self._presets_path), []
        presets: dict[str, dict] = {"api": {}, "save": {}}
        for kind in KINDS:
            entries = data.get(kind, {})
            if not isinstance(entries, dict):
                problems.append(f"{kind}: not a JSON object")
                continue
            for name, value in entries.items():
                loaded = _lenient_preset(kind, name, value, problems)
                if loaded is not None:
                    presets[kind][loaded[0]] = loaded[1]
        if problems:
            _repair(self._presets_path, problems, _presets_document(presets))
        return presets

    def _import_legacy_file(self, path: Path) -> int:
        if not path.is_file():
            return 0
        if path.stat().st_size > LEGACY_MAX_BYTES:
            log.warning("legacy presets %s skipped: larger than %d bytes", path, LEGACY_MAX_BYTES)
            return 0
        imported: dict[str, ApiProfile] = {}
        for name, entry in _legacy_entries(json.loads(path.read_text(encoding="utf-8-sig"))):
            try:
                imported[_preset_name(name)] = ApiProfile.from_dict(_legacy_fields(entry))
            except (ConfigError, ProfileError) as exc:
                log.warning("legacy preset %r from %s skipped: %s", name, path, exc)
        if not imported:
            return 0
        presets = self._copy_presets()
        presets["api"].update(imported)
        self._write_presets(presets)
        # Recorded so that deleting every preset later does not bring the old ones back.
        _write_json(self._dir / LEGACY_MARKER, {"source": str(path), "imported": sorted(imported),
                                                "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        log.info("imported %d API preset(s) from %s", len(imported), path)
        return len(imported)


# Validation.


def _kind(kind: Any) -> str:
    if kind not in KINDS:
        raise ConfigError(f"preset kind must be 'api' or 'save', got '{kind}'")
    return kind


def _preset_name(name: Any, where: str = "") -> str:
    if not isinstance(name, str):
        raise ConfigError(_at(where, "a preset name must be a string"))
    name = name.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise ConfigError(_at(where, f"a preset name must be 1-{NAME_MAX} characters long"))
    if "/" in name or any(unicodedata.category(char) == "Cc" for char in name):
        raise ConfigError(_at(where, f"a preset name must not contain '/' or control characters: {name!r}"))
    return name


def _profile(data: Any, base: ApiProfile, stored_key: str, *, empty_keeps: bool, where: str) -> ApiProfile:
    """Validate `data` over `base`; a masked or absent key (or empty, on import) keeps `stored_key`."""
    try:
        return ApiProfile.from_input(data, base, stored_key, empty_keeps=empty_keeps)
    except ProfileError as exc:
        raise ConfigError(_at(where, str(exc))) from None


def _at(where: str, message: str) -> str:
    """Prefix a message with where in the input it applies, when that is not obvious."""
    return f"{where}: {message}" if where else message


def _json_object(value: Any, what: str) -> dict:
    """Return a deep copy of a JSON object; raise ConfigError for anything else."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a JSON object")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} is not plain JSON: {exc}") from None


def _is_json_object(value: Any) -> bool:
    try:
        _json_object(value, "")
    except ConfigError:
        return False
    return True


def _check_document(data: Any) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError("the import must be a JSON object")
    if data.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
        raise ConfigError(f"not an Image Batch Console config export (format {data['format']!r})")
    if data.get("version", EXPORT_VERSION) != EXPORT_VERSION:
        raise ConfigError(f"unsupported config version {data['version']!r}; this console reads version 1")
    if "settings" not in data and "presets" not in data:
        raise ConfigError('nothing to import: expected "settings" and/or "presets"')


# Lenient loading of our own files: keep every good field, report the rest.


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


# The older console's presets file (DESIGN §6); its exact format is unknown.


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


# Files.


def _settings_document(api: ApiProfile, save: dict) -> dict:
    return {"version": 1, "api": api.to_dict(mask_key=False), "save": save}


def _presets_document(presets: dict) -> dict:
    api = {name: profile.to_dict(mask_key=False) for name, profile in presets["api"].items()}
    return {"version": 1, "api": api, "save": presets["save"]}


def _read_object(path: Path) -> dict:
    """Return the JSON object stored in `path`, {} when missing; set an unusable file aside."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        _set_aside(path, f"unreadable: {exc}")
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        _set_aside(path, f"invalid JSON: {exc}")
        return {}
    if not isinstance(data, dict):
        _set_aside(path, "not a JSON object")
        return {}
    return data


def _set_aside(path: Path, reason: str) -> None:
    """Move a bad file to `<name>.corrupt-<timestamp>` so a later write cannot destroy it."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for number in range(1, 1000):
        if not aside.exists():
            break
        aside = aside.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{number}")
    try:
        os.replace(path, aside)
        if aside.is_file():
            os.chmod(aside, 0o600)  # it may hold API keys
    except OSError as exc:
        log.warning("%s is %s and could not be moved aside (%s); using defaults", path, reason, exc)
        return
    log.warning("%s is %s; kept it as %s and started from defaults", path, reason, aside.name)


def _repair(path: Path, problems: list[str], cleaned: dict) -> None:
    """Keep the original aside and write the cleaned data, so the good parts survive."""
    log.warning("%s: dropped what could not be used: %s", path, "; ".join(problems))
    _set_aside(path, "partly unusable")
    try:
        _write_json(path, cleaned)
    except OSError as exc:
        log.warning("could not rewrite %s: %s", path, exc)


def _write_json(path: Path, data: Any) -> None:
    """Write `data` to `path` atomically, readable by the owner only (it may hold API keys)."""
    body = (json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    atomic.write_bytes(path, body, durable_folder=True)
