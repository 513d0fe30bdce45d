"""Say what a call did in words a person reads: why an answer brought no image, what it used, how it failed."""

from __future__ import annotations

import httpx

from ..messages import Message, say
from .answer import AnswerParser
from .debuglog import DebugLog
from .errors import UpstreamError
from .usage import Usage


def no_image_message(parser: AnswerParser) -> str:
    """Return why an answer holds no image: a refusal, a preview only, nothing, or what the API said instead."""
    text = parser.text().strip()
    refusals = list(parser.warnings) or ([parser.refusal[1]] if parser.refusal else [])
    if not text:
        if len(refusals) > 1:
            return say("upstream.refusals", refusals=refusals)
        if refusals:
            return refusals[0]
        if parser.partial_images:
            return say("upstream.partial_only", count=parser.partial_images)
        return say("upstream.empty_answer")
    excerpt = text if len(text) <= 500 else text[:500] + "…"
    if refusals:
        refusals[-1] = _unstopped(refusals[-1])  # "…blocked."; the API said: …
        return say("upstream.refused_said", refusal=refusals[0] if len(refusals) == 1 else refusals, said=excerpt)
    return say("upstream.no_image_said", said=excerpt)


def _unstopped(words: str) -> str:
    """Return `words` without the full stops it ends with (a refusal followed by what the API said)."""
    if not words.endswith("."):
        return words
    if not isinstance(words, Message):
        return words.rstrip(".")
    params = dict(words.params)
    last = params.get("said")
    if isinstance(last, str) and str(words).endswith(str(last)):
        params["said"] = _unstopped(last)
    return Message(str(words).rstrip("."), words.code, params)


def usage_note(usage: Usage) -> str:
    """Return what an answer said it used, for the debug log (`input_tokens 12, images 1`)."""
    said = {name: value for name, value in usage.to_dict().items() if value is not None}
    return ", ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in said.items())


def timed_out(exc: httpx.TimeoutException, seconds: float) -> Message:
    """Return which wait ran out after how long: "read timeout after 300s"."""
    kind = type(exc)
    if kind is httpx.ConnectTimeout:
        return say("upstream.timeout_connect", seconds=seconds)
    if kind is httpx.ReadTimeout:
        return say("upstream.timeout_read", seconds=seconds)
    if kind is httpx.WriteTimeout:
        return say("upstream.timeout_write", seconds=seconds)
    if kind is httpx.PoolTimeout:
        return say("upstream.timeout_pool", seconds=seconds)
    return say("upstream.timeout_network", seconds=seconds)


def describe_error(exc: httpx.HTTPError) -> str:
    """Return a transport error as its type and message (the library's or the OS's words, verbatim)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def redacted(error: UpstreamError, debug: DebugLog) -> UpstreamError:
    """Take the profile's key (and any bearer token) out of an error's message; return the error."""
    message = error.message
    error.message = message.mapped(debug.redact) if isinstance(message, Message) else debug.redact(message)
    error.args = (error.message,)
    return error
