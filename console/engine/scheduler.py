"""Queue each run's tasks and start them within the run's concurrency; stop and cancel them.

Everything here runs on the loop thread and keeps only in-memory state; the database is reached
through the callbacks the engine passes in, which run in the store pool.

A few tasks beyond the running ones are prepared ahead (source read, request built) while they
wait for a slot, so a freed slot calls the upstream at once instead of after a round of file
and database work (the bench measured that gap at about 20 ms of every slot per task).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..messages import say
from ..profile import ApiProfile
from .lanes import Lane, Lanes
from .budget import Budget
from .throttle import PAUSE, RETRY, Limiter

log = logging.getLogger("console.engine")
STOP_WAIT_S = 5.0
LOOKAHEAD = 4  # tasks prepared ahead per run; each holds one request body in memory


class Slot:
    """One task's place among its run's calls (and on the key it calls with), then among the answers
    being checked; each is given back once, by whichever comes first.

    The call's place is free as soon as the answer has been read (`answered`): decoding and
    storing its images no longer delays the next call (bench: 4–40 ms of every slot).
    The answers still being checked have places of their own, as many as the run's concurrency,
    so a fast upstream cannot pile answers up in memory faster than they are checked.
    """

    def __init__(self, limiter: Limiter, lanes: Lanes, lane: Lane, checking: Limiter) -> None:
        self._limiter: Limiter | None = limiter
        self._lanes = lanes
        self._checks = checking
        self._checking = False  # holds a place among the answers being checked
        self.lane = lane
        self.has_answer = False  # the answer is read: what is left is checking and storing it (a stop lets it finish)

    async def answered(self) -> None:
        """The call is over: wait for a place among the answers being checked, then free the call's place."""
        self.has_answer = True
        if self._limiter is None:
            return
        await self._checks.acquire()
        self._checking = True
        self._free_call()

    def release(self) -> None:
        """Give back whatever the task still holds (once its images are on disk, or at its end)."""
        self._free_call()
        if self._checking:
            self._checks.release()
            self._checking = False

    def _free_call(self) -> None:
        if self._limiter is not None:
            self._limiter.release()
            self._lanes.release(self.lane)
            self._limiter = None


@dataclass
class RunState:
    """What the loop knows about one run that has work queued or in flight."""

    run_id: str
    profile: ApiProfile
    limiter: Limiter  # the run's concurrency, over all its keys
    lanes: Lanes  # its keys, each with its own concurrency and rate-limit state
    checking: Limiter  # answers read whose images are still being checked and stored (as many as calls)
    queue: deque[str] = field(default_factory=deque)
    ready: dict[str, asyncio.Future] = field(default_factory=dict)  # prepared ahead, in queue order
    inflight: dict[str, asyncio.Task] = field(default_factory=dict)
    slots: dict[str, Slot] = field(default_factory=dict)  # what each task in flight holds
    dispatcher: asyncio.Task | None = None
    budget: Budget | None = None  # the most the run may spend, and what it spent
    paused: str | None = None  # why the run stopped itself (quota, disk, budget), until it is queued again
    fault: str | None = None  # the data folder could not take a write: the run pauses with this reason
    halted: str | None = None  # set while stopping or paused: a rate-limited task then ends stopped with this
    budget_reason: str | None = None  # the pause was the budget's (its figures go with the reason)
    uncosted: set[str] = field(default_factory=set)  # tasks in flight whose call's cost is not known yet
    costed: asyncio.Event = field(default_factory=asyncio.Event)  # set when a call's cost is known or it ended
    writes: set[asyncio.Future] = field(default_factory=set)  # store writes started from callbacks
    endings: set[asyncio.Future] = field(default_factory=set)  # tasks' final writes, outliving a cancel

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.ready or self.inflight or self.writes or self.dispatching)

    @property
    def dispatching(self) -> bool:
        """True while a dispatcher task is alive and not being cancelled (a stop cancels it; a resume
        racing that stop must start a new one, and one cancelled before it ran never clears itself)."""
        return self.dispatcher is not None and not self.dispatcher.done() and not self.dispatcher.cancelling()

    def waiting(self) -> list[str]:
        """Task ids not started yet, prepared ones first."""
        return [*self.ready, *self.queue]


Prepare = Callable[[RunState, str], Awaitable[Any]]
Execute = Callable[[RunState, str, "asyncio.Future[Any]", Slot], Awaitable["str | None"]]
MarkStopped = Callable[[list[str], str], Awaitable[int]]


class Scheduler:
    """Per-run queues and concurrency.

    `prepare(state, task_id)` gets a task ready without changing it (it may run well before the
    task starts); `execute(state, task_id, prepared, slot)` runs it to its end and may release
    its slot early.
    """

    def __init__(self, prepare: Prepare, execute: Execute, mark_stopped: MarkStopped) -> None:
        self._prepare = prepare
        self._execute = execute
        self._mark_stopped = mark_stopped
        self._runs: dict[str, RunState] = {}
        self.busy: set[str] = set()  # run ids with work; read from any thread

    def enqueue(self, run_id: str, task_ids: list[str], profile: ApiProfile, budget: Budget | None = None) -> int:
        """Queue tasks of a run (a new run starts with `profile`; `budget`, read afresh from the store, replaces
        the one it had); return how many were given."""
        if not task_ids:
            return 0
        state = self._runs.get(run_id)
        if state is None:
            state = self._runs[run_id] = RunState(run_id, profile, Limiter(profile.concurrency), Lanes(profile),
                                                  Limiter(profile.concurrency))
        state.budget = budget
        if state.paused:  # resumed after a pause: the quota (or the disk space) is back, start afresh
            state.paused = state.fault = state.budget_reason = None
            state.lanes.reset()
        state.halted = None
        queued = set(state.queue) | set(state.ready) | set(state.inflight)
        state.queue.extend(tid for tid in task_ids if tid not in queued)
        for task_id in task_ids:  # queued again while prepared (a new prompt): prepare it afresh
            if task_id in state.ready:
                _discard(state.ready[task_id])
                state.ready[task_id] = asyncio.ensure_future(self._prepare(state, task_id))
        if not state.dispatching:
            state.dispatcher = asyncio.create_task(self._dispatch(state))
        self.busy.add(run_id)
        return len(task_ids)

    def set_budget(self, run_id: str, budget: Budget | None) -> None:
        """Give a queued run a new budget (a paused one stays paused until it is resumed)."""
        state = self._runs.get(run_id)
        if state is not None:
            state.budget = budget

    def use_profile(self, run_id: str, profile: ApiProfile) -> None:
        """Calls that start from now on use `profile`; its concurrency applies at once."""
        state = self._runs.get(run_id)
        if state is not None:
            state.profile = profile
            state.limiter.set_limit(profile.concurrency)
            state.checking.set_limit(profile.concurrency)
            state.lanes.use_profile(profile)

    async def stop(self, run_id: str) -> int:
        """Stop a run: its queue becomes stopped, its calls are cancelled; return how many.

        A task whose answer has already come back is not cancelled: the call is over and paid
        for, and storing its images takes a moment, so it ends done (or failed) and the stop
        waits for it like for the others.
        """
        state = self._runs.get(run_id)
        if state is None:
            return 0
        state.halted = say("engine.stopped")
        queued, jobs = state.waiting(), list(state.inflight.values())
        self._drop_prepared(state)
        state.queue.clear()
        if state.dispatcher is not None:
            state.dispatcher.cancel()
        calling = [job for task_id, job in state.inflight.items()
                   if not (task_id in state.slots and state.slots[task_id].has_answer)]
        for job in calling:
            job.cancel()
        stopped = await self._mark_stopped(queued, state.halted) if queued else 0
        if jobs:
            await asyncio.wait(jobs, timeout=STOP_WAIT_S)
        pending = state.writes | state.endings  # tasks' last writes, and those ended rate limited meanwhile
        if pending:
            await asyncio.wait(pending, timeout=STOP_WAIT_S)
        self._update_busy(state)
        return stopped + len(calling)

    async def stop_all(self) -> int:
        """Stop every run; return how many tasks were stopped."""
        return sum(await asyncio.gather(*(self.stop(run_id) for run_id in list(self._runs))))

    async def cancel(self, run_id: str, task_id: str) -> None:
        """Take one task out of its run's queue, or cancel its call."""
        state = self._runs.get(run_id)
        if state is None:
            return
        if task_id in state.queue:
            state.queue.remove(task_id)
        if task_id in state.ready:
            _discard(state.ready.pop(task_id))
        job = state.inflight.get(task_id)
        if job is not None:
            job.cancel()
            await asyncio.wait([job], timeout=STOP_WAIT_S)
        self._update_busy(state)

    def cooling(self, run_id: str) -> dict[str, Any] | None:
        """What holds a run back now: a rate-limit cooldown, or the reason it paused itself; None if nothing."""
        state = self._runs.get(run_id)
        if state is None:
            return None
        if state.paused:
            paused: dict[str, Any] = {"paused": state.paused, "reason": state.paused}
            if state.budget is not None and state.paused == state.budget_reason:
                paused["budget"] = state.budget.to_dict()
            return paused
        cooling = state.lanes.cooling() if state.busy else None
        return cooling.to_dict() if cooling else None

    def in_flight(self, run_id: str) -> set[str]:
        """The ids of a run's tasks that are queued or being run now."""
        state = self._runs.get(run_id)
        return set(state.inflight) | set(state.waiting()) if state is not None else set()

    def keys(self, run_id: str) -> list[dict[str, Any]]:
        """A key pool's keys with their calls, errors and state (masked); [] without a pool, or for a run
        not queued since the server started."""
        state = self._runs.get(run_id)
        return state.lanes.describe() if state is not None and state.lanes.pooled else []

    def forget(self, run_id: str) -> None:
        """Drop a (stopped) run's state."""
        self._runs.pop(run_id, None)
        self.busy.discard(run_id)

    async def _dispatch(self, state: RunState) -> None:
        try:
            while state.queue or state.ready:
                self._prepare_ahead(state)
                if not await self._within_budget(state):
                    break
                await state.limiter.acquire()
                if state.budget is not None and not state.budget.allows(len(state.uncosted)):  # spent while waiting
                    state.limiter.release()
                    self._hold(state, state.budget.reason())
                    break
                try:  # a key that is cooling starts nothing before the gateway allows
                    lane = await state.lanes.take()
                except asyncio.CancelledError:
                    state.limiter.release()
                    raise
                if lane is None:  # every key is parked
                    state.limiter.release()
                    if not state.paused:
                        self._pause(state, state.lanes.pause_reason())
                    break
                slot = Slot(state.limiter, state.lanes, lane, state.checking)
                self._prepare_ahead(state)
                if not state.ready:
                    slot.release()
                    break
                task_id = next(iter(state.ready))
                prepared = state.ready.pop(task_id)
                job = asyncio.create_task(self._execute(state, task_id, prepared, slot))
                state.inflight[task_id], state.slots[task_id] = job, slot
                state.uncosted.add(task_id)
                job.add_done_callback(lambda done, tid=task_id, held=slot: self._finished(state, tid, held, done))
        finally:
            if state.dispatcher is asyncio.current_task():
                state.dispatcher = None
            self._update_busy(state)

    async def _within_budget(self, state: RunState) -> bool:
        """Return whether the next call fits the run's budget, else pause the run (its tasks left pending).

        While nothing tells what a call costs (no prices, no history, no call priced yet), the next
        call waits for the cost of those in flight: the first answer says what a call costs.
        """
        while state.budget is not None and state.budget.per_call() is None and state.uncosted:
            state.costed.clear()
            await state.costed.wait()
        if state.budget is not None and not state.budget.allows(len(state.uncosted)):
            self._hold(state, state.budget.reason())
            return False
        return True

    def _prepare_ahead(self, state: RunState) -> None:
        while state.queue and len(state.ready) < LOOKAHEAD:
            task_id = state.queue.popleft()
            state.ready[task_id] = asyncio.ensure_future(self._prepare(state, task_id))

    @staticmethod
    def _drop_prepared(state: RunState) -> None:
        for prepared in state.ready.values():
            _discard(prepared)
        state.ready.clear()

    def _finished(self, state: RunState, task_id: str, slot: Slot, job: asyncio.Task) -> None:
        state.inflight.pop(task_id, None)
        state.uncosted.discard(task_id)
        state.costed.set()
        state.slots.pop(task_id, None)
        slot.release()
        failure = None if job.cancelled() else job.exception()
        if failure is not None:  # the runner records every end itself; reaching here is a bug
            log.error("task %s: the task runner failed", task_id, exc_info=failure)
        verdict = None if job.cancelled() or failure is not None else job.result()
        if verdict in (RETRY, PAUSE) and self._runs.get(state.run_id) is state:
            if verdict == PAUSE and not state.paused:
                self._pause(state, state.fault or state.lanes.pause_reason())
            if state.halted:  # calls that were in flight when the run stopped or paused end up with it
                self._later(state, self._mark_stopped([task_id], state.halted))
            else:
                state.queue.appendleft(task_id)  # rate limited: first in line again
                if not state.dispatching:
                    state.dispatcher = asyncio.create_task(self._dispatch(state))
        self._update_busy(state)

    def _pause(self, state: RunState, reason: str) -> None:
        """Stop starting calls (quota gone): waiting tasks become stopped with `reason`; calls in
        flight finish, since they may still bring back what was paid for."""
        state.paused = state.halted = reason
        waiting = state.waiting()
        self._drop_prepared(state)
        state.queue.clear()
        if state.dispatcher is not None:
            state.dispatcher.cancel()
        if waiting:
            self._later(state, self._mark_stopped(waiting, reason))

    def _hold(self, state: RunState, reason: str) -> None:
        """Stop starting calls (the budget is reached), the waiting tasks left pending: resuming, after the
        budget is raised, starts them with no call repeated. Calls in flight finish and count."""
        state.paused = state.budget_reason = reason
        self._drop_prepared(state)
        state.queue.clear()

    def _later(self, state: RunState, write: Awaitable[Any]) -> None:
        """Run a store write started from a callback; the run counts as busy until it is done."""
        future = asyncio.ensure_future(write)
        state.writes.add(future)

        def done(_: asyncio.Future) -> None:
            state.writes.discard(future)
            if not future.cancelled() and future.exception() is not None:
                log.error("run %s: could not mark tasks stopped: %s", state.run_id, future.exception())
            self._update_busy(state)

        future.add_done_callback(done)

    def _update_busy(self, state: RunState) -> None:
        if state.busy:
            self.busy.add(state.run_id)
        else:
            self.busy.discard(state.run_id)


def _discard(prepared: asyncio.Future) -> None:
    """Cancel a look-ahead that is no longer wanted; one that already failed is not an error."""
    if not prepared.cancel() and not prepared.cancelled():
        prepared.exception()
