"""Serve a fake OpenAI-compatible image gateway on 127.0.0.1 that replays real wire formats and faults.

The server reproduces what chenyme/grok2api (generations G1, G1.5, G1.6, G2, G3) and official
OpenAI send for images: the answers, errors and faults docs/gateways.md lists.
A request path is ``/<scenario>/<endpoint>``; the scenario segment is a name optionally followed
by dot-separated ``key=value`` options (``fail_then_ok.status=503.times=2``).  Scenario handlers
live in ``testkit/fake_scenarios.py``; this module holds the images, the file routes, the framing
helpers, the registry and the HTTP server itself.

    with FakeUpstream() as fake:
        httpx.post(fake.url("g3_stream_dataurl", "/v1/chat/completions"), json={...})
        fake.expected("g3_stream_dataurl")  # -> [jpeg bytes, png bytes]
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import select
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
import zlib
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, urlsplit

from PIL import Image, ImageDraw

CREATED = 1767000000
SEED = 20260820
SSE = "text/event-stream"
SSE_GO = "text/event-stream; charset=utf-8"  # G3 (Gin) adds the charset
API_ENDPOINTS = frozenset(
    {"/v1/chat/completions", "/v1/responses", "/v1/images/generations", "/v1/images/edits"}
)
HUGE_BYTES = 80 * 1024 * 1024
HUGE_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x80\x00\x00\x00\x80\x00\x08\x02\x00\x00\x00"
SLOW_FILE_SECONDS = 2.0


# --------------------------------------------------------------------------- images


def _encode(img: Image.Image, fmt: str, **options: Any) -> bytes:
    """Encode a Pillow image to bytes in the given format."""
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def _swatch(color: tuple[int, int, int], mark: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Draw a solid swatch with a small index-dependent mark so every image is distinct."""
    img = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(img)
    x = 4 + (mark * 5) % (size[0] - 16)
    draw.rectangle((x, 4, x + 10, 12), fill=(255, 255, 255))
    draw.line((0, size[1] - 1, size[0] - 1, 0), fill=(0, 0, 0), width=2)
    return img


def _noise(size: tuple[int, int], seed: int) -> Image.Image:
    """Make a seeded random-noise RGB image (incompressible, so its encoding is big)."""
    data = random.Random(seed).randbytes(size[0] * size[1] * 3)
    return Image.frombytes("RGB", size, data)


def _gradient(side: int) -> Image.Image:
    """Make a smooth RGB gradient square (compresses well, so it stays small as PNG)."""
    ramp = Image.linear_gradient("L").resize((side, side))
    return Image.merge("RGB", (ramp, ramp.rotate(90), ramp.rotate(180)))


_SWATCHES = {  # name -> (colour, format, save options)
    "red_png": ((220, 30, 30), "PNG", {}),
    "green_jpeg": ((30, 180, 60), "JPEG", {"quality": 90}),
    "blue_webp": ((30, 70, 220), "WEBP", {"quality": 90}),
    "yellow_gif": ((240, 220, 30), "GIF", {}),
    "purple_png": ((130, 40, 170), "PNG", {}),
    "orange_jpeg": ((245, 140, 20), "JPEG", {"quality": 90}),
    "cyan_png": ((20, 200, 210), "PNG", {}),
    "magenta_jpeg": ((210, 30, 170), "JPEG", {"quality": 90}),
    "teal_webp": ((20, 120, 120), "WEBP", {"quality": 90}),
    "navy_png": ((20, 30, 110), "PNG", {}),
    "olive_jpeg": ((120, 120, 20), "JPEG", {"quality": 90}),
    "pink_png": ((250, 150, 190), "PNG", {}),
    "brown_jpeg": ((120, 70, 30), "JPEG", {"quality": 90}),
    "lime_png": ((160, 240, 40), "PNG", {}),
    "gray_jpeg": ((128, 128, 128), "JPEG", {"quality": 90}),
    "silver_webp": ((192, 192, 200), "WEBP", {"quality": 90}),
}


def _build_images() -> dict[str, bytes]:
    """Build every named test image (deterministic within a process)."""
    images = {}
    for mark, (name, (color, fmt, options)) in enumerate(_SWATCHES.items()):
        images[name] = _encode(_swatch(color, mark), fmt, **options)
    images["preview_a_png"] = _encode(_swatch((90, 90, 90), 1, (32, 24)), "PNG")
    images["preview_b_png"] = _encode(_swatch((160, 160, 160), 2, (32, 24)), "PNG")
    images["noise_jpeg"] = _encode(_noise((256, 256), SEED), "JPEG", quality=92)
    images["gradient512_png"] = _encode(_gradient(512), "PNG")
    return images


IMAGES: dict[str, bytes] = _build_images()
_MIMES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


def mime_of(name: str) -> str:
    """Return the real MIME type of a named image (from its name's suffix)."""
    return _MIMES[name.rsplit("_", 1)[1]]


def b64(data: bytes) -> str:
    """Base64-encode bytes to ASCII text (standard alphabet, padded)."""
    return base64.b64encode(data).decode("ascii")


def data_url(name: str, mime: str | None = None) -> str:
    """Return a data URL of a named image, labelled with mime (default: its real type)."""
    return f"data:{mime or mime_of(name)};base64,{b64(IMAGES[name])}"


_big_lock = threading.Lock()
_big_cache: dict[float, bytes] = {}


def big_png(mb: float) -> bytes:
    """Return a real noise PNG whose base64 is about mb MiB (built once per size)."""
    with _big_lock:
        if mb not in _big_cache:
            raw = int(mb * 1024 * 1024 * 3 / 4)  # PNG bytes wanted; stored deflate ~ raw pixels
            side = max(8, int((raw / 3) ** 0.5))
            _big_cache[mb] = _encode(_noise((side, side), SEED + 1), "PNG", compress_level=0)
        return _big_cache[mb]


# --------------------------------------------------------------------------- file ids and urls


def stable_uuid(*parts: str) -> str:
    """Return a uuid4-shaped id derived deterministically from parts."""
    digest = hashlib.md5("/".join(parts).encode()).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def g16_user_path(name: str) -> str:
    """Return the G1.5/G1.6 app-chat file path of an image (always ends in image.jpg)."""
    return f"/v1/files/image/users/{stable_uuid(name, 'u')}/generated/{stable_uuid(name, 'g')}/image.jpg"


def g16_final_path(name: str, ext: str = "jpg") -> str:
    """Return the G1.6 websocket-path file path of an image (`<uuid>-final.jpg|png`)."""
    return f"/v1/files/image/{stable_uuid(name, 'f')}-final.{ext}"


def g2_path(name: str) -> str:
    """Return the G2 file path of an image (id in the query string)."""
    return f"/v1/files/image?id={stable_uuid(name, 'q')}"


def g3_path(name: str) -> str:
    """Return the G3 media path of an image (`img_` + 32 base64url chars, no extension)."""
    digest = hashlib.sha256(f"g3/{name}".encode()).digest()[:24]
    return "/v1/media/images/img_" + base64.urlsafe_b64encode(digest).decode("ascii")


def g1_path(name: str) -> str:
    """Return the G1 cached-image path of an image (`/images/users-…-image.jpg`)."""
    return f"/images/users-{stable_uuid(name, 'u1')}-generated-{stable_uuid(name, 'g1')}-image.jpg"


def _build_files() -> dict[str, tuple[bytes, str]]:
    """Register every image under every gateway's file route, with that route's Content-Type."""
    files: dict[str, tuple[bytes, str]] = {}
    for name, data in IMAGES.items():
        files[g16_user_path(name)] = (data, "image/jpeg")  # by extension, whatever the bytes
        files[g16_final_path(name, "jpg")] = (data, "image/jpeg")
        files[g16_final_path(name, "png")] = (data, "image/png")
        files[g2_path(name)] = (data, "application/octet-stream")  # generic on purpose
        files[g3_path(name)] = (data, mime_of(name))
        files[g1_path(name)] = (data, "image/jpeg")
    return files


FILES: dict[str, tuple[bytes, str]] = _build_files()
GARBAGE = random.Random(SEED + 2).randbytes(4096)
HTML_PAGE = b"<!doctype html><html><head><title>Login</title></head><body><p>Please sign in.</p></body></html>"


# --------------------------------------------------------------------------- json and framing


def compact_json(obj: Any) -> str:
    """Serialize like orjson (G1.5+ Python gateways): compact, non-ASCII raw."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def g1_json(obj: Any) -> str:
    """Serialize like G1's json.dumps: `", "`/`": "` separators, non-ASCII as \\uXXXX."""
    return json.dumps(obj)


def go_json(obj: Any) -> str:
    """Serialize like Go encoding/json on maps (G3): sorted keys, compact, HTML-safe escapes."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Go escapes these inside strings; in JSON text they can only occur inside strings.
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def sse_frame(data: str, event: str | None = None, eol: str = "\n") -> bytes:
    """Frame one SSE event: optional `event:` line, one `data:` line, blank line."""
    head = f"event: {event}{eol}" if event else ""
    return f"{head}data: {data}{eol}{eol}".encode("utf-8")


DONE = sse_frame("[DONE]")


# --------------------------------------------------------------------------- requests


@dataclass
class Recorded:
    """One request the fake upstream received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    form: dict[str, list[tuple[str | None, str | None, bytes]]] | None
    scenario: str | None
    at: float = 0.0  # time.monotonic() when the request head had been read


def _header_params(value: str, header: str) -> Message:
    """Parse a MIME header's parameters with the stdlib email parser."""
    msg = Message()
    msg[header] = value
    return msg


def parse_multipart(body: bytes, content_type: str) -> dict[str, list[tuple[str | None, str | None, bytes]]]:
    """Parse a multipart/form-data body into field name -> [(filename, content type, bytes)]."""
    boundary = _header_params(content_type, "content-type").get_param("boundary", header="content-type")
    form: dict[str, list[tuple[str | None, str | None, bytes]]] = {}
    if not boundary:
        return form
    for part in body.split(b"--" + str(boundary).encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = _header_params(headers.get("content-disposition", ""), "content-disposition")
        name = disposition.get_param("name", header="content-disposition")
        filename = disposition.get_param("filename", header="content-disposition")
        if name is not None:
            form.setdefault(str(name), []).append(
                (None if filename is None else str(filename), headers.get("content-type"), data.removesuffix(b"\r\n"))
            )
    return form


def parse_segment(segment: str) -> tuple[str, dict[str, str]]:
    """Split `name.key=value.key=value` into (name, options); values may contain dots (`s=0.5`)."""
    name, *pieces = segment.split(".")
    options: dict[str, str] = {}
    last = None
    for piece in pieces:
        if "=" in piece:
            last, _, value = piece.partition("=")
            options[last] = value
        elif last is not None:
            options[last] += "." + piece
    return name, options


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Scenario:
    """A named wire variant: its handler and the final images it delivers."""

    name: str
    handler: Callable[["Ctx"], None]
    images: Callable[[dict[str, str]], list[bytes]]
    models_error: bool = False  # answer GET /v1/models with the scenario too (auth errors)
    sources: bool = False  # number the distinct source images of its calls (Ctx.source)


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, images: Iterable[str] | Callable[[dict[str, str]], list[bytes]] = (),
             models_error: bool = False, sources: bool = False) -> Callable:
    """Register a scenario handler; images = IMAGES names, or a function of the options."""

    def register(handler: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        if callable(images):
            expected = images
        else:
            names = tuple(images)
            expected = lambda options: [IMAGES[n] for n in names]  # noqa: E731
        SCENARIOS[name] = Scenario(name, handler, expected, models_error, sources)
        return handler

    return register


def expected_images(segment: str) -> list[bytes]:
    """Return the final image bytes a scenario segment delivers, in order."""
    name, options = parse_segment(segment)
    return SCENARIOS[name].images(options)


# --------------------------------------------------------------------------- writing responses


class ChunkedWriter:
    """Write an HTTP/1.1 chunked body, one real chunk per write (optionally gzip, re-chunked)."""

    def __init__(self, wfile: Any, gzip: bool = False, chunk_size: int | None = None) -> None:
        self._wfile = wfile
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
        self._chunk_size = chunk_size
        self.sent = 0

    def write(self, data: bytes) -> None:
        """Send data (compressed and flushed if gzip) as one or more chunks."""
        if self._gzip is not None:
            data = self._gzip.compress(data) + self._gzip.flush(zlib.Z_SYNC_FLUSH)
        view = memoryview(data)
        step = self._chunk_size or len(view) or 1
        for start in range(0, len(view), step):
            self._send(view[start:start + step])

    def _send(self, piece: memoryview) -> None:
        """Send one chunk: size line, payload, CRLF."""
        self._wfile.write(b"%x\r\n" % len(piece) + piece.tobytes() + b"\r\n")
        self.sent += len(piece)

    def close(self) -> None:
        """Finish the gzip stream if any, then send the terminating zero-size chunk."""
        if self._gzip is not None:
            tail = self._gzip.flush()
            if tail:
                self._send(memoryview(tail))
        self._wfile.write(b"0\r\n\r\n")


@dataclass
class Ctx:
    """What a scenario handler gets: the request, its options, and ways to answer it."""

    http: "_Handler"
    fake: "FakeUpstream"
    req: Recorded
    segment: str
    name: str
    opts: dict[str, str]
    endpoint: str
    source: tuple[int, int] | None = None  # (order of first arrival, calls before) when Scenario.sources

    def abs(self, path: str) -> str:
        """Return an absolute URL on this server for a path."""
        return self.fake.base_url + path

    def opt(self, key: str, default: float) -> float:
        """Return a numeric option, or default when absent."""
        return float(self.opts[key]) if key in self.opts else default

    def stream_flag(self, default: bool) -> bool:
        """Return the request's `stream` flag (JSON or form field), or default when absent."""
        if isinstance(self.req.json, dict) and "stream" in self.req.json:
            return bool(self.req.json["stream"])
        if self.req.form and "stream" in self.req.form:
            return self.req.form["stream"][0][2].strip().lower() in (b"true", b"1")
        return default

    def wait(self, seconds: float) -> bool:
        """Sleep up to seconds; return True early if the server is closing."""
        return self.fake._stop.wait(seconds)

    def _head(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """Send the status line and headers (adds Connection: close when closing)."""
        self.http.response_started = True
        self.http.send_response(status)
        for key, value in headers:
            self.http.send_header(key, value)
        if self.http.close_connection:
            self.http.send_header("Connection", "close")
        self.http.end_headers()

    def send(self, status: int, body: bytes, ctype: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send a complete response with Content-Length."""
        self._head(status, [("Content-Type", ctype), ("Content-Length", str(len(body))), *headers])
        if self.req.method != "HEAD":
            self.http.wfile.write(body)

    def send_json(self, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send already-serialized JSON text."""
        self.send(status, text.encode("utf-8"), "application/json", headers)

    def stream(self, ctype: str = SSE, status: int = 200, headers: Iterable[tuple[str, str]] = (),
               gzip: bool = False, chunk_size: int | None = None) -> ChunkedWriter:
        """Send headers for a chunked body and return its writer."""
        extra = [("Content-Encoding", "gzip")] if gzip else []
        self._head(status, [("Content-Type", ctype), ("Transfer-Encoding", "chunked"),
                            ("Cache-Control", "no-cache"), *extra, *headers])
        return ChunkedWriter(self.http.wfile, gzip=gzip, chunk_size=chunk_size)

    def send_stream(self, frames: Iterable[bytes], ctype: str = SSE, **options: Any) -> None:
        """Send frames as a complete chunked stream, one chunk per frame."""
        writer = self.stream(ctype, **options)
        for frame in frames:
            writer.write(frame)
        writer.close()

    def wait_for_disconnect(self, limit: float) -> None:
        """Block until the peer closes, the server closes or limit seconds pass (no busy loop)."""
        self.http.close_connection = True  # the response is left unfinished
        sock = self.http.connection
        poller = select.poll()  # not select.select: it fails on descriptors >= 1024
        poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        deadline = time.monotonic() + limit
        while not self.fake._stop.is_set() and time.monotonic() < deadline:
            try:
                readable = poller.poll(250)
                if readable and not sock.recv(1, socket.MSG_PEEK):
                    return
            except (OSError, ValueError):
                return
            if readable:  # the client sent bytes instead of closing: just wait
                self.wait(0.25)

    def reset_connection(self) -> None:
        """Abort the TCP connection with an RST (SO_LINGER 0, then close)."""
        self.http.close_connection = True
        sock = self.http.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.http.rfile.close()  # drop makefile's reference so close() really closes the fd
        sock.close()


# --------------------------------------------------------------------------- http server


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server with a deep accept backlog and quiet disconnect handling."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    fake: "FakeUpstream"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore client disconnects; print anything else."""
        if not isinstance(sys.exc_info()[1], (OSError, ValueError)):
            traceback.print_exc()


class _Handler(BaseHTTPRequestHandler):
    """Route one connection's requests to file routes or scenario handlers."""

    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 300  # idle keep-alive connections end eventually even if never closed
    response_started = False  # set once the current response's status line is sent

    def setup(self) -> None:
        """Track the connection and disable Nagle so each chunk leaves at once."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._connection_opened(self.connection)

    def finish(self) -> None:
        """Close the streams quietly (the socket may be reset) and untrack the connection."""
        try:
            super().finish()
        except (OSError, ValueError):
            pass
        finally:
            self.server.fake._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        """Handle GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Handle POST."""
        self._dispatch()

    def do_HEAD(self) -> None:
        """Handle HEAD."""
        self._dispatch()

    def _read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self, scenario_segment: str | None) -> Recorded:
        """Build and store the Recorded form of the current request."""
        at = time.monotonic()
        url = urlsplit(self.path)
        body = self._read_body()
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        ctype = headers.get("content-type", "")
        form = parse_multipart(body, ctype) if ctype.lower().startswith("multipart/form-data") else None
        parsed = None
        if body and form is None:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        rec = Recorded(self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)),
                       headers, body, parsed, form, scenario_segment, at)
        self.server.fake._record(rec)
        return rec

    def _dispatch(self) -> None:
        """Serve a file route or run a scenario, surviving client disconnects."""
        path = urlsplit(self.path).path
        try:
            if path.startswith(_FILE_PREFIXES):
                _serve_file(self, self._record(None))
            else:
                self._serve_api(path)
        except OSError:  # the client went away (BrokenPipe, ConnectionReset) or the socket was reset
            self.close_connection = True

    def _serve_api(self, path: str) -> None:
        """Run the scenario named by the first path segment."""
        segment, _, rest = path.lstrip("/").partition("/")
        endpoint = "/" + rest
        rec = self._record(segment)
        self.response_started = False
        name, options = parse_segment(segment)
        fake = self.server.fake
        ctx = Ctx(self, fake, rec, segment, name, options, endpoint)
        with fake._api_call():
            known = SCENARIOS.get(name)
            if known is None:
                ctx.send_json(404, compact_json(_error(f"Unknown scenario '{name}'", "unknown_scenario")))
                return
            if known.sources and self.command == "POST" and endpoint in API_ENDPOINTS:
                ctx.source = fake._note_source(segment, source_digest(rec))
            if _revoked(ctx) or ("key" in options and _refuse_key(ctx)):
                return
            if ("busy_key" in options or "spent_key" in options) and _hold_key(ctx):
                return
            if fake_batches.serve(ctx):  # the providers' batch services, under any scenario
                return
            if self.command == "GET" and endpoint == "/v1/models" and not known.models_error:
                ctx.send_json(200, _models_json())
            elif (self.command, endpoint) not in _API_ROUTES and not gemini_route(self.command, endpoint):
                ctx.send_json(404, compact_json(_error(f"Unknown endpoint {self.command} {endpoint}", "not_found")))
            else:
                self._run(known, ctx)

    def _run(self, known: Scenario, ctx: Ctx) -> None:
        """Call a scenario handler; answer 500 if it crashes before sending headers."""
        try:
            known.handler(ctx)
        except OSError:  # includes client disconnects: handled by _dispatch
            raise
        except Exception:
            traceback.print_exc()
            self.close_connection = True
            if not self.response_started:
                ctx.send_json(500, compact_json(_error("fake upstream crashed", "internal_error")))


_FILE_PREFIXES = ("/v1/files/", "/v1/media/", "/images/", "/files/")
_API_ROUTES = {("POST", e) for e in API_ENDPOINTS} | {("GET", "/v1/models")}
_MODELS = ("grok-imagine-1.0", "grok-imagine-1.0-fast", "grok-imagine-1.0-edit", "grok-imagine-image-lite",
           "grok-imagine-image", "grok-imagine-image-pro", "grok-imagine-image-2.0", "grok-imagine-image-edit",
           "grok-3", "grok-4", "gpt-image-1")


# Gemini's native routes: POST …/models/{model}:generateContent or
# :streamGenerateContent, and GET …/models (the scenario answers it: its key check comes first).
_GEMINI_POST = re.compile(r"/v1(?:beta|alpha)?/models/[\w.-]+:(?:stream)?[gG]enerateContent")
_GEMINI_GET = re.compile(r"/v1(?:beta|alpha)?/models")


def gemini_route(method: str, endpoint: str) -> bool:
    """Return True for a Gemini API route (its handler tells models listings from image calls)."""
    pattern = _GEMINI_POST if method == "POST" else _GEMINI_GET
    return method in ("GET", "POST") and bool(pattern.fullmatch(endpoint)) and endpoint != "/v1/models"


def _error(message: str, code: str) -> dict:
    """Return an OpenAI-style error object for the fake's own errors."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _redact(key: str) -> str:
    """Show a key the way OpenAI's error messages do: a few characters at each end."""
    return key[:3] + "*" * max(4, len(key) - 7) + key[-4:] if len(key) > 10 else "*" * len(key)


def _refuse_key(ctx: "Ctx") -> bool:
    """Answer 401 unless `Authorization` is exactly `Bearer <one of key=K1~K2>` with calls left; True if refused.

    `key_calls=N` lets each key make N image calls (GET /v1/models is free), then revokes it, like
    a trial key whose quota runs out in the middle of a batch.
    """
    keys = [k for k in ctx.opts["key"].split("~") if k]
    header = ctx.req.headers.get("authorization")
    given = header[len("Bearer "):] if header and header.startswith("Bearer ") else None
    if header is None:
        message = ("You didn't provide an API key. You need to provide your API key in an Authorization header "
                   "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
    elif given not in keys:
        message = f"Incorrect API key provided: {_redact(given if given is not None else header)}."
    elif "key_calls" in ctx.opts and ctx.req.method == "POST" and ctx.endpoint in API_ENDPOINTS and (
            ctx.fake._bump(f"key_calls\0{ctx.segment}\0{given}") >= int(ctx.opts["key_calls"])):
        message = (f"API key {_redact(given)} has been revoked: its quota of {int(ctx.opts['key_calls'])} "
                   "image calls is used up.")
    else:
        return False
    ctx.send_json(401, compact_json({"error": {"message": message, "type": "invalid_request_error",
                                               "code": "invalid_api_key"}}))
    return True


def _revoked(ctx: "Ctx") -> bool:
    """Answer 401 to a request made with a key the test revoked (`FakeUpstream.revoke`); True if it did."""
    header = ctx.req.headers.get("authorization", "")
    given = header[len("Bearer "):] if header.startswith("Bearer ") else ctx.req.headers.get("x-goog-api-key")
    if not ctx.fake.is_revoked(given):
        return False
    ctx.send_json(401, compact_json({"error": {"message": f"API key {_redact(given or '')} has been revoked.",
                                               "type": "invalid_request_error", "code": "invalid_api_key"}}))
    return True


def _hold_key(ctx: "Ctx") -> bool:
    """Answer 429 to image calls made with some keys; True if it did (for key pools).

    `busy_key=K1~K2`: those keys are cooling (`upstream_cooling`, `Retry-After: busy_s`, default 30);
    `spent_key=K`: those keys' quota is used up (`upstream_quota_exhausted`, `Retry-After: 3600`).
    """
    header = ctx.req.headers.get("authorization", "")
    given = header[len("Bearer "):] if header.startswith("Bearer ") else None
    if ctx.req.method != "POST" or ctx.endpoint not in API_ENDPOINTS or given is None:
        return False
    if given in ctx.opts.get("spent_key", "").split("~"):
        error = {"error": {"message": "上游账号额度已用尽 (quota exhausted)", "type": "rate_limit_error",
                           "code": "upstream_quota_exhausted"}}
        ctx.send_json(429, compact_json(error), [("Retry-After", "3600")])
        return True
    if given in ctx.opts.get("busy_key", "").split("~"):
        error = {"error": {"message": "上游冷却中，请稍后再试", "type": "rate_limit_error", "code": "upstream_cooling"}}
        ctx.send_json(429, compact_json(error), [("Retry-After", ctx.opts.get("busy_s", "30"))])
        return True
    return False


def source_digest(rec: Recorded) -> str:
    """Identify the source image of a call: hash its uploaded files or data URLs (the whole body if none)."""
    digest = hashlib.sha256()
    if rec.form is not None:
        for name in sorted(rec.form):
            for filename, _, data in rec.form[name]:
                if filename is not None:
                    digest.update(data)
    elif rec.json is not None:
        for text in _data_urls(rec.json):
            digest.update(text.encode())
    else:
        digest.update(rec.body)
    return digest.hexdigest()


def _data_urls(obj: Any) -> Iterable[str]:
    """Yield every `data:` string in a JSON value, depth first."""
    if isinstance(obj, str):
        if obj.startswith("data:"):
            yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _data_urls(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _data_urls(value)


def _models_json() -> str:
    """Return the `GET /v1/models` list."""
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "grok2api"} for m in _MODELS]
    return compact_json({"object": "list", "data": data})


# --------------------------------------------------------------------------- file routes


def _serve_file(http: _Handler, rec: Recorded) -> None:
    """Serve an image file or one of the /files/* fault routes."""
    ctx = Ctx(http, http.server.fake, rec, "", "", {}, rec.path)
    path, query = rec.path, rec.query
    if rec.method not in ("GET", "HEAD"):
        ctx.send_json(405, compact_json(_error("Method not allowed", "method_not_allowed")))
    elif path == "/v1/files/image" and "id" in query:
        _send_registered(ctx, f"{path}?id={query['id']}")
    elif path == "/files/html":
        ctx.send(200, HTML_PAGE, "text/html; charset=utf-8")
    elif path == "/files/garbage.png":
        ctx.send(200, GARBAGE, "image/png")
    elif path == "/files/redirect" and "to" in query:
        ctx.send(302, b"", "text/plain", [("Location", query["to"])])
    elif path == "/files/huge":
        _send_huge(ctx, with_length=query.get("length") == "1")
    elif path.startswith("/files/slow/") and path[len("/files/slow/"):] in IMAGES:
        name = path[len("/files/slow/"):]
        if not ctx.wait(SLOW_FILE_SECONDS):
            ctx.send(200, IMAGES[name], mime_of(name))
    else:
        _send_registered(ctx, path)


def _send_registered(ctx: Ctx, key: str) -> None:
    """Serve a registered image file, or a 404."""
    if key in FILES:
        data, ctype = FILES[key]
        ctx.send(200, data, ctype)
    else:
        ctx.send_json(404, compact_json({"detail": "Not Found"}))


def _send_huge(ctx: Ctx, with_length: bool) -> None:
    """Stream 80 MiB of PNG-signature-prefixed junk in 64 KiB chunks until done or disconnected."""
    if ctx.req.method == "HEAD" or with_length:
        ctx._head(200, [("Content-Type", "image/png"), ("Content-Length", str(HUGE_BYTES))])
        write, end = ctx.http.wfile.write, (lambda: None)
    else:  # no Content-Length: a client must enforce its cap while streaming
        writer = ctx.stream("image/png")
        write, end = writer.write, writer.close
    if ctx.req.method == "HEAD":
        return
    block = random.Random(SEED + 3).randbytes(64 * 1024)
    write(HUGE_HEAD + block[len(HUGE_HEAD):])
    for sent in range(len(block), HUGE_BYTES, len(block)):
        if ctx.fake._stop.is_set():  # closing: leave the body unfinished
            ctx.http.close_connection = True
            return
        write(block[:HUGE_BYTES - sent])
    end()


# --------------------------------------------------------------------------- the fake


class FakeUpstream:
    """A live fake gateway on 127.0.0.1:<free port>, recording every request it sees."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._requests: list[Recorded] = []
        self._counters: dict[str, int] = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._connections: set[socket.socket] = set()
        self._revoked: set[str] = set()
        self._stop = threading.Event()
        self._closed = False
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"fake-upstream-{self.port}", daemon=True)
        self._thread.start()

    # ---- addresses and expectations
    def api_base(self, scenario: str) -> str:
        """Return the OpenAI-style base URL (`…/<scenario>/v1`) of a scenario."""
        return f"{self.base_url}/{scenario}/v1"

    def url(self, scenario: str, path: str) -> str:
        """Return the full URL of an endpoint path under a scenario."""
        return f"{self.base_url}/{scenario}{path}"

    def expected(self, scenario: str) -> list[bytes]:
        """Return the exact final image bytes a scenario delivers, in order."""
        return expected_images(scenario)

    # ---- recorded state
    @property
    def requests(self) -> list[Recorded]:
        """Return a snapshot of every request seen since the last reset, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        """Return how many API requests are being handled right now."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """Return the most API requests handled at once since the last reset."""
        with self._lock:
            return self._max_in_flight

    @property
    def open_connections(self) -> int:
        """Return how many TCP connections are open right now."""
        with self._lock:
            return len(self._connections)

    def reset(self) -> None:
        """Forget recorded requests and per-scenario counters."""
        with self._lock:
            self._requests.clear()
            self._counters.clear()
            self._max_in_flight = self._in_flight

    def authorizations(self, *, models: bool = True) -> list[str | None]:
        """Return the `Authorization` header of every API call in arrival order (None when absent)."""
        return [r.headers.get("authorization") for r in self.requests
                if r.scenario is not None and (models or r.method == "POST")]

    def revoke(self, key: str) -> None:
        """Refuse `key` from now on, on every route of every scenario, as a provider's dashboard revoking it would."""
        with self._lock:
            self._revoked.add(key)

    def is_revoked(self, key: str | None) -> bool:
        """True when `key` was revoked (`revoke`)."""
        with self._lock:
            return key in self._revoked

    def batches(self) -> list[dict[str, Any]]:
        """Return every batch submitted to the fake's batch services, oldest first, with its lines' keys."""
        return fake_batches.submissions(self)

    def wait_for_connections(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at most count connections are open; return whether that happened."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._connections) <= count, timeout)

    # ---- lifecycle
    def close(self) -> None:
        """Stop serving, abort open connections and wait for the handler threads."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            _shutdown_quietly(sock)
        self._httpd.server_close()
        self._thread.join(5)
        self.wait_for_connections(0, 5.0)  # daemon handler threads are not joined by server_close()

    def __enter__(self) -> "FakeUpstream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- hooks for the handler
    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self._requests.append(rec)

    def count(self, key: str) -> int:
        """Return how many requests were counted for key."""
        with self._lock:
            return self._counters.get(key, 0)

    def _bump(self, key: str) -> int:
        """Count one request for key; return how many came before it."""
        with self._lock:
            seen = self._counters.get(key, 0)
            self._counters[key] = seen + 1
            return seen

    def _note_source(self, segment: str, digest: str) -> tuple[int, int]:
        """Count one call for a source under a segment; return (its order of first arrival, calls before)."""
        with self._lock:
            key = f"source\0{segment}\0{digest}"
            if key not in self._counters:
                count = f"sources\0{segment}"
                self._counters[key + "\0order"] = self._counters.get(count, 0)
                self._counters[count] = self._counters.get(count, 0) + 1
            before = self._counters.get(key, 0)
            self._counters[key] = before + 1
            return self._counters[key + "\0order"], before

    def _api_call(self) -> "_InFlight":
        return _InFlight(self)

    def _connection_opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.add(sock)
        if self._stop.is_set():  # accepted while closing: close() may have missed it
            _shutdown_quietly(sock)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)
            self._lock.notify_all()


class _InFlight:
    """Count an API request as in flight for the duration of a with block."""

    def __init__(self, fake: FakeUpstream) -> None:
        self._fake = fake

    def __enter__(self) -> None:
        with self._fake._lock:
            self._fake._in_flight += 1
            self._fake._max_in_flight = max(self._fake._max_in_flight, self._fake._in_flight)

    def __exit__(self, *exc: object) -> None:
        with self._fake._lock:
            self._fake._in_flight -= 1


def _shutdown_quietly(sock: socket.socket) -> None:
    """Shut a socket down both ways, ignoring one that is already gone."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


from testkit import fake_scenarios  # noqa: E402,F401  (registers the scenario handlers)
from testkit import fake_batch_lines, fake_batches  # noqa: E402,F401  (the batch services, the batch scenario)

__all__ = ["FakeUpstream", "IMAGES", "Recorded", "SCENARIOS"]
