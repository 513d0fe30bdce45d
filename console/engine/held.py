"""Keep answers that were paid for but could not be stored (the data folder was full), until Resume stores them.

The gateway has already been paid for such an answer; calling again would pay twice. So the
answer stays in memory, its task stopped with the reason, and the next run of the task stores it
without a call. Memory is bounded: past `max_bytes` an answer is let go and its task will be
called again (it says so). A restart loses what is held: those tasks are called again too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..upstream import CallOutcome

HELD_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class HeldAnswer:
    """One task's answer waiting for room on the disk."""

    run_id: str
    outcome: CallOutcome
    counted: bool  # its call was recorded as an attempt (the start transaction got through)

    @property
    def size(self) -> int:
        return sum(len(image.data) for image in self.outcome.images)


class HeldAnswers:
    """Answers waiting for room, by task id; thread-safe (the loop holds, the work pool takes)."""

    def __init__(self, max_bytes: int = HELD_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._held: dict[str, HeldAnswer] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def hold(self, run_id: str, task_id: str, outcome: CallOutcome, counted: bool = True) -> bool:
        """Keep a task's answer; False if it does not fit within the bound (it is not kept)."""
        answer = HeldAnswer(run_id, outcome, counted)
        with self._lock:
            self._drop(task_id)
            if self._bytes + answer.size > self.max_bytes:
                return False
            self._held[task_id] = answer
            self._bytes += answer.size
        return True

    def peek(self, task_id: str) -> HeldAnswer | None:
        """Return a task's held answer without letting it go."""
        with self._lock:
            return self._held.get(task_id)

    def release(self, task_id: str) -> None:
        """Let a task's answer go (it is stored now, or its task was deleted)."""
        with self._lock:
            self._drop(task_id)

    def release_run(self, run_id: str) -> None:
        """Let every answer of a deleted run go."""
        with self._lock:
            for task_id in [tid for tid, answer in self._held.items() if answer.run_id == run_id]:
                self._drop(task_id)

    def count(self, run_id: str) -> int:
        """How many answers of a run are held."""
        with self._lock:
            return sum(1 for answer in self._held.values() if answer.run_id == run_id)

    @property
    def bytes(self) -> int:
        return self._bytes

    def _drop(self, task_id: str) -> None:
        answer = self._held.pop(task_id, None)
        if answer is not None:
            self._bytes -= answer.size
