"""Serve a fake of Gemini's Batch API, under any scenario segment, on the same clock and options as OpenAI's.

`POST …/models/<model>:batchGenerateContent` takes `{"batch": {"display_name", "input_config": {"requests":
{"requests": [{"request", "metadata": {"key"}}]}}}}` (or `input_config.file_name`, a JSONL of `{"key",
"request"}` lines uploaded through the Files API's resumable protocol) and answers a long-running Operation:
`metadata` is the batch (`@type`, `state` BATCH_STATE_*, `batchStats` with int64 counts as strings, zeros
left out as proto3 JSON does), and once `done`, `response` (and `metadata.output`) holds
`inlinedResponses.inlinedResponses[]` (`response` or `error`, with `metadata`) or a `responsesFile` to
download. `GET …/batches` lists the caller's batches (`operations`, `nextPageToken`); `…:cancel` answers `{}`.
"""

from __future__ import annotations

import base64
import json
import random
import re
import secrets
import string
from datetime import datetime, timezone
from typing import Any

from testkit.fake_batch_lines import GEMINI, BatchLine, gemini_answer
from testkit.fake_batches import TERMINAL, Batch, Book, book, counts, owner_of, progress, unreachable_look
from testkit.fake_scenarios import gemini_key_refused, google_error
from testkit.fake_upstream import Ctx, compact_json

TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."
STATES = {"validating": "PENDING", "in_progress": "RUNNING", "finalizing": "RUNNING", "cancelling": "RUNNING",
          "completed": "SUCCEEDED", "failed": "FAILED", "expired": "EXPIRED", "cancelled": "CANCELLED"}
REFUSED = {"code": 3, "message": "The request was blocked: it may violate the usage policy (content policy)."}
EXPIRED = {"code": 4, "message": "The batch expired before this request was processed."}
_CREATE = re.compile(r"/v1(?:beta|alpha)?/models/([\w.-]+):batchGenerateContent")
_BATCH = re.compile(r"/v1(?:beta|alpha)/batches/([a-z0-9-]+)(:cancel)?")  # not /v1/batches: OpenAI's
_LIST = re.compile(r"/v1(?:beta|alpha)/batches")
_UPLOAD = re.compile(r"/upload/v1(?:beta|alpha)?/files")
_DOWNLOAD = re.compile(r"/download/v1(?:beta|alpha)?/files/([a-z0-9-]+):download")


def serve(ctx: Ctx) -> bool:
    """Answer a Gemini batch or Files route; return False when the route is not one."""
    method, endpoint = ctx.req.method, ctx.endpoint
    create, batch = _CREATE.fullmatch(endpoint), _BATCH.fullmatch(endpoint)
    routes = ((method == "POST" and create, lambda: create_batch(ctx, create.group(1))),
              (method == "GET" and _LIST.fullmatch(endpoint), lambda: list_batches(ctx)),
              (method == "GET" and batch and not batch.group(2), lambda: get_batch(ctx, batch.group(1))),
              (method == "POST" and batch and batch.group(2), lambda: cancel_batch(ctx, batch.group(1))),
              (method == "POST" and _UPLOAD.fullmatch(endpoint), lambda: upload(ctx)),
              (method == "GET" and _DOWNLOAD.fullmatch(endpoint), lambda: download(ctx, endpoint)))
    for matched, answer in routes:
        if matched:
            if not gemini_key_refused(ctx):
                answer()
            return True
    return False


def _bad(ctx: Ctx, message: str, status: int = 400, word: str = "INVALID_ARGUMENT") -> None:
    """Answer a Google API error."""
    ctx.send_json(status, google_error(status, word, message))


def _pick(obj: dict, camel: str, snake: str) -> Any:
    """Return a field given in camelCase or snake_case (proto JSON accepts both)."""
    return obj.get(camel, obj.get(snake))


# --------------------------------------------------------------------------- create, get, list, cancel


def create_batch(ctx: Ctx, model: str) -> None:
    """`POST …/models/<model>:batchGenerateContent`: check the batch, read its requests, start its clock."""
    held = book(ctx.fake)
    batch = ctx.req.json.get("batch") if isinstance(ctx.req.json, dict) else None
    if not isinstance(batch, dict):
        return _bad(ctx, "* BatchGenerateContentRequest.batch: batch is not specified")
    config = _pick(batch, "inputConfig", "input_config")
    if not isinstance(config, dict):
        return _bad(ctx, "* BatchGenerateContentRequest.batch.input_config: input_config is not specified")
    file_name = _pick(config, "fileName", "file_name")
    if isinstance(file_name, str):
        lines_or_error = _file_lines(held, file_name)
    else:
        lines_or_error = _inline_lines(config.get("requests"))
    if isinstance(lines_or_error, str):
        return _bad(ctx, lines_or_error, 404 if "not found" in lines_or_error else 400,
                    "NOT_FOUND" if "not found" in lines_or_error else "INVALID_ARGUMENT")
    lines, errors = lines_or_error
    name = "batches/" + "".join(random.choices(string.ascii_lowercase + string.digits, k=36))
    made = Batch("gemini", name, owner_of(ctx), _pick(batch, "displayName", "display_name"), GEMINI,
                 f"models/{model}", lines, dict(ctx.opts), held.now(), held.wall(), errors,
                 {"file_name": file_name if isinstance(file_name, str) else None})
    with held.lock:
        held.batches[name] = made
    ctx.send_json(200, compact_json(operation(held, made)))


def _inline_lines(requests: Any) -> tuple[list[BatchLine], list[dict]] | str:
    """Read inline requests (`requests.requests[]`), keyed by `metadata.key`, else by position."""
    items = requests.get("requests") if isinstance(requests, dict) else None
    if not isinstance(items, list) or not items:
        return "* BatchGenerateContentRequest.batch.input_config.requests: requests is not specified"
    lines = []
    for index, item in enumerate(items):
        request = item.get("request") if isinstance(item, dict) else None
        if not isinstance(request, dict) or not request.get("contents"):
            return f"* BatchGenerateContentRequest.batch.input_config.requests.requests[{index}].request.contents: " \
                   "contents is not specified"
        metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
        lines.append(BatchLine(str(metadata.get("key", index)), request, GEMINI))
    return lines, []


def _file_lines(held: Book, file_name: str) -> tuple[list[BatchLine], list[dict]] | str:
    """Read an uploaded JSONL of `{"key", "request"}` lines; a bad line fails the batch at validation."""
    with held.lock:
        entry = held.files.get(file_name)
    if entry is None:
        return f"File {file_name} not found."
    lines, errors = [], []
    for number, raw in enumerate(held.content(file_name).decode("utf-8", "replace").split("\n"), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            lines.append(BatchLine(str(obj["key"]), dict(obj["request"]), GEMINI))
        except (ValueError, KeyError, TypeError):
            errors.append({"line": number, "message": f"line {number} is not a {{\"key\", \"request\"}} object"})
    return lines, errors


def get_batch(ctx: Ctx, batch_id: str) -> None:
    """`GET …/batches/<id>`: the Operation as it stands on the fake's clock."""
    held = book(ctx.fake)
    with held.lock:
        batch = held.batches.get(f"batches/{batch_id}")
    if batch is None:
        return _bad(ctx, f"Batch batches/{batch_id} not found.", 404, "NOT_FOUND")
    if unreachable_look(ctx, batch):
        return _bad(ctx, "The service is currently unavailable.", 503, "UNAVAILABLE")
    ctx.send_json(200, compact_json(operation(held, batch)))


def cancel_batch(ctx: Ctx, batch_id: str) -> None:
    """`POST …/batches/<id>:cancel`: stop answering lines (cancelled a moment later); answers `{}`."""
    held = book(ctx.fake)
    with held.lock:
        batch = held.batches.get(f"batches/{batch_id}")
        if batch is None:
            return _bad(ctx, f"Batch batches/{batch_id} not found.", 404, "NOT_FOUND")
        if batch.cancelled_at is None and progress(batch, held.now())[0] not in TERMINAL:
            batch.cancelled_at = held.now()
    ctx.send_json(200, "{}")


def list_batches(ctx: Ctx) -> None:
    """`GET …/batches?pageSize=&pageToken=`: the caller's batches, newest first (`operations`, `nextPageToken`)."""
    held, owner = book(ctx.fake), owner_of(ctx)
    try:
        size = min(100, max(1, int(ctx.req.query.get("pageSize", 50))))
        start = int(base64.urlsafe_b64decode(ctx.req.query["pageToken"]).decode()) if "pageToken" in ctx.req.query \
            else 0
    except ValueError:
        return _bad(ctx, "Invalid page size or page token.")
    with held.lock:
        mine = [b for b in reversed(held.batches.values()) if b.service == "gemini" and b.owner == owner]
    page: dict[str, Any] = {"operations": [operation(held, b, summary=True) for b in mine[start:start + size]]}
    if start + size < len(mine):
        page["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    ctx.send_json(200, compact_json(page))


# --------------------------------------------------------------------------- the Operation


def _time(held: Book, batch: Batch, seconds: float) -> str:
    """Return the RFC 3339 time `seconds` after the batch's submission."""
    moment = datetime.fromtimestamp(batch.wall + seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def operation(held: Book, batch: Batch, summary: bool = False) -> dict[str, Any]:
    """Build the batch's Operation now; `summary` leaves the answers out (as a listing does)."""
    status, done, changed = progress(batch, held.now())
    completed, failed = counts(batch, done, status)
    total = len(batch.lines)
    stats = {"requestCount": total, "successfulRequestCount": completed, "failedRequestCount": failed,
             "pendingRequestCount": total - completed - failed}
    meta: dict[str, Any] = {
        "@type": TYPES + "GenerateContentBatch", "model": batch.model, "displayName": batch.label,
        "createTime": _time(held, batch, 0), "updateTime": _time(held, batch, held.now() - batch.started),
        "batchStats": {k: str(v) for k, v in stats.items() if v},
        "state": "BATCH_STATE_" + STATES[status], "name": batch.id}
    if batch.extra["file_name"]:
        meta["inputConfig"] = {"fileName": batch.extra["file_name"]}
    result: dict[str, Any] = {"name": batch.id, "metadata": meta}
    if status not in TERMINAL:
        return result
    meta["endTime"] = _time(held, batch, changed or 0)
    result["done"] = True
    if status == "failed":
        why = "; ".join(e["message"] for e in batch.errors) or "the batch failed validation (batch_reject)"
        result["error"] = {"code": 3, "message": why}
    elif not summary:
        output = _output(held, batch, done, status)
        meta["output"] = output
        result["response"] = {"@type": TYPES + "GenerateContentBatchOutput", **output}
    return result


def _output(held: Book, batch: Batch, done: int, status: str) -> dict[str, Any]:
    """Return the batch's output: inline answers, or the name of a responses file (built once)."""
    with held.lock:
        if "answers" not in batch.extra:
            batch.extra["answers"] = [_answer(batch, i, line) for i, line in enumerate(batch.lines)
                                      if i < done or status == "expired"]
    answers = batch.extra["answers"]
    if not batch.extra["file_name"]:
        return {"inlinedResponses": {"inlinedResponses": answers}}
    with held.lock:
        if "responses_file" not in batch.extra:
            rows = [{"key": a["metadata"]["key"], **{k: v for k, v in a.items() if k != "metadata"}}
                    for a in answers]
            data = "".join(compact_json(row) + "\n" for row in rows).encode("utf-8")
            batch.extra["responses_file"] = _store(held, f"files/batch-{batch.id.split('/')[1]}", data)
    return {"responsesFile": batch.extra["responses_file"]}


def _answer(batch: Batch, index: int, line: BatchLine) -> dict[str, Any]:
    """Return one inlined response: the answer, the refusal of a failing line, or the expiry."""
    if index < batch.failing():
        body: dict[str, Any] = {"error": REFUSED}
    elif index >= batch.reachable():
        body = {"error": EXPIRED}
    else:
        body = {"response": gemini_answer(line)}
    return {**body, "metadata": {"key": line.key}}


# --------------------------------------------------------------------------- the Files API (resumable upload)


def _store(held: Book, name: str, data: bytes) -> str:
    """Store bytes as a Gemini file named `files/…`; return the name."""
    with held.lock:
        held.files[name] = {"name": name, "purpose": "gemini", "bytes": len(data), "_content": data}
    return name


def upload(ctx: Ctx) -> None:
    """`POST upload/v1beta/files`: `start` answers an upload URL, `upload, finalize` stores the bytes."""
    held, command = book(ctx.fake), ctx.req.headers.get("x-goog-upload-command", "")
    if command == "start":
        upload_id = secrets.token_urlsafe(24)
        with held.lock:
            held.files[f"upload:{upload_id}"] = {"purpose": "pending", "_content": b"", "meta": ctx.req.json}
        url = ctx.fake.url(ctx.segment, f"{ctx.endpoint}?upload_id={upload_id}&upload_protocol=resumable")
        return ctx.send(200, b"", "text/plain", [("X-Goog-Upload-URL", url), ("X-Goog-Upload-Status", "active")])
    key = f"upload:{ctx.req.query.get('upload_id', '')}"
    with held.lock:
        pending = held.files.pop(key, None)
    if "finalize" not in command or pending is None:
        return _bad(ctx, "Unknown upload, or an upload command this fake does not take.")
    name = _store(held, "files/" + "".join(random.choices(string.ascii_lowercase + string.digits, k=12)),
                  ctx.req.body)
    file = {"name": name, "displayName": ((pending.get("meta") or {}).get("file") or {}).get("display_name"),
            "mimeType": ctx.req.headers.get("content-type", "application/jsonl"), "sizeBytes": str(len(ctx.req.body)),
            "state": "ACTIVE", "source": "UPLOADED", "uri": ctx.fake.url(ctx.segment, f"/v1beta/{name}")}
    ctx.send_json(200, compact_json({"file": file}), [("X-Goog-Upload-Status", "final")])


def download(ctx: Ctx, endpoint: str) -> None:
    """`GET download/v1beta/files/<id>:download?alt=media`: a file's bytes."""
    name = "files/" + _DOWNLOAD.fullmatch(endpoint).group(1)
    held = book(ctx.fake)
    with held.lock:
        found = name in held.files
    if not found:
        return _bad(ctx, f"File {name} not found.", 404, "NOT_FOUND")
    ctx.send(200, held.content(name), "application/octet-stream")
