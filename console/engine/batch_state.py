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
    failing: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # label -> looks failed in a row, the
    # batch's number in the run, the last error

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.watchers) or (self.submitter is not None and not self.submitter.done())

    def failed_look(self, label: str, number: int, error: str) -> None:
        """Count one more failed look at a batch in a row (a successful one forgets them: `failing.pop`)."""
        self.failing[label] = (self.failing.get(label, (0,))[0] + 1, number, error)

    def cooling(self) -> dict[str, Any] | None:
        """Why the run paused itself, or which of its batches the provider has not answered for a while (it is
        asked again at the poll interval: `retrying`), or None."""
        if self.paused:
            return {"paused": self.paused, "reason": self.paused}
        failing = [(count, number, error) for count, number, error in list(self.failing.values())
                   if count >= FAILING_LOOKS]
        if not failing:
            return None
        count, number, error = failing[0]
        seconds = self.profile.batch_poll_s
        reason = say("engine.batch_looks_failing", number=number, count=count, error=error,
                     seconds=int(seconds) if float(seconds).is_integer() else seconds)
        return {"reason": reason, "retrying": True}
