"""What the loop knows of one batch run: the tasks still to submit, the batches it follows, and what holds it back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..messages import say
from ..profile import ApiProfile

FAILING_LOOKS = 2  # failed looks in a row at a batch before the run says so (one is a blip)


@dataclass
class RunBatches:
    """One batch run's state on the loop (plain reads of it are safe from any thread)."""

    run_id: str
    profile: ApiProfile
    queue: list[str] = field(default_factory=list)
    submitter: asyncio.Task | None = None
    watchers: dict[str, asyncio.Task] = field(default_factory=dict)  # label -> the task following it
    wake: dict[str, asyncio.Event] = field(default_factory=dict)  # label -> look again now (a stop)
    paused: str | None = None  # why the run stopped itself (a submission refused for a while, a full disk)
    stopping: bool = False
    cancels: set[asyncio.Future] = field(default_factory=set)  # cancel requests on their way to the provider
    failing: dict[str, tuple[int, str]] = field(default_factory=dict)  # label -> failed looks in a row, the last error

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.watchers) or (self.submitter is not None and not self.submitter.done())

    def failed_look(self, label: str, error: str) -> None:
        """Count one more failed look at a batch in a row (a successful one forgets them: `failing.pop`)."""
        self.failing[label] = (self.failing.get(label, (0, ""))[0] + 1, error)

    def cooling(self) -> dict[str, Any] | None:
        """Why the run paused itself, or which of its batches the provider has not answered for a while (it is
        asked again at the poll interval: `retrying`), or None."""
        if self.paused:
            return {"paused": self.paused, "reason": self.paused}
        failing = [(label, count, error) for label, (count, error) in list(self.failing.items())
                   if count >= FAILING_LOOKS]
        if not failing:
            return None
        label, count, error = failing[0]
        reason = say("engine.batch_looks_failing", batch=label, count=count, error=error,
                     seconds=self.profile.batch_poll_s)
        return {"reason": reason, "retrying": True}
