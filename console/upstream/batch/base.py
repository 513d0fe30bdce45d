"""The batch services' common face: a batch line, a batch's state, one line's answer, the service protocol."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol, Sequence

from ...messages import say
from ...profile import ApiProfile
from ..debuglog import DebugLog
from ..errors import ProfileProblem
from ..payload import Request, Source, build, resolve_mode

if TYPE_CHECKING:
    from ..client import UpstreamClient

BATCH_MODES = ("images", "chat_completions", "responses", "gemini")  # the modes a batch route exists for


@dataclass(frozen=True)
class BatchLine:
    """One task's request, as a batch line."""

    key: str  # the task id (OpenAI's custom_id, Gemini's metadata.key)
    request: Request  # from `batch_request`: stream off, images edits as JSON


@dataclass
class BatchState:
    """What the provider last said about one batch."""

    provider_id: str  # OpenAI "batch_…", Gemini "batches/…"
    status: str  # the provider's own word, lower-case
    done: bool  # terminal: its answers can be read
    total: int = 0
    completed: int = 0
    failed: int = 0
    error: str | None = None  # why the whole batch failed or ended (expired, validation errors)
    raw: dict = field(default_factory=dict)  # what the provider said last (kept for reading the output)


@dataclass(frozen=True)
class BatchAnswer:
    """One line's answer: the body the live endpoint would have answered, or the line's error."""

    key: str
    payload: dict | None
    http_status: int | None
    error: str | None


class BatchService(Protocol):
    """A provider's batch service: submit lines, find a batch by label, poll, read answers, cancel."""

    name: str  # "openai" | "gemini"

    async def submit(self, profile: ApiProfile, lines: list[BatchLine], label: str,
                     debug: DebugLog) -> BatchState: ...

    async def find(self, profile: ApiProfile, label: str, debug: DebugLog) -> BatchState | None: ...

    async def poll(self, profile: ApiProfile, provider_id: str, debug: DebugLog) -> BatchState: ...

    async def answers(self, profile: ApiProfile, state: BatchState, debug: DebugLog,
                      keys: Sequence[str] = ()) -> list[BatchAnswer]: ...
    # `keys`: the batch's task ids in the order submitted, for a service that answers a line without its key

    def each_answer(self, profile: ApiProfile, state: BatchState, debug: DebugLog,
                    keys: Sequence[str] = ()) -> AsyncIterator[BatchAnswer]: ...
    # The same answers one at a time, as they are read: a finished batch of images is gigabytes of output,
    # which must never be held whole

    async def cancel(self, profile: ApiProfile, provider_id: str, debug: DebugLog) -> BatchState: ...


def batch_mode(profile: ApiProfile) -> str:
    """Return the profile's resolved mode, or raise ProfileProblem when it has no batch route."""
    mode = resolve_mode(profile)
    if mode not in BATCH_MODES:
        raise ProfileProblem(say("upstream.batch_no_route_mode", mode=repr(mode), modes=", ".join(BATCH_MODES)))
    if mode == "images" and profile.edit_format == "json_image":
        raise ProfileProblem(say("upstream.batch_no_route_seedream"))
    return mode


def batch_request(profile: ApiProfile, prompt: str, source: Source | None = None,
                  references: Sequence[Source] = ()) -> Request:
    """Build one task's batch line request (blocking work: run it off the loop): stream off, edits as JSON.

    Images edits go as `images: [{"image_url": data URL}]` whatever `edit_format` says: a batch
    line is JSON, never multipart.
    """
    batch_mode(profile)
    edit_format = "json" if profile.edit_format in ("multipart", "multipart_array") else profile.edit_format
    extra_body = {name: value for name, value in profile.extra_body.items() if name != "stream"}
    return build(replace(profile, stream=False, edit_format=edit_format, extra_body=extra_body), prompt, source,
                 references)


def line_body(request: Request) -> dict[str, Any]:
    """Return the JSON body a batch line carries for `request`: no `stream`, JSON images edits."""
    if request.content is None:
        raise ProfileProblem(say("upstream.batch_line_not_json"))
    body = json.loads(request.content)
    body.pop("stream", None)
    images = body.get("images")
    if request.mode == "images" and isinstance(images, list):
        body["images"] = [{"image_url": item["url"]} if isinstance(item, dict) and set(item) == {"url"} else item
                          for item in images]
    return body


def service_for(profile: ApiProfile, client: "UpstreamClient") -> BatchService:
    """Return the batch service for the profile's resolved mode, calling through `client` (its http, URL
    policy and retries); ProfileProblem when the mode has none."""
    if batch_mode(profile) == "gemini":
        from .gemini import GeminiBatches
        return GeminiBatches(client)
    from .openai import OpenAIBatches
    return OpenAIBatches(client)
