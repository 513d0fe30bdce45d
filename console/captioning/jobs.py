"""A captioning job's order and progress: what it was asked, what it did so far, as the API shows it."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

FAILURES_SHOWN = 50
SOURCES = ("result", "source")


@dataclass(frozen=True)
class CaptionOrder:
    """What to caption: a run's results (all or the selected ones), from which image, with which instruction."""

    run_id: str
    instruction: str
    only_selected: bool = False
    overwrite: bool = False
    source: str = "result"  # "result": the result's image; "source": its task's source image


@dataclass(frozen=True)
class CaptionItem:
    """One call of a job: the image it sends and the results its caption goes to (one per result;
    with the source image, the results of one task share their task's call)."""

    task_id: str
    source_name: str
    path: str
    result_ids: tuple[str, ...]


@dataclass
class JobSpend:
    """What a job's calls used and cost, as they were made."""

    currency: str
    calls: int = 0
    cost: float = 0.0
    cost_known: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "cost": round(self.cost, 6) if self.cost_known else None,
                "cost_known": self.cost_known, "currency": self.currency, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens}


@dataclass
class CaptionJob:
    """One captioning job's progress; changed on the engine's loop only, read from any thread."""

    order: CaptionOrder
    model: str
    api_url: str
    total: int  # results to caption (those skipped are not counted)
    skipped: dict[str, int]  # results in scope left alone, by reason
    spend: JobSpend
    id: str = field(default_factory=lambda: "cap-" + secrets.token_hex(6))
    started_at: float = field(default_factory=time.time)
    captioned: int = 0
    failed: int = 0
    cancelled: bool = False
    finished: bool = False
    reason: str | None = None  # why it ended before its last result (a quota, every key parked)
    failures: list[dict[str, Any]] = field(default_factory=list)
    _clock: float = field(default_factory=time.monotonic)
    _ended: float | None = None

    @property
    def done(self) -> int:
        return self.captioned + self.failed

    def fail(self, item: CaptionItem, error: str) -> None:
        """Count an item's results as failed, with the reason (the first FAILURES_SHOWN are listed)."""
        self.failed += len(item.result_ids)
        for result_id in item.result_ids:
            if len(self.failures) < FAILURES_SHOWN:
                self.failures.append({"result_id": result_id, "task_id": item.task_id,
                                      "source_name": item.source_name, "error": error})

    def skip(self, reason: str, count: int = 1) -> None:
        """Count results left alone (a caption written meanwhile, a result deleted meanwhile)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + count
        self.total -= count

    def end(self, *, cancelled: bool = False, reason: str | None = None) -> None:
        """Mark the job over (once)."""
        if self.finished:
            return
        self.cancelled, self.reason = cancelled or self.cancelled, reason or self.reason
        self.finished, self._ended = True, time.monotonic()

    def snapshot(self) -> dict[str, Any]:
        """Return the job as the API shows it."""
        ended = self._ended if self._ended is not None else time.monotonic()
        return {"job": self.id, "run_id": self.order.run_id, "phase": "done" if self.finished else "running",
                "total": self.total, "done": self.done, "captioned": self.captioned, "failed": self.failed,
                "skipped": sum(self.skipped.values()), "skipped_reasons": dict(self.skipped),
                "cancelled": self.cancelled, "finished": self.finished, "reason": self.reason,
                "elapsed_s": round(ended - self._clock, 3), "started_at": self.started_at,
                "model": self.model, "api_host": urlsplit(self.api_url).hostname or "",
                "instruction": self.order.instruction, "source": self.order.source,
                "only_selected": self.order.only_selected, "overwrite": self.order.overwrite,
                "failures": list(self.failures), "spend": self.spend.to_dict()}
