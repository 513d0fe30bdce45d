"""Hold the fake upstream's batch services: each batch's clock, options and state, shared by both providers.

Served under any scenario segment: OpenAI's Batch API (`testkit/fake_batches_openai.py`) and Gemini's
(`testkit/fake_batches_gemini.py`).

A batch's clock starts at its submission: for `batch_s` seconds (default 1) it is `validating` (the first
fifth), `in_progress` (lines answered in order, counts moving), `finalizing` (the last tenth), then
`completed`. Options of the segment it was submitted under: `batch_fail=N` (the first N lines answer
HTTP 400 content policy), `batch_expire=1` (half the lines done, then `expired`: `batch_expired` error
lines for the rest), `batch_reject=1` (fails validation), `batch_cancel_s=S` (cancelling lasts S s,
default 0.5), `batch_poll_fail=N` (the first N looks at the batch answer 503). Every line is answered as the live endpoint would answer its body, non-stream, with a real
image (the line's input image recoloured, or a generated one) and `usage`. State lives in the fake
process, so a console restarted mid-batch finds its batches; `FakeUpstream.batches()` lists every
submission with its lines' keys.
"""

from __future__ import annotations

import random
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from testkit.fake_batch_lines import BatchLine
from testkit.fake_upstream import Ctx

# --------------------------------------------------------------------------- a batch and its clock


@dataclass
class Batch:
    """One submitted batch (either service): its lines, options, clock and what it answered."""

    service: str  # "openai" | "gemini"
    id: str
    owner: tuple[str, str]  # (scenario segment, credential): whose list it appears in
    label: str | None  # OpenAI metadata.console_batch or Gemini displayName
    endpoint: str  # "/v1/…" or "gemini"
    model: str | None
    lines: list[BatchLine]
    opts: dict[str, str]
    started: float  # the book's clock at submission
    wall: int  # Unix time at submission
    errors: list[dict] = field(default_factory=list)  # validation errors: the batch fails
    extra: dict[str, Any] = field(default_factory=dict)  # service-specific fields (input file, metadata)
    cancelled_at: float | None = None
    files: dict[str, str] = field(default_factory=dict)  # "output"/"error" -> file id, once terminal
    written: bool = False  # the terminal batch's files are registered

    def span(self) -> float:
        """Return the seconds from submission to the end (`batch_s`, default 1)."""
        return max(0.0, float(self.opts.get("batch_s", 1)))

    def failing(self) -> int:
        """Return how many leading lines answer an error (`batch_fail`)."""
        return int(self.opts.get("batch_fail", 0))

    def reachable(self) -> int:
        """Return how many lines get answered before the end (half of them when the batch expires)."""
        return len(self.lines) // 2 if self.opts.get("batch_expire") == "1" else len(self.lines)


def progress(batch: Batch, now: float) -> tuple[str, int, float | None]:
    """Return (status, lines done, seconds since submission of the status change) at `now`."""
    span, elapsed = batch.span(), now - batch.started
    if batch.cancelled_at is not None:
        done = _done_at(batch, batch.cancelled_at - batch.started)
        wait = float(batch.opts.get("batch_cancel_s", 0.5))
        at = batch.cancelled_at - batch.started
        return ("cancelled", done, at + wait) if elapsed >= at + wait else ("cancelling", done, at)
    if batch.errors or batch.opts.get("batch_reject") == "1":
        return ("failed", 0, 0.2 * span) if elapsed >= 0.2 * span else ("validating", 0, None)
    if elapsed >= span:
        status = "expired" if batch.opts.get("batch_expire") == "1" else "completed"
        return status, batch.reachable(), span
    if elapsed < 0.2 * span:
        return "validating", 0, None
    if elapsed >= 0.9 * span and batch.opts.get("batch_expire") != "1":
        return "finalizing", batch.reachable(), 0.9 * span
    return "in_progress", _done_at(batch, elapsed), 0.2 * span


def _done_at(batch: Batch, elapsed: float) -> int:
    """Return how many lines are answered `elapsed` seconds after submission (in order, linearly)."""
    span = batch.span()
    if span == 0 or elapsed >= 0.9 * span:
        return batch.reachable()
    share = max(0.0, elapsed - 0.2 * span) / (0.7 * span)
    return min(batch.reachable(), int(len(batch.lines) * share))


TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


def counts(batch: Batch, done: int, status: str) -> tuple[int, int]:
    """Return (completed, failed) lines: failed are the leading `batch_fail` ones, and the expired."""
    failed = min(done, batch.failing())
    if status == "expired":
        return done - failed, failed + len(batch.lines) - done
    return done - failed, failed


# --------------------------------------------------------------------------- the book (state in the fake)


class Book:
    """Every file and batch the fake holds, and a clock tests can move forward."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.batches: dict[str, Batch] = {}
        self.files: dict[str, dict[str, Any]] = {}  # id -> file object + "_content" (bytes or a builder)
        self.offset = 0.0

    def now(self) -> float:
        """Return the fake's batch clock (monotonic seconds, plus any advance)."""
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the batch clock forward (a test reaching a long batch's end, or its 24 h window, at once)."""
        with self.lock:
            self.offset += seconds

    def wall(self) -> int:
        """Return Unix time on the fake's batch clock."""
        return int(time.time() + self.offset)

    def add_file(self, purpose: str, filename: str, content: bytes | Callable[[], bytes], size: int) -> dict:
        """Store a file and return its OpenAI file object."""
        file_id = "file-" + "".join(random.choices(string.ascii_letters + string.digits, k=22))
        obj = {"id": file_id, "object": "file", "bytes": size, "created_at": self.wall(), "filename": filename,
               "purpose": purpose, "status": "processed", "expires_at": None, "status_details": None}
        with self.lock:
            self.files[file_id] = {**obj, "_content": content}
        return obj

    def content(self, file_id: str) -> bytes:
        """Return a file's bytes, building a batch's output file on first read."""
        with self.lock:
            entry = self.files[file_id]
            if callable(entry["_content"]):
                entry["_content"] = entry["_content"]()
                entry["bytes"] = len(entry["_content"])
            return entry["_content"]


_books_lock = threading.Lock()


def book(fake: Any) -> Book:
    """Return the fake's batch book (made on first use; it lives as long as the fake)."""
    with _books_lock:
        if getattr(fake, "_batch_book", None) is None:
            fake._batch_book = Book()
        return fake._batch_book


def submissions(fake: Any) -> list[dict[str, Any]]:
    """Return every batch submitted to the fake, oldest first, with its lines' keys."""
    held = book(fake)
    with held.lock:
        return [{"service": b.service, "id": b.id, "label": b.label, "segment": b.owner[0], "endpoint": b.endpoint,
                 "model": b.model, "keys": [line.key for line in b.lines], "options": dict(b.opts),
                 "status": progress(b, held.now())[0]} for b in held.batches.values()]


def owner_of(ctx: Ctx) -> tuple[str, str]:
    """Return whose batches a request sees: its scenario segment and its credential (as a provider's project)."""
    headers = ctx.req.headers
    return ctx.segment, headers.get("authorization") or headers.get("x-goog-api-key") or ctx.req.query.get("key", "")


def unreachable_look(ctx: Ctx, batch: Batch) -> bool:
    """True while a look at `batch` should fail: the first `batch_poll_fail=N` of them (of its submission's options)."""
    failing = int(batch.opts.get("batch_poll_fail", 0))
    return failing > 0 and ctx.fake._bump(f"batch_poll\0{batch.id}") < failing


def serve(ctx: Ctx) -> bool:
    """Answer a batch-service route of either provider; return False when the route is not one."""
    from testkit import fake_batches_gemini, fake_batches_openai  # they import this module: bound at call time

    return fake_batches_gemini.serve(ctx) or fake_batches_openai.serve(ctx)


__all__ = ["Batch", "Book", "book", "serve", "submissions", "unreachable_look"]
