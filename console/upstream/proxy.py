"""Send API calls and result downloads through the proxy a profile or the server names.

The shared client (`HttpClients`) connects directly, through `PinnedTransport`, and keeps one
more client per proxy URL, made on first use and closed with it. Nothing is taken from the
environment: `trust_env` is off everywhere, so `HTTPS_PROXY` and the like are never read.

The SSRF policy still decides what may be reached: every URL is checked (and its host resolved
and checked) in the calling task before it is sent, as without a proxy, and a host that was not
checked is refused. Through a proxy the connection itself is the proxy's: it gets the host
*name* (an HTTP forward request, `CONNECT host:port`, or a SOCKS5 domain address) and resolves
it itself, so a proxy may connect to another address than the one checked here. That is what a
proxy is for (it may see another network, or another DNS), and it is the user's own choice.
"""

from __future__ import annotations

import ssl

import httpx

from ..netguard import DEFAULT_PORTS, pinned
from ..profile import ApiProfile
from ..proxyurl import DIRECT, describe
from ..settings import Settings
from .transport import NOT_CHECKED, PinnedTransport


def proxy_for(profile: ApiProfile, settings: Settings) -> str:
    """Return the proxy URL this profile's requests go through, or '' for a direct connection."""
    if profile.proxy_url == DIRECT:
        return ""
    return profile.proxy_url or settings.proxy_url


class ProxyTransport(httpx.AsyncBaseTransport):
    """Send every request through one proxy, and only to hosts the network policy checked in this task."""

    def __init__(self, proxy_url: str, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self.shown = describe(proxy_url)
        # httpcore's SOCKS5 always sends a host name as a domain address, so socks5 means socks5h here.
        url = "socks5" + proxy_url[len("socks5h"):] if proxy_url.lower().startswith("socks5h") else proxy_url
        self._inner = httpx.AsyncHTTPTransport(proxy=httpx.Proxy(url), verify=ssl_context or httpx.create_ssl_context(),
                                               limits=limits, trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse an unchecked host; otherwise send, saying in any failure that it went through the proxy."""
        url = request.url
        host = url.raw_host.decode("ascii")
        port = url.port or DEFAULT_PORTS.get(url.scheme, 0)
        if not pinned(host, port):
            raise httpx.ConnectError(NOT_CHECKED.format(host=host, port=port), request=request)
        try:
            return await self._inner.handle_async_request(request)
        except httpx.TransportError as exc:
            said = str(exc) or type(exc).__name__
            raise type(exc)(f"through the proxy {self.shown}: {said}", request=request) from None

    async def aclose(self) -> None:
        """Close the connections to the proxy."""
        await self._inner.aclose()


class HttpClients(httpx.AsyncClient):
    """The shared client: direct connections to checked addresses, plus one client per proxy URL."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(transport=PinnedTransport(limits, ssl_context), trust_env=False, follow_redirects=False,
                         timeout=None)
        self._limits = limits
        self._ssl = ssl_context
        self._proxied: dict[str, httpx.AsyncClient] = {}

    def through(self, proxy_url: str) -> httpx.AsyncClient:
        """Return the client for `proxy_url` ('' = this one), made on first use and kept."""
        if not proxy_url:
            return self
        client = self._proxied.get(proxy_url)
        if client is None:
            transport = ProxyTransport(proxy_url, self._limits, self._ssl)
            client = httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False, timeout=None)
            self._proxied[proxy_url] = client
        return client

    async def aclose(self) -> None:
        """Close the direct connections and every proxy's."""
        try:
            await super().aclose()
        finally:
            proxied, self._proxied = list(self._proxied.values()), {}
            for client in proxied:
                await client.aclose()
