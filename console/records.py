"""The store's typed records of runs, tasks and results, and the JSON the web layer shows of each.

`to_dict` leaves tuples as tuples (JSON arrays all the same): a listing of 10,000 tasks makes no
extra lists, so the garbage collector has no more to walk than before the records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .messages import Message, Said


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """One image a task brought, with its selection, caption and review flags."""

    id: str
    task_id: str
    width: int
    height: int
    format: str
    sha256: str
    size: int  # bytes of the image file
    origin: str  # how it arrived: b64, url, inline …
    prompt: str | None  # the prompt that produced it (its task's may have changed since)
    caption: str | None  # its own caption; None: the save rule's
    answer_text: str | None  # the text the model sent with it, cleaned
    selected: bool
    saved: bool  # a save has written it
    flags: tuple[str, ...]
    flag_reasons: dict[str, str]
    flags_checked: bool

    def to_dict(self, *, with_task: bool = False) -> dict[str, Any]:
        """Return the result as the API shows it (with its task id when asked)."""
        shown = {"id": self.id, "width": self.width, "height": self.height, "format": self.format,
                 "sha256": self.sha256, "bytes": self.size, "origin": self.origin, "prompt": self.prompt,
                 "caption": self.caption, "answer_text": self.answer_text, "selected": self.selected,
                 "saved": self.saved, "flags": self.flags, "flag_reasons": self.flag_reasons,
                 "flags_checked": self.flags_checked}
        coded = {flag: reason.as_json() for flag, reason in self.flag_reasons.items() if isinstance(reason, Message)}
        if coded:  # beside the reasons, not among them: `flag_reasons` keeps one key per flag
            shown["flag_reasons"] = {flag: str(reason) for flag, reason in self.flag_reasons.items()}
            shown["flag_reasons_msg"] = coded
        if with_task:
            shown["task_id"] = self.task_id
        return shown


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task of a run: what it sends, how it fared, and the results it brought."""

    id: str
    run_id: str
    index: int  # its place in the run, from 0
    source_name: str
    source_path: str  # empty in generate mode
    prompt: str
    status: str
    attempts: int
    http_status: int | None
    error: str | None
    warning: str | None
    rev: int
    output_name: str | None  # the stem saves use instead of the source's
    references: tuple[str, ...]  # further input images sent with the source
    overrides: dict[str, Any]  # profile fields for this task only
    parent: dict[str, Any] | None  # the result it continues, shown on the page
    results: tuple[ResultRecord, ...] = ()
    spend: dict[str, Any] | None = None  # what its calls cost, where a listing asked for it
    batch: str | None = None  # the batch it waits in (batch delivery), while it waits

    def to_dict(self) -> dict[str, Any]:
        """Return the task as the API shows it."""
        shown = {"id": self.id, "run_id": self.run_id, "source_name": self.source_name,
                 "source_path": self.source_path, "prompt": self.prompt, "status": self.status,
                 "attempts": self.attempts, "http_status": self.http_status, "error": self.error}
        if isinstance(self.error, Message):
            shown["error_msg"] = self.error.as_json()
        shown["warning"] = self.warning
        if isinstance(self.warning, Message):
            shown["warning_msg"] = self.warning.as_json()
        shown.update({"rev": self.rev, "output_name": self.output_name, "index": self.index,
                      "references": self.references, "overrides": self.overrides, "parent": self.parent,
                      "results": [result.to_dict() for result in self.results], "batch": self.batch})
        if self.spend is not None:
            shown["spend"] = self.spend
        return shown


@dataclass(frozen=True, slots=True)
class TaskPage:
    """A page of a run's tasks changed after a revision, and the tasks deleted since."""

    rev: int  # the revision to ask from next time
    total: int  # tasks matching the filters, all pages
    tasks: list[TaskRecord]
    removed: list[str]  # ids of tasks deleted after the revision asked from

    def to_dict(self) -> dict[str, Any]:
        """Return the page as the API shows it."""
        # The tasks say their messages' codes themselves: a long listing is not walked again for them.
        return {"rev": self.rev, "total": self.total, "tasks": Said(task.to_dict() for task in self.tasks),
                "removed": self.removed}


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run: what it was started with, and its progress, selection and spend when read."""

    id: str
    created_at: float
    input_path: str
    recursive: bool
    prompt: str
    task_count: int
    mode: str  # how its tasks were made: edit, generate, table
    spec: dict[str, Any] | None  # what they were made from
    model: str
    api_url: str
    concurrency: int
    progress: dict[str, Any]
    selected: int  # results selected
    spend: dict[str, Any]
    budget: float | None
    delivery: str = "live"  # live calls, or the provider's batch service
    batches: tuple["BatchRecord", ...] = ()  # its batches, newest first (batch delivery)

    def to_dict(self) -> dict[str, Any]:
        """Return the run as the API shows it (its API URL as stored: the web layer masks it)."""
        return {"id": self.id, "created_at": self.created_at, "input_path": self.input_path,
                "recursive": self.recursive, "prompt": self.prompt, "task_count": self.task_count,
                "mode": self.mode, "spec": self.spec, "model": self.model, "api_url": self.api_url,
                "concurrency": self.concurrency, "progress": self.progress, "selected": self.selected,
                "spend": self.spend, "budget": self.budget, "delivery": self.delivery,
                "batches": [batch.to_dict() for batch in self.batches]}


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One submission of a run's tasks to a provider's batch service, as last polled."""

    id: str  # the console's label, which the provider keeps with the batch
    run_id: str
    service: str  # openai | gemini
    provider_id: str | None  # None until the provider answered the submission
    status: str  # "preparing" before submission, then the provider's own word
    done: bool  # the provider finished it (its answers can be read)
    total: int
    completed: int
    failed: int
    error: str | None
    created_at: float
    submitted_at: float | None
    finished_at: float | None  # every answer stored; None while the batch is active
    stopped: bool  # the user stopped the run: its unfinished tasks end stopped, not failed

    def to_dict(self) -> dict[str, Any]:
        """Return the batch as the API shows it."""
        return {"id": self.id, "provider_id": self.provider_id, "service": self.service, "status": self.status,
                "done": self.done, "total": self.total, "completed": self.completed, "failed": self.failed,
                "error": self.error, "created_at": self.created_at, "finished_at": self.finished_at}


@dataclass(frozen=True, slots=True)
class ScopedResult:
    """A result a captioning job may caption: its image, its caption, and its task's source."""

    id: str
    task_id: str
    sha256: str
    format: str
    caption: str | None
    source_name: str
    source_path: str  # empty in generate mode


@dataclass(frozen=True, slots=True)
class UncheckedResult:
    """A result the review flagger has not looked at yet, with what judging it needs from its task."""

    id: str
    task_id: str
    sha256: str
    format: str
    index: int  # its task's place in the run, from 0
    source_name: str
    source_path: str  # empty in generate mode
    overrides: dict[str, Any]  # its task's own profile fields (a table row's size)
