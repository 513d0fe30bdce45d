"""Serve a fake of OpenAI's Batch API: `/v1/files` (upload, object, content) and `/v1/batches` (create, get, list,
cancel), on the batch clock of `testkit/fake_batches.py`.

The input file is read at creation and checked as OpenAI's validation does (JSON lines, unique `custom_id`,
`POST`, the batch's `url`, one model); a bad line fails the batch with `errors` naming it. Once terminal, the
batch has an output file (answered lines, in an order unlike the input's) and an error file (HTTP 400 lines,
then `batch_expired` lines), either left out when it would be empty; a cancelled batch's unfinished lines are
in neither. Batch input files cannot be downloaded, as on OpenAI.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from testkit.fake_batch_lines import BatchLine, line_answer, line_error
from testkit.fake_batches import TERMINAL, Batch, Book, book, counts, owner_of, progress, unreachable_look
from testkit.fake_upstream import Ctx, compact_json

ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/images/generations", "/v1/images/edits",
             "/v1/embeddings", "/v1/completions", "/v1/moderations")
IMAGE_ENDPOINTS = frozenset(ENDPOINTS[:4])  # the ones this fake can answer
MAX_LINES = 50_000
DAY = 24 * 3600
EXPIRED = ("batch_expired", "This request could not be executed before the completion window expired.")
_BATCH = re.compile(r"/v1/batches/(batch_[A-Za-z0-9]+)(/cancel)?")
_FILE = re.compile(r"/v1/files/(file-[A-Za-z0-9]+)(/content)?")


def serve(ctx: Ctx) -> bool:
    """Answer an OpenAI files or batches route; return False when the route is not one."""
    method, endpoint = ctx.req.method, ctx.endpoint
    batch, file = _BATCH.fullmatch(endpoint), _FILE.fullmatch(endpoint)
    if method == "POST" and endpoint == "/v1/files":
        upload_file(ctx)
    elif method == "GET" and file:
        send_file(ctx, file.group(1), bool(file.group(2)))
    elif method == "POST" and endpoint == "/v1/batches":
        create_batch(ctx)
    elif method == "GET" and endpoint == "/v1/batches":
        list_batches(ctx)
    elif batch and (method, bool(batch.group(2))) in (("GET", False), ("POST", True)):
        (cancel_batch if batch.group(2) else get_batch)(ctx, batch.group(1))
    else:
        return False
    return True


def openai_error(ctx: Ctx, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
    """Answer an OpenAI error body."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    ctx.send_json(status, compact_json({"error": error}))


def upload_file(ctx: Ctx) -> None:
    """`POST /v1/files` (multipart `purpose` + `file`): store the file and answer its file object."""
    form = ctx.req.form
    if form is None:
        return openai_error(ctx, 400, "The request must be multipart/form-data.", None)
    if "file" not in form or form["file"][0][0] is None:
        return openai_error(ctx, 400, "Missing required parameter: 'file'.", "file", "missing_required_parameter")
    purpose = form.get("purpose", [(None, None, b"")])[0][2].decode("utf-8", "replace").strip()
    if purpose not in ("batch", "assistants", "fine-tune", "vision", "user_data"):
        return openai_error(ctx, 400, f"'{purpose}' is not one of ['assistants', 'batch', 'fine-tune', 'vision', "
                                      "'user_data'] - 'purpose'", "purpose")
    filename, _, data = form["file"][0]
    ctx.send_json(200, compact_json(book(ctx.fake).add_file(purpose, filename or "upload", data, len(data))))


def send_file(ctx: Ctx, file_id: str, content: bool) -> None:
    """`GET /v1/files/<id>` (the file object) or `…/content` (its bytes; batch inputs cannot be downloaded)."""
    held = book(ctx.fake)
    with held.lock:
        entry = held.files.get(file_id)
    if entry is None:
        return openai_error(ctx, 404, f"No such File object: {file_id}", "id")
    if not content:
        held.content(file_id)  # an output file is built on first read: its size is then known
        return ctx.send_json(200, compact_json({k: v for k, v in entry.items() if not k.startswith("_")}))
    if entry["purpose"] == "batch":
        return openai_error(ctx, 400, "Not allowed to download files of purpose: batch")
    ctx.send(200, held.content(file_id), "application/octet-stream")


def create_batch(ctx: Ctx) -> None:
    """`POST /v1/batches`: check the body, read the input file's lines and start the batch's clock."""
    body, held = ctx.req.json, book(ctx.fake)
    if not isinstance(body, dict):
        return openai_error(ctx, 400, "We could not parse the JSON body of your request.")
    refused = _refuse_create(body, held)
    if refused:
        return openai_error(ctx, 400, refused[0], refused[1])
    metadata = body.get("metadata") or {}
    lines, errors = parse_input(held.content(body["input_file_id"]), body["endpoint"])
    batch = Batch("openai", "batch_" + secrets.token_hex(16), owner_of(ctx), metadata.get("console_batch"),
                  body["endpoint"], _model(lines), lines, dict(ctx.opts), held.now(), held.wall(), errors,
                  {"input_file_id": body["input_file_id"], "metadata": metadata or None,
                   "completion_window": body["completion_window"]})
    with held.lock:
        held.batches[batch.id] = batch
    ctx.send_json(200, compact_json(batch_object(held, batch)))


def _refuse_create(body: dict, held: Book) -> tuple[str, str] | None:
    """Return (message, param) when a batch creation body is wrong, else None."""
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(body.get(name), str):
            return f"Missing required parameter: '{name}'.", name
    if body["endpoint"] not in ENDPOINTS:
        return f"Invalid value: '{body['endpoint']}'. Supported values are: {', '.join(ENDPOINTS)}.", "endpoint"
    if body["completion_window"] != "24h":
        return f"Invalid value: '{body['completion_window']}'. Supported values are: '24h'.", "completion_window"
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16 or any(
            not isinstance(v, str) or len(k) > 64 or len(v) > 512 for k, v in metadata.items())):
        return "Invalid 'metadata': at most 16 string pairs, keys up to 64 and values up to 512 characters.", \
            "metadata"
    with held.lock:
        entry = held.files.get(body["input_file_id"])
    if entry is None:
        return f"No such File object: {body['input_file_id']}", "input_file_id"
    if entry["purpose"] != "batch":
        return f"File {body['input_file_id']} has purpose '{entry['purpose']}'; a batch needs purpose 'batch'.", \
            "input_file_id"
    return None


def parse_input(data: bytes, endpoint: str) -> tuple[list[BatchLine], list[dict]]:
    """Read an input JSONL file into lines, and the validation errors OpenAI would report (1-based lines)."""
    lines: list[BatchLine] = []
    errors: list[dict] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.decode("utf-8", "replace").split("\n"), 1):
        if not raw.strip():
            continue
        problem = _line_problem(raw, endpoint, seen)
        if isinstance(problem, BatchLine):
            lines.append(problem)
        else:
            errors.append({"code": problem[0], "message": problem[1], "param": problem[2], "line": number})
    if len(lines) > MAX_LINES:
        errors.append({"code": "too_many_requests_in_file", "param": None, "line": None,
                       "message": f"The input file has {len(lines)} requests; a batch takes at most {MAX_LINES}."})
    if endpoint not in IMAGE_ENDPOINTS:
        errors.append({"code": "unsupported_endpoint", "param": "endpoint", "line": None,
                       "message": f"This fake answers image endpoints only, not {endpoint}."})
    models = {line.body.get("model") for line in lines}
    if len(models) > 1:
        errors.append({"code": "mixed_models", "param": "body.model", "line": None,
                       "message": "All requests in a batch must use the same model."})
    return lines, errors


def _line_problem(raw: str, endpoint: str, seen: set[str]) -> BatchLine | tuple[str, str, str | None]:
    """Return the parsed line, or (code, message, param) of what is wrong with it."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return "invalid_json_line", "This line is not parseable as valid JSON.", None
    if not isinstance(obj, dict):
        return "invalid_json_line", "Each line must be a JSON object.", None
    key = obj.get("custom_id")
    if not isinstance(key, str) or not key:
        return "missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id"
    if key in seen:
        return "duplicate_custom_id", f"The custom_id '{key}' is used by more than one request.", "custom_id"
    seen.add(key)
    if obj.get("method") != "POST":
        return "invalid_method", "The method must be POST.", "method"
    if obj.get("url") != endpoint:
        return "mismatched_endpoint", f"The url '{obj.get('url')}' does not match the batch's endpoint " \
                                      f"'{endpoint}'.", "url"
    if not isinstance(obj.get("body"), dict):
        return "missing_required_parameter", "Missing required parameter: 'body'.", "body"
    if obj["body"].get("stream"):  # a batch answers whole bodies only
        return "invalid_request", "Streaming is not supported in a batch: remove 'stream' from the body.", \
            "body.stream"
    return BatchLine(key, obj["body"], endpoint)


def _model(lines: list[BatchLine]) -> str | None:
    """Return the model the lines name (the first one's)."""
    return next((line.body.get("model") for line in lines if isinstance(line.body.get("model"), str)), None)


def get_batch(ctx: Ctx, batch_id: str) -> None:
    """`GET /v1/batches/<id>`: the batch as it stands on the fake's clock."""
    held = book(ctx.fake)
    with held.lock:
        batch = held.batches.get(batch_id)
    if batch is None or batch.service != "openai":
        return openai_error(ctx, 404, f"No batch found with id '{batch_id}'.", "batch_id")
    if unreachable_look(ctx, batch):
        return openai_error(ctx, 503, "The server is overloaded or not ready yet.", code="server_error")
    ctx.send_json(200, compact_json(batch_object(held, batch)))


def cancel_batch(ctx: Ctx, batch_id: str) -> None:
    """`POST /v1/batches/<id>/cancel`: stop answering lines; cancelling, then cancelled a moment later."""
    held = book(ctx.fake)
    with held.lock:
        batch = held.batches.get(batch_id)
        if batch is None or batch.service != "openai":
            return openai_error(ctx, 404, f"No batch found with id '{batch_id}'.", "batch_id")
        status = progress(batch, held.now())[0]
        if status in TERMINAL:
            return openai_error(ctx, 400, f"Cannot cancel a batch with status '{status}'.")
        if batch.cancelled_at is None:
            batch.cancelled_at = held.now()
    ctx.send_json(200, compact_json(batch_object(held, batch)))


def list_batches(ctx: Ctx) -> None:
    """`GET /v1/batches?limit=&after=`: the caller's batches, newest first, paged by `after`."""
    held, owner = book(ctx.fake), owner_of(ctx)
    try:
        limit = int(ctx.req.query.get("limit", 20))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        return openai_error(ctx, 400, "Invalid 'limit': it must be between 1 and 100.", "limit")
    with held.lock:
        mine = [b for b in reversed(held.batches.values()) if b.service == "openai" and b.owner == owner]
    after = ctx.req.query.get("after")
    if after:
        ids = [b.id for b in mine]
        mine = mine[ids.index(after) + 1:] if after in ids else []
    page = [batch_object(held, b) for b in mine[:limit]]
    ctx.send_json(200, compact_json({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                                     "last_id": page[-1]["id"] if page else None, "has_more": len(mine) > limit}))


# --------------------------------------------------------------------------- OpenAI: the batch object and its files


def batch_object(held: Book, batch: Batch) -> dict[str, Any]:
    """Build the OpenAI batch object at the fake's current time."""
    status, done, changed = progress(batch, held.now())
    stamp = (lambda s: None if s is None else batch.wall + int(s))  # noqa: E731
    completed, failed = counts(batch, done, status)
    if status in TERMINAL and status != "failed":
        _write_files(held, batch, done, status)
    errors = batch.errors or ([{"code": "invalid_request", "line": 1, "param": "body",
                                "message": "The batch failed validation (batch_reject)."}]
                              if batch.opts.get("batch_reject") == "1" else [])
    cancelling = None if batch.cancelled_at is None else stamp(batch.cancelled_at - batch.started)
    return {
        "id": batch.id, "object": "batch", "endpoint": batch.endpoint,
        "errors": {"object": "list", "data": errors} if status == "failed" else None,
        "input_file_id": batch.extra["input_file_id"], "completion_window": batch.extra["completion_window"],
        "status": status, "output_file_id": batch.files.get("output"), "error_file_id": batch.files.get("error"),
        "created_at": batch.wall, "in_progress_at": stamp(0.2 * batch.span()) if done or status in (
            "in_progress", "finalizing", "completed", "expired") else None,
        "expires_at": batch.wall + DAY,
        "finalizing_at": stamp(0.9 * batch.span()) if status in ("finalizing", "completed") else None,
        "completed_at": stamp(changed) if status == "completed" else None,
        "failed_at": stamp(changed) if status == "failed" else None,
        "expired_at": stamp(changed) if status == "expired" else None,
        "cancelling_at": cancelling, "cancelled_at": stamp(changed) if status == "cancelled" else None,
        "request_counts": {"total": 0 if status == "failed" else len(batch.lines), "completed": completed,
                           "failed": failed},
        "metadata": batch.extra["metadata"], "model": batch.model, "usage": _usage(batch, completed),
    }


def _usage(batch: Batch, completed: int) -> dict[str, Any]:
    """Return the batch's token usage so far (each answered line's)."""
    tokens_in, tokens_out = 1240 * completed, 4160 * completed
    return {"input_tokens": tokens_in, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": tokens_out,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": tokens_in + tokens_out}


def _write_files(held: Book, batch: Batch, done: int, status: str) -> None:
    """Register a terminal batch's output and error files once (their content is built on first read)."""
    with held.lock:
        if batch.written:
            return
        batch.written = True
        answered = [(i, line) for i, line in enumerate(batch.lines) if i < done]
        good = [(i, line) for i, line in answered if i >= batch.failing()]
        bad = [(i, line) for i, line in answered if i < batch.failing()]
        unfinished = batch.lines[done:] if status == "expired" else []
        if good:
            batch.files["output"] = held.add_file("batch_output", f"{batch.id}_output.jsonl",
                                                  lambda: _output_jsonl(batch, good), 0)["id"]
        if bad or unfinished:
            batch.files["error"] = held.add_file("batch_output", f"{batch.id}_error.jsonl",
                                                 lambda: _error_jsonl(batch, bad, unfinished), 0)["id"]


def _output_jsonl(batch: Batch, good: list[tuple[int, BatchLine]]) -> bytes:
    """Build the output file: one line per answered request, in an order unlike the input's (as OpenAI's)."""
    shuffled = sorted(good, key=lambda pair: hash((batch.id, pair[1].key)))
    rows = [_row(line, {"status_code": 200, "request_id": "req_" + secrets.token_hex(16),
                        "body": line_answer(line, index)}, None) for index, line in shuffled]
    return "".join(row + "\n" for row in rows).encode("utf-8")


def _error_jsonl(batch: Batch, bad: list[tuple[int, BatchLine]], unfinished: list[BatchLine]) -> bytes:
    """Build the error file: refused requests with their HTTP 400, then expired ones without a response."""
    rows = [_row(line, {"status_code": 400, "request_id": "req_" + secrets.token_hex(16),
                        "body": {"error": line_error(line)}}, None) for _, line in bad]
    rows += [_row(line, None, {"code": EXPIRED[0], "message": EXPIRED[1]}) for line in unfinished]
    return "".join(row + "\n" for row in rows).encode("utf-8")


def _row(line: BatchLine, response: dict | None, error: dict | None) -> str:
    """Serialize one output or error file line."""
    return compact_json({"id": "batch_req_" + secrets.token_hex(16), "custom_id": line.key, "response": response,
                         "error": error})

