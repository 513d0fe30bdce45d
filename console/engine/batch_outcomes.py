"""What a finished batch says of each of its tasks: a line's answer read as a live call's, or why it has none."""

from __future__ import annotations

from typing import Any

from ..messages import Message, say
from ..profile import ApiProfile
from ..records import BatchRecord
from ..upstream import BatchAnswer, BatchState, Request, batch_mode

STOPPED = say("engine.batch_stopped")
UNFINISHED_CODES = ("batch_expired", "batch_cancelled")  # a line the batch ended before: it gets the batch's reason
_ENDINGS = {  # why a finished batch left a task without an answer
    "expired": say("engine.batch_expired"),
    "cancelled": say("engine.batch_cancelled"),
}


def ending(batch: BatchRecord, polled: BatchState) -> tuple[str, Message]:
    """Return the status and reason of a finished batch's tasks that got no answer."""
    if batch.stopped:
        return "stopped", STOPPED
    if polled.status in _ENDINGS:
        return "failed", _ENDINGS[polled.status]
    if polled.status == "failed":
        if polled.error:
            return "failed", say("engine.batch_failed", said=polled.error)
        return "failed", say("engine.batch_failed_no_reason")
    return "failed", say("engine.batch_ended", status=polled.status)


def answered_request(profile: ApiProfile, task: Any) -> Request:
    """Return the request a line's answer is read against: its mode and URL (the body went with the batch)."""
    return Request(batch_mode(profile), profile.api_url, {}, False, has_inputs=bool(task.source_path or task.references))


def unfinished(answer: BatchAnswer) -> bool:
    """True for a line the provider never ran because the batch ended first (its error line says so)."""
    return answer.payload is None and (answer.error or "").startswith(UNFINISHED_CODES)
