"""Turn image references into verified images: decode base64, download URLs safely."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from .. import imaging
from ..messages import say, sized, told
from ..netguard import UrlPolicy, check_url, is_public
from .debuglog import DebugLog
from .errors import ResponseError, StatusError, TimeoutError_, TooLargeError, TransportError, UpstreamError
from .extract import ImageRef
from .retry import DOWNLOAD_RETRIES, parse_retry_after, retrying

MAX_REDIRECTS = 5
_URLSAFE = bytes.maketrans(b"-_", b"+/")


@dataclass(frozen=True, slots=True)
class ResultImage:
    """A verified result image."""

    data: bytes
    sha256: str
    format: str
    width: int
    height: int
    origin: str  # url | data_url | base64
    url: str | None = None

    @property
    def mime(self) -> str:
        return imaging.MIME[self.format]


def decode_base64(text: str) -> bytes:
    """Decode standard or URL-safe base64, tolerating whitespace and missing padding."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise ResponseError(say("upstream.base64_non_ascii")) from None
    if any(space in raw for space in (b" ", b"\n", b"\r", b"\t")):
        raw = b"".join(raw.split())
    raw = raw.rstrip(b"=").translate(_URLSAFE)
    raw += b"=" * (-len(raw) % 4)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ResponseError(say("upstream.base64_invalid", said=str(exc))) from None


def payload_of(ref: ImageRef) -> str:
    """Return the base64 payload of a data URL or bare-base64 reference."""
    if ref.origin == "data_url":
        return ref.value.partition(",")[2]
    return ref.value


def verify(data: bytes, origin: str, max_pixels: int, url: str | None = None) -> ResultImage:
    """Decode `data` fully and return it as a ResultImage, or raise ResponseError."""
    try:
        info = imaging.inspect(data, max_pixels)
    except imaging.InvalidImage as exc:
        raise ResponseError(say("upstream.bad_image_at", url=url, problem=told(exc)) if url else told(exc)) from None
    digest = hashlib.sha256(data).hexdigest()
    return ResultImage(data, digest, info.format, info.width, info.height, origin, url)


def decode_inline(ref: ImageRef, max_bytes: int, max_pixels: int) -> ResultImage:
    """Decode and verify a data URL or bare-base64 reference (CPU work: run off the loop)."""
    payload = payload_of(ref)
    if len(payload) * 3 // 4 > max_bytes:
        raise TooLargeError(say("upstream.inline_too_large", size=sized(len(payload) * 3 // 4), cap=sized(max_bytes)))
    return verify(decode_base64(payload), ref.origin, max_pixels)


def absolute_url(url: str, api_url: str, rewrite_host: bool) -> str:
    """Resolve a relative result URL against the API; optionally move private hosts to the API's."""
    resolved = urljoin(api_url, url)
    if not rewrite_host:
        return resolved
    target, api = urlsplit(resolved), urlsplit(api_url)
    if target.netloc == api.netloc or not target.hostname:
        return resolved
    try:
        private = not is_public(ipaddress.ip_address(target.hostname))
    except ValueError:
        private = target.hostname == "localhost"
    if not private:
        return resolved
    # grok2api's app_url often says 127.0.0.1:8000 while the user reaches it by another address.
    return urlunsplit(target._replace(scheme=api.scheme, netloc=api.netloc))


class Downloader:
    """Download result URLs with the SSRF policy, a size cap and limited retries."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        policy: UrlPolicy,
        max_bytes: int,
        timeout_s: float,
        debug: DebugLog,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        take: Callable[[int], Awaitable[object]] | None = None,
    ) -> None:
        self._http = http
        self._take = take  # called before each chunk is kept: the caller's memory budget
        self._policy = policy
        self._max_bytes = max_bytes
        self._timeout = httpx.Timeout(timeout_s, connect=min(15.0, timeout_s))
        self._debug = debug
        self._sleep = sleep

    async def get(self, url: str) -> bytes:
        """Return the body at `url`, retrying transient failures."""
        def failed(exc: UpstreamError, attempt: int, wait: float | None) -> None:
            if wait is not None:
                self._debug.note(f"download failed ({exc}); retrying in {wait:.1f}s")

        return await retrying(lambda attempt: self._follow(url), DOWNLOAD_RETRIES, self._sleep, failed)

    async def _follow(self, url: str) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            await check_url(url, self._policy)  # every hop is checked again
            body, location = await self._once(url)
            if location is None:
                return body
            url = urljoin(url, location)
            self._debug.note(f"  redirected to {url}")
        raise ResponseError(say("upstream.too_many_redirects", url=url))

    async def _once(self, url: str) -> tuple[bytes, str | None]:
        """GET `url`; return (body, None), or (b"", redirect target)."""
        self._debug.note(f"→ GET {url}")
        try:
            async with self._http.stream("GET", url, timeout=self._timeout, follow_redirects=False) as answer:
                self._debug.note(f"← HTTP {answer.status_code} {answer.headers.get('content-type', '')}")
                if answer.is_redirect and "location" in answer.headers:
                    return b"", answer.headers["location"]
                if answer.status_code >= 400:
                    raise StatusError(
                        say("upstream.download_status", status=answer.status_code, url=url),
                        http_status=answer.status_code,
                        retry_after=parse_retry_after(answer.headers.get("retry-after")),
                    )
                what = say("upstream.what_download", url=url)
                return await read_capped(answer, self._max_bytes, what, self._take), None
        except httpx.TimeoutException:
            raise TimeoutError_(say("upstream.download_timeout", url=url)) from None
        except httpx.HTTPError as exc:
            raise TransportError(say("upstream.download_failed", url=url, said=str(exc) or type(exc).__name__)) from None


async def read_head(answer: httpx.Response, max_bytes: int) -> bytes:
    """Read at most the first `max_bytes` of a streamed body and stop (the rest is never read)."""
    head = bytearray()
    async for chunk in answer.aiter_bytes():
        head += chunk[: max_bytes - len(head)]
        if len(head) >= max_bytes:
            break
    return bytes(head)


async def read_capped(answer: httpx.Response, max_bytes: int, what: str,
                      take: Callable[[int], Awaitable[object]] | None = None) -> bytes:
    """Read a whole streamed body, refusing more than `max_bytes`; `await take(n)` before keeping each chunk."""
    declared = answer.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLargeError(say("upstream.over_cap_declared", what=what, size=sized(int(declared)), cap=sized(max_bytes)))
    body = bytearray()
    async for chunk in answer.aiter_bytes():
        if len(body) + len(chunk) > max_bytes:
            raise TooLargeError(say("upstream.over_cap", what=what, cap=sized(max_bytes)))
        if take is not None:
            await take(len(chunk))
        body += chunk
    return bytes(body)

