"""Check a proxy URL (the `PROXY_URL` setting, a profile's `proxy_url`) and show it without its password.

A proxy is only ever used when it is named here: environment variables such as `HTTPS_PROXY`
are never read. `direct` in a profile means "no proxy, even if the server has one".
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .messages import say

SCHEMES = ("http", "https", "socks5", "socks5h")
DIRECT = "direct"
EXAMPLE = "http://127.0.0.1:7890"


def check_proxy_url(text: str, *, credentials: bool) -> str:
    """Return the proxy URL trimmed ('' for none, `direct`); raise ValueError saying what is wrong.

    A user name and password are allowed only where they are never shown (`credentials`): the
    server setting, not a profile, which the page shows and config exports carry.
    """
    url = text.strip()
    if not url or url.lower() == DIRECT:
        return url.lower()
    bad = next((index for index, char in enumerate(url) if not "!" <= char <= "~"), None)
    if bad is not None:
        raise ValueError(say("config.proxy_bad_char", position=bad + 1, point=f"{ord(url[bad]):04X}"))
    parts = urlsplit(url)
    shown = describe(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(say("config.proxy_bad_port", url=shown)) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(say("config.proxy_scheme", example=EXAMPLE, url=shown))
    if not parts.hostname:
        raise ValueError(say("config.proxy_no_host", example=EXAMPLE, url=shown))
    if port is None and scheme.startswith("socks"):
        raise ValueError(say("config.proxy_needs_port", url=shown))
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(say("config.proxy_extra", url=shown))
    if (parts.username or parts.password) and not credentials:
        raise ValueError(say("config.proxy_credentials"))
    return url


def describe(url: str) -> str:
    """Return `scheme://host:port` of a proxy URL: never its user name or password."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}" if parts.scheme else "?"
