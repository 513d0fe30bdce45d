"""Check one input field with the small vocabulary every door shares: profiles, save rules, routes and config.

Each check takes the value and the field's name as messages show it (`quoted("pilot")` for a body
field, a bare `concurrency` for a profile's), returns the value as the caller keeps it, and raises
FieldError with a readable message naming the field. Callers turn FieldError into their own
domain error, or let the web layer answer it as a 400.
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

from .messages import say
from .scan import is_text, shown

SHOWN_CHARS = 80  # of a bad value quoted in a message


class FieldError(ValueError):
    """A field has a value that cannot be used; str(e) names the field and says what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Range(NamedTuple):
    """The bounds of a number field, inclusive; `whole` for whole numbers. Served to the page as min/max."""

    low: float
    high: float | None
    whole: bool = False

    def check(self, value: Any, name: str, *, optional: bool = False, meaning: str = "") -> Any:
        """Return `value` within the bounds (an int when whole, None when optional and empty); FieldError otherwise."""
        return number(value, name, self, optional=optional, meaning=meaning)

    def as_json(self) -> dict[str, Any]:
        """Return the bounds as the page's number inputs take them (`max` null when there is none)."""
        return {"min": self.low, "max": self.high, "whole": self.whole}


def quoted(name: str) -> str:
    """Return a body field's name as route and rule messages show it: 'name'."""
    return f"'{name}'"


def plain(number: float) -> str:
    """Return a number as people write it: 1073741824, not 1.07374e+09; 0.5; 1e+30 only when huge."""
    if math.isfinite(number) and float(number).is_integer() and abs(number) < 1e16:
        return str(int(number))
    return f"{number:g}"


def kib(size: int) -> str:
    """Return a byte limit as messages name it: 8192 → '8 KiB'."""
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size:,} bytes"


def flag(value: Any, name: str, default: bool | None = None) -> bool:
    """Return a true/false field; an absent one is `default` when there is one."""
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        raise FieldError(name, say("fields.not_flag", field=name))
    return value


def choice(value: Any, name: str, options: tuple[str, ...], default: str | None = None) -> str:
    """Return one of `options`; an absent or empty one is `default` when there is one."""
    if value in (None, "") and default is not None:
        return default
    if value not in options:
        shown = value[:SHOWN_CHARS] if isinstance(value, str) else value
        raise FieldError(name, say("fields.not_choice", field=name, options=", ".join(options), got=repr(shown)))
    return value


def number(value: Any, name: str, bounds: Range, *, optional: bool = False, meaning: str = "") -> Any:
    """Return a number within `bounds` (an int when whole), or None for an empty optional one.

    With `meaning` ("a whole number of images to compare, from 1 to 50") every failure says that,
    with the value given; without it the message says which step failed.
    """
    if value is None or value == "":
        if optional:
            return None
        raise FieldError(name, say("fields.missing_meaning", field=name, meaning=meaning) if meaning
                         else say("fields.missing", field=name))
    try:
        return _in_range(value, name, bounds)
    except FieldError:
        if meaning:
            raise FieldError(name, say("fields.bad_meaning", field=name, meaning=meaning,
                                       got=repr(value)[:40])) from None
        raise


def _in_range(value: Any, name: str, bounds: Range) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(name, say("fields.not_number", field=name))
    if bounds.whole and not (isinstance(value, int) or (math.isfinite(value) and value.is_integer())):
        raise FieldError(name, say("fields.not_whole", field=name))
    low, high = bounds.low, bounds.high
    if not (low <= value and (high is None or value <= high)):
        if high is None:
            raise FieldError(name, say("fields.below", field=name, low=plain(low), got=plain(value)))
        raise FieldError(name, say("fields.outside", field=name, low=plain(low), high=plain(high), got=plain(value)))
    return int(value) if bounds.whole else float(value)


def text(value: Any, name: str, *, default: str = "", max_bytes: int | None = None,
         max_chars: int | None = None) -> str:
    """Return a text field (an absent one is `default`): a string of valid text within the limits given."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise FieldError(name, say("fields.not_string", field=name))
    if not is_text(value):
        raise FieldError(name, say("fields.surrogate", field=name, shown=shown(value)[:200]))
    if max_chars is not None and len(value) > max_chars:
        raise FieldError(name, say("fields.too_many_chars", field=name, limit=max_chars, size=len(value)))
    if max_bytes is not None:
        size = len(value.encode("utf-8"))
        if size > max_bytes:
            raise FieldError(name, say("fields.too_many_bytes", field=name, limit=kib(max_bytes), size=size))
    return value


def plain_json(value: Any, name: str) -> Any:
    """Return a copy of JSON `value` that can be sent and stored: no NaN or Infinity, no lone surrogate in a string."""
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
        encoded.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError(name, say("fields.surrogate_bare", field=name)) from None
    except (TypeError, ValueError) as exc:
        raise FieldError(name, say("fields.not_json", field=name, reason=str(exc))) from None
    return json.loads(encoded)
