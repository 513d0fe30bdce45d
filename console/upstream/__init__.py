"""Talk to an OpenAI-compatible image API: build requests, decode answers, fetch images.

This is the package's public face; callers import from here, never from the modules behind it:

    client = UpstreamClient(make_http_client(), settings)
    await client.check_profile(profile)      # ProfileProblem when no call can be made
    outcome = await client.call(profile, prompt, Source(name, data, mime))
    request = client.prepare(profile, prompt, source)   # or build ahead (off the loop) ...
    outcome = await client.send(profile, request)       # ... and send when a slot is free
"""

from .answertext import answer_text
from .batch import (BATCH_MODES, BatchAnswer, BatchLine, BatchService, BatchState, batch_mode, batch_request,
                    line_body, service_for)
from .client import CallOutcome, UpstreamClient, make_http_client
from .debuglog import DebugLog
from .errors import (
    BlockedURLError,
    CooldownError,
    ProfileProblem,
    ResponseError,
    StatusError,
    StreamError,
    TimeoutError_,
    TooLargeError,
    TransportError,
    UpstreamError,
)
from .fetch import ResultImage
from .payload import Request, Source, input_limit, too_many_images
from .policy import check_profile
from .retry import backoff_s, is_key_refused, is_quota, is_rate_limit
from .usage import PRICE_FIELDS, Usage, batch_prices, priced
from .vision import TEXT_MODES, TextOutcome, build_text_request, text_mode

__all__ = [
    "answer_text",
    "backoff_s",
    "batch_mode",
    "BATCH_MODES",
    "batch_prices",
    "batch_request",
    "BatchAnswer",
    "BatchLine",
    "BatchService",
    "BatchState",
    "BlockedURLError",
    "build_text_request",
    "CallOutcome",
    "check_profile",
    "CooldownError",
    "DebugLog",
    "input_limit",
    "is_key_refused",
    "is_quota",
    "is_rate_limit",
    "line_body",
    "make_http_client",
    "PRICE_FIELDS",
    "priced",
    "ProfileProblem",
    "Request",
    "ResponseError",
    "ResultImage",
    "service_for",
    "Source",
    "StatusError",
    "StreamError",
    "text_mode",
    "TEXT_MODES",
    "TextOutcome",
    "TimeoutError_",
    "too_many_images",
    "TooLargeError",
    "TransportError",
    "UpstreamClient",
    "UpstreamError",
    "Usage",
]
