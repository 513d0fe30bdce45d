"""Build the HTTP request for one call: endpoint, headers and body for each `api_mode`."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import __version__
from ..profile import ApiProfile
from .errors import ProfileProblem

# Endpoint path suffixes, longest first so "/images/edits" wins over a shorter match.
ENDPOINTS = {
    "chat_completions": "/chat/completions",
    "responses": "/responses",
    "images_generations": "/images/generations",
    "images_edits": "/images/edits",
}
_DEFAULT_TOKEN_FIELD = {"chat_completions": "max_tokens", "responses": "max_output_tokens", "images": None}


@dataclass(frozen=True)
class Source:
    """A source image ready to send: its bytes and real MIME type."""

    name: str
    data: bytes
    mime: str

    def data_url(self) -> str:
        """Return the image as a base64 data URL."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass
class Request:
    """Everything needed to send one call; `content` XOR `files`/`form`."""

    mode: str  # chat_completions | responses | images
    url: str
    headers: dict[str, str]
    stream: bool
    content: bytes | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] = field(default_factory=list)
    form: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)  # the body without payloads, for logs


def split_api_url(api_url: str) -> tuple[str, str | None]:
    """Return (base URL without endpoint, mode named by the URL's endpoint or None)."""
    parts = urlsplit(api_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProfileProblem(f"API URL must start with http:// or https:// and name a host; got {api_url!r}")
    path = parts.path.rstrip("/")
    for name, suffix in ENDPOINTS.items():
        if path.endswith(suffix):
            mode = "images" if name.startswith("images") else name
            return urlunsplit(parts._replace(path=path[: -len(suffix)])), mode
    if path == "":
        path = "/v1"  # "http://host:8000" means the OpenAI-style /v1 root
    return urlunsplit(parts._replace(path=path)), None


def resolve_mode(profile: ApiProfile) -> str:
    """Return the concrete mode: the profile's, or for `auto` the one the URL names (else chat)."""
    _, named = split_api_url(profile.api_url)
    if profile.api_mode != "auto":
        return profile.api_mode
    return named or "chat_completions"


def endpoint(profile: ApiProfile, mode: str, has_source: bool) -> str:
    """Return the URL to POST to for `mode`."""
    base, _ = split_api_url(profile.api_url)
    name = mode if mode != "images" else ("images_edits" if has_source else "images_generations")
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path + ENDPOINTS[name]))


def build(profile: ApiProfile, prompt: str, source: Source | None) -> Request:
    """Return the request for `profile`, `prompt` and an optional source image."""
    if not profile.api_url:
        raise ProfileProblem("no API URL set in the profile")
    if not profile.model:
        raise ProfileProblem("no model set in the profile")
    mode = resolve_mode(profile)
    url = endpoint(profile, mode, source is not None)
    headers = build_headers(profile)
    if mode == "images" and source is not None and profile.edit_format != "json":
        return _multipart_edit(profile, prompt, source, url, headers)
    body = {"chat_completions": _chat, "responses": _responses, "images": _images}[mode](profile, prompt, source)
    body = deep_merge(body, profile.extra_body)
    headers["Content-Type"] = "application/json"
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Request(mode, url, headers, bool(body.get("stream")), content=content, summary=summarize(body))


def build_headers(profile: ApiProfile) -> dict[str, str]:
    """Return the headers every request of this profile carries (auth, extra headers)."""
    headers = {
        "Accept": "text/event-stream, application/json" if profile.stream else "application/json",
        "User-Agent": f"image-batch-console/{__version__}",
    }
    if profile.api_key:
        headers["Authorization"] = f"Bearer {profile.api_key}"
    headers.update(profile.extra_headers)
    return headers


def _chat(profile: ApiProfile, prompt: str, source: Source | None) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if profile.system_prompt.strip():
        messages.append({"role": "system", "content": profile.system_prompt})
    if source is None:
        # grok2api G2 reads the prompt only from string content (PROTOCOL §2).
        messages.append({"role": "user", "content": prompt})
    else:
        parts = [{"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": source.data_url()}}]
        messages.append({"role": "user", "content": parts})
    body: dict[str, Any] = {"model": profile.model, "messages": messages, "stream": profile.stream}
    _sampling(body, profile, "chat_completions")
    image_config = _image_options(profile)
    if image_config:
        body["image_config"] = image_config  # grok2api's (non-OpenAI) image options
    return body


def _responses(profile: ApiProfile, prompt: str, source: Source | None) -> dict[str, Any]:
    if source is None:
        user_input: Any = prompt
    else:
        user_input = [{"role": "user", "content": [
            {"type": "input_text", "text": prompt},
            {"type": "input_image", "image_url": source.data_url()},
        ]}]
    body: dict[str, Any] = {"model": profile.model, "input": user_input, "stream": profile.stream}
    if profile.system_prompt.strip():
        body["instructions"] = profile.system_prompt
    _sampling(body, profile, "responses")
    return body


def _images(profile: ApiProfile, prompt: str, source: Source | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": profile.model, "prompt": prompt, **_image_options(profile)}
    if source is not None:
        body["images"] = [{"url": source.data_url()}]  # grok2api G3 JSON edits
    if profile.stream:
        body["stream"] = True  # sent only when on: older images APIs reject the field
    return body


def _multipart_edit(profile: ApiProfile, prompt: str, source: Source, url: str, headers: dict[str, str]) -> Request:
    fields: dict[str, Any] = {"model": profile.model, "prompt": prompt, **_image_options(profile)}
    if profile.stream:
        fields["stream"] = True
    fields = deep_merge(fields, profile.extra_body)
    form = {key: _form_value(value) for key, value in fields.items()}
    # OpenAI's SDK sends one file as `image`, several as `image[]`; grok2api G1.6 accepts only
    # the first form and G2 only the second (PROTOCOL §2), so the profile chooses.
    field_name = "image[]" if profile.edit_format == "multipart_array" else "image"
    filename = _upload_name(source)
    files = [(field_name, (filename, source.data, source.mime))]
    summary = {**fields, field_name: f"<file {filename}, {source.mime}, {len(source.data)} bytes>"}
    return Request("images", url, headers, bool(fields.get("stream")), files=files, form=form, summary=summary)


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


def _sampling(body: dict[str, Any], profile: ApiProfile, mode: str) -> None:
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
