"""Gemini's batch mode: `models/{model}:batchGenerateContent`, the batch as a long-running Operation.

Lines go inline (`input_config.requests.requests[]`, each `{"request", "metadata": {"key"}}`) while
the body stays under 20 MB; a larger batch is uploaded as JSONL (`{"key", "request"}` lines) through
the Files API's resumable upload and named by `input_config.file_name`. `GET {root}/batches/{id}`
answers an Operation: `metadata` is the batch (`state` BATCH_STATE_*, `batchStats`), and once `done`,
`response` holds `inlinedResponses.inlinedResponses[]` or a `responsesFile` to download.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, AsyncIterator, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

from ...messages import say
from ...profile import ApiProfile
from .. import gemini
from ..debuglog import DebugLog
from ..errors import ProfileProblem, ResponseError
from ..payload import summarize
from .base import BatchAnswer, BatchLine, BatchState, line_body
from .wire import Wire, create_once

if TYPE_CHECKING:
    from ..client import UpstreamClient

INLINE_LIMIT_BYTES = 20 * 1024 * 1024  # Google's limit on an inline batch request
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
LIST_PAGE = 100
LIST_PAGES = 5
_STATE_PREFIXES = ("batch_state_", "job_state_")


class GeminiBatches:
    """The batch mode of Gemini's API (and of relays that copy it)."""

    name = "gemini"

    def __init__(self, client: "UpstreamClient", inline_limit: int = INLINE_LIMIT_BYTES) -> None:
        self._client = client
        self._inline_limit = inline_limit

    async def submit(self, profile: ApiProfile, lines: list[BatchLine], label: str, debug: DebugLog) -> BatchState:
        """Create a batch of the lines under `label`: inline, or through an uploaded file when too large."""
        if not lines:
            raise ProfileProblem(say("upstream.batch_empty"))
        models = sorted({_model_of(line.request.url) for line in lines} - {gemini.model_path(profile.model)})
        if models:  # the batch goes to the profile's model; a task's own model would be silently replaced
            raise ProfileProblem(say("upstream.batch_models_gemini", model=profile.model, models=", ".join(models)))
        wire = Wire(self._client, profile, debug)
        requests = await wire.off_loop(_inlined, lines)
        body: dict[str, Any] = {"batch": {"display_name": label, "input_config": {"requests": {"requests": requests}}}}
        content, summary = await wire.off_loop(_serialised, body)
        if len(content) > self._inline_limit:
            debug.note(f"the batch body is {len(content)} bytes, over the inline limit of {self._inline_limit}: "
                       "uploading it as a file")
            file_name = await self._upload(wire, profile, await wire.off_loop(jsonl, lines), label)
            body = {"batch": {"display_name": label, "input_config": {"file_name": file_name}}}
            content, summary = _serialised(body)
        url = _url(profile, f"/models/{gemini.model_path(profile.model)}:batchGenerateContent")
        headers = wire.headers(**{"Content-Type": "application/json"})

        async def create(retry: bool) -> BatchState:
            return state_of(await wire.json("POST", url, say("upstream.what_batch_creation"), content=content, headers=headers,
                                            summary=summary, retry=retry))

        return await create_once(create, lambda: self.find(profile, label, debug), wire, say("upstream.what_batch_creation"),
                                 profile.max_retries)

    async def find(self, profile: ApiProfile, label: str, debug: DebugLog) -> BatchState | None:
        """Return the batch created under `label` (its display name) among the key's batches, or None."""
        wire = Wire(self._client, profile, debug)
        token = ""
        for _ in range(LIST_PAGES):
            query = f"pageSize={LIST_PAGE}" + (f"&pageToken={quote(token, safe='')}" if token else "")
            page = await wire.json("GET", _url(profile, "/batches", query), say("upstream.what_batch_list"))
            for item in page.get("operations") or page.get("batches") or []:
                if isinstance(item, dict) and _display_name(item) == label:
                    return state_of(item)
            token = page.get("nextPageToken") or ""
            if not token:
                return None
        return None

    async def poll(self, profile: ApiProfile, provider_id: str, debug: DebugLog) -> BatchState:
        """Return the batch's state now."""
        wire = Wire(self._client, profile, debug)
        return state_of(await wire.json("GET", _url(profile, "/" + _name(provider_id)), say("upstream.what_batch_status")))

    async def answers(self, profile: ApiProfile, state: BatchState, debug: DebugLog,
                      keys: Sequence[str] = ()) -> list[BatchAnswer]:
        """Read the batch's answers, inline or from its responses file; lines without a key take `keys` in order."""
        return [answer async for answer in self.each_answer(profile, state, debug, keys)]

    async def each_answer(self, profile: ApiProfile, state: BatchState, debug: DebugLog,
                          keys: Sequence[str] = ()) -> AsyncIterator[BatchAnswer]:
        """Yield the batch's answers one at a time: an inline batch's from its state, a responses file's line by
        line as it is downloaded (the answers of a thousand images are gigabytes)."""
        output = _output(state.raw)
        inlined = output.get("inlinedResponses")
        if isinstance(inlined, dict):
            for answer in read_inlined(inlined.get("inlinedResponses") or [], keys):
                yield answer
            return
        file_name = output.get("responsesFile")
        if not isinstance(file_name, str) or not file_name:
            return
        wire = Wire(self._client, profile, debug)
        lines = wire.lines(_download_url(profile, file_name), say("upstream.what_batch_responses"),
                           self._client.answer_cap, gaps=True)
        index = 0
        async for raw in lines:
            if raw is not None:  # None: a line over the cap, left out (its task gets the batch's reason)
                found = await wire.read_line(read_line, raw, index, keys)
                if found is not None:
                    yield found
            index += 1

    async def cancel(self, profile: ApiProfile, provider_id: str, debug: DebugLog) -> BatchState:
        """Ask the service to cancel the batch, then return its state (cancelled once it stopped)."""
        wire = Wire(self._client, profile, debug)
        await wire.json("POST", _url(profile, f"/{_name(provider_id)}:cancel"), say("upstream.what_batch_cancel"), body={})
        return await self.poll(profile, provider_id, debug)

    async def _upload(self, wire: Wire, profile: ApiProfile, content: bytes, label: str) -> str:
        """Upload the JSONL through the Files API's resumable protocol; return its `files/…` name."""
        start = await wire.send(
            "POST", _upload_url(profile), say("upstream.what_batch_upload_start"),
            content=json.dumps({"file": {"display_name": label}}).encode("utf-8"),
            headers=wire.headers(**{"Content-Type": "application/json", "X-Goog-Upload-Protocol": "resumable",
                                    "X-Goog-Upload-Command": "start",
                                    "X-Goog-Upload-Header-Content-Length": str(len(content)),
                                    "X-Goog-Upload-Header-Content-Type": "application/jsonl"}),
            summary={"file": {"display_name": label}, "bytes": len(content)})
        target = start.headers.get("x-goog-upload-url")
        if not target:
            raise ResponseError(say("upstream.batch_no_upload_url"))
        done = await wire.send(
            "POST", _same_host(target, profile), say("upstream.what_batch_upload"), content=content,
            headers=wire.headers(**{"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0",
                                    "Content-Type": "application/jsonl"}),
            summary=f"<{label}.jsonl, {len(content)} bytes>")
        try:
            name = json.loads(done.content)["file"]["name"]
        except (ValueError, KeyError, TypeError):
            name = None
        if not isinstance(name, str) or not name:
            raise ResponseError(say("upstream.batch_no_file_name"))
        return name


def _inlined(lines: list[BatchLine]) -> list[dict[str, Any]]:
    return [{"request": line_body(line.request), "metadata": {"key": line.key}} for line in lines]


def _model_of(url: str) -> str:
    """Return the model a generateContent URL names (`…/models/{model}:generateContent`)."""
    path = urlsplit(url).path
    return path.rpartition("/models/")[2].partition(":")[0]


def _serialised(body: dict[str, Any]) -> tuple[bytes, Any]:
    """Return the body as JSON bytes and as its shortened form for the debug log (blocking work for large batches)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), summarize(body)


def jsonl(lines: list[BatchLine]) -> bytes:
    """Return the batch input file: one `{"key", "request"}` line per task."""
    return b"".join(json.dumps({"key": line.key, "request": line_body(line.request)}, ensure_ascii=False,
                               separators=(",", ":")).encode("utf-8") + b"\n" for line in lines)


def state_of(operation: dict[str, Any]) -> BatchState:
    """Read the Operation of a batch: its state and `batchStats`, and once it ended, why."""
    batch = operation.get("metadata") if isinstance(operation.get("metadata"), dict) else {}
    name = operation.get("name") or batch.get("name")
    raw_state = str(batch.get("state") or "").lower()
    status = next((raw_state[len(p):] for p in _STATE_PREFIXES if raw_state.startswith(p)), raw_state)
    if not isinstance(name, str) or not name:
        raise ResponseError(say("upstream.batch_no_name"))
    status = {"unspecified": "pending"}.get(status, status) or ("succeeded" if operation.get("done") else "pending")
    stats = batch.get("batchStats") if isinstance(batch.get("batchStats"), dict) else {}
    done = bool(operation.get("done")) or status in TERMINAL
    return BatchState(name, status, done, _count(stats, "requestCount"), _count(stats, "successfulRequestCount"),
                      _count(stats, "failedRequestCount"), _why(operation, status), operation)


def read_inlined(items: list[Any], keys: Sequence[str] = ()) -> list[BatchAnswer]:
    """Read `inlinedResponses[]`: each `{"response"}` or `{"error"}`, keyed by `metadata.key` (else by order)."""
    return [_answer(item, _key(item, index, keys)) for index, item in enumerate(items) if isinstance(item, dict)]


def read_line(raw: bytes, index: int, keys: Sequence[str] = ()) -> BatchAnswer | None:
    """Read line `index` (0-based) of a responses file: its `key` (else `keys[index]`) and its answer; None when
    it is no answer (cut short, not JSON, no key)."""
    try:
        item = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(item, dict):
        return None
    answer = _answer(item, item["key"] if isinstance(item.get("key"), str) else _key(item, index, keys))
    return answer if answer.key else None


def _key(item: dict[str, Any], index: int, keys: Sequence[str]) -> str:
    metadata = item.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("key"), str):
        return metadata["key"]
    return keys[index] if index < len(keys) else ""


def _answer(item: dict[str, Any], key: str) -> BatchAnswer:
    response = item.get("response")
    if isinstance(response, dict) and not item.get("error"):
        return BatchAnswer(key, response, 200, None)
    error = item.get("error") if isinstance(item.get("error"), dict) else {}
    code = error.get("code")
    said = str(error.get("message") or "")
    status = error.get("status")
    if not said:
        reason = say("upstream.batch_line_no_message")
        why = say("upstream.batch_line_said", status=status, said=reason) if isinstance(status, str) else reason
    else:
        why = say("upstream.batch_line_said", status=status, said=said) if isinstance(status, str) else \
            say("upstream.said", said=said)
    return BatchAnswer(key, None, _http_status(code), why)


def _http_status(code: Any) -> int | None:
    """Return an HTTP status from a google.rpc.Status code (the gRPC code, or an HTTP one from relays)."""
    if isinstance(code, int) and 100 <= code < 600:
        return code
    return {3: 400, 5: 404, 7: 403, 8: 429, 9: 400, 13: 500, 14: 503, 4: 504}.get(code) if isinstance(code, int) else None


def _why(operation: dict[str, Any], status: str) -> str | None:
    error = operation.get("error")
    said = str(error.get("message") or "") if isinstance(error, dict) else ""
    if status == "failed":
        return say("upstream.batch_failed_said", said=said) if said else say("upstream.batch_failed")
    if status == "expired":
        return say("upstream.batch_expired")
    if status in ("cancelled", "cancelling"):
        return say("upstream.batch_cancelled")
    return said or None


def _output(operation: dict[str, Any]) -> dict[str, Any]:
    """Return where the answers are: the Operation's `response`, else the batch's own `output`."""
    response = operation.get("response")
    if isinstance(response, dict) and ("inlinedResponses" in response or "responsesFile" in response):
        return response
    batch = operation.get("metadata") if isinstance(operation.get("metadata"), dict) else {}
    output = batch.get("output")
    return output if isinstance(output, dict) else {}


def _display_name(operation: dict[str, Any]) -> Any:
    batch = operation.get("metadata") if isinstance(operation.get("metadata"), dict) else operation
    return batch.get("displayName", batch.get("display_name"))


def _count(stats: dict[str, Any], name: str) -> int:
    try:
        return max(0, int(stats.get(name) or 0))  # int64 counts come as JSON strings
    except (TypeError, ValueError):
        return 0


def _name(provider_id: str) -> str:
    """Return `batches/{id}` for a batch's name or bare id."""
    bare = provider_id.removeprefix("batches/")
    if not bare or "/" in bare or ":" in bare:
        raise ProfileProblem(say("upstream.batch_not_gemini_name", name=repr(provider_id)))
    return "batches/" + quote(bare, safe="-._~")


def _url(profile: ApiProfile, suffix: str, query: str = "") -> str:
    parts = urlsplit(gemini.root(profile.api_url))
    joined = "&".join(part for part in (parts.query, query) if part)
    return urlunsplit(parts._replace(path=parts.path + suffix, query=joined))


def _beside_version(profile: ApiProfile, kind: str, suffix: str, query: str = "") -> str:
    """Return a URL under `…/{kind}/{version}` (Google's `upload/v1beta`, `download/v1beta`)."""
    parts = urlsplit(gemini.root(profile.api_url))
    head, _, version = parts.path.rpartition("/")
    joined = "&".join(part for part in (parts.query, query) if part)
    return urlunsplit(parts._replace(path=f"{head}/{kind}/{version}{suffix}", query=joined))


def _upload_url(profile: ApiProfile) -> str:
    return _beside_version(profile, "upload", "/files")


def _download_url(profile: ApiProfile, file_name: str) -> str:
    if not file_name.startswith("files/") or "/" in file_name[len("files/"):]:
        raise ResponseError(say("upstream.batch_bad_file", name=repr(file_name)))
    return _beside_version(profile, "download", f"/{file_name}:download", "alt=media")


def _same_host(url: str, profile: ApiProfile) -> str:
    """Return the upload URL on the profile's own scheme and host, as Google's SDK does."""
    root = urlsplit(gemini.root(profile.api_url))
    return urlunsplit(urlsplit(url)._replace(scheme=root.scheme, netloc=root.netloc))
