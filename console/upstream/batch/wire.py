"""Make one batch-service HTTP exchange: URL policy, the profile's auth, a redacted debug log, readable errors, retries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from ...messages import say, sized
from ...netguard import check_url
from ...profile import ApiProfile
from ..debuglog import DebugLog
from ..errors import ResponseError, StatusError, TimeoutError_, TooLargeError, TransportError, UpstreamError
from ..faults import ERROR_BODY_BYTES, read_error
from ..payload import build_headers, summarize
from ..retry import delay_s, is_retryable, parse_retry_after, retrying

if TYPE_CHECKING:
    from ..client import UpstreamClient

CONNECT_TIMEOUT_S = 15.0
CALL_TIMEOUT_S = 120.0  # one batch-service call (an upload of a large JSONL included)
OFF_LOOP_BYTES = 1024 * 1024  # answers larger than this (a finished Gemini batch inline) are parsed in the pool
OFF_LOOP_LINE = 256 * 1024  # an answer line longer than this (an image in base64) is parsed in the pool


@dataclass(frozen=True)
class Answer:
    """A batch service's answer, read whole (up to its cap)."""

    status: int
    headers: httpx.Headers
    content: bytes


class Wire:
    """One profile's exchanges with a batch service, through the upstream client's http and policy."""

    def __init__(self, client: "UpstreamClient", profile: ApiProfile, debug: DebugLog) -> None:
        self._client = client
        self._profile = profile
        self.debug = debug

    def headers(self, **extra: str) -> dict[str, str]:
        """Return the profile's headers (auth, extra headers) for a JSON exchange, with `extra` added."""
        headers = build_headers(self._profile)
        headers["Accept"] = "application/json"
        headers.update(extra)
        return headers

    async def json(self, method: str, url: str, what: str, *, body: Any = None, retry: bool = True,
                   **kwargs: Any) -> dict:
        """Make the exchange and return its JSON object answer; `body` goes as JSON."""
        if body is not None:
            kwargs["content"] = json.dumps(body, ensure_ascii=False).encode("utf-8")
            kwargs.setdefault("headers", self.headers(**{"Content-Type": "application/json"}))
            kwargs.setdefault("summary", summarize(body))
        answer = await self.send(method, url, what, retry=retry, **kwargs)
        try:
            data = json.loads(answer.content) if len(answer.content) < OFF_LOOP_BYTES else await self.off_loop(
                json.loads, answer.content)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ResponseError(say("upstream.batch_not_json", what=what),
                                http_status=answer.status)
        return data

    async def off_loop(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work (parsing a large file) in the client's thread pool."""
        return await self._client.off_loop(func, *args)

    async def read_line(self, read: Callable[..., Any], raw: bytes, *args: Any) -> Any:
        """Return `read(raw, *args)` for one line of a JSONL file: in the pool when the line is long (an image)."""
        return await self.off_loop(read, raw, *args) if len(raw) > OFF_LOOP_LINE else read(raw, *args)

    async def sleep(self, seconds: float) -> None:
        """Wait, by the client's clock (tests make it instant)."""
        await self._client.sleep(seconds)

    async def send(self, method: str, url: str, what: str, *, retry: bool = True, cap: int | None = None,
                   summary: Any = None, headers: dict[str, str] | None = None, **kwargs: Any) -> Answer:
        """Make the exchange (retried per the profile's policy when `retry`) and return the read answer."""
        async def once(attempt: int) -> Answer:
            return await self._once(method, url, what, cap, summary, headers or self.headers(), kwargs)

        def failed(exc: UpstreamError, attempt: int, wait: float | None) -> None:
            self.debug.note(f"{what}: attempt {attempt} failed: {exc}")
            if wait is not None:
                self.debug.note(f"retrying in {wait:.2f}s")

        try:
            if not retry:
                return await once(1)
            return await retrying(once, self._profile.max_retries, self._client.sleep, failed)
        except UpstreamError as exc:
            exc.message = self.debug.redact(exc.message)  # a gateway may quote the key back
            exc.args = (exc.message,)
            raise

    async def lines(self, url: str, what: str, line_cap: int, *, gaps: bool = False) -> AsyncIterator[bytes | None]:
        """GET a JSONL file and yield its lines as they arrive (never the whole file in memory); a line over
        `line_cap` bytes is left out with a note (yielded as None with `gaps`, for a reader that counts lines).
        Blank lines are passed over. Not retried here: the caller reads the file again."""
        await check_url(url, self._client.api_policy(self._profile))
        headers = self.headers()
        self.debug.request("GET", url, headers, {})
        timeout = httpx.Timeout(max(self._profile.timeout_s, CALL_TIMEOUT_S), connect=CONNECT_TIMEOUT_S)
        try:
            async with self._client.http_for(self._profile).stream("GET", url, headers=headers,
                                                                   timeout=timeout) as answer:
                self.debug.response(answer.status_code, answer.headers)
                if answer.status_code >= 300:
                    body = await _read(answer, ERROR_BODY_BYTES, what)
                    self.debug.raw(body)
                    said = read_error(body, answer.status_code, answer.headers)
                    raise StatusError(say("upstream.batch_http", status=answer.status_code, what=what, said=said.message),
                                      http_status=answer.status_code, kind=said.kind, code=said.code)
                async for line in _split_lines(answer.aiter_bytes(), line_cap):
                    if line is None:
                        self.debug.note(f"{what}: a line over {line_cap} bytes was left out")
                        if gaps:
                            yield None
                    elif line.strip():
                        yield line
        except httpx.TimeoutException:
            raise TimeoutError_(say("upstream.batch_timeout", what=what)) from None
        except httpx.HTTPError as exc:
            raise TransportError(say("upstream.batch_connection", host=urlsplit(url).netloc, what=what,
                                     said=f"{type(exc).__name__}: {exc}")) from None

    async def _once(self, method: str, url: str, what: str, cap: int | None, summary: Any,
                    headers: dict[str, str], kwargs: dict[str, Any]) -> Answer:
        await check_url(url, self._client.api_policy(self._profile))
        self.debug.request(method, url, headers, summary if summary is not None else {})
        timeout = httpx.Timeout(max(self._profile.timeout_s, CALL_TIMEOUT_S), connect=CONNECT_TIMEOUT_S)
        limit = cap or self._client.answer_cap
        try:
            async with self._client.http_for(self._profile).stream(method, url, headers=headers, timeout=timeout,
                                                                   **kwargs) as answer:
                self.debug.response(answer.status_code, answer.headers)
                body = await _read(answer, limit if answer.status_code < 300 else ERROR_BODY_BYTES, what)
        except httpx.TimeoutException:
            raise TimeoutError_(say("upstream.batch_timeout", what=what)) from None
        except httpx.HTTPError as exc:
            raise TransportError(say("upstream.batch_connection", host=urlsplit(url).netloc, what=what,
                                     said=f"{type(exc).__name__}: {exc}")) from None
        self.debug.raw(body)
        if answer.status_code >= 300:
            said = read_error(body, answer.status_code, answer.headers)
            retry_after = answer.headers.get("retry-after")
            raise StatusError(say("upstream.batch_http", status=answer.status_code, what=what, said=said.message),
                              http_status=answer.status_code, kind=said.kind, code=said.code,
                              retry_after=parse_retry_after(retry_after) if retry_after else said.retry_after)
        return Answer(answer.status_code, answer.headers, body)


async def create_once(create: Callable[[bool], Awaitable[Any]], find: Callable[[], Awaitable[Any]],
                      wire: Wire, what: str, retries: int) -> Any:
    """Create a batch at most once: after an ambiguous failure, look for it by label before trying again.

    A timeout or a 5xx may hide a batch that was made; sending the create again would submit every
    task twice. `create(False)` makes one attempt; `find()` returns the batch made under the label, or None.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await create(False)
        except UpstreamError as exc:
            if attempt > retries or not is_retryable(exc):
                raise
            wire.debug.note(f"{what}: attempt {attempt} failed ({exc}); looking for the batch before trying again")
            found = await find()
            if found is not None:
                wire.debug.note(f"{what}: the batch was made after all; adopting it")
                return found
            await wire.sleep(delay_s(attempt - 1, exc.retry_after))


async def _split_lines(chunks: AsyncIterator[bytes], cap: int) -> AsyncIterator[bytes | None]:
    """Yield the lines of a byte stream (without their newline); None for a line longer than `cap`, whose
    bytes are dropped as they come."""
    pending = bytearray()
    over = False
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if not over:
                pending += chunk[start:end]
            yield None if over or len(pending) > cap else bytes(pending)
            pending.clear()
            over, start = False, end + 1
        if not over:
            pending += chunk[start:]
            if len(pending) > cap:
                over = True
                pending.clear()
    if over:
        yield None
    elif pending:
        yield bytes(pending)


async def _read(answer: httpx.Response, cap: int, what: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in answer.aiter_bytes():
        total += len(chunk)
        if total > cap:
            if answer.status_code >= 300:
                break  # an error body: its head is enough
            raise TooLargeError(say("upstream.batch_over_cap", what=what, cap=sized(cap)))
        chunks.append(chunk)
    return b"".join(chunks)

