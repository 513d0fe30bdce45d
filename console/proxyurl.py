"""Check a proxy URL (the `PROXY_URL` setting, a profile's `proxy_url`) and show it without its password.

A proxy is only ever used when it is named here: environment variables such as `HTTPS_PROXY`
are never read. `direct` in a profile means "no proxy, even if the server has one".
"""

from __future__ import annotations

from urllib.parse import urlsplit

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
        raise ValueError(f"has a character that cannot be in a URL at position {bad + 1} "
                         f"(U+{ord(url[bad]):04X}); it may be a stray character from copy-paste")
    parts = urlsplit(url)
    shown = describe(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"has an invalid port: {shown}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"must start with http://, https://, socks5:// or socks5h:// (like {EXAMPLE}); got {shown}")
    if not parts.hostname:
        raise ValueError(f"has no host (expected like {EXAMPLE}); got {shown}")
    if port is None and scheme.startswith("socks"):
        raise ValueError(f"needs a port, like socks5://127.0.0.1:1080; got {shown}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"must be scheme://host:port with nothing after it; got {shown}")
    if (parts.username or parts.password) and not credentials:
        raise ValueError("cannot hold a user name or password here (profiles are shown on the page and exported); "
                         "set a proxy that needs a login with PROXY_URL when starting the server")
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
