"""httpcore's sockets on plain asyncio: a network backend for the direct connection pools.

httpcore's default backend goes through anyio, and under the bench's throughput load that cost
the engine's loop more than anything of our own: every read and write opens an anyio cancel
scope, and before each request and after each answer the pool asks every idle connection
whether the server closed it, which anyio answers by building a dict of socket attributes
(a `getpeername` call) and httpcore by a `poll` call. Here a connection is an asyncio
`Protocol` that reads whatever arrives into a buffer, so "did the server close or talk out of
turn?" is a look at that buffer, and reads and writes wait with `asyncio.timeout` only when
they must wait at all.

Errors are httpcore's (`ConnectError`, `ConnectTimeout`, `ReadError`, `ReadTimeout`,
`WriteError`, `WriteTimeout`), as its own backends raise them, so httpx maps them unchanged.
Proxied clients keep httpcore's default backend (`proxy.ProxyTransport`).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Iterable

import httpcore
import httpx

PAUSE_AT = 1024 * 1024  # stop reading from the socket while this much waits unread ...
RESUME_AT = 256 * 1024  # ... and read again once the reader is down to this


class _Connection(asyncio.Protocol):
    """One socket's state as the loop sees it: unread bytes, whether it ended, and who waits."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made, then by start_tls
        self.buffer = bytearray()
        self.ended = False  # the peer closed its side, or the connection is gone
        self.lost: BaseException | None = None  # why the connection was lost, if not cleanly
        self.reading_paused = False
        self._reader: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > PAUSE_AT and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        _wake(self._reader)

    def eof_received(self) -> bool:
        self.ended = True
        _wake(self._reader)
        return False  # close our side too: an HTTP/1.1 peer that closed will not read any more

    def connection_lost(self, exc: BaseException | None) -> None:
        self.ended = True
        self.lost = exc
        _wake(self._reader)
        _wake(self._drained)

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        _wake(self._drained)
        self._drained = None

    async def wait_readable(self) -> None:
        self._reader = asyncio.get_running_loop().create_future()
        try:
            await self._reader
        finally:
            self._reader = None

    @property
    def writing_paused(self) -> bool:
        return self._drained is not None

    async def wait_drained(self) -> None:
        if self._drained is not None:
            await asyncio.shield(self._drained)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """A connected socket (plain or TLS) for httpcore, read and written through its `_Connection`."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    @property
    def _transport(self) -> asyncio.Transport:
        return self._connection.transport  # the TLS one once start_tls has run

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        if not connection.buffer and not connection.ended:
            try:
                async with asyncio.timeout(timeout):
                    await connection.wait_readable()
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no data within {timeout:g}s") from None
        buffer = connection.buffer
        if buffer:
            if len(buffer) <= max_bytes:
                data = bytes(buffer)
                buffer.clear()
            else:
                data = bytes(buffer[:max_bytes])
                del buffer[:max_bytes]
            if connection.reading_paused and len(buffer) <= RESUME_AT and not self._transport.is_closing():
                connection.reading_paused = False
                self._transport.resume_reading()
            return data
        if connection.lost is not None:
            raise httpcore.ReadError(_describe(connection.lost))
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError(_describe(self._connection.lost) if self._connection.lost else
                                      "the connection is closed")
        self._transport.write(buffer)
        if self._connection.writing_paused:  # the socket's buffer is full: wait until it drains
            try:
                async with asyncio.timeout(timeout):
                    await self._connection.wait_drained()
            except TimeoutError:
                raise httpcore.WriteTimeout(f"could not send within {timeout:g}s") from None
        if self._connection.lost is not None:
            raise httpcore.WriteError(_describe(self._connection.lost))

    async def aclose(self) -> None:
        if self._transport.get_write_buffer_size():
            self._transport.abort()  # a request cut short (a stop): a gentle close would hold the socket
        else:  # and the unsent body until a peer that may never read has read it all
            self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(self._transport, self._connection, ssl_context,
                                                 server_hostname=server_hostname)
        except TimeoutError:
            self._transport.abort()
            raise httpcore.ConnectTimeout(f"no TLS handshake within {timeout:g}s") from None
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(_describe(exc)) from exc
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._connection.transport = transport  # type: ignore[assignment]
        return AsyncioStream(self._connection)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # asked of idle connections: anything unread, or an end, makes one unusable
            return bool(self._connection.buffer) or self._connection.ended
        name = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername",
                "socket": "socket"}.get(info)
        return self._transport.get_extra_info(name) if name else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Open TCP (or Unix) connections on the running asyncio loop."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        return await self._connect(lambda: loop.create_connection(_Connection, host, port, local_addr=local),
                                   timeout, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await self._connect(lambda: loop.create_unix_connection(_Connection, path), timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    @staticmethod
    async def _connect(open_: Any, timeout: float | None, socket_options: Iterable[Any] | None) -> AsyncioStream:
        try:
            async with asyncio.timeout(timeout):
                _, connection = await open_()
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout:g}s") from None
        except OSError as exc:
            raise httpcore.ConnectError(_describe(exc)) from exc
        try:
            sock = connection.transport.get_extra_info("socket")
            for option in socket_options or ():
                sock.setsockopt(*option)
        except OSError as exc:
            connection.transport.abort()
            raise httpcore.ConnectError(_describe(exc)) from exc
        return AsyncioStream(connection)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def direct_transport(limits: httpx.Limits, ssl_context: ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    """httpx's transport for direct connections, over an httpcore pool on `AsyncioBackend`.

    httpx builds its pool without a way to pass a backend; the pool is replaced at once with one
    made the same way (`tests/test_netbackend.py` checks that httpx still keeps it in `_pool`).
    """
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits, trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context, max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        network_backend=AsyncioBackend())
    return transport
