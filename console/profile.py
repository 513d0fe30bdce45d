"""The API profile: every field (docs/gateways.md) with its default, validated from JSON."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .fields import FieldError, Range, choice, flag, plain, plain_json, text
from .messages import say, told
from .masking import (
    HINT_MIN, MASK, MASK_CHAR, blank_headers, blank_url, header_secrets, hint_mask, holds_mask, is_masked, keep_headers,
    keep_url, mask, mask_headers, mask_url, url_secrets,
)
from .netguard import URL_SCHEMES
from .proxyurl import check_proxy_url
from .scan import is_text

API_MODES = ("auto", "chat_completions", "responses", "images", "gemini")
TOKEN_FIELDS = ("auto", "max_tokens", "max_completion_tokens", "max_output_tokens", "none")
# How /images/edits receives the source: JSON `images[]` (grok2api G3), multipart field
# `image` (OpenAI SDK with one file, grok2api G1.6) or `image[]` (grok2api G2).
# `json_image`: Seedream's JSON `image` field (a data URL, a list for several inputs).
EDIT_FORMATS = ("multipart", "multipart_array", "json", "json_image")
POOL_HINT_MIN = HINT_MIN  # a pooled key this long shows its last 4 characters in its mask
POOL_MAX = 32  # keys in one pool beside the profile's own
CONCURRENCY = Range(1, 64, whole=True)  # calls in flight at once, for a run and for one pooled key
# The bounds of every number field, checked here and served to the page for its inputs.
LIMITS = {
    "temperature": Range(0, 2),
    "max_tokens": Range(1, 10_000_000, whole=True),
    "n": Range(1, 10, whole=True),
    "concurrency": CONCURRENCY,
    "max_retries": Range(0, 20, whole=True),
    "timeout_s": Range(1, 3600),
    "rate_limit_wait_s": Range(0, 86400),
    "source_max_side": Range(0, 100_000, whole=True),
    "source_max_bytes": Range(0, 1 << 30, whole=True),
    "batch_poll_s": Range(1, 3600),
    "batch_max_requests": Range(1, 50_000, whole=True),
}
DELIVERIES = ("live", "batch")  # live calls, or the provider's batch service (half price, up to 24 h)
BATCH_DISCOUNT = Range(0, 1)  # prices.batch_discount: the share a batch saves on the profile's prices
BATCH_DISCOUNT_DEFAULT = 0.5
OPTIONAL_NUMBERS = frozenset({"temperature", "max_tokens", "n"})  # empty means "the gateway's default"
# RFC 9110 §5.1: a header name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Headers the HTTP client must set itself; a value from the profile would break the request.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "content-type"})


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
    rate_limit_wait_s: float = 1800.0  # how long a run may be held back by 429s before tasks fail
    allow_private_api: bool = False
    allow_private_downloads: bool = False
    edit_format: str = "multipart"
    source_max_side: int = 0
    source_max_bytes: int = 0
    rewrite_result_host: bool = False
    proxy_url: str = ""  # "" = the server's PROXY_URL (if any), "direct" = none
    # More keys beside `api_key`: [{"api_key", "api_url" ("" = the profile's), "concurrency"
    # (None = no cap of its own)}]; calls are spread over all of them, each cooled and parked on its own.
    key_pool: list[dict[str, Any]] = field(default_factory=list)
    # What calls cost when the gateway does not say (all optional): {"call", "image", "input_mtok",
    # "input_image_mtok", "output_mtok" (money per call, per image, per million tokens), "currency"}.
    prices: dict[str, Any] = field(default_factory=dict)
    delivery: str = "live"
    batch_poll_s: float = 60.0  # seconds between two looks at a submitted batch
    batch_max_requests: int = 1000  # tasks in one batch; a larger run sends several

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: "ApiProfile | None" = None) -> "ApiProfile":
        """Return `base` (or the defaults) updated from `data`; raise ProfileError on bad values."""
        if not isinstance(data, Mapping):
            raise ProfileError(say("config.profile_not_object"))
        values = asdict(base or cls())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProfileError(say("config.profile_unknown_fields", names=", ".join(unknown)))
        for name, value in data.items():
            try:
                values[name] = _CHECKS[name](name, value)
            except FieldError as exc:
                raise ProfileError(told(exc)) from None
        for number, entry in enumerate(values["key_pool"], start=2):
            if entry["api_key"] == values["api_key"] and (entry["api_url"] or values["api_url"]) == values["api_url"]:
                raise ProfileError(say("config.pool_repeats_own", number=number))
        if values["delivery"] == "batch":
            _check_batch(values)
        return cls(**values)

    @classmethod
    def from_input(cls, data: Any, base: "ApiProfile", stored: "ApiProfile", *, empty_keeps: bool = False,
                   fallback: "ApiProfile | None" = None) -> "ApiProfile":
        """Validate fields sent by a user over `base`, applying the one rule for every secret of `stored`.

        A masked key (the `MASK` this server hands out) or an absent one means "keep the key I
        have": `stored`'s key is used. On import (`empty_keeps`) an empty key keeps it too, because
        exports without secrets carry "" (the masked key never replaces a stored one). The same
        rule holds for every key of `key_pool`, matched against the stored pool by its mask, and
        for the credentials in `extra_headers` and in the query of every API URL; a mask of those that
        `stored` does not hold is looked up in `fallback` (a preset saved from the form of the settings).
        """
        if not isinstance(data, Mapping):
            raise ProfileError(say("config.profile_not_object"))
        data = dict(data)
        key = data.get("api_key")
        if "api_key" not in data or is_masked(key) or (empty_keeps and key in ("", None)):
            data["api_key"] = stored.api_key
        others = [stored, *([fallback] if fallback else [])]
        if "extra_headers" in data:
            data["extra_headers"] = keep_headers(data["extra_headers"], [p.extra_headers for p in others],
                                                 empty_keeps=empty_keeps)
        if "api_url" in data:
            data["api_url"] = keep_url(data["api_url"], [p.api_url for p in others], empty_keeps=empty_keeps)
        if isinstance(data.get("key_pool"), list):
            data["key_pool"] = _unmasked_pool(data["key_pool"], stored, empty_keeps=empty_keeps)
        return cls.from_dict(data, base=base)

    def to_dict(self, *, mask_key: bool = True, blank_secrets: bool = False) -> dict[str, Any]:
        """Return the profile as JSON-ready data, every secret masked unless asked otherwise.

        Secrets are the keys, the credentials among `extra_headers` and those in API URL queries;
        `blank_secrets` empties them instead (an export without secrets).
        """
        data = asdict(self)
        if blank_secrets:
            _hide_secrets(data, key=lambda key: "", headers=blank_headers, url=blank_url)
        elif mask_key:
            _hide_secrets(data, key=mask, headers=mask_headers, url=mask_url, pool_key=pool_mask)
        return data

    def lanes(self) -> list["ApiProfile"]:
        """Return one profile per key: this one, then one per `key_pool` entry with its key, URL and concurrency."""
        own = [replace(self, api_key=entry["api_key"], api_url=entry["api_url"] or self.api_url,
                       concurrency=entry["concurrency"] or self.concurrency, key_pool=[])
               for entry in self.key_pool]
        return [replace(self, key_pool=[]), *own] if own else [self]

    def secrets(self) -> list[str]:
        """Return every secret of the profile: keys, credential headers and URL query credentials (for redaction)."""
        found = [self.api_key, *header_secrets(self.extra_headers), *url_secrets(self.api_url)]
        for entry in self.key_pool:
            found += [entry["api_key"], *url_secrets(entry["api_url"])]
        return [secret for secret in found if secret]


def pool_mask(secret: str) -> str:
    """Return the mask of a pooled key: the fixed mask and, for a key long enough that it gives little
    away, its last four characters, so a person can tell the keys apart (`••••••••Q7xZ`)."""
    return hint_mask(secret)


def _hide_secrets(data: dict[str, Any], *, key: Callable[[str], str], headers: Callable, url: Callable[[str], str],
                  pool_key: Callable[[str], str] | None = None) -> None:
    """Replace every secret of a profile's data in place: keys, credential headers, URL query credentials."""
    data["api_key"] = key(data["api_key"])
    data["extra_headers"] = headers(data["extra_headers"])
    data["api_url"] = url(data["api_url"])
    for entry in data["key_pool"]:
        entry["api_key"] = (pool_key or key)(entry["api_key"])
        entry["api_url"] = url(entry["api_url"])


def _unmasked_pool(entries: list[Any], stored: "ApiProfile", *, empty_keeps: bool) -> list[Any]:
    """Put the stored keys back in place of their masks, so deleting or reordering keys keeps the right ones.

    A masked entry keeps the first unused stored key with that mask, one with the same API URL
    first. On import an empty key keeps the stored key at its place. A mask that stands for no
    stored key is left as it is, and the validation names it. Masked credentials in an entry's
    API URL are put back from the stored entry at its place, then any stored URL.
    """
    unused = [dict(entry) for entry in stored.key_pool]
    urls = [entry["api_url"] for entry in stored.key_pool] + [stored.api_url]
    kept = []
    for index, entry in enumerate(entries):
        if isinstance(entry, Mapping):
            entry, key = dict(entry), entry.get("api_key")
            if "api_url" in entry:
                here = urls[index:index + 1] if index < len(stored.key_pool) else []
                entry["api_url"] = keep_url(entry["api_url"], [*here, *urls], empty_keeps=empty_keeps)
            if isinstance(key, str) and key.strip().startswith(MASK_CHAR):
                same = [old for old in unused if pool_mask(old["api_key"]) == key.strip()]
                match = next((old for old in same if old["api_url"] == (entry.get("api_url") or "").strip()), None)
                if match or same:
                    entry["api_key"] = (match or same[0])["api_key"]
                    unused.remove(match or same[0])
            elif empty_keeps and key in ("", None) and index < len(stored.key_pool):
                entry["api_key"] = stored.key_pool[index]["api_key"]
        kept.append(entry)
    return kept


def _text(name: str, value: Any) -> str:
    value = text(value, name)
    return value.strip() if name in ("api_url", "model", "size", "response_format") else value


def _url(name: str, value: Any) -> str:
    url = _text(name, value)
    if not url:
        return ""
    shown = _shown_url(url)
    if holds_mask(url):
        raise ProfileError(say("config.url_masked_query", field=name, url=shown))
    bad = _first_bad(url, allow_space=False)
    if bad is not None:
        raise ProfileError(_bad_char_message(name, url, bad))
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        reason = str(exc)
        raise ProfileError(say("config.url_invalid", field=name, said=reason[:1].lower() + reason[1:], url=shown)) from None
    if parts.scheme.lower() not in URL_SCHEMES:
        raise ProfileError(say("config.url_scheme", field=name, url=shown))
    if not parts.hostname:
        raise ProfileError(say("config.url_no_host", field=name, url=shown))
    if parts.username is not None or parts.password is not None:
        raise ProfileError(say("config.url_credentials", field=name))
    return url


def _shown_url(url: str) -> str:
    """Return a URL as an error message may quote it: its query credentials masked, without user name or password."""
    masked = mask_url(url)
    scheme, slashes, rest = masked.partition("://")
    authority, slash, path = rest.partition("/")
    if slashes and "@" in authority:
        masked = f"{scheme}://{MASK}@{authority.rpartition('@')[2]}{slash}{path}"
    return masked


def _header_text(name: str, value: Any) -> str:
    """Return a value that can be sent in an HTTP header: trimmed, visible ASCII (spaces inside)."""
    text = _text(name, value).strip()
    bad = _first_bad(text, allow_space=not name.endswith("api_key"))
    if bad is not None:
        raise ProfileError(_bad_char_message(name, text, bad))
    return text


def _first_bad(text: str, *, allow_space: bool) -> int | None:
    """Return the index of the first character that is not visible ASCII (or a space, when allowed)."""
    for index, char in enumerate(text):
        if not ("!" <= char <= "~" or (allow_space and char in " \t")):
            return index
    return None


def _bad_char_message(name: str, text: str, index: int) -> str:
    if is_masked(text) and name.endswith("api_key"):
        return say("config.key_is_mask", field=name)
    if holds_mask(text) and not name.endswith("api_key"):
        return say("config.mask_unknown", field=name, mask=text.strip())
    return say("config.header_bad_char", field=name, char=_described(text[index]), position=index + 1)


def _described(char: str) -> str:
    """Name a character that cannot be sent: the same words in English, closer ones in Chinese for what an
    input method types (a full-width space, a full-width letter or sign, Chinese punctuation or a Chinese character)."""
    point = f"{ord(char):04X}"
    if char in "\r\n":
        return say("config.char_line_break")
    if char == "\u3000":
        return say("config.char_wide_space", point=point)
    if char.isspace():
        return say("config.char_space", point=point)
    if not char.isprintable():
        return say("config.char_invisible", point=point)
    if "\uff01" <= char <= "\uff5e" or "\uffe0" <= char <= "\uffe6":
        return say("config.char_wide", char=char, point=point)
    if "\u3001" <= char <= "\u303f" or char in "\u2018\u2019\u201c\u201d\u2026\u2014\u00b7":
        return say("config.char_cjk_punctuation", char=char, point=point)
    if "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf":
        return say("config.char_cjk", char=char, point=point)
    return say("config.char_visible", char=char, point=point)


def _ranged(bounds: Range, optional: bool):
    def check(name: str, value: Any) -> Any:
        return bounds.check(value, name, optional=optional)

    return check


def _one_of(options: tuple[str, ...]):
    def check(name: str, value: Any) -> str:
        return choice(value, name, options)

    return check


def _flag(name: str, value: Any) -> bool:
    return flag(value, name)


def _headers(name: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ProfileError(say("config.headers_not_object", field=name))
    headers: dict[str, str] = {}
    for key, text in value.items():
        header = key.strip()
        if not _TOKEN.fullmatch(header):
            raise ProfileError(say("config.header_bad_name", field=name, header=header))
        if header.lower() in RESERVED_HEADERS:
            raise ProfileError(say("config.header_reserved", field=name, header=header))
        headers[header] = _header_text(f"{name}['{header}']", text)
    return headers


def _proxy(name: str, value: Any) -> str:
    try:
        return check_proxy_url(_text(name, value), credentials=False)
    except ValueError as exc:
        raise ProfileError(say("config.proxy_field", field=name, problem=told(exc))) from None


def _object(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProfileError(say("config.not_object", field=name))
    return plain_json(value, name)  # it is sent as JSON and stored as JSON


def _key_pool(name: str, value: Any) -> list[dict[str, Any]]:
    """Check every pooled key like the profile's own: visible ASCII, never the mask; a URL like api_url."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProfileError(say("config.pool_not_list", field=name))
    if len(value) > POOL_MAX:
        raise ProfileError(say("config.pool_too_many", field=name, count=len(value), limit=POOL_MAX))
    pool: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for number, entry in enumerate(value, start=2):  # the profile's own key is key 1
        where = say("config.pool_key", field=name, number=number)
        if isinstance(entry, str):
            entry = {"api_key": entry}
        if not isinstance(entry, Mapping):
            raise ProfileError(say("config.pool_entry_not_object", where=where))
        unknown = sorted(set(entry) - {"api_key", "api_url", "concurrency"})
        if unknown:
            raise ProfileError(say("config.pool_entry_unknown", where=where, names=", ".join(unknown)))
        raw = entry.get("api_key")
        if isinstance(raw, str) and raw.strip().startswith(MASK_CHAR):
            raise ProfileError(say("config.pool_entry_mask", where=where, mask=raw.strip()))
        key = _header_text(say("config.pool_key_field", field=name, number=number, name="api_key"), raw)
        if not key:
            raise ProfileError(say("config.pool_entry_no_key", where=where))
        url = _url(say("config.pool_key_field", field=name, number=number, name="api_url"), entry.get("api_url"))
        concurrency = CONCURRENCY.check(entry.get("concurrency"),
                                        say("config.pool_key_field", field=name, number=number, name="concurrency"),
                                        optional=True)
        if (key, url) in seen:
            raise ProfileError(say("config.pool_entry_repeats_url", where=where, other=seen[key, url]) if url
                               else say("config.pool_entry_repeats", where=where, other=seen[key, url]))
        seen[key, url] = number
        pool.append({"api_key": key, "api_url": url, "concurrency": concurrency})
    return pool


def _check_batch(values: dict[str, Any]) -> None:
    """Refuse batch delivery where no batch route exists: the profile's mode (`auto` resolved from its URL),
    Seedream's `json_image` edits, or a key pool (a batch belongs to one key)."""
    from .upstream import ProfileProblem, batch_mode  # the upstream package reads profiles: imported when needed
    if values["key_pool"]:
        raise ProfileError(say("config.batch_with_pool"))
    if not values["api_url"]:
        return  # the mode is known once the URL is
    try:
        batch_mode(ApiProfile(**values))
    except ProfileProblem as exc:
        raise ProfileError(say("config.batch_refused", problem=told(exc))) from None


PRICES = ("call", "image", "input_mtok", "input_image_mtok", "output_mtok")
CURRENCY_DEFAULT = "USD"
_CURRENCY = re.compile(r"[A-Za-z]{3}|[^\s\d]{1,3}")  # a code (USD, CNY) or a short sign ($, ¥, €)
PRICE_MAX = 1_000_000


def _prices(name: str, value: Any) -> dict[str, Any]:
    """Check the prices: each one money ≥ 0 (or empty), and a currency code or sign."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProfileError(say("config.prices_not_object", field=name))
    unknown = sorted(set(value) - {*PRICES, "batch_discount", "currency"})
    if unknown:
        raise ProfileError(say("config.prices_unknown", field=name, names=", ".join(map(str, unknown)),
                               expected=", ".join(PRICES)))
    prices: dict[str, Any] = {}
    for key in PRICES:
        price = value.get(key)
        if price is None or price == "":
            continue
        if isinstance(price, bool) or not isinstance(price, (int, float)) or price != price:
            raise ProfileError(say("config.price_not_number", field=f"{name}.{key}", got=repr(price)))
        if not 0 <= price <= PRICE_MAX:
            raise ProfileError(say("config.price_outside", field=f"{name}.{key}", high=PRICE_MAX, got=plain(price)))
        prices[key] = float(price)
    discount = value.get("batch_discount")
    if discount not in (None, ""):
        prices["batch_discount"] = float(BATCH_DISCOUNT.check(discount, f"{name}.batch_discount"))
    currency = value.get("currency")
    if currency not in (None, ""):
        if not isinstance(currency, str) or not is_text(currency) or not _CURRENCY.fullmatch(currency.strip()):
            raise ProfileError(say("config.currency_bad", field=f"{name}.currency", got=repr(currency)))
        prices["currency"] = currency.strip().upper()
    return prices


_CHECKS = {
    "api_url": _url,
    "api_key": _header_text,
    "model": _text,
    "api_mode": _one_of(API_MODES),
    "stream": _flag,
    "system_prompt": _text,
    "token_field": _one_of(TOKEN_FIELDS),
    "size": _text,
    "response_format": _text,
    "extra_headers": _headers,
    "extra_body": _object,
    "allow_private_api": _flag,
    "allow_private_downloads": _flag,
    "edit_format": _one_of(EDIT_FORMATS),
    "rewrite_result_host": _flag,
    "proxy_url": _proxy,
    "key_pool": _key_pool,
    "prices": _prices,
    "delivery": _one_of(DELIVERIES),
    **{name: _ranged(bounds, name in OPTIONAL_NUMBERS) for name, bounds in LIMITS.items()},
}
