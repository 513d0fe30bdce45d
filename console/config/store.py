"""Hold settings and presets in memory and in two JSON files, written atomically and repaired when broken."""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from .. import atomic
from ..messages import say, told
from ..profile import ApiProfile
from ..saving import RuleError, SaveRule
from .legacy import read_legacy_presets
from .snippets import Snippets, checked_snippets
from .validation import (
    EXPORT_FORMAT, EXPORT_VERSION, KINDS, SETTINGS_SECTIONS, ConfigError, NotFound, _at, _check_document,
    _is_json_object, _json_object, _kind, _lenient_preset, _lenient_profile, _preset_name, _profile,
)

log = logging.getLogger(__name__)

LEGACY_MARKER = "legacy-import.json"

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
        self.snippets = Snippets(self._dir / "snippets.json", _read_object, _write_json)  # kept on the server, not in the browser

    # Reading.

    def settings(self, *, masked: bool = True) -> dict:
        """Return {"api": profile, "save": rules}, secrets masked unless asked otherwise."""
        with self._lock:
            return {"api": self._api.to_dict(mask_key=masked), "save": copy.deepcopy(self._save)}

    def profile(self) -> ApiProfile:
        """Return a copy of the stored API profile, key included (for the engine)."""
        with self._lock:
            return copy.deepcopy(self._api)

    def presets(self, *, masked: bool = True) -> dict:
        """Return {"api": {name: profile}, "save": {name: rules}}, secrets masked unless asked otherwise."""
        with self._lock:
            return {"api": {name: p.to_dict(mask_key=masked) for name, p in self._presets["api"].items()},
                    "save": copy.deepcopy(self._presets["save"])}

    def profile_with(self, overrides: Any) -> ApiProfile:
        """Return the stored profile with a request's overrides applied (a masked or absent secret keeps the stored one)."""
        with self._lock:
            return _profile(overrides, self._api, self._api, empty_keeps=False, where="")

    def preset_profile_with(self, name: str, overrides: Any) -> ApiProfile:
        """Return an API preset's profile (its stored key included) with a request's overrides applied;
        NotFound when there is no such preset."""
        name = _preset_name(name)
        with self._lock:
            preset = self._presets["api"].get(name)
            if preset is None:
                raise NotFound(say("config.no_preset", kind="api", name=name))
            return _profile(overrides or {}, preset, preset, empty_keeps=False, where="")

    def export(self, include_secrets: bool) -> dict:
        """Return everything as one export document; secrets (keys, credential headers, URL query
        credentials) are blank unless `include_secrets`."""
        blank = not include_secrets
        with self._lock:
            settings = {"api": self._api.to_dict(mask_key=False, blank_secrets=blank), "save": copy.deepcopy(self._save)}
            presets = {"api": {name: p.to_dict(mask_key=False, blank_secrets=blank)
                               for name, p in self._presets["api"].items()},
                       "save": copy.deepcopy(self._presets["save"])}
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "settings": settings, "presets": presets,
                "snippets": self.snippets.all()}

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
                raise NotFound(say("config.no_preset", kind=kind, name=name))
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
                raise NotFound(say("config.no_preset", kind=kind, name=name))
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
            snippets = checked_snippets(data["snippets"]) if data.get("snippets") is not None else {}
            # Nothing is written until every part has been validated.
            if settings is not None:
                self._write_settings(*settings)
            if presets is not None:
                self._write_presets(presets)
            if snippets:
                self.snippets.merge(snippets, replace=True)
        section = data.get("presets") or {}
        return {"ok": True, "settings": settings is not None,
                "api_presets": len(section.get("api") or {}), "save_presets": len(section.get("save") or {}),
                "snippets": len(snippets)}

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
            raise ConfigError(_at(where, say("config.settings_not_object")))
        unknown = sorted(set(patch) - set(SETTINGS_SECTIONS))
        if unknown:
            raise ConfigError(_at(where, say("config.settings_unknown", names=", ".join(unknown))))
        api = self._api
        if "api" in patch:
            api = _profile(patch["api"], self._api, self._api, empty_keeps=empty_keeps,
                           where=where and f"{where}.api")
        save = self._save
        if "save" in patch:
            save = {**self._save, **_json_object(patch["save"], f"{where}.save" if where else "save")}
        return api, save

    def _preset_value(self, kind: str, name: str, data: Any, *, empty_keeps: bool, where: str) -> Any:
        if kind == "save":
            return _save_rule(data, where or say("config.save_preset_where", name=name))
        stored = self._presets["api"].get(name)
        # A masked or absent key keeps the preset's own key; a new preset saved from the page
        # takes the key the form stands for, the stored settings' one. An import never borrows it.
        keys_of = stored or (ApiProfile() if empty_keeps else self._api)
        # The form shows the settings: a masked header or URL credential it sends over an existing
        # preset may stand for the settings' value.
        fallback = None if empty_keeps else self._api
        return _profile(data, ApiProfile(), keys_of, empty_keeps=empty_keeps, where=where, fallback=fallback)

    def _imported_presets(self, section: Any) -> dict:
        if not isinstance(section, Mapping):
            raise ConfigError(say("config.presets_not_object"))
        unknown = sorted(set(section) - set(KINDS))
        if unknown:
            raise ConfigError(say("config.presets_unknown", names=", ".join(unknown)))
        presets = self._copy_presets()
        for kind in KINDS:
            entries = section.get(kind) or {}
            if not isinstance(entries, Mapping):
                raise ConfigError(say("config.presets_kind_not_object", kind=kind))
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
        imported = read_legacy_presets(path)
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


def _save_rule(data: Any, where: str) -> dict:
    """Return a save preset as stored, checked as a save would check it (its output folder may be empty)."""
    if isinstance(data, Mapping):  # checked first, so a bad field is named rather than only the preset
        try:
            SaveRule.check_kept(data)
        except RuleError as exc:
            raise ConfigError(_at(where, told(exc))) from None
    return _json_object(data, where)


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
