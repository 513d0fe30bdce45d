"""Saved prompts ("snippets"): name → text, kept on the server in snippets.json.

They used to live in the browser's localStorage, where another browser (or a cleared profile)
never saw them; now they are exported and imported with the config like presets.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from ..messages import say
from ..scan import is_text
from .validation import ConfigError, NotFound, _preset_name

log = logging.getLogger(__name__)
TEXT_MAX = 20_000
COUNT_MAX = 1000


def checked_text(text: Any, where: str) -> str:
    """Return a snippet's text; ConfigError unless it is non-blank text of at most TEXT_MAX characters."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(say("config.prompt_blank", where=where))
    if not is_text(text):
        raise ConfigError(say("config.prompt_surrogate", where=where))
    if len(text) > TEXT_MAX:
        raise ConfigError(say("config.prompt_too_long", where=where, limit=TEXT_MAX))
    return text


def checked_snippets(data: Any, where: str = "snippets") -> dict[str, str]:
    """Return {name: text} from an import or a migration; ConfigError names the bad entry."""
    if not isinstance(data, Mapping):
        raise ConfigError(say("config.snippets_not_object", where=where))
    if len(data) > COUNT_MAX:
        raise ConfigError(say("config.snippets_too_many", where=where, count=len(data), limit=COUNT_MAX))
    checked: dict[str, str] = {}
    for raw_name, text in data.items():
        name = _preset_name(raw_name, where)
        checked[name] = checked_text(text, f"{where}['{name}']")
    return checked


class Snippets:
    """The saved prompts, in memory and in one JSON file written atomically."""

    def __init__(self, path: Path, read: Callable[[Path], dict], write: Callable[[Path, Any], None]) -> None:
        self._path = path
        self._read, self._write_json = read, write
        self._lock = threading.RLock()
        self._items = self._load()

    def all(self) -> dict[str, str]:
        """Return every saved prompt, by name."""
        with self._lock:
            return dict(self._items)

    def put(self, name: str, text: Any) -> str:
        """Create or replace one saved prompt; return its name as stored (trimmed)."""
        name, text = _preset_name(name), checked_text(text, "text")
        with self._lock:
            if name not in self._items and len(self._items) >= COUNT_MAX:
                raise ConfigError(say("config.snippets_full", limit=COUNT_MAX))
            self._save({**self._items, name: text})
        return name

    def rename(self, name: str, new_name: Any) -> str:
        """Give a saved prompt another name; ConfigError when that name is taken."""
        name, new_name = _preset_name(name), _preset_name(new_name, "name")
        with self._lock:
            if name not in self._items:
                raise NotFound(say("config.no_snippet", name=name))
            if new_name != name and new_name in self._items:
                raise ConfigError(say("config.snippet_exists", name=new_name))
            items = {(new_name if key == name else key): text for key, text in self._items.items()}
            self._save(items)
        return new_name

    def delete(self, name: str) -> None:
        """Delete one saved prompt; NotFound when there is none by that name."""
        name = _preset_name(name)
        with self._lock:
            if name not in self._items:
                raise NotFound(say("config.no_snippet", name=name))
            self._save({key: text for key, text in self._items.items() if key != name})

    def merge(self, incoming: dict[str, str], *, replace: bool) -> dict[str, int]:
        """Add checked snippets: `replace` overwrites same names (an import); otherwise a different
        text under a taken name is kept as `name (2)` (the browser's migration never loses one)."""
        with self._lock:
            items, added, same = dict(self._items), 0, 0
            for name, text in incoming.items():
                if items.get(name) == text:
                    same += 1
                    continue
                if name in items and not replace:
                    name = next(f"{name} ({n})" for n in range(2, 10_000) if f"{name} ({n})" not in items)
                items[name] = text
                added += 1
            if len(items) > COUNT_MAX:
                raise ConfigError(say("config.snippets_full", limit=COUNT_MAX))
            if added:
                self._save(items)
        return {"added": added, "unchanged": same}

    def _save(self, items: dict[str, str]) -> None:
        self._write_json(self._path, {"version": 1, "snippets": items})
        self._items = items  # memory follows the file only once it is written

    def _load(self) -> dict[str, str]:
        """Read the file (an unusable one is set aside by `read`); drop, and log, entries that cannot be used."""
        data = self._read(self._path)
        entries = data.get("snippets", {})
        items: dict[str, str] = {}
        for name, text in (entries.items() if isinstance(entries, dict) else []):
            try:
                items.update(checked_snippets({name: text}))
            except ConfigError as exc:
                log.warning("%s: dropped a saved prompt that cannot be used: %s", self._path, exc)
        return items
