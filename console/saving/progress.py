"""Follow a save while it runs: how far planning and writing got, and a cancel switch.

A save checks `cancelled` between items only, so a cancelled save stops after the item it is
writing: every item on disk is whole and in the manifest, and nothing is half-written.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from typing import Any

KEEP_FINISHED = 50  # finished jobs kept so a last poll still finds them
WAITING_S = 600  # a reserved job no save took up is forgotten after this long


class SaveJob:
    """The progress of one save: phase (waiting, planning, writing, done), items done of total, and cancel."""

    def __init__(self, job_id: str = "", phase: str = "planning") -> None:
        self.id = job_id
        self.phase = phase
        self.done = 0
        self.total = 0
        self.saved = 0
        self.started = time.monotonic()
        self.ended: float | None = None  # the clock stops when the save is done
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    def step(self, phase: str, done: int, total: int, saved: int | None = None) -> None:
        """Record where the save is."""
        with self._lock:
            self.phase, self.done, self.total = phase, done, total
            if saved is not None:
                self.saved = saved
            if phase == "done" and self.ended is None:
                self.ended = time.monotonic()

    def cancel(self) -> None:
        """Ask the save to stop after the item it is on."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def snapshot(self) -> dict[str, Any]:
        """Return the job as the progress route answers it."""
        with self._lock:
            return {"job": self.id, "phase": self.phase, "done": self.done, "total": self.total, "saved": self.saved,
                    "cancelled": self.cancelled, "finished": self.phase == "done",
                    "elapsed_s": round((self.ended or time.monotonic()) - self.started, 2)}


class SaveJobs:
    """The saves of one app by job id: running ones, and the last finished ones."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, SaveJob] = OrderedDict()
        self._lock = threading.Lock()

    def reserve(self) -> SaveJob:
        """Return a new waiting job with a fresh id: the page follows it before its save starts."""
        with self._lock:
            job = SaveJob(f"save-{secrets.token_hex(6)}", phase="waiting")
            self._add(job)
            return job

    def start(self, job_id: str) -> SaveJob | None:
        """Return the job a save runs under: the reserved one, else a new one; None while that id still runs."""
        with self._lock:
            old = self._jobs.get(job_id)
            if old is not None and old.phase == "waiting":
                old.step("planning", 0, 0)
                old.started = time.monotonic()  # the save starts now, not when the page reserved it
                return old
            if old is not None and old.phase != "done":
                return None
            job = SaveJob(job_id)
            self._add(job)
            return job

    def _add(self, job: SaveJob) -> None:
        self._jobs[job.id] = job
        self._jobs.move_to_end(job.id)
        finished = [key for key, value in self._jobs.items() if value.phase == "done"]
        stale = [key for key, value in self._jobs.items()
                 if value.phase == "waiting" and time.monotonic() - value.started > WAITING_S]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)] + stale:
            del self._jobs[key]

    def get(self, job_id: str) -> SaveJob | None:
        """Return the job with this id, or None."""
        with self._lock:
            return self._jobs.get(job_id)
