"""Answer one batch line as the live endpoint would answer its body (non-stream), with a real image and usage.

An images line gets `{"created", "data": [{"b64_json"}], "usage"}`, a chat line a `chat.completion` whose content
holds a markdown data-URL image, a responses line a Response with an `image_generation_call`, a Gemini line a
`GenerateContentResponse` with `inlineData`. The image is the line's input image recoloured
(`restyled(source, 0)`, exactly), or without one a generated picture marked by the line's key, so every
line's answer is distinct. The `batch` scenario answers live calls the same way.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import secrets
import zlib
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from testkit.fake_scenarios import (
    GEMINI_USAGE, GPT_IMAGE_USAGE, RESPONSES_IMAGE_USAGE, RESTYLE_REFUSAL, _first_data_url, gemini, md,
    official_image_item, official_response, photo, restyled,
)
from testkit.fake_upstream import API_ENDPOINTS, CREATED, Ctx, b64, compact_json, gemini_route, scenario

CHAT_USAGE = {"prompt_tokens": 1240, "completion_tokens": 4160, "total_tokens": 5400,
              "prompt_tokens_details": {"cached_tokens": 0, "text_tokens": 50, "image_tokens": 1190},
              "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 4160}}
GEMINI = "gemini"  # a BatchLine's endpoint for Gemini's generateContent


@dataclass(frozen=True)
class BatchLine:
    """One request of a batch: its key (custom_id or metadata.key), body and endpoint."""

    key: str
    body: dict
    endpoint: str


def source_of(body: dict, endpoint: str) -> bytes | None:
    """Return the first input image a request body carries (a data URL, or Gemini inline data), decoded."""
    if endpoint == GEMINI:
        for content in body.get("contents") or []:
            for part in (content.get("parts") or []) if isinstance(content, dict) else []:
                inline = part.get("inline_data") or part.get("inlineData") if isinstance(part, dict) else None
                if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                    return _decode(inline["data"])
        return None
    found = _first_data_url(body)
    return _decode(found.split(",", 1)[1]) if found and "," in found else None


def _decode(text: str) -> bytes | None:
    """Decode base64 text, or None when it is not base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def picture(line: BatchLine, variant: int = 0) -> bytes:
    """Return the PNG a line answers: its source recoloured, or a generated picture marked by its key."""
    source = source_of(line.body, line.endpoint)
    if source is not None:
        try:
            return _recoloured(source, variant)
        except OSError:  # not an image Pillow reads: the answer is generated instead
            pass
    with Image.open(io.BytesIO(restyled(photo(96, fmt="PNG"), variant))) as opened:
        image = opened.convert("RGB")
    mark = zlib.crc32(line.key.encode("utf-8"))
    x, y = mark % (image.width - 14), (mark >> 8) % (image.height - 14)
    ImageDraw.Draw(image).rectangle((x, y, x + 12, y + 12), fill=(255, 255, 255), outline=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@functools.lru_cache(maxsize=64)
def _recoloured(source: bytes, variant: int) -> bytes:
    """Return `restyled(source, variant)`, kept for sources that come back (a benchmark's one photo, retries)."""
    return restyled(source, variant)


def line_answer(line: BatchLine, index: int = 0) -> dict[str, Any]:
    """Return the JSON body the live endpoint would answer for the line's request."""
    model = line.body.get("model") if isinstance(line.body.get("model"), str) else None
    if line.endpoint in ("/v1/images/generations", "/v1/images/edits"):
        count = max(1, min(4, int(line.body.get("n") or 1))) if str(line.body.get("n", 1)).isdigit() else 1
        data = [{"b64_json": b64(picture(line, variant))} for variant in range(count)]
        return {"created": CREATED + index, "data": data, "background": "opaque", "output_format": "png",
                "quality": "low", "size": "1024x1024", "usage": GPT_IMAGE_USAGE}
    if line.endpoint == "/v1/chat/completions":
        message = {"role": "assistant", "content": md(f"data:image/png;base64,{b64(picture(line))}"),
                   "refusal": None, "annotations": []}
        return {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion", "created": CREATED + index,
                "model": model or "gpt-image-1", "choices": [{"index": 0, "message": message, "logprobs": None,
                                                               "finish_reason": "stop"}],
                "usage": CHAT_USAGE, "service_tier": "batch", "system_fingerprint": None}
    if line.endpoint == "/v1/responses":
        answer = official_response("completed", [official_image_item("completed", b64(picture(line)))])
        return {**answer, "id": "resp_" + secrets.token_hex(24), "model": model or "gpt-5",
                "usage": RESPONSES_IMAGE_USAGE}
    return gemini_answer(line)


def gemini_answer(line: BatchLine) -> dict[str, Any]:
    """Return a GenerateContentResponse: a text part, then the image as `inlineData`, STOP, usage."""
    parts = [{"text": "Here is the edited picture. "},
             {"inlineData": {"mimeType": "image/png", "data": b64(picture(line))}}]
    return {"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": GEMINI_USAGE, "modelVersion": "gemini-2.5-flash-image",
            "responseId": secrets.token_urlsafe(16)}


def line_error(line: BatchLine) -> dict[str, Any]:
    """Return the OpenAI error object a refused line answers (HTTP 400, content policy)."""
    if line.endpoint.startswith("/v1/images/"):
        return {"message": RESTYLE_REFUSAL, "type": "image_generation_user_error", "param": None,
                "code": "moderation_blocked"}
    return {"message": "Your request was rejected as a result of our safety system. Your prompt may contain text "
                       "that is not allowed by our safety system.", "type": "invalid_request_error",
            "param": "prompt", "code": "content_policy_violation"}


@scenario("batch", lambda options: [])
def batch_live(ctx: Ctx) -> None:
    """Answer a live call as a batch line of the same body would be answered (JSON, never a stream).

    Under this segment the batch routes are served too (any segment serves them; this one's live calls
    agree with its batches, for tests that mix the two deliveries).
    """
    if ctx.req.method == "GET":  # the model listings
        return gemini(ctx) if gemini_route("GET", ctx.endpoint) else None
    body = ctx.req.json if isinstance(ctx.req.json, dict) else {}
    endpoint = ctx.endpoint if ctx.endpoint in API_ENDPOINTS else GEMINI
    ctx.send_json(200, compact_json(line_answer(BatchLine(f"live-{secrets.token_hex(4)}", body, endpoint))))
