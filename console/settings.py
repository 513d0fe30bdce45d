"""Resolve every server setting from one table: defaults, environment, command line."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import platformdirs

from .proxyurl import check_proxy_url

APP_NAME = "image-batch-console"
GiB = 1024**3
MiB = 1024**2


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {text!r}")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(item.strip().lower() for item in text.split(",") if item.strip())


def _status_ui(text: str) -> str:
    value = text.strip().lower()
    if value not in ("cli", "none"):
        raise ValueError(f"expected 'cli' or 'none', got {text!r}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"port must be 0-65535, got {value}")
    return value


def _proxy(text: str) -> str:
    url = check_proxy_url(text, credentials=True)
    if url == "direct":
        raise ValueError("'direct' is for a profile that skips the server's proxy; leave PROXY_URL unset instead")
    return url


def _positive(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = convert(text)
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return value

    return parse


def _above_zero(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = convert(text)
        if value <= 0:
            raise ValueError(f"must be more than 0, got {value}")
        return value

    return parse


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    default: Any
    env: str
    help: str
    parse: Callable[[str], Any] = str
    shown: str = ""  # how --help shows the default, when the value itself would mislead
    secret: bool = False  # never echo the value in an error (a proxy URL may hold a password)


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "HOST", "Address to listen on (loopback unless you know why; any other needs the access token).", str),
    Setting("access_token", "", "ACCESS_TOKEN", "Token every request must carry (when HOST is not loopback, a new one is made at each start).", str,
            "none"),
    Setting("port", 12607, "PORT", "Port to listen on.", _port),
    Setting("max_request_threads", 64, "MAX_REQUEST_THREADS", "Connections served at once; one more is answered 503 "
            "at once (each holds a thread).", _above_zero(int)),
    Setting("request_header_timeout_s", 10.0, "REQUEST_HEADER_TIMEOUT_S", "Longest wait for a request's line and "
            "headers (an idle keep-alive connection included) before the connection is closed.", _above_zero(float)),
    Setting("data_dir", "", "APP_DATA_DIR", "Data directory (default: the user data dir).", str),
    Setting("open_browser", True, "OPEN_BROWSER", "Open the review page in a browser on start.", _bool),
    Setting("status_ui", "cli", "STATUS_UI", "Terminal status: 'cli' (Rich panel) or 'none' (log lines).", _status_ui),
    Setting("allowed_origins", (), "ALLOWED_ORIGINS", "Extra origins allowed to call the API (comma-separated).", _csv),
    Setting("export_include_secrets", False, "EXPORT_INCLUDE_SECRETS", "Include API keys in config exports.", _bool),
    Setting("allow_private_api_url", False, "ALLOW_PRIVATE_API_URL", "Allow API URLs on private/loopback addresses.", _bool),
    Setting("allow_private_download_url", False, "ALLOW_PRIVATE_DOWNLOAD_URL", "Allow result downloads from private/loopback addresses.", _bool),
    Setting("allow_remote_debug_log_api", False, "ALLOW_REMOTE_DEBUG_LOG_API", "Serve task debug logs to non-local clients.", _bool),
    Setting("api_url_host_allowlist", (), "API_URL_HOST_ALLOWLIST", "If set, only these API hosts (comma-separated, '*.x' wildcards).", _csv),
    Setting("download_url_host_allowlist", (), "DOWNLOAD_URL_HOST_ALLOWLIST", "If set, only these download hosts (comma-separated, '*.x' wildcards).", _csv),
    Setting("proxy_url", "", "PROXY_URL", "Proxy for API calls and result downloads (http://, https://, socks5://host:port; "
            "may hold user:password). HTTPS_PROXY and the like are never read.", _proxy, "none", secret=True),
    Setting("cache_ttl_hours", 168.0, "CACHE_TTL_HOURS", "Unreferenced cached images older than this are evicted.", _positive(float)),
    Setting("cache_max_bytes", 2 * GiB, "CACHE_MAX_BYTES", "Cap on the image cache size in bytes.", _positive(int)),
    Setting("max_source_bytes", 50 * MiB, "MAX_SOURCE_BYTES", "Largest source image accepted.", _positive(int)),
    Setting("max_response_bytes", 256 * MiB, "MAX_RESPONSE_BYTES", "Largest upstream answer read (streams included).", _positive(int)),
    Setting("max_answers_bytes", 512 * MiB, "MAX_ANSWERS_BYTES", "Most bytes of upstream answers held in memory at once, "
            "across calls; a call that would pass it waits until others are done (the oldest always goes on).",
            _positive(int)),
    Setting("max_download_bytes", 64 * MiB, "MAX_DOWNLOAD_BYTES", "Largest result image downloaded from a URL.", _positive(int)),
    Setting("max_image_pixels", 178_956_970, "MAX_IMAGE_PIXELS", "Decompression-bomb guard: largest image in pixels.", _positive(int)),
    Setting("debug_log_bytes", 256 * 1024, "DEBUG_LOG_BYTES", "Cap on one call's debug log.", _positive(int)),
    Setting("review_flags", True, "REVIEW_FLAGS", "Look at every stored result in the background for the review "
            "flags (unchanged, unrelated, blank, off_size, near_duplicate).", _bool),
    Setting("scan_max_entries", 500_000, "SCAN_MAX_ENTRIES", "Most files and folders one scan of a source or reference "
            "folder visits; a scan stops there and says so.", _positive(int)),
)

_BY_NAME = {row.name: row for row in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings: read these, never os.environ."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **overrides: Any) -> "Settings":
        """Return a copy with some values replaced."""
        unknown = set(overrides) - set(_BY_NAME)
        if unknown:
            raise KeyError(f"unknown settings: {', '.join(sorted(unknown))}")
        return Settings({**self.values, **overrides})


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def resolve(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Resolve settings: table default, then environment variable, then explicit overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for row in SETTINGS:
        values[row.name] = row.default
        raw = env.get(row.env)
        if raw is not None and raw != "":
            try:
                values[row.name] = row.parse(raw)
            except ValueError as exc:
                shown = "(value hidden)" if row.secret else repr(raw)
                raise SettingsError(f"{row.env}={shown}: {exc}") from None
    # Legacy switch of the older console: STATUS_WINDOW=0 meant no status window.
    if env.get("STATUS_WINDOW", "").strip() == "0" and not env.get("STATUS_UI"):
        values["status_ui"] = "none"
    for name, value in (overrides or {}).items():
        if name not in _BY_NAME:
            raise SettingsError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = value
    return Settings(values)


LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_exposed(host: str) -> bool:
    """Return True when listening on `host` is reachable from other machines: anything but a loopback address.

    A wildcard ("", 0.0.0.0, ::) and every name other than localhost count as exposed.
    """
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return False
    try:
        return not ipaddress.ip_address(name).is_loopback
    except ValueError:
        return True


def data_dir(settings: Settings | None = None) -> Path:
    """Return the data directory: APP_DATA_DIR, or the platform user data dir."""
    configured = (settings or resolve()).data_dir
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def describe() -> str:
    """Return the settings table as text, for --help."""
    lines = [f"  {row.env:<28} {row.help} (default: {row.shown or _show(row.default)})" for row in SETTINGS]
    return "environment:\n" + "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value) if value != "" else "platform user data dir"
