"""Say what a call did in words a person reads: why an answer brought no image, what it used, how it failed."""

from __future__ import annotations

import httpx

from .answer import AnswerParser
from .debuglog import DebugLog
from .errors import UpstreamError
from .usage import Usage


def no_image_message(parser: AnswerParser) -> str:
    """Return why an answer holds no image: a refusal, a preview only, nothing, or what the API said instead."""
    text = parser.text().strip()
    refused = "; ".join(parser.warnings) or (parser.refusal[1] if parser.refusal else "")
    if not text:
        if refused:
            return refused
        if parser.partial_images:
            return f"the answer held only {parser.partial_images} partial preview image(s), no final image"
        return "the answer was empty: no text and no image"
    excerpt = text if len(text) <= 500 else text[:500] + "…"
    if refused:
        return f"{refused.rstrip('.')}; the API said: {excerpt}"
    return f"no image in the answer; the API said: {excerpt}"


def usage_note(usage: Usage) -> str:
    """Return what an answer said it used, for the debug log (`input_tokens 12, images 1`)."""
    said = {name: value for name, value in usage.to_dict().items() if value is not None}
    return ", ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in said.items())


def timeout_kind(exc: httpx.TimeoutException) -> str:
    """Return which wait ran out: connect, read, write, pool or network."""
    return {httpx.ConnectTimeout: "connect", httpx.ReadTimeout: "read", httpx.WriteTimeout: "write",
            httpx.PoolTimeout: "pool"}.get(type(exc), "network")


def describe_error(exc: httpx.HTTPError) -> str:
    """Return a transport error as its type and message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def redacted(error: UpstreamError, debug: DebugLog) -> UpstreamError:
    """Take the profile's key (and any bearer token) out of an error's message; return the error."""
    error.message = debug.redact(error.message)
    error.args = (error.message,)
    return error
