"""The error tree of upstream calls; the task runner sees only these, never httpx.

UpstreamError
├── StatusError         the API answered HTTP 4xx/5xx (message = the upstream's, verbatim)
├── StreamError         an error inside an HTTP 200 answer (event: error, response.failed, …)
├── TransportError      the connection failed, was reset, or the answer was malformed HTTP
│   └── TimeoutError_   connect, read or total timeout
├── CooldownError       a router refused the call because this deployment had just failed: that failure
├── ResponseError       the answer arrived but held no usable image (refusal, empty, garbage)
├── TooLargeError       the answer or a download passed its size cap
├── BlockedURLError     the SSRF policy refused a URL (also a netguard.BlockedURL)
└── ProfileProblem      the profile cannot make requests (no API URL or model, bad or refused URL)

Which of these are retried is decided in one place, `retry.is_retryable`.
"""

from __future__ import annotations

from ..messages import say, told
from ..netguard import BlockedURL


class UpstreamError(Exception):
    """A failed upstream call, with what the task shows the user."""

    def __init__(self, message: str, *, http_status: int | None = None, retry_after: float | None = None,
                 kind: str = "", code: str = "", not_submitted: bool = False):
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after
        self.kind = kind  # the answer's machine-readable error type and code, when it had them
        self.code = code
        self.not_submitted = not_submitted  # the gateway says nothing reached the provider (not billed)
        self.attempts = 0  # set by the retry loop when it gives up
        self.usage = None  # what the failed attempt used, when an answer reported it (a paid refusal)

    def __str__(self) -> str:
        return self.message


class StatusError(UpstreamError):
    """The API answered with an HTTP error status."""


class StreamError(UpstreamError):
    """The API sent an error inside a successful (HTTP 200) answer."""

    def __init__(self, message: str, *, kind: str = "", code: str = "", http_status: int | None = 200,
                 words: str | None = None):
        super().__init__(message, http_status=http_status, kind=kind, code=code)
        self.words = words  # the API's own words (with its type and code), when it gave some


class TransportError(UpstreamError):
    """The connection failed or broke before a complete answer arrived."""


class TimeoutError_(TransportError):
    """The upstream did not answer (or went silent) within the time allowed."""


class CooldownError(UpstreamError):
    """A gateway's router refused the call because this deployment had just failed (LiteLLM's cooldown).

    It stands for that failure, which it carries as `cause`: its status, words and retry rule are the
    failure's, its message says both, and `retry_after` is the cooldown the router named.
    """

    def __init__(self, cause: UpstreamError, refusal: UpstreamError, retry_after: float | None) -> None:
        super().__init__(say("upstream.cooldown", cause=told(cause), refusal=told(refusal)),
                         http_status=cause.http_status, retry_after=retry_after, kind=cause.kind, code=cause.code)
        self.cause = cause


class ResponseError(UpstreamError):
    """The answer held no usable image."""


class TooLargeError(UpstreamError):
    """An answer or a download was larger than allowed."""


class BlockedURLError(UpstreamError, BlockedURL):
    """The network policy does not allow this URL."""


class ProfileProblem(UpstreamError):
    """The profile cannot make requests: no API URL or model, or a bad or refused URL."""
