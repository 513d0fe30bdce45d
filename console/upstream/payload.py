"""Build the HTTP request for one call: endpoint, headers and body for each `api_mode`."""

from __future__ import annotations

import base64
import copy
import json
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from .. import __version__
from ..messages import say
from ..profile import ApiProfile
from . import gemini
from .errors import ProfileProblem

# Endpoint path suffixes, longest first so "/images/edits" wins over a shorter match.
ENDPOINTS = {
    "chat_completions": "/chat/completions",
    "responses": "/responses",
    "images_generations": "/images/generations",
    "images_edits": "/images/edits",
}
_DEFAULT_TOKEN_FIELD = {"chat_completions": "max_tokens", "responses": "max_output_tokens", "images": None,
                       "gemini": "maxOutputTokens"}
# Input images one request may carry (source + references): grok2api's
# current line reads up to 8 from chat, Responses and JSON edits (older lines use only the last 3
# or 7, silently); OpenAI's /images/edits takes up to 16 files. Above these a task is refused.
# Seedream takes up to 10 reference images in `image`; Gemini see gemini.py.
INPUT_IMAGE_LIMITS = {"chat_completions": 8, "responses": 8, "images_json": 8, "images_multipart": 16,
                      "images_json_image": 10, "gemini": gemini.INPUT_IMAGE_LIMIT}
FORM_NAMES = {"chat_completions": say("upstream.form_chat_completions"), "responses": say("upstream.form_responses"),
              "images_json": say("upstream.form_images_json"), "images_multipart": say("upstream.form_images_multipart"),
              "images_json_image": say("upstream.form_images_json_image"), "gemini": say("upstream.form_gemini")}
MULTIPART_FORMATS = ("multipart", "multipart_array")
AUTH_HEADERS = ("Authorization", "x-goog-api-key")


@dataclass(frozen=True)
class Source:
    """A source image ready to send: its bytes and real MIME type."""

    name: str
    data: bytes
    mime: str

    def data_url(self) -> str:
        """Return the image as a base64 data URL."""
        return DataURL(f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}")

    def base64(self) -> str:
        """Return the image as bare base64 (Gemini's `inline_data.data`), spliced like a data URL."""
        return DataURL(base64.b64encode(self.data).decode("ascii"))


class DataURL(str):
    """A data URL (or bare base64) made here from image bytes: base64 text that JSON never needs to escape.

    `dumps` splices these into the serialised body instead of passing megabytes of base64
    through the JSON encoder (3–9 ms of held GIL per 512 px source, measured by the bench).
    """


@dataclass
class Request:
    """Everything needed to send one call; `content` XOR `files`/`form`."""

    mode: str  # chat_completions | responses | images | gemini
    url: str
    headers: dict[str, str]
    stream: bool
    content: bytes | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] = field(default_factory=list)
    form: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)  # the body without payloads, for logs
    has_inputs: bool = False  # input images go with it (images mode: an edit, not a generation)

    def with_key(self, profile: ApiProfile) -> "Request":
        """Return this request as sent with another key (and API URL) of the profile's key pool."""
        headers = {name: value for name, value in self.headers.items() if name not in AUTH_HEADERS}
        headers.update(_auth(profile))
        return replace(self, url=endpoint(profile, self.mode, self.has_inputs), headers=headers)


def split_api_url(api_url: str) -> tuple[str, str | None]:
    """Return (base URL without endpoint, mode named by the URL's endpoint or None)."""
    parts = urlsplit(api_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProfileProblem(say("upstream.bad_api_url", url=repr(api_url)))
    path = parts.path.rstrip("/")
    for name, suffix in ENDPOINTS.items():
        if path.endswith(suffix):
            mode = "images" if name.startswith("images") else name
            return urlunsplit(parts._replace(path=path[: -len(suffix)])), mode
    if path == "":
        path = "/v1"  # "http://host:8000" means the OpenAI-style /v1 root
    return urlunsplit(parts._replace(path=path)), None


def named_endpoint(api_url: str) -> str | None:
    """Return the ENDPOINTS name the URL ends with (`images_edits`, …), or None for a root."""
    path = urlsplit(api_url.strip()).path.rstrip("/")
    return next((name for name, suffix in ENDPOINTS.items() if path.endswith(suffix)), None)


def resolve_mode(profile: ApiProfile) -> str:
    """Return the concrete mode: the profile's, or for `auto` the one the URL names (else chat).

    `auto` picks Gemini for a `:generateContent` URL or Google's API host.
    """
    _, named = split_api_url(profile.api_url)
    if profile.api_mode != "auto":
        return profile.api_mode
    if gemini.names_gemini(profile.api_url):
        return "gemini"
    return named or "chat_completions"


def endpoint(profile: ApiProfile, mode: str, has_source: bool) -> str:
    """Return the URL to POST to for `mode`.

    Images: `/images/edits` with inputs, `/images/generations` without; Seedream-style
    `json_image` edits go to `/images/generations` (Ark has no edits endpoint) unless the URL
    itself names `/images/edits`.
    """
    if mode == "gemini":
        return gemini.endpoint(profile.api_url, profile.model, profile.stream)
    base, _ = split_api_url(profile.api_url)
    name = mode
    if mode == "images":
        named = named_endpoint(profile.api_url)
        edits = has_source and (profile.edit_format != "json_image" or named == "images_edits")
        name = "images_edits" if edits else "images_generations"
    return with_path(base, ENDPOINTS[name])


def with_path(base: str, suffix: str) -> str:
    """Return `base` with `suffix` added to its path; its query (Azure's `?api-version=`) stays after it."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def build(profile: ApiProfile, prompt: str, source: Source | None,
          references: Sequence[Source] = ()) -> Request:
    """Return the request for `profile`, `prompt` and the input images: an optional source, then references.

    Several images go in one request, in the form each mode takes: chat `image_url`
    parts, Responses `input_image` parts, images edits `image[]` files or JSON `images[]`.
    """
    if not profile.api_url:
        raise ProfileProblem(say("upstream.no_api_url"))
    if not profile.model:
        raise ProfileProblem(say("upstream.no_model"))
    mode = resolve_mode(profile)
    images = ([source] if source is not None else []) + list(references)
    limit, form = input_limit(profile)
    if len(images) > limit:
        raise ProfileProblem(too_many_images(len(images), limit, form))
    url = endpoint(profile, mode, bool(images))
    headers = build_headers(profile)
    if mode == "images" and images and profile.edit_format in MULTIPART_FORMATS:
        return _multipart_edit(profile, prompt, images, url, headers)
    body = _BODIES[mode](profile, prompt, images)
    body = deep_merge(body, profile.extra_body)
    headers["Content-Type"] = "application/json"
    content = dumps(body)
    stream = profile.stream if mode == "gemini" else bool(body.get("stream"))  # Gemini: by the URL's method
    return Request(mode, url, headers, stream, content=content, summary=summarize(body), has_inputs=bool(images))


def input_limit(profile: ApiProfile) -> tuple[int, str]:
    """Return (the most input images one request of this profile takes, the form they go in)."""
    mode = resolve_mode(profile)
    form = mode
    if mode == "images":
        form = "images_multipart" if profile.edit_format in MULTIPART_FORMATS else f"images_{profile.edit_format}"
    return INPUT_IMAGE_LIMITS[form], form


def too_many_images(count: int, limit: int, form: str) -> str:
    """Return the message for a task with more input images than its request form takes."""
    if form in ("images_multipart", "images_json_image", "gemini"):
        return say("upstream.too_many_inputs", count=count, form=FORM_NAMES[form], limit=limit)
    return say("upstream.too_many_inputs_multipart", count=count, form=FORM_NAMES[form], limit=limit,
               multipart=INPUT_IMAGE_LIMITS["images_multipart"])


def build_headers(profile: ApiProfile) -> dict[str, str]:
    """Return the headers every request of this profile carries (auth, extra headers).

    The key goes as `Authorization: Bearer …`, or for Gemini in `x-goog-api-key` (and nothing else).
    """
    headers = {
        "Accept": "text/event-stream, application/json" if profile.stream else "application/json",
        "User-Agent": f"image-batch-console/{__version__}",
    }
    headers.update(_auth(profile))
    # An empty value is a secret header a config export left blank: sending it would replace the
    # key's own Authorization with nothing, so it is left out.
    headers.update({name: value for name, value in profile.extra_headers.items() if value})
    return headers


def _auth(profile: ApiProfile) -> dict[str, str]:
    if not profile.api_key:
        return {}
    if resolve_mode(profile) == "gemini":
        return {"x-goog-api-key": profile.api_key}
    return {"Authorization": f"Bearer {profile.api_key}"}


def _chat(profile: ApiProfile, prompt: str, images: list[Source]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if profile.system_prompt.strip():
        messages.append({"role": "system", "content": profile.system_prompt})
    if not images:
        # grok2api G2 reads the prompt only from string content, never from a list of parts.
        messages.append({"role": "user", "content": prompt})
    else:
        parts = [{"type": "text", "text": prompt}]
        parts += [{"type": "image_url", "image_url": {"url": image.data_url()}} for image in images]
        messages.append({"role": "user", "content": parts})
    body: dict[str, Any] = {"model": profile.model, "messages": messages, "stream": profile.stream}
    add_sampling(body, profile, "chat_completions")
    image_config = _image_options(profile)
    if image_config:
        body["image_config"] = image_config  # grok2api's (non-OpenAI) image options
    return body


def _responses(profile: ApiProfile, prompt: str, images: list[Source]) -> dict[str, Any]:
    if not images:
        user_input: Any = prompt
    else:
        content = [{"type": "input_text", "text": prompt}]
        content += [{"type": "input_image", "image_url": image.data_url()} for image in images]
        user_input = [{"role": "user", "content": content}]
    body: dict[str, Any] = {"model": profile.model, "input": user_input, "stream": profile.stream}
    if profile.system_prompt.strip():
        body["instructions"] = profile.system_prompt
    add_sampling(body, profile, "responses")
    return body


def _images(profile: ApiProfile, prompt: str, images: list[Source]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": profile.model, "prompt": prompt, **_image_options(profile)}
    if images and profile.edit_format == "json_image":
        # Seedream (Volcengine Ark): one input as a string, several as a list.
        urls = [image.data_url() for image in images]
        body["image"] = urls[0] if len(urls) == 1 else urls
    elif images:
        body["images"] = [{"url": image.data_url()} for image in images]  # grok2api G3 JSON edits
    if profile.stream:
        body["stream"] = True  # sent only when on: older images APIs reject the field
    return body


def _gemini(profile: ApiProfile, prompt: str, images: list[Source]) -> dict[str, Any]:
    # `n` and `response_format` have no Gemini twin: its image models answer one candidate, inline.
    max_tokens = profile.max_tokens if token_field(profile, "gemini") else None
    return gemini.body(prompt, images, size=profile.size, system_prompt=profile.system_prompt,
                       temperature=profile.temperature, max_tokens=max_tokens)


_BODIES = {"chat_completions": _chat, "responses": _responses, "images": _images, "gemini": _gemini}


def _multipart_edit(profile: ApiProfile, prompt: str, images: list[Source], url: str,
                    headers: dict[str, str]) -> Request:
    fields: dict[str, Any] = {"model": profile.model, "prompt": prompt, **_image_options(profile)}
    if profile.stream:
        fields["stream"] = True
    fields = deep_merge(fields, profile.extra_body)
    form = {key: _form_value(value) for key, value in fields.items()}
    # OpenAI's SDK sends one file as `image`, several as `image[]`; grok2api G1.6 accepts only
    # the first form and G2 only the second, so the profile chooses. `multipart`
    # follows the SDK: one image as `image`, several as `image[]` (OpenAI's documented form).
    field_name = "image[]" if profile.edit_format == "multipart_array" or len(images) > 1 else "image"
    files, described = [], []
    for image in images:
        filename = _upload_name(image)
        files.append((field_name, (filename, image.data, image.mime)))
        described.append(f"<file {filename}, {image.mime}, {len(image.data)} bytes>")
    summary = {**fields, field_name: described[0] if len(described) == 1 else described}
    return Request("images", url, headers, bool(fields.get("stream")), files=files, form=form, summary=summary,
                   has_inputs=True)


def _upload_name(source: Source) -> str:
    ext = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif"}.get(source.mime, "")
    stem = source.name.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "image"
    return stem + (ext or ".png")


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def add_sampling(body: dict[str, Any], profile: ApiProfile, mode: str) -> None:
    """Put the profile's temperature and token limit in a chat or Responses body, under the mode's field name."""
    if profile.temperature is not None:
        body["temperature"] = profile.temperature
    name = token_field(profile, mode)
    if name and profile.max_tokens:
        body[name] = profile.max_tokens


def token_field(profile: ApiProfile, mode: str) -> str | None:
    """Return the body field that carries the token limit, or None to send none."""
    if profile.token_field == "none":
        return None
    if profile.token_field == "auto":
        return _DEFAULT_TOKEN_FIELD[mode]
    return profile.token_field


def _image_options(profile: ApiProfile) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if profile.n:
        options["n"] = profile.n
    if profile.size:
        options["size"] = profile.size
    if profile.response_format:
        options["response_format"] = profile.response_format
    return options


def dumps(body: dict[str, Any]) -> bytes:
    """Serialise a request body as compact UTF-8 JSON, splicing its DataURLs in unencoded.

    Byte for byte what `json.dumps(body, ensure_ascii=False, separators=(",", ":"))` gives.
    """
    blobs: list[str] = []
    marker = f"\x00{secrets.token_hex(8)}:"

    def swap(value: Any) -> Any:
        if isinstance(value, DataURL):
            blobs.append(value)
            return f"{marker}{len(blobs) - 1}\x00"
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list):
            return [swap(item) for item in value]
        return value

    text = json.dumps(swap(body), ensure_ascii=False, separators=(",", ":"))
    if not blobs:
        return text.encode("utf-8")
    out: list[bytes] = []
    for index, blob in enumerate(blobs):
        head, text = text.split(json.dumps(f"{marker}{index}\x00")[1:-1], 1)
        out += (head.encode("utf-8"), blob.encode("ascii"))
    out.append(text.encode("utf-8"))
    return b"".join(out)


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `extra` merged in: objects merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def summarize(value: Any) -> Any:
    """Return `value` with data URLs and long strings shortened, for debug logs."""
    if isinstance(value, dict):
        return {key: summarize(item) for key, item in value.items()}
    if isinstance(value, list):
        return [summarize(item) for item in value]
    if isinstance(value, str) and len(value) > 300:
        head = value[: value.find(",") + 1] if value.startswith("data:") else value[:120]
        return f"{head}…<{len(value)} chars>"
    return value
