"""Speak Gemini's native API: its URLs, its request body and what its answers say.

`POST {root}/models/{model}:generateContent` (`:streamGenerateContent?alt=sse` when streaming),
the key in `x-goog-api-key`, the prompt and the input images as `contents[].parts`. The answer
is a `GenerateContentResponse` (streamed: one whole chunk per `data:` line); images come back as
`inlineData` parts, or from relays as data URLs or links in text parts. A refusal is not an
error status: `promptFeedback.blockReason`, or a `finishReason` such as `IMAGE_SAFETY`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

from ..messages import say
from .errors import ProfileProblem
from .extract import ImageRef, ref_from_field

HOST = "generativelanguage.googleapis.com"
ROOT_PATH = "/v1beta"  # what a bare host means: the version that has the image models
METHODS = (":generatecontent", ":streamgeneratecontent")
INPUT_IMAGE_LIMIT = 14  # Gemini 3 Pro Image takes up to 14 reference images; 2.5 Flash Image fewer
MODELS_PAGE = 1000  # the largest page GET /models gives: one request lists them all
# A finishReason that says the candidate ended normally; any other one, with no image, is the
# model declining (SAFETY, IMAGE_SAFETY, PROHIBITED_CONTENT, NO_IMAGE, RECITATION, …).
NORMAL_FINISH = frozenset({"", "STOP", "MAX_TOKENS", "FINISH_REASON_UNSPECIFIED"})
_RATIO = re.compile(r"(\d{1,4}):(\d{1,4})")
_PIXELS = re.compile(r"(\d{1,5})[xX×*](\d{1,5})")
_IMAGE_SIZE = re.compile(r"[124][kK]")


def names_gemini(api_url: str) -> bool:
    """Return True when the URL is Gemini's: a `:generateContent` endpoint or Google's API host."""
    parts = urlsplit(api_url.strip())
    return (parts.hostname or "").lower() == HOST or any(method in parts.path.lower() for method in METHODS)


def root(api_url: str) -> str:
    """Return the API root of a Gemini URL: `…/v1beta` from a root, a bare host or a full endpoint URL."""
    parts = urlsplit(api_url.strip())
    path = parts.path.rstrip("/")
    if "/models/" in path:
        path = path[: path.index("/models/")]
    elif path.endswith("/models"):
        path = path[: -len("/models")]
    path = path.rstrip("/") or ROOT_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, _own_query(parts.query), ""))


def model_path(model: str) -> str:
    """Return the model as it goes in the URL: without a leading `models/` (as the model list names them)."""
    name = model.strip().removeprefix("models/")
    return quote(name, safe="-._~")


def endpoint(api_url: str, model: str, stream: bool) -> str:
    """Return the URL to POST to: `:streamGenerateContent?alt=sse` when streaming, else `:generateContent`."""
    if stream:
        return _under_root(api_url, f"/models/{model_path(model)}:streamGenerateContent", "alt=sse")
    return _under_root(api_url, f"/models/{model_path(model)}:generateContent")


def models_url(api_url: str) -> str:
    """Return the URL that lists the models (`GET {root}/models`)."""
    return _under_root(api_url, "/models", f"pageSize={MODELS_PAGE}")


def _under_root(api_url: str, suffix: str, query: str = "") -> str:
    """Return a URL under the API root: the root's own query (a relay's `?key=`) stays, then `query`."""
    parts = urlsplit(root(api_url))
    joined = "&".join(part for part in (parts.query, query) if part)
    return urlunsplit(parts._replace(path=parts.path + suffix, query=joined))


def _own_query(query: str) -> str:
    """Return the query of a pasted URL without what this module adds itself (`alt`, `pageSize`)."""
    kept = [pair for pair in query.split("&") if pair and pair.split("=", 1)[0] not in ("alt", "pageSize")]
    return "&".join(kept)


def model_names(data: Any) -> list[str] | None:
    """Return the model ids of a `{"models": [{"name": "models/…"}]}` answer, or None for another shape."""
    items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    names = (item.get("name") for item in items if isinstance(item, dict))
    return [name.removeprefix("models/") for name in names if isinstance(name, str) and name]


def image_config(size: str) -> dict[str, str]:
    """Return `generationConfig.imageConfig` for the profile's `size` ("16:9", "2K", "16:9 2K", "1024x1024").

    Raise ProfileProblem naming `size` for anything else; "" and "auto" send nothing.
    """
    config: dict[str, str] = {}
    for word in re.split(r"[\s,;]+", size.strip()):
        ratio, pixels = _RATIO.fullmatch(word), _PIXELS.fullmatch(word)
        if not word or word.lower() == "auto":
            continue
        if ratio and int(ratio[1]) and int(ratio[2]):
            config["aspectRatio"] = f"{int(ratio[1])}:{int(ratio[2])}"
        elif pixels and int(pixels[1]) and int(pixels[2]):
            width, height = int(pixels[1]), int(pixels[2])
            common = math.gcd(width, height)
            config["aspectRatio"] = f"{width // common}:{height // common}"
        elif _IMAGE_SIZE.fullmatch(word):
            config["imageSize"] = word.upper()
        else:
            raise ProfileProblem(say("upstream.gemini_size", size=repr(size)))
    return config


def body(prompt: str, images: Sequence[Any], *, size: str, system_prompt: str, temperature: float | None,
         max_tokens: int | None) -> dict[str, Any]:
    """Return the request body: the prompt, then each input image (source, then references) as a part."""
    parts: list[dict[str, Any]] = [{"text": prompt}]
    parts += [{"inline_data": {"mime_type": image.mime, "data": image.base64()}} for image in images]
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    options = image_config(size)
    if options:
        config["imageConfig"] = options
    if temperature is not None:
        config["temperature"] = temperature
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    request: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
    if system_prompt.strip():
        request["systemInstruction"] = {"parts": [{"text": system_prompt}]}
    return request


def is_chunk(obj: dict) -> bool:
    """Return True for a GenerateContentResponse (or one streamed chunk of it)."""
    return "candidates" in obj or "promptFeedback" in obj or ("usageMetadata" in obj and "modelVersion" in obj)


@dataclass
class Chunk:
    """What one answer chunk holds: text, final images, thinking, and a refusal if it is one."""

    text: list[str] = field(default_factory=list)
    refs: list[ImageRef] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    thought_images: int = 0
    refusal: tuple[str, str] | None = None  # (the reason's code, the message to show)


def read(obj: dict) -> Chunk:
    """Read one GenerateContentResponse (whole or a streamed chunk)."""
    chunk = Chunk()
    feedback = obj.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        reason = str(feedback["blockReason"])
        said = feedback.get("blockReasonMessage")
        chunk.refusal = (reason, say("upstream.gemini_blocked_said", reason=reason, said=said) if _words(said) else
                         say("upstream.gemini_blocked", reason=reason))
    for candidate in obj.get("candidates") or []:
        if not isinstance(candidate, dict):
            continue
        content = candidate.get("content")
        for part in (content.get("parts") if isinstance(content, dict) else None) or []:
            if isinstance(part, dict):
                _part(part, chunk)
        reason = str(candidate.get("finishReason") or "")
        if reason not in NORMAL_FINISH:
            said = candidate.get("finishMessage")
            chunk.refusal = (reason, say("upstream.gemini_stopped_said", reason=reason, said=said) if _words(said)
                             else say("upstream.gemini_stopped", reason=reason))
    return chunk


def _part(part: dict, chunk: Chunk) -> None:
    inline = part.get("inlineData") or part.get("inline_data")
    if part.get("thought"):  # Gemini 3 image models think in text and draft images: never results
        chunk.thought_images += isinstance(inline, dict)
        if isinstance(part.get("text"), str):
            chunk.thoughts.append(part["text"])
        return
    if isinstance(part.get("text"), str):
        chunk.text.append(part["text"])
    if isinstance(inline, dict):
        ref = ref_from_field(inline.get("data"), base64_field=True)
        if ref is not None:
            chunk.refs.append(ref)
    linked = part.get("fileData") or part.get("file_data")
    if isinstance(linked, dict):
        ref = ref_from_field(linked.get("fileUri") or linked.get("file_uri"), base64_field=False)
        if ref is not None:
            chunk.refs.append(ref)


def _words(message: Any) -> bool:
    """Return True when the API said something of its own (a string that is not blank)."""
    return isinstance(message, str) and bool(message.strip())
