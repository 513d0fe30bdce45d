"""What an HTTP error answer says: the upstream's own message, its code, and whether a call was billed.

Gateways wrap errors in several shapes (docs/gateways.md lists them); the message is shown verbatim,
in whatever language it comes, and only the machine-readable `type` / `code` words are read.
Only the first `ERROR_BODY_BYTES` of a body are kept: a proxy may embed a whole answer (LiteLLM
sent 605 KB), and its message is still found at the start of a cut-off JSON document.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

import httpx

from ..messages import say

ERROR_BODY_BYTES = 64 * 1024
# grok2api's current line: nothing reached the provider, so nothing was billed and a retry is free.
NOT_SUBMITTED_HEADER = "x-upstream-request-disposition"
NOT_SUBMITTED_CODE = "upstream_not_submitted"
_MESSAGE = re.compile(r'"(?:message|detail|msg)"\s*:\s*"((?:[^"\\]|\\.)*)"')
_SECONDS = re.compile(r"(\d+(?:\.\d+)?)s")
DAILY_QUOTA_CODE = "daily_quota_exhausted"
_NO_TAG = {"none", "null"}  # LiteLLM writes an error without a type as "type": "None"
_TAG = re.compile(r'"(type|code)"\s*:\s*"((?:[^"\\]|\\.){1,100})"')


@dataclass(frozen=True)
class ErrorAnswer:
    """An HTTP error answer, read: the message to show, its type and code words, and billing."""

    message: str
    kind: str = ""
    code: str = ""
    not_submitted: bool = False
    retry_after: float | None = None  # the wait the body asks for (Google's RetryInfo), when no header does


def read_error(body: bytes, status: int, headers: httpx.Headers | dict[str, str] | None = None) -> ErrorAnswer:
    """Read an error body (any gateway's shape, possibly cut off) and the headers that matter."""
    text = body.decode("utf-8", errors="replace").strip()
    answer = _from_json(text) or _from_cut_json(text) or ErrorAnswer(_plain(text, status))
    disposition = (headers or {}).get(NOT_SUBMITTED_HEADER, "").strip().lower()
    if disposition == "not-submitted" or answer.code == NOT_SUBMITTED_CODE:
        answer = replace(answer, code=answer.code or NOT_SUBMITTED_CODE, not_submitted=True)
    return answer


def _from_json(text: str) -> ErrorAnswer | None:
    try:
        obj: Any = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    error = obj.get("error", obj)
    if isinstance(error, str) and error:
        return ErrorAnswer(error)
    if not isinstance(error, dict):
        return None
    message = error.get("message") or error.get("detail") or error.get("msg")
    if isinstance(message, list):  # FastAPI validation: [{"loc":…, "msg":…}]
        message = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in message)
    if not message:
        return None
    kind, code = (str(error.get(key) or "") for key in ("type", "code"))
    kind = kind or str(error.get("status") or "")  # Google: {"code": 400, "status": "INVALID_ARGUMENT"}
    wait, daily = _google_details(error.get("details"))
    if daily:  # a free tier's requests per day are gone: waiting a minute will not help, the run pauses
        code = DAILY_QUOTA_CODE
    return ErrorAnswer(labelled(str(message), kind, code), kind, code, retry_after=wait)


def _google_details(details: Any) -> tuple[float | None, bool]:
    """Read Google's error details: RetryInfo's `retryDelay` ("37s"), and whether a QuotaFailure is a
    per-day quota (`quotaId` …PerDay…), as Gemini answers a 429 RESOURCE_EXHAUSTED."""
    wait, daily = None, False
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("RetryInfo"):
            delay = _SECONDS.fullmatch(str(detail.get("retryDelay", "")).strip())
            wait = float(delay.group(1)) if delay else wait
        elif kind.endswith("QuotaFailure"):
            violations = detail.get("violations")
            daily = daily or any("perday" in str(v.get("quotaId", "")).lower()
                                 for v in (violations if isinstance(violations, list) else ()) if isinstance(v, dict))
    return wait, daily


def _from_cut_json(text: str) -> ErrorAnswer | None:
    """A JSON body cut at the size limit: take the first message and type/code found in it."""
    if not text.startswith("{"):
        return None
    found = _MESSAGE.search(text)
    if found is None:
        return None
    message = _unescape(found.group(1))
    tags = {}
    for key, value in _TAG.findall(text[: found.start()] + text[found.end() : found.end() + 2000]):
        tags.setdefault(key, _unescape(value))
    kind, code = tags.get("type", ""), tags.get("code", "")
    return ErrorAnswer(labelled(message[:2000], kind, code), kind, code)


def _plain(text: str, status: int) -> str:
    """What a body that is not JSON says: itself, or, when it says nothing a person reads, what we know."""
    phrase = httpx.codes.get_reason_phrase(status)
    if not text:
        return say("upstream.empty_body", phrase=phrase) if phrase else say("upstream.no_message")
    if text.lower().startswith(("<!doctype", "<html")):
        return say("upstream.html_error_page", phrase=phrase)
    return text[:500]


def _unescape(value: str) -> str:
    try:
        return json.loads(f'"{value}"')
    except ValueError:
        return value


def labelled(message: str, kind: str, code: str) -> str:
    """Return an API's own words with its error type and code after them: "quota used up (insufficient_quota)"."""
    tags = ", ".join(tag for tag in (kind, code) if tag and tag.lower() not in _NO_TAG)
    return f"{message} ({tags})" if tags else message
