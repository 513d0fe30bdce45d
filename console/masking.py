"""Tell which header and URL query values are secrets, mask them, and find the stored value a mask stands for.

The API key is one secret among others: an `Authorization` or `api-key` header in a profile's
extra headers and a `?key=` in its API URL are credentials too. They are masked wherever the
console shows a profile, blanked in exports without secrets, redacted in logs, and a mask sent
back stands for the value stored behind it, never for itself.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote_plus

MASK = "••••••••"
MASK_CHAR = MASK[0]
HINT_MIN = 16  # a secret this long shows its last 4 characters in its mask, which tells keys apart
# A header is a credential when its name holds one of these (case-blind): Authorization,
# Proxy-Authorization, api-key (Azure), x-api-key, x-goog-api-key, X-Auth-Token, Cookie, …
SECRET_HEADER_PARTS = ("authorization", "api-key", "api_key", "apikey", "token", "cookie", "secret", "password")
# A URL query parameter is a credential when its name is one of these (case-blind): Gemini's
# documented `?key=`, and the names other gateways use.
SECRET_PARAMS = frozenset({"key", "api_key", "api-key", "apikey", "x-goog-api-key", "access_token", "token",
                           "client_secret"})
# "Bearer abc…" keeps its scheme in the mask ("Bearer ••••••••wxyz"): the person sees the form is right.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9_-]*[ \t]+)(\S.*)", re.DOTALL)
REDACTED = "[redacted]"
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")
# A credential in a URL's query (`?key=…`), wherever a URL is quoted: an answer, a redirect, an error.
_QUERY_SECRET = re.compile(r"(?i)([?&](?:" + "|".join(map(re.escape, sorted(SECRET_PARAMS))) + r")=)[^&#\s\"'<>]+")


def mask(secret: str) -> str:
    """Return a fixed mask for a set secret and '' for an unset one."""
    return MASK if secret else ""


def hint_mask(secret: str) -> str:
    """Return the fixed mask and, for a secret long enough that it gives little away, its last four
    characters, so a person can tell secrets apart (`••••••••Q7xZ`); '' for an unset one."""
    if not secret:
        return ""
    return MASK + secret[-4:] if len(secret) >= HINT_MIN else MASK


def is_masked(value: Any) -> bool:
    """Return True for the mask (any run of '•' with surrounding space), which stands for a stored key."""
    return isinstance(value, str) and bool(value.strip()) and set(value.strip()) == {MASK_CHAR}


def holds_mask(value: Any) -> bool:
    """Return True when a text holds a mask character: it stands for a stored secret, it is not one."""
    return isinstance(value, str) and MASK_CHAR in value


def is_secret_header(name: str) -> bool:
    """Return True when a header of this name carries a credential."""
    lowered = name.strip().lower()
    return any(part in lowered for part in SECRET_HEADER_PARTS)


def is_secret_param(name: str) -> bool:
    """Return True when a URL query parameter of this (still encoded) name carries a credential."""
    return unquote_plus(name).strip().lower() in SECRET_PARAMS


# Headers.


def mask_header_value(value: str) -> str:
    """Return the mask of one secret header value, its auth scheme kept (`Bearer ••••••••wxyz`)."""
    scheme = _SCHEME.fullmatch(value.strip())
    return scheme.group(1) + hint_mask(scheme.group(2)) if scheme else hint_mask(value.strip())


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the headers with every credential's value masked."""
    return {name: mask_header_value(value) if is_secret_header(name) else value for name, value in headers.items()}


def blank_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the headers with every credential's value emptied (an export without secrets)."""
    return {name: "" if is_secret_header(name) else value for name, value in headers.items()}


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """Return the credential values of these headers, each also without its auth scheme (for redaction)."""
    found = []
    for name, value in headers.items():
        if is_secret_header(name) and value.strip():
            scheme = _SCHEME.fullmatch(value.strip())
            found += [value.strip(), scheme.group(2)] if scheme else [value.strip()]
    return found


def keep_headers(sent: Any, stored: Iterable[Mapping[str, str]], *, empty_keeps: bool) -> Any:
    """Return `sent` with each masked credential replaced by the stored value of the same header it masks.

    The stored header sets are searched in order. On import (`empty_keeps`) an empty credential
    keeps the first stored one too, because exports without secrets carry "". A mask that stands
    for no stored value is left for validation to name.
    """
    if not isinstance(sent, Mapping):
        return sent
    olds: dict[str, list[str]] = {}
    for headers in stored:
        for name, value in headers.items():
            if value:
                olds.setdefault(name.strip().lower(), []).append(value)
    kept = {}
    for name, value in sent.items():
        if isinstance(name, str) and isinstance(value, str) and is_secret_header(name):
            values = olds.get(name.strip().lower(), [])
            if holds_mask(value):
                value = next((old for old in values if mask_header_value(old) == value.strip()), value)
            elif empty_keeps and value == "" and values:
                value = values[0]
        kept[name] = value
    return kept


# URL query strings.


def mask_url(url: str) -> str:
    """Return the URL with the value of every credential in its query masked (`?key=••••••••abcd`)."""
    return _map_secret_params(url, lambda name, value: hint_mask(value))


def blank_url(url: str) -> str:
    """Return the URL with the value of every credential in its query emptied (an export without secrets)."""
    return _map_secret_params(url, lambda name, value: "")


def url_secrets(url: str) -> list[str]:
    """Return the credential values in the URL's query, as written and decoded (for redaction)."""
    found: list[str] = []
    _map_secret_params(url, lambda name, value: found.extend((value, unquote_plus(value))) or value)
    return [value for value in found if value.strip()]


def keep_url(sent: Any, stored: Iterable[str], *, empty_keeps: bool) -> Any:
    """Return `sent` with each masked credential in its query replaced by the stored value it masks.

    The stored URLs are searched in order for a parameter of the same name whose mask matches.
    On import (`empty_keeps`) an empty credential takes the first stored value of that name.
    """
    if not isinstance(sent, str) or "?" not in sent:
        return sent
    values: dict[str, list[str]] = {}
    for url in stored:
        _map_secret_params(url, lambda name, value: values.setdefault(_param(name), []).append(value) or value)

    def restore(name: str, value: str) -> str:
        olds = values.get(_param(name), [])
        if holds_mask(value):
            return next((old for old in olds if hint_mask(old) == value.strip()), value)
        return olds[0] if empty_keeps and olds else value

    return _map_secret_params(sent, restore, empty_too=empty_keeps)


def _param(name: str) -> str:
    return unquote_plus(name).strip().lower()


def _map_secret_params(url: str, change: Callable[[str, str], str], *, empty_too: bool = False) -> str:
    """Return the URL with `change(name, value)` in place of each non-empty credential value; the rest as it was."""
    rest, hash_, fragment = url.partition("#")
    head, question, query = rest.partition("?")
    if not question:
        return url
    parts = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if equals and is_secret_param(name) and (value or empty_too):
            part = f"{name}={change(name, value)}"
        parts.append(part)
    return f"{head}?{'&'.join(parts)}{hash_}{fragment}"


# Redaction by shape, for texts whose secrets are not known in advance (logs, quoted answers).


def redact_patterns(text: str) -> str:
    """Remove the credentials a text shows by their shape: a Bearer token, a `?key=…` in a URL's query."""
    lowered = text.lower()
    if "bearer" in lowered:  # the case-blind pattern is slow: 1.3 ms on a 64 KB body (measured in bench.phases)
        text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    if "?" in lowered or "&" in lowered:
        text = _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, text)
    return text
