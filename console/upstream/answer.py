"""Fold the JSON payloads of any answer shape into text, image references and errors.

One parser serves every endpoint and framing gateways send (docs/gateways.md): chat
completions (whole or chunked), the Responses API (official image tool and grok2api text
deltas), the images API (JSON and stream events, Seedream's included), Gemini's
`GenerateContentResponse` and Grok's NDJSON tokens. `id` and `choices[].index` are unstable
across chunks (grok2api v1 changes both on every chunk, v1.6 numbers images by the index), so
all content is accumulated in arrival order and images are looked for in the whole text at the
end (grok2api v1 splits a data URL over many deltas).
"""

from __future__ import annotations

from typing import Any

from ..messages import say
from . import gemini
from .errors import ResponseError, StreamError
from .extract import ImageRef, ref_from_field, refs_from_text, unique
from .faults import labelled
from .usage import UsageReader

_PARTIAL_STAGES = ("preview", "medium")
MAX_IMAGE_REFS = 64  # images one answer may bring (n is at most 10; gateways repeat some)
_FAILED_TYPES = ("response.failed", "response.error", "error")
# Seedream: one image of several failed; the others may still come.
_IMAGE_FAILED = "image_generation.partial_failed"


class AnswerParser:
    """Accumulate one answer; `feed(obj, event)` per payload, then `text()` and `refs()`."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._field_refs: list[ImageRef] = []
        self._items_seen: set[str] = set()
        self._text_deltas = False
        self.partial_images = 0
        self.payloads = 0
        self.notes: list[str] = []
        self.warnings: list[str] = []  # images the API says failed, while others may have come
        self.refusal: tuple[str, str] | None = None  # Gemini: (reason code, message) when it declined
        self.usage = UsageReader()  # tokens and cost, whatever the shape (read before any error it holds)

    def feed(self, obj: Any, event: str | None = None) -> None:
        """Take one decoded JSON payload; raise StreamError if it reports a failure."""
        self.payloads += 1
        if not isinstance(obj, dict):
            self.notes.append(f"ignored a non-object payload ({type(obj).__name__})")
            return
        self.usage.read(obj)
        kind = obj.get("type")
        if kind == _IMAGE_FAILED or event == _IMAGE_FAILED:
            self._image_failed(obj)
            return
        _raise_if_error(obj, event)
        if isinstance(kind, str) and kind:
            self._typed(kind, obj)
        elif gemini.is_chunk(obj):
            self._gemini(obj)
        elif obj.get("object") == "response" or isinstance(obj.get("output"), list):
            self._response(obj)
        elif isinstance(obj.get("choices"), list):
            self._choices(obj["choices"])
        elif isinstance(obj.get("data"), list):
            self._images_list(obj["data"])
        elif isinstance(obj.get("result"), dict):
            self._grok_token(obj["result"])
        else:
            self.notes.append(f"ignored a payload with keys {sorted(obj)[:8]}")

    def feed_text(self, text: str) -> None:
        """Take answer text that did not arrive as JSON."""
        self._text.append(text)

    def text(self) -> str:
        """Return all answer text, in arrival order."""
        return "".join(self._text)

    def reasoning(self) -> str:
        """Return the progress/"thinking" text some gateways send beside the answer."""
        return "".join(self._reasoning)

    def refs(self) -> list[ImageRef]:
        """Return every final image reference: fields first, then those in the text.

        More than MAX_IMAGE_REFS is refused (ResponseError): no gateway answers one call with
        that many images, and fetching 10,000 links would hold the task for minutes.
        """
        refs = unique([*self._field_refs, *refs_from_text(self.text())])
        if len(refs) > MAX_IMAGE_REFS:
            raise ResponseError(say("upstream.too_many_refs", count=len(refs), limit=MAX_IMAGE_REFS))
        return refs

    # -- shapes ---------------------------------------------------------------------------

    def _typed(self, kind: str, obj: dict) -> None:
        if kind == "response.output_text.delta":
            self._add_text(obj.get("delta"))
            self._text_deltas = True
        elif kind == "response.output_text.done":
            if not self._text_deltas:
                self._add_text(obj.get("text"))
        elif kind == "response.output_item.done":
            self._item(obj.get("item"))
        elif kind in ("response.completed", "response.incomplete"):
            self._response(obj.get("response") or {})
        elif kind.endswith("partial_image"):
            self.partial_images += 1  # previews are never results, only finals are
        elif kind.endswith("partial_succeeded"):
            self._image_object(obj)  # Seedream: each one a finished image, not a preview
        elif kind.endswith(".completed") and ("b64_json" in obj or "url" in obj):
            self._image_object(obj)
        elif isinstance(obj.get("choices"), list):
            self._choices(obj["choices"])  # a chat chunk that also carries "type"

    def _choices(self, choices: list) -> None:
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            message = choice.get("delta") or choice.get("message") or {}
            if not isinstance(message, dict):
                continue
            self._content(message.get("content"))
            reasoning = message.get("reasoning_content")
            if isinstance(reasoning, str):
                self._reasoning.append(reasoning)
            for image in message.get("images") or []:  # OpenRouter-style message.images
                self._part(image)

    def _content(self, content: Any) -> None:
        if isinstance(content, str):
            self._text.append(content)
        elif isinstance(content, list):
            for part in content:
                self._part(part)

    def _part(self, part: Any) -> None:
        if isinstance(part, str):
            self._text.append(part)
            return
        if not isinstance(part, dict):
            return
        kind = part.get("type", "")
        if kind in ("text", "output_text"):
            self._add_text(part.get("text"))
        elif kind in ("image_url", "output_image", "input_image") or "image_url" in part:
            url = part.get("image_url")
            if isinstance(url, dict):
                url = url.get("url")
            self._add_ref(ref_from_field(url, base64_field=False))
        elif kind == "image" and "data" in part:
            self._add_ref(ref_from_field(part.get("data"), base64_field=True))

    def _images_list(self, items: list) -> None:
        for index, item in enumerate(items):
            if isinstance(item, dict):
                self._image_object(item, index)

    def _image_object(self, item: dict, index: int | None = None) -> None:
        if item.get("stage") in _PARTIAL_STAGES:
            self.partial_images += 1
            return
        if isinstance(item.get("error"), dict):  # Seedream lists a failed image among the good ones
            self._image_failed(item, index)
            return
        self._add_ref(ref_from_field(item.get("b64_json"), base64_field=True))
        self._add_ref(ref_from_field(item.get("url"), base64_field=False))

    def _response(self, response: dict) -> None:
        if response.get("status") == "failed":
            raise _stream_error(response.get("error"), say("upstream.response_failed"))
        for item in response.get("output") or []:
            self._item(item)

    def _item(self, item: Any) -> None:
        if not isinstance(item, dict):
            return
        key = str(item.get("id") or "")
        if key and key in self._items_seen:
            return  # output_item.done and response.completed repeat items
        if item.get("type") == "image_generation_call":
            # Key on `result`, not `status`: a real capture had status "generating" with a result.
            ref = ref_from_field(item.get("result"), base64_field=True)
            if ref is None:
                return
            self._add_ref(ref)
        elif item.get("type") == "message":
            if self._text_deltas:
                return  # the same text already arrived as deltas
            self._content(item.get("content"))
        if key:
            self._items_seen.add(key)

    def _image_failed(self, obj: dict, position: int | None = None) -> None:
        error = obj.get("error") if isinstance(obj.get("error"), dict) else {}
        index = obj.get("image_index", position)
        said = _stream_error(error, say("upstream.no_reason"))
        words = said.words if said.words is not None else said.message  # the API's words, or ours
        failed = say("upstream.image_failed", index=index, said=words) if isinstance(index, int) else \
            say("upstream.an_image_failed", said=words)
        self.warnings.append(failed)
        if self.refusal is None:
            self.refusal = (said.code or said.kind or "image_failed", failed)

    def _gemini(self, obj: dict) -> None:
        chunk = gemini.read(obj)
        self._text.extend(chunk.text)
        self._field_refs.extend(chunk.refs)
        self._reasoning.extend(chunk.thoughts)
        self.partial_images += chunk.thought_images
        if chunk.refusal is not None:
            self.refusal = chunk.refusal

    def _grok_token(self, result: dict) -> None:
        response = result.get("response")
        if isinstance(response, dict):
            self._add_text(response.get("token"))

    def _add_text(self, value: Any) -> None:
        if isinstance(value, str):
            self._text.append(value)

    def _add_ref(self, ref: ImageRef | None) -> None:
        if ref is not None:
            self._field_refs.append(ref)


def _raise_if_error(obj: dict, event: str | None) -> None:
    error = obj.get("error")
    kind = obj.get("type")
    if event in _FAILED_TYPES or kind in _FAILED_TYPES:
        response = obj.get("response") if isinstance(obj.get("response"), dict) else {}
        raise _stream_error(error or response.get("error") or obj, say("upstream.api_sent", event=event or kind))
    if error:
        raise _stream_error(error, say("upstream.api_sent_error"))


def _stream_error(error: Any, fallback: str) -> StreamError:
    """Return the error an answer reported: its own words (kept verbatim as `words`), or `fallback`."""
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail")
        kind = str(error.get("type") or error.get("status") or "")  # Google: {"code": 500, "status": "INTERNAL"}
        code = str(error.get("code") or "")
        if not message:  # our words for it, with its type and code words after them
            tags = ", ".join(tag for tag in (kind, code) if tag)
            return StreamError(say("upstream.tagged", message=fallback, tags=tags) if tags else fallback,
                               kind=kind, code=code)
        words = labelled(str(message), kind, code)
        return StreamError(say("upstream.said", said=words), kind=kind, code=code, words=words)
    if isinstance(error, str) and error:
        return StreamError(say("upstream.said", said=error), words=error)
    return StreamError(fallback)

