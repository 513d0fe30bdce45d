"""List a gateway's models (*Test connection*): one GET of `<api base>/models`, or Gemini's `{root}/models`."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx

from ..messages import say
from ..netguard import UrlPolicy, check_url
from ..profile import ApiProfile
from . import gemini
from .debuglog import DebugLog
from .errors import ResponseError, StatusError, TimeoutError_, TransportError
from .explain import describe_error, redacted
from .faults import ERROR_BODY_BYTES, read_error
from .payload import build_headers, resolve_mode, split_api_url, with_path


async def list_models(http: httpx.AsyncClient, profile: ApiProfile, api_policy: UrlPolicy) -> tuple[int, list[str]]:
    """GET <api base>/models once (no retries) through `http`: return (HTTP status, model ids).

    Gemini lists them at `{root}/models` as `{"models": [{"name": "models/…"}]}`.
    """
    is_gemini = resolve_mode(profile) == "gemini"
    base, _ = split_api_url(profile.api_url)
    url = gemini.models_url(profile.api_url) if is_gemini else with_path(base, "/models")
    await check_url(url, api_policy)
    headers = {key: value for key, value in build_headers(profile).items() if key != "Accept"}
    try:
        answer = await http.get(url, headers=headers, timeout=httpx.Timeout(min(profile.timeout_s, 30.0)))
    except httpx.TimeoutException:
        raise TimeoutError_(say("upstream.models_timeout", url=url)) from None
    except httpx.HTTPError as exc:
        raise TransportError(say("upstream.connection_failed", host=urlsplit(url).netloc,
                                 said=describe_error(exc))) from None
    if answer.status_code >= 400:
        said = read_error(answer.content[:ERROR_BODY_BYTES], answer.status_code, answer.headers)
        error = StatusError(say("upstream.http_status", status=answer.status_code, said=said.message),
                            http_status=answer.status_code,
                            kind=said.kind, code=said.code)
        raise redacted(error, DebugLog(profile.secrets()))
    try:
        data = json.loads(answer.text)
    except ValueError:
        data = None
    items = data.get("data") if isinstance(data, dict) else None
    names = gemini.model_names(data) if is_gemini else None
    if names is not None:
        return answer.status_code, names
    if not isinstance(items, list):
        raise ResponseError(say("upstream.models_not_list", url=url), http_status=answer.status_code)
    return answer.status_code, [str(item.get("id")) for item in items if isinstance(item, dict) and item.get("id")]
