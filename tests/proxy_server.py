"""Small proxies on 127.0.0.1 for the proxy tests: they carry real traffic and record it.

`HttpProxy` is an HTTP proxy: absolute-form requests (`GET http://host:port/path`, how a client
sends plain-http URLs through a proxy) are forwarded, `CONNECT host:port` opens a tunnel (how
https goes through one). `Socks5Proxy` speaks SOCKS5 (RFC 1928) with a domain or IP address.
Both may require a login (`Proxy-Authorization: Basic`, RFC 1929 user/password) and record
every use as a `Use`, so a test proves the traffic went through the proxy, and where it asked
to go: the proxy is given the host *name*, and it resolves it.

`TlsFront` terminates TLS for the fake gateway with a self-signed certificate for `localhost`
(made with the `openssl` command), so a test can send https through a CONNECT tunnel.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

RELAY_IDLE_S = 30.0  # a relay with no traffic either way for this long is closed


@dataclass(frozen=True)
class Use:
    """One request or tunnel a proxy carried: how (`GET`, `POST`, `CONNECT`, `SOCKS5`), where to, and the login."""

    how: str
    target: str  # host:port as the client named it
    login: str | None = None  # "user:password" the client sent, if any


class _Proxy:
    """A threaded TCP server on 127.0.0.1 (port 0) that hands each connection to `_serve`."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.login = login
        self._uses: list[Use] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # accept() wakes up to see close()
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"{type(self).__name__}-{self.port}")
        self._thread.start()

    @property
    def uses(self) -> list[Use]:
        """Return every use so far, in order."""
        with self._lock:
            return list(self._uses)

    def reset(self) -> None:
        """Forget the recorded uses."""
        with self._lock:
            self._uses.clear()

    def _record(self, use: Use) -> None:
        with self._lock:
            self._uses.append(use)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self._open.add(client)
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        try:
            self._serve(client)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(client)
            client.close()

    def _serve(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop listening and cut every open connection."""
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HttpProxy(_Proxy):
    """An HTTP forward proxy with CONNECT tunnels; `url` is `http://127.0.0.1:<port>` (with the login if one is set)."""

    @property
    def url(self) -> str:
        login = f"{self.login[0]}:{self.login[1]}@" if self.login else ""
        return f"http://{login}127.0.0.1:{self.port}"

    def _serve(self, client: socket.socket) -> None:
        head, rest = _read_head(client)
        if head is None:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        login = _basic_login(headers)
        if self.login and login != f"{self.login[0]}:{self.login[1]}":
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\n"
                           b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            self._record(Use("CONNECT", target, login))
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _relay(client, upstream, rest)
            return
        parts = urlsplit(target)
        self._record(Use(method, parts.netloc, login))
        upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        kept = [h for h in headers if h.split(":", 1)[0].strip().lower() not in
                ("connection", "proxy-connection", "proxy-authorization", "keep-alive")]
        # One request per connection: the answer then ends when the gateway closes (it sees Connection: close).
        request = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode("latin-1")
        _relay(client, upstream, request + rest)


class Socks5Proxy(_Proxy):
    """A SOCKS5 proxy (CONNECT only); `url` is `socks5://127.0.0.1:<port>` (with the login if one is set)."""

    @property
    def url(self) -> str:
        login = f"{self.login[0]}:{self.login[1]}@" if self.login else ""
        return f"socks5://{login}127.0.0.1:{self.port}"

    def _serve(self, client: socket.socket) -> None:
        version, count = _exactly(client, 2)
        methods = _exactly(client, count)
        wanted = 2 if self.login else 0
        if version != 5 or wanted not in methods:
            client.sendall(b"\x05\xff")
            return
        client.sendall(bytes([5, wanted]))
        login = None
        if self.login:
            _, size = _exactly(client, 2)
            user = _exactly(client, size).decode()
            (size,) = _exactly(client, 1)
            login = f"{user}:{_exactly(client, size).decode()}"
            ok = login == f"{self.login[0]}:{self.login[1]}"
            client.sendall(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                return
        _, command, _, kind = _exactly(client, 4)
        if kind == 3:
            (size,) = _exactly(client, 1)
            host = _exactly(client, size).decode("idna")
        else:
            family, size = (socket.AF_INET, 4) if kind == 1 else (socket.AF_INET6, 16)
            host = socket.inet_ntop(family, _exactly(client, size))
        (port,) = struct.unpack(">H", _exactly(client, 2))
        self._record(Use("SOCKS5", f"{host}:{port}", login))
        if command != 1:
            client.sendall(b"\x05\x07\x00\x01" + bytes(6))
            return
        upstream = socket.create_connection((host, port), timeout=10)
        client.sendall(b"\x05\x00\x00\x01" + bytes(6))
        _relay(client, upstream, b"")


class TlsFront(_Proxy):
    """Serve `https://localhost:<port>` by decrypting and passing the bytes on to a plain-http server."""

    def __init__(self, backend_port: int, folder: Path) -> None:
        self.backend_port = backend_port
        self.cert, key = folder / "localhost.crt", folder / "localhost.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", str(key), "-out", str(self.cert)],
                       check=True, capture_output=True, timeout=60)
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(self.cert, key)
        super().__init__()

    def client_context(self) -> ssl.SSLContext:
        """Return a client TLS context that trusts this front's certificate (and checks the name)."""
        return ssl.create_default_context(cafile=str(self.cert))

    def _serve(self, client: socket.socket) -> None:
        wrapped = self._context.wrap_socket(client, server_side=True)
        self._record(Use("TLS", f"localhost:{self.port}"))
        _relay(wrapped, socket.create_connection(("127.0.0.1", self.backend_port), timeout=10), b"")


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """Read up to the blank line that ends a request head; return (head, the bytes read past it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _basic_login(headers: list[str]) -> str | None:
    for line in headers:
        name, _, value = line.partition(":")
        if name.strip().lower() == "proxy-authorization" and value.strip().lower().startswith("basic "):
            return base64.b64decode(value.strip()[6:]).decode()
    return None


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("peer closed")
        data += chunk
    return data


def _relay(client: socket.socket, upstream: socket.socket, first: bytes) -> None:
    """Copy bytes both ways until either side closes (or nothing moves for RELAY_IDLE_S)."""
    with upstream:
        if first:
            upstream.sendall(first)
        pair = {client: upstream, upstream: client}
        while True:
            ready, _, _ = select.select(list(pair), [], [], RELAY_IDLE_S)
            if not ready:
                return
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                pair[sock].sendall(data)
                while isinstance(sock, ssl.SSLSocket) and sock.pending():  # decrypted bytes select() cannot see
                    pair[sock].sendall(sock.recv(sock.pending()))
