"""Make one upstream call with retries and return verified images; knows HTTP, not tasks."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import httpx

from ..messages import say, sized, told
from ..netguard import UrlPolicy, check_url
from ..profile import ApiProfile
from ..settings import Settings
from ..proxyurl import describe as describe_proxy
from . import policy
from .answer import AnswerParser
from .budget import AnswerBudget, Share
from .cooldown import Deployments
from .debuglog import DebugLog
from .errors import (ProfileProblem, ResponseError, StatusError, TimeoutError_, TooLargeError, TransportError,
                     UpstreamError)
from .explain import describe_error, no_image_message, redacted, timed_out, usage_note
from .extract import ImageRef
from .faults import ERROR_BODY_BYTES, read_error
from .fetch import Downloader, ResultImage, absolute_url, decode_inline, read_capped, read_head, verify
from .models import list_models
from .payload import Request, Source, build
from .proxy import HttpClients, proxy_for
from .retry import parse_retry_after, retrying
from .sse import SSEDecoder
from .usage import Usage
from .vision import TextAnswer, TextOutcome

CONNECT_TIMEOUT_S = 15.0
WRITE_TIMEOUT_S = 120.0
OFF_LOOP_BYTES = 256 * 1024  # JSON payloads larger than this are parsed in the thread pool


@dataclass
class CallOutcome:
    """A successful call: at least one verified image."""

    images: list[ResultImage]
    text: str
    http_status: int
    attempts: int
    endpoint: str
    warnings: list[str] = field(default_factory=list)
    usage: Usage | None = None  # what the last attempt used and cost, as the answer reported it


def make_http_client(max_connections: int = 256) -> httpx.AsyncClient:
    """Return the shared httpx client: no environment proxies, no automatic redirects, and
    connections only to the addresses the network policy checked (PinnedTransport);
    profiles with a proxy get a client of their own from it (`HttpClients.through`)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=64)
    return HttpClients(limits)


class UpstreamClient:
    """Call an OpenAI-compatible image API: `await client.call(profile, prompt, source)`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        executor: Executor | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._settings = settings
        self._executor = executor
        self._sleep = sleep
        self._deployments = Deployments()  # what each deployment last did, across calls and runs
        self._budget = AnswerBudget(settings.max_answers_bytes)  # answers held in memory at once, all calls

    async def call(
        self,
        profile: ApiProfile,
        prompt: str,
        source: Source | None = None,
        *,
        references: Sequence[Source] = (),
        debug: DebugLog | None = None,
        on_attempt: Callable[[int], Any] | None = None,
    ) -> CallOutcome:
        """Send the request (the source, then any references), retrying per the policy; raise an UpstreamError when it fails."""
        request = await self._off_loop(build, profile, prompt, source, references)
        return await self.send(profile, request, debug=debug, on_attempt=on_attempt)

    @staticmethod
    def prepare(profile: ApiProfile, prompt: str, source: Source | None = None,
                references: Sequence[Source] = ()) -> Request:
        """Build the request `call` would send (blocking work: run it off the loop); ProfileProblem if none can be."""
        return build(profile, prompt, source, references)

    async def send(
        self,
        profile: ApiProfile,
        request: Request,
        *,
        debug: DebugLog | None = None,
        on_attempt: Callable[[int], Any] | None = None,
        rate_limits: bool = True,
        keep: Callable[[ResultImage], Any] | None = None,
        answered: Callable[[], Awaitable[Any]] | None = None,
        on_usage: Callable[[int, Usage], Any] | None = None,
    ) -> CallOutcome:
        """Send a prepared request, retrying per the policy; raise an UpstreamError when it fails.

        With `rate_limits` False a rate-limit error is raised at once instead of retried: the
        engine slows the whole run down rather than each task sitting out its own 429.
        `keep(image)` runs in the thread pool right after each image is verified, in the same
        hand-off (the engine writes it to its cache there, saving a hop per task).
        `await answered()` once the answer is read, when its images are all inline (none to
        download): the call is over, and the engine gives its place to the next call while the
        images are checked. Nothing is called again after it: what can still fail is the images
        themselves (a ResponseError), which the retry policy never retries.
        """
        return await self._retried(profile, request, debug or DebugLog(profile.secrets()), on_attempt, on_usage,
                                   rate_limits, lambda debug: self._attempt(request, profile, debug, keep, answered))

    async def send_text(
        self,
        profile: ApiProfile,
        request: Request,
        *,
        debug: DebugLog | None = None,
        on_attempt: Callable[[int], Any] | None = None,
        rate_limits: bool = True,
        on_usage: Callable[[int, Usage], Any] | None = None,
    ) -> TextOutcome:
        """Send a prepared text-answer request (a vision model's caption) like `send`, and return its text.

        No image is looked for in the answer; a refusal is part of the outcome, not an error, and
        is never retried.
        """
        return await self._retried(profile, request, debug or DebugLog(profile.secrets()), on_attempt, on_usage,
                                   rate_limits, lambda debug: self._text_attempt(request, profile, debug))

    async def _retried(self, profile: ApiProfile, request: Request, debug: DebugLog,
                       on_attempt: Callable[[int], Any] | None, on_usage: Callable[[int, Usage], Any] | None,
                       rate_limits: bool, attempt_once: Callable[[DebugLog], Awaitable[Any]]) -> Any:
        """Make attempts with `attempt_once` per the retry policy, reporting each attempt and its usage."""
        api_policy = self.api_policy(profile)
        deployment = self._deployments.get(request.url, profile.model, profile.api_key)

        async def once(attempt: int) -> Any:
            if on_attempt:
                on_attempt(attempt)
            await check_url(request.url, api_policy)
            try:
                outcome = await attempt_once(debug)
            except UpstreamError as exc:
                if on_usage is not None and exc.usage is not None:
                    on_usage(attempt, exc.usage)
                raise deployment.explain(exc) from None  # a router's cooldown stands for the failure before it
            if on_usage is not None and outcome.usage is not None:
                on_usage(attempt, outcome.usage)
            deployment.succeeded()
            outcome.attempts = attempt
            return outcome

        def failed(exc: UpstreamError, attempt: int, wait: float | None) -> None:
            deployment.failed(exc)
            debug.note(f"attempt {attempt} failed: {type(exc).__name__}: {exc}")
            if wait is not None:
                debug.note(f"retrying in {wait:.2f}s")

        try:
            return await retrying(once, profile.max_retries, self._sleep, failed, rate_limits=rate_limits)
        except UpstreamError as exc:
            redacted(exc, debug)  # a gateway may quote the Authorization header back
            raise

    async def outcome_of(self, profile: ApiProfile, request: Request, payload: dict, debug: DebugLog | None = None,
                         keep: Callable[[ResultImage], Any] | None = None, http_status: int = 200) -> CallOutcome:
        """Turn an answer body read elsewhere (a batch line's) into verified images exactly as a live answer.

        The same parser, downloads, verification and `keep`; a ResponseError (with the usage the
        body reported) when it holds no usable image.
        """
        debug = debug or DebugLog(profile.secrets())
        parser = AnswerParser()
        parser.feed(payload)
        async with self._budget.reading() as share:
            try:
                outcome = await self._images(request, profile, debug, share, keep, None, parser, http_status)
            except UpstreamError as exc:
                if exc.usage is None:
                    exc.usage = parser.usage.usage(0)
                raise redacted(exc, debug) from None
        outcome.attempts = 1
        return outcome

    async def sleep(self, seconds: float) -> None:
        """Wait by the client's clock (tests pass one that does not)."""
        await self._sleep(seconds)

    @property
    def answer_cap(self) -> int:
        """Return the largest answer body read, in bytes."""
        return self._settings.max_response_bytes

    async def check_profile(self, profile: ApiProfile) -> str:
        """Return the URL a call would POST to, or raise ProfileProblem saying why no call can be made."""
        return await policy.check_profile(profile, self._settings)

    async def models(self, profile: ApiProfile) -> tuple[int, list[str]]:
        """GET <api base>/models once (no retries): return (HTTP status, model ids)."""
        return await list_models(self.http_for(profile), profile, self.api_policy(profile))

    def http_for(self, profile: ApiProfile) -> httpx.AsyncClient:
        """Return the client for this profile's calls and downloads: direct, or through its proxy."""
        proxy = proxy_for(profile, self._settings)
        if not proxy:
            return self._http
        through = getattr(self._http, "through", None)
        if through is None:
            raise ProfileProblem(say("upstream.proxy_unsupported"))
        return through(proxy)

    async def _attempt(self, request: Request, profile: ApiProfile, debug: DebugLog,
                       keep: Callable[[ResultImage], Any] | None = None,
                       answered: Callable[[], Awaitable[Any]] | None = None) -> CallOutcome:
        async with self._budget.reading() as share:
            return await self._attempt_held(request, profile, debug, share, keep, answered)

    async def _attempt_held(self, request: Request, profile: ApiProfile, debug: DebugLog, share: Share,
                            keep: Callable[[ResultImage], Any] | None = None,
                            answered: Callable[[], Awaitable[Any]] | None = None) -> CallOutcome:
        """Make one attempt whose answer counts against the client's memory budget through `share`."""
        try:
            async with asyncio.timeout(profile.timeout_s):
                parser, status = await self._send(request, profile, debug, share)
        except TimeoutError:
            raise TimeoutError_(say("upstream.no_answer_within", seconds=profile.timeout_s)) from None
        try:
            return await self._images(request, profile, debug, share, keep, answered, parser, status)
        except UpstreamError as exc:
            if exc.usage is None:  # the answer was read: the call is paid even though it brought no image
                exc.usage = parser.usage.usage(0)
            raise

    async def _text_attempt(self, request: Request, profile: ApiProfile, debug: DebugLog) -> TextOutcome:
        """Make one attempt of a text-answer request and read its text (and any refusal)."""
        async with self._budget.reading() as share:
            try:
                async with asyncio.timeout(profile.timeout_s):
                    parser, status = await self._send(request, profile, debug, share, TextAnswer())
            except TimeoutError:
                raise TimeoutError_(say("upstream.no_answer_within", seconds=profile.timeout_s)) from None
        refused = parser.refused()
        debug.note(f"answer: {len(parser.text())} chars of text" + (f"; refused: {refused}" if refused else ""))
        usage = parser.usage.usage(0)
        if parser.usage.seen:
            debug.note(f"usage: {usage_note(usage)}")
        return TextOutcome(parser.text(), status, 0, request.url, refused, usage)

    async def _images(self, request: Request, profile: ApiProfile, debug: DebugLog, share: Share,
                      keep: Callable[[ResultImage], Any] | None, answered: Callable[[], Awaitable[Any]] | None,
                      parser: AnswerParser, status: int) -> CallOutcome:
        """Turn a read answer into verified images; a ResponseError when it holds none."""
        refs = parser.refs()
        debug.note(f"answer: {len(parser.text())} chars of text, {len(refs)} image reference(s), "
                   f"{parser.partial_images} partial image(s) ignored")
        usage = parser.usage.usage(len(refs))
        if parser.usage.seen:
            debug.note(f"usage: {usage_note(usage)}")
        for note in parser.notes[:20]:
            debug.note(f"  parse: {note}")
        if not refs:
            # A refusal (Gemini's blockReason or finishReason, Seedream's failed images) is final: not retried.
            reason = parser.refusal[0] if parser.refusal else ""
            error = ResponseError(no_image_message(parser), http_status=status, kind="refusal" if reason else "",
                                  code=reason)
            error.usage = usage
            raise error
        if answered is not None and all(ref.origin != "url" for ref in refs):
            await answered()
        try:
            images, warnings = await self._materialize(refs, request.url, profile, debug, share, keep)
        except UpstreamError as exc:
            exc.usage = usage  # the images were made (and paid for) even if none could be used
            raise
        said = parser.warnings or ([parser.refusal[1]] if parser.refusal else [])
        return CallOutcome(images, parser.text(), status, 0, request.url, said + warnings, usage)

    async def _send(self, request: Request, profile: ApiProfile, debug: DebugLog,
                    share: Share, parser: AnswerParser | None = None) -> tuple[AnswerParser, int]:
        debug.request("POST", request.url, request.headers, request.summary)
        proxy = proxy_for(profile, self._settings)
        if proxy:
            debug.note(f"through the proxy {describe_proxy(proxy)}")
        timeout = httpx.Timeout(profile.timeout_s, connect=CONNECT_TIMEOUT_S, write=WRITE_TIMEOUT_S)
        http = self.http_for(profile)
        try:
            async with http.stream(
                "POST", request.url, headers=request.headers, content=request.content,
                files=request.files or None, data=request.form or None, timeout=timeout,
            ) as answer:
                debug.response(answer.status_code, answer.headers)
                parser = parser if parser is not None else AnswerParser()
                parser.usage.header(answer.headers)
                try:
                    await self._check_status(answer, debug)
                    await self._read_answer(answer, parser, debug, share)
                except UpstreamError as exc:
                    if parser.usage.seen:  # the gateway said what the failed call used (LiteLLM's cost header)
                        exc.usage = parser.usage.usage()
                    raise
                return parser, answer.status_code
        except httpx.TimeoutException as exc:
            raise TimeoutError_(timed_out(exc, profile.timeout_s)) from None
        except httpx.HTTPError as exc:
            raise TransportError(say("upstream.connection_failed", host=urlsplit(request.url).netloc,
                                     said=describe_error(exc))) from None

    async def _check_status(self, answer: httpx.Response, debug: DebugLog) -> None:
        status = answer.status_code
        if status < 300:
            return
        body = b""
        try:
            body = await read_head(answer, ERROR_BODY_BYTES)
        except httpx.HTTPError:
            pass
        debug.raw(body)
        if 300 <= status < 400:
            where = answer.headers.get("location", "?")
            raise ResponseError(say("upstream.redirected", status=status, where=where), http_status=status)
        said = read_error(body, status, answer.headers)
        raise StatusError(say("upstream.http_status", status=status, said=said.message), http_status=status,
                          retry_after=parse_retry_after(answer.headers.get("retry-after")) if "retry-after" in
                          answer.headers else said.retry_after,
                          kind=said.kind, code=said.code, not_submitted=said.not_submitted)

    async def _read_answer(self, answer: httpx.Response, parser: AnswerParser, debug: DebugLog, share: Share) -> None:
        """Branch on Content-Type, not on the request's stream flag: errors come as JSON before a stream."""
        kind = answer.headers.get("content-type", "").split(";")[0].strip().lower()
        cap = self._settings.max_response_bytes
        if kind.endswith("json") and "ndjson" not in kind:
            body = await read_capped(answer, cap, say("upstream.what_answer"), share.take)
            debug.raw(body)
            obj = await self._parse_json(body.decode("utf-8", errors="replace"))
            if obj is not _NOT_JSON:
                parser.feed(obj)
                return
            debug.note("answer labelled JSON is not one JSON document; reading it as a stream")
            decoder = SSEDecoder()
            await self._events([*decoder.feed(body), *decoder.finish()], parser)
            return
        if kind.startswith("text/") and kind != "text/event-stream":
            body = await read_capped(answer, cap, say("upstream.what_answer"), share.take)
            debug.raw(body)
            parser.feed_text(body.decode("utf-8", errors="replace"))
            return
        await self._read_stream(answer, parser, debug, cap, share)

    async def _read_stream(self, answer: httpx.Response, parser: AnswerParser, debug: DebugLog, cap: int,
                           share: Share) -> None:
        decoder = SSEDecoder()
        total = 0
        chunks = answer.aiter_bytes()
        async for chunk in chunks:
            total += len(chunk)
            if total > cap:
                raise TooLargeError(say("upstream.answer_over_cap", cap=sized(cap)))
            await share.take(len(chunk))
            debug.raw(chunk)
            if await self._events(decoder.feed(chunk), parser):
                await _drain(chunks)
                return
        if total == 0:  # grok2api may answer 200 and close at once: a fault, retried
            raise TransportError(say("upstream.empty_stream"))
        await self._events(decoder.finish(), parser)

    async def _events(self, events: list, parser: AnswerParser) -> bool:
        """Feed decoded events to the parser; return True at [DONE]."""
        for event in events:
            if event.done:
                return True
            obj = await self._parse_json(event.data)
            if obj is _NOT_JSON:
                parser.feed_text(event.data)  # plain-text data lines: keep them as answer text
            else:
                parser.feed(obj, event.event)
        return False

    async def _parse_json(self, text: str) -> Any:
        if len(text) > OFF_LOOP_BYTES:
            return await self._off_loop(_loads, text)
        return _loads(text)

    async def _materialize(
        self, refs: list[ImageRef], api_url: str, profile: ApiProfile, debug: DebugLog, share: Share,
        keep: Callable[[ResultImage], Any] | None = None,
    ) -> tuple[list[ResultImage], list[str]]:
        downloads = await policy.download_policy(profile, self._settings)
        downloader = Downloader(self.http_for(profile), downloads, self._settings.max_download_bytes, profile.timeout_s,
                                debug, self._sleep, take=share.take)  # downloaded images count against the budget
        results = await asyncio.gather(
            *(self._one_image(ref, api_url, profile, downloader, keep) for ref in refs), return_exceptions=True
        )
        images: list[ResultImage] = []
        warnings: list[str] = []
        seen: set[str] = set()
        for ref, result in zip(refs, results):
            if isinstance(result, BaseException):
                if not isinstance(result, UpstreamError):
                    raise result
                warnings.append(_rejected(ref, result))
                debug.note(f"image {ref.describe()} rejected: {result}")
            elif result.sha256 not in seen:
                seen.add(result.sha256)
                images.append(result)
        if not images:
            raise ResponseError(say("upstream.no_usable_image", problems=warnings))
        return images, warnings

    async def _one_image(self, ref: ImageRef, api_url: str, profile: ApiProfile, downloader: Downloader,
                         keep: Callable[[ResultImage], Any] | None = None) -> ResultImage:
        max_pixels = self._settings.max_image_pixels
        if ref.origin != "url":
            return await self._off_loop(_kept, keep, decode_inline, ref, self._settings.max_download_bytes, max_pixels)
        url = absolute_url(ref.value, api_url, profile.rewrite_result_host)
        data = await downloader.get(url)
        return await self._off_loop(_kept, keep, verify, data, "url", max_pixels, url)

    def api_policy(self, profile: ApiProfile) -> UrlPolicy:
        """Return the network policy for calling this profile's API URL."""
        return policy.api_policy(profile, self._settings)

    async def off_loop(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work in the client's thread pool."""
        return await self._off_loop(func, *args)

    async def _off_loop(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)


_NOT_JSON = object()


def _rejected(ref: ImageRef, error: UpstreamError) -> str:
    """Return why an image of the answer was not kept: "image <url>: <why>", or the download's own words naming it."""
    if ref.origin == "url":
        problem = told(error)
        if ref.value in problem:  # "HTTP 404 downloading <url>": naming it twice says nothing more
            return problem
        return say("upstream.image_url_rejected", url=ref.describe(), problem=problem)
    return say("upstream.image_inline_rejected", origin=ref.origin, chars=len(ref.value), problem=told(error))


def _kept(keep: Callable[[ResultImage], Any] | None, check: Callable[..., ResultImage], *args: Any) -> ResultImage:
    """Decode and verify an image (`check`), then hand it to `keep` in the same pool call."""
    image = check(*args)
    if keep is not None:
        keep(image)
    return image


DRAIN_BYTES = 64 * 1024
DRAIN_TIMEOUT_S = 0.2


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """After [DONE], read the little that is left so the connection can be reused (keep-alive)."""
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            left = 0
            async for chunk in chunks:
                left += len(chunk)
                if left > DRAIN_BYTES:
                    return  # more than a tail: let the connection close
    except (TimeoutError, httpx.HTTPError):
        pass  # a server that keeps talking after [DONE] just loses its connection


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON
