"""Messages people read: each one a stable code and its parameters beside its English text.

The server speaks English (its log, the terminal panel, every `error` field), and says beside each
message what the page needs to say it in the page's own language: the message's code and the
parameters its words were filled from. The page keeps the translations in its string table (one
entry per code) and falls back to the English text for a code it does not know, so an older page
or a script reading `error` loses nothing.

A `Message` is a `str` (the English text), so it goes wherever a message went before: into an
exception, a log line, a database column. What carries its code further is `as_json` at the
edges: the web layer adds `<field>_msg: {"code", "params"}` beside each field holding a message,
and the store keeps that object in a column beside the text.

Each family of messages keeps its English words in its own module here (`CATALOG` joins them); the
codes are named `<family>.<name>` and never change meaning once released: a reworded message keeps
its code, a message that says something else gets a new one.
"""

from __future__ import annotations

import json
import string
from typing import Any, Callable, Iterable, Mapping

from . import config, engine, fields, review, saving, sources, upstream, web

FAMILIES = (config, engine, fields, review, saving, sources, upstream, web)

Template = str | Mapping[str, str]  # a text, or its plural forms {"one": …, "other": …} picked by `count`

_SEPARATOR = "; "  # between the items of a list parameter, in English


def _catalog(families: Iterable[Any]) -> dict[str, Template]:
    joined: dict[str, Template] = {}
    for family in families:
        prefix = family.__name__.rsplit(".", 1)[1] + "."
        for code, template in family.MESSAGES.items():
            if not code.startswith(prefix) or code in joined:
                raise RuntimeError(f"message code {code!r} must start with {prefix!r} and be unique")
            joined[code] = template
    return joined


CATALOG: dict[str, Template] = _catalog(FAMILIES)


class Message(str):
    """A message's English text, knowing the code and parameters it was made from."""

    code: str
    params: dict[str, Any]

    def __new__(cls, text: str, code: str, params: Mapping[str, Any]) -> "Message":
        message = super().__new__(cls, text)
        message.code = code
        message.params = dict(params)
        return message

    def as_json(self) -> dict[str, Any]:
        """Return {"code", "params"} as the page reads it (a parameter that is a message nests as one)."""
        return {"code": self.code, "params": {name: _param_json(value) for name, value in self.params.items()}}

    def mapped(self, change: Callable[[str], str]) -> "Message":
        """Return this message with `change` applied to its text and every text parameter (to redact a key)."""
        return Message(change(str(self)), self.code, {name: _mapped(value, change) for name, value in self.params.items()})

    def __reduce__(self):  # pickled (by the multiprocessing of a test or a tool) as what it is
        return (Message, (str(self), self.code, self.params))


class Said(list):
    """A list of JSON objects that already carry their messages' codes (`<field>_msg`): the web layer's
    walk, which adds them to every answer, passes over it (a 10,000-task listing is not walked twice)."""


def say(code: str, **params: Any) -> Message:
    """Return the message `code` in English, filled from `params` (which it keeps for the page).

    A parameter may be a plain value (shown as it is: a path, a number, an upstream's own words), a
    Message (said in the page's language too), or a list of them (joined: "a; b").
    """
    template = CATALOG[code]
    if not isinstance(template, str):
        template = template["one" if params.get("count") == 1 else "other"]
    shown = {name: _param_text(value) for name, value in params.items()}
    return Message(template.format(**shown), code, params)


def sized(size: int) -> str:
    """Return a byte count as messages name it: 67108864 → '64 MiB', 73400320 → '70 MiB', 900 → '900 bytes'."""
    value, unit = float(size), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    if unit == "bytes":
        return f"{size:,} bytes"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def placeholders(template: Template) -> set[str]:
    """Return the names a template fills ({count:,} counts as count), over all its plural forms."""
    forms = [template] if isinstance(template, str) else list(template.values())
    return {name.split(".")[0].split("[")[0] for form in forms
            for _, name, _, _ in string.Formatter().parse(form) if name}


def carried(exc: BaseException) -> Message | None:
    """Return the Message an exception was raised with, if it was raised with one."""
    message = getattr(exc, "message", None)
    if isinstance(message, Message):
        return message
    if exc.args and isinstance(exc.args[0], Message):
        return exc.args[0]
    return None


def told(exc: BaseException) -> str:
    """Return what an exception says: the Message it was raised with, else its text (to raise it on as another)."""
    return carried(exc) or str(exc)


def as_json(value: Any) -> dict[str, Any] | None:
    """Return {"code", "params"} of a Message; None for plain text (or nothing), which has no code."""
    return value.as_json() if isinstance(value, Message) else None


def stored(value: Any) -> str | None:
    """Return what the store keeps beside a message column: the JSON of its code and parameters, or None."""
    found = as_json(value)
    return json.dumps(found, ensure_ascii=False, separators=(",", ":")) if found is not None else None


def restored(text: str | None, kept: str | None) -> str | None:
    """Return a message read back from the store: a Message again when its code was kept beside it."""
    if text is None or not kept:
        return text
    try:
        found = json.loads(kept)
        return Message(text, found["code"], found.get("params") or {})
    except (ValueError, KeyError, TypeError):
        return text


def _mapped(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, Message):
        return value.mapped(change)
    if isinstance(value, str):
        return change(value)
    if isinstance(value, (list, tuple)):
        return [_mapped(item, change) for item in value]
    return value


def _param_text(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return _SEPARATOR.join(str(item) for item in value)
    return value


def _param_json(value: Any) -> Any:
    if isinstance(value, Message):
        return {**value.as_json(), "text": str(value)}
    if isinstance(value, (list, tuple)):
        return [_param_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _param_json(item) for key, item in value.items()}
    return value


from .chinese import in_chinese  # noqa: E402  (it says a Message, defined above, in Chinese)

__all__ = ["as_json", "carried", "CATALOG", "FAMILIES", "in_chinese", "Message", "placeholders", "restored", "Said",
           "say", "sized", "stored", "told"]
