"""The JSON of every answer: a field holding a message gets `<field>_msg` beside it, its code and parameters.

The page says a message in its own language from that code (and falls back to the field's English
text), so nothing that builds an answer has to remember to add it: a Message anywhere in the answer
is found here, once, as the answer is written.
"""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from ..messages import Message


def annotated(value: Any) -> Any:
    """Return `value` with `<key>_msg` beside each dict key whose value is a Message or a list holding one."""
    kind = type(value)
    if kind is dict:
        extra: dict[str, Any] | None = None
        for key, item in value.items():
            kind = type(item)
            if kind is Message:
                extra = extra or {}
                extra[f"{key}_msg"] = item.as_json()
            elif kind is dict or kind is list:
                found = annotated(item)
                if found is not item:
                    extra = extra or {}
                    extra[key] = found
                if kind is list and any(type(entry) is Message for entry in item):
                    extra = extra or {}
                    extra[f"{key}_msg"] = [entry.as_json() if type(entry) is Message else None for entry in item]
        if extra is None:
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key] = extra.pop(key, item)
            if f"{key}_msg" in extra and f"{key}_msg" not in value:
                out[f"{key}_msg"] = extra.pop(f"{key}_msg")
        out.update(extra)
        return out
    if kind is list:
        changed = None
        for index, item in enumerate(value):
            if type(item) is dict or type(item) is list:
                found = annotated(item)
                if found is not item:
                    changed = changed or list(value)
                    changed[index] = found
        return changed if changed is not None else value
    return value


class MessageJSON(DefaultJSONProvider):
    """Flask's JSON, with each message's code and parameters beside its English text."""

    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return super().dumps(annotated(obj), **kwargs)
