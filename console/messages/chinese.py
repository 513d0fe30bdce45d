"""Say a message in Chinese on the server, for what the server writes itself (a run's table export).

The Chinese lives in the page's tables (static/js/messages/*.js), the one home of every translation;
this reads them as the page does and fills a message the way the page's `message()` does: nested
messages said the same way, lists joined with "；", numbers with thousands separators. A message
whose code has no Chinese is its English text.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from ..resources import static_dir
from . import Message

# A placeholder as the page fills it: {name} or {name:spec}.
PLACEHOLDER = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@lru_cache(maxsize=1)
def page_table() -> dict[str, Any]:
    """Return the page's Chinese of every server message code (each file: JSON after the line `export default`)."""
    table: dict[str, Any] = {}
    for path in sorted((static_dir() / "js" / "messages").glob("*.js")):
        try:
            table.update(json.loads(path.read_text(encoding="utf-8").split("\nexport default", 1)[1].strip().rstrip(";")))
        except (OSError, IndexError, ValueError):
            continue  # a table that cannot be read leaves its messages in English
    return table


def in_chinese(message: Message) -> str:
    """Return `message` in Chinese as the page says it; its English text when the page has no Chinese for it."""
    return _said({**message.as_json(), "text": str(message)})


def _said(found: dict[str, Any]) -> str:
    entry = page_table().get(found.get("code", ""))
    if entry is None:
        return str(found.get("text") or "")
    form = entry if isinstance(entry, str) else entry.get("other", "")  # Chinese has one plural form
    params = found.get("params") or {}
    return PLACEHOLDER.sub(lambda m: _shown(params[m[1]]) if m[1] in params else m[0], form)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "；".join(_shown(item) for item in value)
    if isinstance(value, dict) and value.get("code"):
        return _said(value)
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)
