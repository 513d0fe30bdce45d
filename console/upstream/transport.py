"""Connect only to the addresses the SSRF policy checked: an httpx transport that pins them.

`netguard.check_url` resolves a URL's host, checks every address and pins the allowed ones for
the current asyncio task. This transport sends each request to one of those addresses, with the
original `Host` header and, for https, the original name for SNI and certificate checks. The
name is never resolved a second time, so a DNS answer that changes between the check and the
connection (rebinding) cannot reach an address the policy did not see. A request whose host was
not checked in the same task fails closed.

Plain-http connections are pooled by address. TLS connections are pooled per host name as well
(one inner transport per name, the least recently used idle one closed beyond `TLS_HOSTS`), so
a connection authenticated for one name never carries a request for another.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from typing import AsyncIterator, Callable

import httpx

from ..netguard import DEFAULT_PORTS, pinned
from .netbackend import direct_transport

TLS_HOSTS = 16  # TLS host names with their own pool before idle ones are closed
NOT_CHECKED = "{host}:{port} was not checked by the network policy in this task; refused"


class PinnedTransport(httpx.AsyncBaseTransport):
    """Send every request to an address `netguard.check_url` pinned for its host, nowhere else."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._limits = limits
        self._ssl = ssl_context or httpx.create_ssl_context()
        self._plain = self._new_transport()
        self._tls: OrderedDict[str, _Pool] = OrderedDict()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Try the pinned addresses in the resolver's order; raise ConnectError if none was pinned."""
        url = request.url
        host = url.raw_host.decode("ascii")
        port = url.port or DEFAULT_PORTS.get(url.scheme, 0)
        addresses = pinned(host, port)
        if not addresses:
            raise httpx.ConnectError(NOT_CHECKED.format(host=host, port=port), request=request)
        failure: httpx.TransportError | None = None
        for address in addresses:
            try:
                return await self._send(request, str(address), host)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent: try the next
                failure = exc
        assert failure is not None
        raise failure

    async def _send(self, request: httpx.Request, address: str, host: str) -> httpx.Response:
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = host
        direct = httpx.Request(request.method, request.url.copy_with(host=address), headers=request.headers,
                               stream=request.stream, extensions=extensions)
        if request.url.scheme != "https":
            return await self._plain.handle_async_request(direct)
        pool = await self._tls_pool(host)
        pool.busy += 1
        try:
            response = await pool.transport.handle_async_request(direct)
        except BaseException:
            pool.busy -= 1
            raise
        return httpx.Response(response.status_code, headers=response.headers, extensions=response.extensions,
                              stream=_Released(response.stream, pool.release))

    async def _tls_pool(self, host: str) -> "_Pool":
        pool = self._tls.get(host)
        if pool is None:
            pool = self._tls[host] = _Pool(self._new_transport())
            await self._close_idle_beyond_cap(keep=host)
        self._tls.move_to_end(host)
        return pool

    async def _close_idle_beyond_cap(self, keep: str) -> None:
        """Close the least recently used idle pools while there are more than TLS_HOSTS (busy ones stay)."""
        excess = len(self._tls) - TLS_HOSTS
        idle = [name for name, pool in self._tls.items() if pool.busy == 0 and name != keep][:max(0, excess)]
        for name in idle:
            await self._tls.pop(name).transport.aclose()  # out of the map first: no one else gets it

    def _new_transport(self) -> httpx.AsyncHTTPTransport:
        return direct_transport(self._limits, self._ssl)

    async def aclose(self) -> None:
        """Close every pool."""
        await self._plain.aclose()
        pools, self._tls = list(self._tls.values()), OrderedDict()
        for pool in pools:
            await pool.transport.aclose()


class _Pool:
    """One TLS host name's connections, and how many answers from it are still being read."""

    def __init__(self, transport: httpx.AsyncHTTPTransport) -> None:
        self.transport = transport
        self.busy = 0

    def release(self) -> None:
        self.busy -= 1


class _Released(httpx.AsyncByteStream):
    """An answer's body that tells its pool when it has been read or closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._release is not None:
                self._release, release = None, self._release
                release()
