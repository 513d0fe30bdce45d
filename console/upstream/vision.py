"""Ask a vision model about an image: build the text-answer request and read the answer's text or refusal.

The request is the instruction and the images in the profile's chat or Responses shape, with no
image-generation fields: a captioning call wants words back, never pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..messages import say
from ..profile import ApiProfile
from .answer import AnswerParser
from .errors import ProfileProblem
from .payload import (Request, Source, add_sampling, build_headers, deep_merge, dumps, endpoint, resolve_mode,
                      summarize)
from .usage import Usage

TEXT_MODES = ("chat_completions", "responses")
# Body fields that ask for images or tools; a profile made for image runs may carry them in extra_body.
IMAGE_FIELDS = frozenset({"n", "size", "response_format", "modalities", "tools", "tool_choice", "image_config",
                          "quality", "background", "output_format", "output_compression", "moderation"})
_REFUSING_FINISH = ("content_filter", "safety", "refusal")


@dataclass
class TextOutcome:
    """A call whose answer was read: its text, and the refusal it held instead, if any."""

    text: str
    http_status: int
    attempts: int
    endpoint: str
    refusal: str | None = None  # why the model declined (its words, or the finish reason)
    usage: Usage | None = None


def text_mode(profile: ApiProfile) -> str:
    """Return the profile's endpoint mode when it answers text; ProfileProblem naming `api.api_mode` otherwise."""
    mode = resolve_mode(profile)
    if mode not in TEXT_MODES:
        raise ProfileProblem(say("upstream.caption_needs_chat", mode=mode))
    return mode


def build_text_request(profile: ApiProfile, instruction: str, images: Sequence[Source]) -> Request:
    """Return the request that sends `instruction` and `images` to the profile's chat or Responses endpoint."""
    mode = text_mode(profile)
    headers = build_headers(profile)
    headers["Content-Type"] = "application/json"
    body = _chat(profile, instruction, images) if mode == "chat_completions" else _responses(profile, instruction, images)
    extra = {key: value for key, value in profile.extra_body.items() if key not in IMAGE_FIELDS}
    body = {key: value for key, value in deep_merge(body, extra).items() if key not in IMAGE_FIELDS}
    return Request(mode, endpoint(profile, mode, True), headers, bool(body.get("stream")), content=dumps(body),
                   summary=summarize(body), has_inputs=bool(images))


def _chat(profile: ApiProfile, instruction: str, images: Sequence[Source]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": instruction}]
    parts += [{"type": "image_url", "image_url": {"url": image.data_url()}} for image in images]
    messages: list[dict[str, Any]] = []
    if profile.system_prompt.strip():
        messages.append({"role": "system", "content": profile.system_prompt})
    messages.append({"role": "user", "content": parts})
    body: dict[str, Any] = {"model": profile.model, "messages": messages, "stream": profile.stream}
    add_sampling(body, profile, "chat_completions")
    return body


def _responses(profile: ApiProfile, instruction: str, images: Sequence[Source]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "input_text", "text": instruction}]
    content += [{"type": "input_image", "image_url": image.data_url()} for image in images]
    body: dict[str, Any] = {"model": profile.model, "input": [{"role": "user", "content": content}],
                            "stream": profile.stream}
    if profile.system_prompt.strip():
        body["instructions"] = profile.system_prompt
    add_sampling(body, profile, "responses")
    return body


class TextAnswer(AnswerParser):
    """An answer parser that also notices a refusal: chat's `refusal` field, a Responses refusal part,
    a content-filter finish reason (Gemini's blockReason is read by the parser itself)."""

    def __init__(self) -> None:
        super().__init__()
        self._refusals: list[str] = []
        self._filtered = ""

    def feed(self, obj: Any, event: str | None = None) -> None:
        """Take one decoded JSON payload, noting any refusal it carries."""
        if isinstance(obj, dict):
            self._look(obj)
        super().feed(obj, event)

    def refused(self) -> str | None:
        """Return why the model declined, or None when it answered."""
        said = "".join(self._refusals).strip()
        if said:
            return said
        if self._filtered:
            return say("upstream.content_filter", reason=self._filtered)
        return self.refusal[1] if self.refusal else None

    def _look(self, obj: dict[str, Any]) -> None:
        if obj.get("type") == "response.refusal.delta":
            self._add(obj.get("delta"))
        elif obj.get("type") == "response.refusal.done" and not self._refusals:
            self._add(obj.get("refusal"))
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            message = choice.get("delta") or choice.get("message") or {}
            if isinstance(message, dict):
                self._add(message.get("refusal"))
            if choice.get("finish_reason") in _REFUSING_FINISH:
                self._filtered = str(choice["finish_reason"])
        response = obj.get("response") if isinstance(obj.get("response"), dict) else obj
        details = response.get("incomplete_details")
        if isinstance(details, dict) and details.get("reason") == "content_filter":
            self._filtered = "content_filter"
        if obj.get("type") in (None, "response.completed", "response.incomplete", "response.output_item.done"):
            self._parts(response.get("output"), obj.get("item"))

    def _parts(self, output: Any, item: Any) -> None:
        items = [*(output if isinstance(output, list) else []), *([item] if isinstance(item, dict) else [])]
        seen = bool(self._refusals)  # streamed deltas already said it
        for entry in items:
            for part in (entry.get("content") or []) if isinstance(entry, dict) else []:
                if isinstance(part, dict) and part.get("type") == "refusal" and not seen:
                    self._add(part.get("refusal"))

    def _add(self, text: Any) -> None:
        if isinstance(text, str) and text:
            self._refusals.append(text)
