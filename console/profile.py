"""The API profile: every field of DESIGN §5 with its default, validated from JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

API_MODES = ("auto", "chat_completions", "responses", "images")
TOKEN_FIELDS = ("auto", "max_tokens", "max_completion_tokens", "max_output_tokens", "none")
# How /images/edits receives the source: JSON `images[]` (grok2api G3), multipart field
# `image` (OpenAI SDK with one file, grok2api G1.6) or `image[]` (grok2api G2).
EDIT_FORMATS = ("multipart", "multipart_array", "json")
MASK = "••••••••"


class ProfileError(ValueError):
    """A profile field has a value that cannot be used."""


@dataclass
class ApiProfile:
    """One OpenAI-compatible upstream and how to call it."""

    api_url: str = ""
    api_key: str = ""
    model: str = ""
    api_mode: str = "auto"
    stream: bool = True
    system_prompt: str = ""
    temperature: float | None = None
    token_field: str = "auto"
    max_tokens: int | None = None
    n: int | None = None
    size: str = ""
    response_format: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 4
    max_retries: int = 2
    timeout_s: float = 300.0
    allow_private_api: bool = False
    allow_private_downloads: bool = False
    edit_format: str = "multipart"
    source_max_side: int = 0
    source_max_bytes: int = 0
    rewrite_result_host: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: "ApiProfile | None" = None) -> "ApiProfile":
        """Return `base` (or the defaults) updated from `data`; raise ProfileError on bad values."""
        if not isinstance(data, Mapping):
            raise ProfileError("the API profile must be a JSON object")
        values = asdict(base or cls())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProfileError(f"unknown API profile field(s): {', '.join(unknown)}")
        for name, value in data.items():
            values[name] = _CHECKS[name](name, value)
        return cls(**values)

    def to_dict(self, *, mask_key: bool = True) -> dict[str, Any]:
        """Return the profile as JSON-ready data, the key masked unless asked otherwise."""
        data = asdict(self)
        if mask_key:
            data["api_key"] = mask(self.api_key)
        return data


def mask(secret: str) -> str:
    """Return a fixed mask for a set secret and '' for an unset one."""
    return MASK if secret else ""


def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProfileError(f"{name} must be a string")
    return value.strip() if name in ("api_url", "model", "size", "response_format") else value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ProfileError(f"{name} must be true or false")
    return value


def _choice(options: tuple[str, ...]):
    def check(name: str, value: Any) -> str:
        if value not in options:
            raise ProfileError(f"{name} must be one of {', '.join(options)}; got {value!r}")
        return value

    return check


def _number(kind: type, low: float, high: float, optional: bool = False):
    def check(name: str, value: Any) -> Any:
        if value is None or value == "":
            if optional:
                return None
            raise ProfileError(f"{name} is required")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProfileError(f"{name} must be a number")
        if kind is int and value != int(value):
            raise ProfileError(f"{name} must be a whole number")
        if not low <= value <= high:
            raise ProfileError(f"{name} must be between {low:g} and {high:g}; got {value}")
        return kind(value)

    return check


def _headers(name: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ProfileError(f"{name} must be an object of header names to string values")
    return dict(value)


def _object(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProfileError(f"{name} must be a JSON object")
    return dict(value)


_CHECKS = {
    "api_url": _text,
    "api_key": _text,
    "model": _text,
    "api_mode": _choice(API_MODES),
    "stream": _flag,
    "system_prompt": _text,
    "temperature": _number(float, 0, 2, optional=True),
    "token_field": _choice(TOKEN_FIELDS),
    "max_tokens": _number(int, 1, 10_000_000, optional=True),
    "n": _number(int, 1, 10, optional=True),
    "size": _text,
    "response_format": _text,
    "extra_headers": _headers,
    "extra_body": _object,
    "concurrency": _number(int, 1, 64),
    "max_retries": _number(int, 0, 20),
    "timeout_s": _number(float, 1, 3600),
    "allow_private_api": _flag,
    "allow_private_downloads": _flag,
    "edit_format": _choice(EDIT_FORMATS),
    "source_max_side": _number(int, 0, 100_000),
    "source_max_bytes": _number(int, 0, 1 << 30),
    "rewrite_result_host": _flag,
}
