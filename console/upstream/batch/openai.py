"""OpenAI's Batch API: upload the lines as a JSONL file, create the batch, poll it, read its output and error files.

`POST {base}/files` (multipart, `purpose=batch`), `POST {base}/batches`, `GET {base}/batches/{id}`,
`GET {base}/batches?limit=&after=`, `GET {base}/files/{id}/content`, `POST {base}/batches/{id}/cancel`;
`{base}` is the profile's API URL without its endpoint, so a compatible gateway's batch routes work too.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, AsyncIterator, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

from ...messages import Message, say
from ...profile import ApiProfile
from ..debuglog import DebugLog
from ..errors import ProfileProblem, ResponseError
from ..payload import ENDPOINTS, named_endpoint, split_api_url, with_path
from .base import BatchAnswer, BatchLine, BatchState, line_body
from .wire import Wire, create_once

if TYPE_CHECKING:
    from ..client import UpstreamClient

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
COMPLETION_WINDOW = "24h"  # the only window OpenAI offers
LIST_PAGE = 100
LIST_PAGES = 5  # how far back `find` looks: the newest 500 batches of the key
LABEL_FIELD = "console_batch"


class OpenAIBatches:
    """The Batch API of OpenAI (and of gateways that copy it)."""

    name = "openai"

    def __init__(self, client: "UpstreamClient") -> None:
        self._client = client

    async def submit(self, profile: ApiProfile, lines: list[BatchLine], label: str, debug: DebugLog) -> BatchState:
        """Upload the lines as one JSONL file and create a batch of it under `label`."""
        if not lines:
            raise ProfileProblem(say("upstream.batch_empty"))
        wire = Wire(self._client, profile, debug)
        endpoint = batch_endpoint(lines[0].request.url)
        mixed = sorted({batch_endpoint(line.request.url) for line in lines} - {endpoint})
        if mixed:  # one batch serves one endpoint: edits (tasks with images) and generations go apart
            raise ProfileProblem(say("upstream.batch_endpoints", endpoint=endpoint, others=", ".join(mixed)))
        content = await wire.off_loop(jsonl, lines, endpoint)
        uploaded = await wire.json("POST", _url(profile, "/files"), say("upstream.what_batch_upload"),
                                   files={"file": (f"{label}.jsonl", content, "application/jsonl")},
                                   data={"purpose": "batch"},
                                   summary={"purpose": "batch", "file": f"<{label}.jsonl, {len(lines)} lines, "
                                                                        f"{len(content)} bytes>"})
        file_id = uploaded.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise ResponseError(say("upstream.batch_no_file_id"))
        body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": COMPLETION_WINDOW,
                "metadata": {LABEL_FIELD: label}}

        async def create(retry: bool) -> BatchState:
            return state_of(await wire.json("POST", _url(profile, "/batches"), say("upstream.what_batch_creation"), body=body,
                                            retry=retry))

        return await create_once(create, lambda: self.find(profile, label, debug), wire, say("upstream.what_batch_creation"),
                                 profile.max_retries)

    async def find(self, profile: ApiProfile, label: str, debug: DebugLog) -> BatchState | None:
        """Return the batch created under `label` among the key's newest batches, or None."""
        wire = Wire(self._client, profile, debug)
        after = ""
        for _ in range(LIST_PAGES):
            query = f"limit={LIST_PAGE}" + (f"&after={quote(after, safe='')}" if after else "")
            page = await wire.json("GET", _url(profile, "/batches", query), say("upstream.what_batch_list"))
            items = [item for item in page.get("data") or [] if isinstance(item, dict)]
            for item in items:
                metadata = item.get("metadata")
                if isinstance(metadata, dict) and metadata.get(LABEL_FIELD) == label:
                    return state_of(item)
            after = page.get("last_id") or (items[-1].get("id") if items else "")
            if not page.get("has_more") or not after:
                return None
        return None

    async def poll(self, profile: ApiProfile, provider_id: str, debug: DebugLog) -> BatchState:
        """Return the batch's state now."""
        wire = Wire(self._client, profile, debug)
        return state_of(await wire.json("GET", _url(profile, f"/batches/{_id(provider_id)}"), say("upstream.what_batch_status")))

    async def answers(self, profile: ApiProfile, state: BatchState, debug: DebugLog,
                      keys: Sequence[str] = ()) -> list[BatchAnswer]:
        """Read the batch's output file and error file: one answer per line (each names its `custom_id`)."""
        return [answer async for answer in self.each_answer(profile, state, debug, keys)]

    async def each_answer(self, profile: ApiProfile, state: BatchState, debug: DebugLog,
                          keys: Sequence[str] = ()) -> AsyncIterator[BatchAnswer]:
        """Yield the answers of the output file, then the error file, line by line as they are read."""
        wire = Wire(self._client, profile, debug)
        for field_name, what in (("output_file_id", say("upstream.what_batch_output")),
                                 ("error_file_id", say("upstream.what_batch_errors"))):
            file_id = state.raw.get(field_name)
            if not isinstance(file_id, str) or not file_id:
                continue
            url = _url(profile, f"/files/{_id(file_id)}/content")
            async for raw in wire.lines(url, what, self._client.answer_cap):
                found = await wire.read_line(read_lines, raw)
                for answer in found:
                    yield answer

    async def cancel(self, profile: ApiProfile, provider_id: str, debug: DebugLog) -> BatchState:
        """Ask the service to cancel the batch; it answers `cancelling`, then `cancelled` once it stopped."""
        wire = Wire(self._client, profile, debug)
        return state_of(await wire.json("POST", _url(profile, f"/batches/{_id(provider_id)}/cancel"),
                                        say("upstream.what_batch_cancel")))


def batch_endpoint(url: str) -> str:
    """Return the Batch API's `endpoint` (`/v1/chat/completions`, …) for a request sent to `url`."""
    name = named_endpoint(url)
    if name is None:
        raise ProfileProblem(say("upstream.batch_no_endpoint", url=url))
    return "/v1" + ENDPOINTS[name]


def jsonl(lines: list[BatchLine], endpoint: str) -> bytes:
    """Return the batch input file: one `{"custom_id", "method", "url", "body"}` line per task.

    OpenAI takes one model per input file: lines naming two are refused here, before any call.
    """
    out, models = [], set()
    for line in lines:
        head = json.dumps({"custom_id": line.key, "method": "POST", "url": endpoint}, ensure_ascii=False)
        fields = line_body(line.request)
        models.add(str(fields.get("model")))
        body = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        out.append(f'{head[:-1]}, "body": {body}}}\n'.encode("utf-8"))
    if len(models) > 1:
        raise ProfileProblem(say("upstream.batch_models", models=", ".join(sorted(models))))
    return b"".join(out)


def state_of(batch: dict[str, Any]) -> BatchState:
    """Read a batch object: its status, `request_counts` and, once it ended, why."""
    status = str(batch.get("status") or "").lower()
    provider_id = batch.get("id")
    if not isinstance(provider_id, str) or not provider_id or not status:
        raise ResponseError(say("upstream.batch_no_id"))
    counts = batch.get("request_counts") if isinstance(batch.get("request_counts"), dict) else {}
    return BatchState(provider_id, status, status in TERMINAL, _count(counts, "total"), _count(counts, "completed"),
                      _count(counts, "failed"), _why(batch, status), batch)


def read_lines(content: bytes) -> list[BatchAnswer]:
    """Read an output or error file: each line's `custom_id`, its `response` body or its `error`."""
    answers = []
    for raw in content.splitlines():
        try:
            item = json.loads(raw)
        except ValueError:
            continue  # a cut or blank line: its task gets the batch's reason
        if isinstance(item, dict) and isinstance(item.get("custom_id"), str):
            answers.append(_answer(item))
    return answers


def _answer(item: dict[str, Any]) -> BatchAnswer:
    response = item.get("response") if isinstance(item.get("response"), dict) else {}
    status = response.get("status_code") if isinstance(response.get("status_code"), int) else None
    body = response.get("body") if isinstance(response.get("body"), dict) else None
    error = item.get("error")
    if not error and body is not None and (status is None or status < 300):
        return BatchAnswer(item["custom_id"], body, status, None)
    said = _message(error) or _message((body or {}).get("error"))
    why = _quoted([said]) if said else say("upstream.batch_line_http", status=status)
    return BatchAnswer(item["custom_id"], None, status, why)


def _why(batch: dict[str, Any], status: str) -> str | None:
    if status == "failed":
        errors = batch.get("errors") if isinstance(batch.get("errors"), dict) else {}
        said = [text for text in (_message(item) for item in errors.get("data") or []) if text]
        if not said:
            return say("upstream.batch_service_failed")
        return _quoted(said)
    if status == "expired":
        return say("upstream.batch_expired_window")
    if status in ("cancelling", "cancelled"):
        return say("upstream.batch_cancelled")
    return None


def _message(error: Any) -> str:
    """Return a provider's error as it said it ("code: message"); one naming its input line is a Message that
    quotes it with the line number in the page's language."""
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return ""
    message = str(error.get("message") or "")
    code = str(error.get("code") or "")
    said = f"{code}: {message}" if code and message else message or code
    if isinstance(error.get("line"), int) and said:
        return say("upstream.said_at_line", said=said, line=error["line"])
    return said


def _quoted(said: list[str]) -> Message:
    """Return a provider's errors quoted: verbatim, and those naming their line with it in the page's language."""
    if any(isinstance(text, Message) for text in said):
        return say("upstream.batch_errors", errors=said)
    return say("upstream.said", said="; ".join(said))


def _count(counts: dict[str, Any], name: str) -> int:
    value = counts.get(name)
    return value if isinstance(value, int) and value >= 0 else 0


def _url(profile: ApiProfile, suffix: str, query: str = "") -> str:
    """Return `{base}{suffix}`; the base's own query (Azure's `api-version`) stays, then `query`."""
    base, _ = split_api_url(profile.api_url)
    parts = urlsplit(with_path(base, suffix))
    return urlunsplit(parts._replace(query="&".join(part for part in (parts.query, query) if part)))


def _id(value: str) -> str:
    """Return an id as one path segment (an id with a slash would reach another route)."""
    return quote(value, safe="-._~")
