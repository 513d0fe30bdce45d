"""The asyncio network backend under httpx, against raw loopback servers that misbehave on purpose.

TLS through it is proven in test_ssrf (pinned address, SNI, certificate checks) and every
upstream test goes through it too; here are the socket-level cases those do not reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket

import httpx
import pytest

from console.upstream.netbackend import PAUSE_AT, AsyncioBackend, direct_transport

LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8)


def _client(**timeouts: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=direct_transport(LIMITS, httpx.create_ssl_context()),
                             timeout=httpx.Timeout(5.0, **timeouts))


async def _serve(handler) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one request's head and its Content-Length body; return the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return await reader.readexactly(length)


def _request(handler, method: str = "GET", content: bytes | None = None, **timeouts: float) -> bytes:
    """Serve `handler` on loopback, send it one request and return the answer's body."""
    async def main() -> bytes:
        server, url = await _serve(handler)
        async with server, _client(**timeouts) as client:
            return (await client.request(method, url, content=content)).content

    return asyncio.run(main())


def _answer(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), b"".join(extra), body)


def test_httpx_keeps_the_pool_built_on_the_asyncio_backend():
    transport = direct_transport(LIMITS, httpx.create_ssl_context())
    assert isinstance(transport._pool._network_backend, AsyncioBackend)


def test_a_keep_alive_connection_the_server_closed_is_not_reused():
    connections = []

    async def handler(reader, writer):
        connections.append(writer)
        await _read_request(reader)
        writer.write(_answer(b"first"))  # keep-alive by default, then close it while idle
        await writer.drain()
        writer.close()

    async def main():
        server, url = await _serve(handler)
        async with server, _client() as client:
            assert (await client.get(url)).content == b"first"
            await asyncio.sleep(0.1)  # the close reaches the idle connection
            assert (await client.get(url)).content == b"first"  # a new connection, not a reset one
        return len(connections)

    assert asyncio.run(main()) == 2


def test_a_live_keep_alive_connection_is_reused():
    connections = []

    async def handler(reader, writer):
        connections.append(writer)
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(_answer(b"again"))
            await writer.drain()

    async def main():
        server, url = await _serve(handler)
        async with server, _client() as client:
            for _ in range(5):
                assert (await client.get(url)).content == b"again"
        return len(connections)

    assert asyncio.run(main()) == 1


def test_a_large_answer_arrives_whole_through_the_read_pause():
    body = bytes(range(256)) * (5 * PAUSE_AT // 256)  # 5 MiB: reading pauses and resumes several times

    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(_answer(body))
        await writer.drain()
        writer.close()

    async def main():
        server, url = await _serve(handler)
        async with server, _client() as client:
            async with client.stream("GET", url) as answer:
                received = bytearray()
                async for chunk in answer.aiter_raw():
                    received += chunk
                    await asyncio.sleep(0)  # a slow reader: the socket buffer fills behind it
        return bytes(received)

    assert hashlib.sha256(asyncio.run(main())).digest() == hashlib.sha256(body).digest()


def test_a_large_request_body_is_sent_whole_to_a_slow_reader():
    body = b"x" * (12 * 1024 * 1024)
    seen = {}

    async def handler(reader, writer):
        await asyncio.sleep(0.3)  # the client's writes back up into pause_writing
        seen["body"] = await _read_request(reader)
        writer.write(_answer(b"ok"))
        await writer.drain()
        writer.close()

    assert _request(handler, "POST", body) == b"ok"
    assert seen["body"] == body


def test_a_server_that_never_reads_gives_a_write_timeout():
    async def handler(reader, writer):
        await asyncio.sleep(3)  # never reads; the client's send buffer fills
        writer.close()

    with pytest.raises(httpx.WriteTimeout):
        _request(handler, "POST", b"x" * (64 * 1024 * 1024), write=0.5)


def test_a_stalled_answer_gives_a_read_timeout():
    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        await writer.drain()
        await asyncio.sleep(3)
        writer.close()

    with pytest.raises(httpx.ReadTimeout):
        _request(handler, read=0.3)


def test_a_reset_in_the_middle_of_an_answer_is_a_transport_error():
    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"y" * 1000)
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()  # RST, not FIN

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        _request(handler)


def test_an_answer_cut_short_by_a_close_is_an_incomplete_answer():
    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    with pytest.raises(httpx.RemoteProtocolError):
        _request(handler)


def test_a_closed_port_is_a_connect_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now

    async def main():
        async with _client() as client:
            await client.get(f"http://127.0.0.1:{port}/")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(main())


def test_a_server_that_talks_out_of_turn_makes_an_idle_connection_unusable():
    connections = []

    async def handler(reader, writer):
        connections.append(writer)
        await _read_request(reader)
        writer.write(_answer(b"one"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"garbage while the connection is idle")
        await writer.drain()
        await asyncio.sleep(2)
        writer.close()

    async def main():
        server, url = await _serve(handler)
        async with server, _client() as client:
            assert (await client.get(url)).content == b"one"
            await asyncio.sleep(0.2)
            assert (await client.get(url)).content == b"one"
        return len(connections)

    assert asyncio.run(main()) == 2


def test_a_request_stopped_while_its_body_is_sent_lets_go_of_its_socket():
    """A stop during a large upload to a gateway that does not read: the socket and the unsent body
    go at once (a gentle close would keep both until the gateway read everything)."""
    async def handler(reader, writer):
        await asyncio.sleep(3)  # never reads
        writer.close()

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def main():
        server, url = await _serve(handler)
        async with server, _client() as client:
            before = open_fds()
            upload = asyncio.create_task(client.post(url, content=b"x" * (64 * 1024 * 1024)))
            await asyncio.sleep(0.5)  # the send buffers are full by now
            upload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upload
            await asyncio.sleep(0.1)
            return open_fds() - before

    assert asyncio.run(main()) <= 1  # the server's side of the connection, still sleeping
