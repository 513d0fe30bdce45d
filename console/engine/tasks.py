"""Run one task to a final status: prepare it, start it, call the upstream, keep the images.

Every path out of `TaskRunner.run` records a final status, so no task is left `running`. Store
calls go to the store pool and file or image work to the work pool: the loop thread only waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from .. import imaging
from ..cache import ImageCache
from ..diskfault import FULL, DataFolder, StorageFault
from ..logs import LOG_DIR, LOG_FILE
from ..messages import Message, say, told
from ..profile import ApiProfile, ProfileError
from ..settings import Settings
from ..records import TaskRecord
from ..store import NewResult, Store
from ..upstream import (
    CallOutcome, DebugLog, Request, ResultImage, Source, UpstreamClient, UpstreamError, Usage, answer_text, priced,
)
from .bridge import LoopBridge
from .held import HeldAnswer, HeldAnswers
from .lanes import Lane
from .scheduler import RunState, Slot
from .throttle import FAIL, PAUSE, RETRY

log = logging.getLogger("console.engine")
LOOP_TEXT_CHARS = 64 * 1024  # an answer's text shorter than this is cleaned on the loop (well under a millisecond)


class Attempts:
    """Record each upstream attempt, and what it used and cost, in the store, in order, before the task's end."""

    def __init__(self, bridge: LoopBridge, store: Store, task_id: str, prices: Mapping[str, Any] | None = None,
                 on_cost: Callable[[float | None], None] | None = None) -> None:
        self._bridge, self._store, self._task_id = bridge, store, task_id
        self._prices = prices or {}
        self._on_cost = on_cost  # the run's budget counts each cost as soon as it is known
        self._writes: list[asyncio.Future] = []
        self._started: asyncio.Future | None = None

    def after(self, started: asyncio.Future) -> None:
        """Write every later attempt only once the task's start transaction (which counts the first) is done."""
        self._started = started

    def record(self, number: int) -> None:
        """Called by the client as each attempt starts; the first was counted when the task started."""
        if number > 1:
            self._queue(self._store.add_attempt, self._task_id, number)

    def used(self, number: int, usage: Usage) -> None:
        """Called by the client when an attempt's answer said what it used: write it with its cost on that attempt."""
        cost, basis = priced(usage, self._prices)
        if self._on_cost is not None:
            self._on_cost(cost)
        self._queue(self._store.record_usage, self._task_id, number, usage.to_dict(), cost, basis)

    def _queue(self, write: Callable[..., Any], *args: Any) -> None:
        """Run a store write after the start transaction and every write queued before it (an attempt's
        usage must land on its row, which the attempt's own write creates)."""
        before = [self._started] if self._started is not None else []
        before += self._writes[-1:]
        self._writes.append(asyncio.ensure_future(self._write(before, write, *args)))

    async def _write(self, before: list[asyncio.Future], write: Callable[..., Any], *args: Any) -> None:
        if before:
            await asyncio.wait(before)
        await self._bridge.db(write, *args)

    async def settled(self) -> None:
        """Wait for the writes so far; a failed one is logged, never lost silently."""
        for outcome in await asyncio.gather(*self._writes, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("task %s: could not record an attempt: %s", self._task_id, outcome)
        self._writes.clear()


@dataclass
class Prepared:
    """A pending task made ready to send: its row, the profile its request was built for, and the request.

    `problem` instead of a request when the source cannot be used (the task fails without a call);
    `held` when its answer was paid for before the disk filled up (it is stored without a call).
    """

    task: TaskRecord
    profile: ApiProfile
    request: Request | None = None
    problem: Exception | None = None
    held: HeldAnswer | None = None


class TaskRunner:
    """Execute tasks with the shared upstream client; one `run` call per task."""

    def __init__(self, store: Store, cache: ImageCache, settings: Settings, bridge: LoopBridge,
                 client: UpstreamClient, folder: DataFolder, held: HeldAnswers,
                 stored: Callable[[str], None] = lambda run_id: None) -> None:
        self.store, self.cache, self.settings = store, cache, settings
        self.bridge, self.client = bridge, client
        self.folder, self.held = folder, held
        self.stored = stored  # told a run's id each time a task of it stored results (the review flags)

    async def prepare(self, state: RunState, task_id: str) -> Prepared | None:
        """Read a pending task and its source and build its request, changing nothing; None if not pending.

        Runs while the task still waits for a slot (scheduler's look-ahead), in the work pool.
        """
        return await self.bridge.off(self._prepare, task_id, state.profile)

    async def run(self, state: RunState, task_id: str, prepared: asyncio.Future, slot: Slot) -> str | None:
        """Run one task to a final status, whatever happens (see `_run`).

        A failure or a stop that the data folder could not record pauses the run all the same.
        """
        try:
            return await self._run(state, task_id, prepared, slot)
        except Exception as exc:
            fault = self.folder.fault(exc)
            if fault is None:
                raise
            return await self._storage_fault(state, task_id, fault, None, None, f"task {task_id}")

    async def _run(self, state: RunState, task_id: str, prepared: asyncio.Future, slot: Slot) -> str | None:
        """Run one task to a final status, whatever happens.

        Two hand-offs and two store transactions per task when all goes well (bench):
        the start transaction (its source and request were prepared while it waited), the call,
        after whose answer the call's place is free for the next task, then the files into the
        cache, and the results with the final status in one transaction.

        A rate-limited call does not end its task: it goes back to the queue (RETRY) or the run
        stops (PAUSE), as the run's keys decide (`Lanes.failed`); the scheduler acts on that answer.
        A key the upstream refuses in a key pool is parked and its task goes back to the queue too.
        A data folder that cannot take the answer (disk full, read-only, gone) pauses the run and
        the answer is held for the next run of the task (`_storage_fault`).
        """
        profile = state.profile
        debug = DebugLog(profile.secrets(), self.settings.debug_log_bytes)
        attempts = Attempts(self.bridge, self.store, task_id, profile.prices,
                            on_cost=functools.partial(_costed, state, task_id))
        name = f"task {task_id}"  # how the terminal names the task in its one line per failure
        started: asyncio.Future | None = None
        lane, calling = slot.lane, False
        outcome: CallOutcome | None = None
        unkept: list[StorageFault] = []  # images the data folder could not take
        try:
            ready = await prepared
            if ready is not None and ready.profile is not profile:  # the run's profile changed meanwhile
                ready = await self.prepare(state, task_id)
            if ready is None:
                return  # stopped or deleted while it waited in the queue
            # The start transaction (running, attempt 1) goes to the store while the call goes out:
            # a freed slot does not wait for the store, which is busiest just then, when a wave of
            # tasks ends together (bench: 15–40 ms of every slot). Every later write of the task
            # waits for it, so it can never land after them; a stop waits for it too (shielded: it
            # must not be left running on its own in the pool). An unusable source fails here, from
            # pending, before any call.
            started = self.bridge.db(self._start, task_id, ready)
            attempts.after(started)
            if ready.problem is not None:
                await asyncio.shield(started)
            name = f"{state.run_id} · {ready.task.source_name}"
            # Each image goes into the cache as soon as it is verified, in the same pool call, and
            # stays pinned until the store references it (eviction must not take it). The call's
            # place goes to the next task once the answer is read (`_answered`); the task keeps a
            # place among the answers being checked until its images are on disk, so a fast
            # upstream cannot pile up answers in memory faster than they are written.
            # A key pool's other keys get the request with their own key (and URL): `lane.profile`.
            with contextlib.ExitStack() as pins:
                keep = functools.partial(self._keep_file, pins, unkept)
                if ready.held is not None:  # paid for before the disk filled up: stored now, no call
                    outcome = ready.held.outcome
                    debug.note("the answer received before the data folder filled up is stored now, without a call")
                    await self.bridge.off(_each, keep, outcome.images)
                else:
                    request = ready.request if lane.identity == (profile.api_key, profile.api_url) else \
                        ready.request.with_key(lane.profile)
                    if state.lanes.pooled:
                        debug.note(f"with key {lane.number} of the key pool")
                    calling = True
                    try:
                        outcome = await self.client.send(lane.profile, request, debug=debug, on_attempt=attempts.record,
                                                        rate_limits=False, keep=keep, on_usage=attempts.used,
                                                        answered=functools.partial(self._answered, started, slot))
                    except UpstreamError:
                        await asyncio.shield(started)  # the failure is recorded after the start
                        raise
                    calling = False
                    state.lanes.succeeded(lane)
                kept = await asyncio.shield(started)
                slot.release()
                if not kept:  # stopped or deleted behind the scheduler's back
                    log.warning("%s: no longer pending when its call went out; its answer is not kept", name)
                    return
                if unkept:
                    raise unkept[0]
                await attempts.settled()
                prompt, text = ready.task.prompt, await self._answer_text(outcome.text)
                results = [NewResult(i.sha256, i.format, i.width, i.height, len(i.data), i.origin, i.url, prompt, text)
                           for i in outcome.images]  # each keeps the prompt that made it
                await self._finish(state, task_id, "done", debug, http_status=outcome.http_status,
                                   warning=warned(outcome.warnings), results=results)
                if results:
                    self.stored(state.run_id)
                self.held.release(task_id)
        except asyncio.CancelledError:
            debug.note("stopped by the user")
            await self._record_stop(state, task_id, debug, started)
            raise
        except (imaging.SourceError, UpstreamError) as exc:
            verdict = state.lanes.failed(lane, exc) if calling and isinstance(exc, UpstreamError) else None
            if verdict in (RETRY, PAUSE):
                await self._held_back(state, task_id, exc, attempts, lane, verdict)
                return verdict
            if verdict == FAIL:
                exc = UpstreamError(say("engine.rate_limited_too_long", seconds=lane.throttle.max_wait_s, error=told(exc)),
                                    http_status=getattr(exc, "http_status", None))
            log.warning("%s failed: %s", name, exc)  # one line in the terminal panel
            await attempts.settled()
            await self._finish(state, task_id, "failed", debug, error=told(exc), http_status=getattr(exc, "http_status", None),
                               only_from=("pending", "running"))
        except Exception as exc:  # a full disk, or a bug: neither may leave the task running forever
            fault = self.folder.fault(exc)
            if fault is not None:
                return await self._storage_fault(state, task_id, fault, outcome, attempts, name, _succeeded(started))
            log.exception("%s crashed", name)
            debug.note(f"console bug: {exc!r}")
            await attempts.settled()
            await self._finish(state, task_id, "failed", debug,
                               error=say("engine.console_bug", kind=type(exc).__name__, error=str(exc),
                                         log=f"{LOG_DIR}/{LOG_FILE}"))

    @staticmethod
    async def _answered(started: asyncio.Future, slot: Slot) -> None:
        """The call's answer is read and its images need no more calls: free the call's place for the
        next task. Not before the start transaction is done: with a fast upstream, calls would
        otherwise outrun the store and finished answers pile up in memory (bench: RSS +27 %)."""
        await asyncio.wait([started])
        await slot.answered()

    async def _held_back(self, state: RunState, task_id: str, exc: UpstreamError, attempts: "Attempts",
                         lane: Lane, verdict: str) -> None:
        """A rate limit or a parked key: the task goes back to pending, for the queue (RETRY) or a paused run."""
        await attempts.settled()
        await self.bridge.db(self.store.set_status, [task_id], "pending", only_from=("running",))
        if lane.parked:
            log.warning("%s · key %d parked (%s); its task goes to another key", state.run_id, lane.number, lane.parked)
        elif verdict == RETRY:
            log.info("%s · rate limited (%s); back in the queue", state.run_id, exc)

    async def _storage_fault(self, state: RunState, task_id: str, fault: StorageFault, outcome: CallOutcome | None,
                             attempts: "Attempts | None", name: str, counted: bool = True) -> str:
        """The data folder could not take a write: pause the run with the reason, hold the answer.

        The answer is paid for, so it is kept in memory (bounded) and stored by the task's next run
        without a call. On a full disk the folder's reserve is given back first, so the writes that
        record the pause still fit. The task is stopped with the reason; nothing is left running.
        """
        if fault.kind == FULL:
            self.folder.give_reserve()
        reason = told(fault)
        state.fault = state.fault or reason
        if outcome is not None:
            held = self.held.hold(state.run_id, task_id, outcome, counted)
            reason = say("engine.answer_kept", reason=reason) if held else say("engine.answer_not_kept", reason=reason)
        log.warning("%s: %s", name, reason)
        if attempts is not None:
            await attempts.settled()
        try:
            await _lasting(state, self.bridge.db(self.store.set_status, [task_id], "stopped", error=reason,
                                                 only_from=("pending", "running")))
        except Exception as exc:  # the reserve was not enough: the restart marks it interrupted
            log.error("%s: could not record its stop: %s", name, exc)
        return PAUSE

    async def _finish(self, state: RunState, task_id: str, status: str, debug: DebugLog, **fields: Any) -> None:
        """Record a task's end; the write lands even if the task is cancelled while it waits."""
        await _lasting(state, self.bridge.db(self._write_end, task_id, status, debug, **fields))

    def _write_end(self, task_id: str, status: str, debug: DebugLog, **fields: Any) -> None:
        """Record a task's end with its debug log (rendering the log is regex work: off the loop)."""
        self.store.finish_task(task_id, status, debug_log=debug.text(), **fields)

    async def _record_stop(self, state: RunState, task_id: str, debug: DebugLog, started: asyncio.Future | None) -> None:
        """Record a stopped task: after its start transaction, if one was sent, so the start cannot
        land later and leave it running; never over a final status; lasting, so a second
        cancellation (a run stop and an emergency stop) cannot skip the write."""
        async def write() -> None:
            if started is not None:
                await asyncio.wait([started])
                if not started.cancelled():
                    started.exception()  # an unusable source's problem: the stop is what is recorded
            await self.bridge.db(self._write_end, task_id, "stopped", debug, error=say("engine.stopped"),
                                 only_from=("pending", "running"))

        try:
            await _lasting(state, write())
        except asyncio.CancelledError:
            pass

    def _prepare(self, task_id: str, profile: ApiProfile) -> Prepared | None:
        task = self.store.task(task_id, results=False)  # what it sends, not what it brought
        if task is None or task.status != "pending":
            return None
        held = self.held.peek(task_id)
        if held is not None:
            return Prepared(task, profile, held=held)
        try:
            # A table row's size / n apply to its own request; the run's profile still decides
            # the call itself (timeouts, retries, URL policy), so `Prepared.profile` stays the run's.
            own = ApiProfile.from_dict(task.overrides, base=profile) if task.overrides else profile
            source, references = self.inputs(task, own)
            return Prepared(task, profile, self.client.prepare(own, task.prompt, source, references))
        except (imaging.SourceError, UpstreamError) as exc:
            return Prepared(task, profile, problem=exc)
        except ProfileError as exc:  # a stored override the profile rules refuse now
            return Prepared(task, profile, problem=imaging.SourceError(say("engine.own_settings_unusable",
                                                                           reason=told(exc))))

    def inputs(self, task: TaskRecord, profile: ApiProfile) -> tuple[Source | None, list[Source]]:
        """Read a task's source and references as `profile` takes them (blocking); SourceError names what failed."""
        # Generate-mode tasks have no source (path ""): their references, if any, are the input.
        source = self._read_source(task.source_path, profile) if task.source_path else None
        return source, [self._read_reference(number, path, profile)
                        for number, path in enumerate(task.references, start=1)]

    def _read_reference(self, number: int, path: str, profile: ApiProfile) -> Source:
        """Read a reference image like a source; SourceError names which one could not be read."""
        try:
            return self._read_source(path, profile)
        except imaging.SourceError as exc:
            raise imaging.SourceError(say("engine.reference_unreadable", number=number, name=Path(path).name,
                                          reason=told(exc))) from None

    def _start(self, task_id: str, ready: Prepared) -> bool:
        """Mark a prepared task running with its first attempt; False if it is no longer pending.

        A task whose source is unusable never counts an attempt (attempts count upstream calls):
        its problem is raised here and it fails straight from pending.
        """
        if ready.problem is not None:
            raise ready.problem
        return self.store.start_task(task_id, first_attempt=ready.held is None or not ready.held.counted)

    def _read_source(self, path: str, profile: ApiProfile) -> Source:
        """Read (and optionally shrink) a source within the size and pixel limits; SourceError says why not."""
        data, mime = imaging.read_source(path, max_bytes=profile.source_max_bytes, max_side=profile.source_max_side,
                                         max_pixels=self.settings.max_image_pixels,
                                         max_source_bytes=self.settings.max_source_bytes)
        return Source(Path(path).name, data, mime)

    async def _answer_text(self, text: str) -> str | None:
        """Return the text the model sent with its images; a long answer (many MB of data URL) is read off the loop."""
        return answer_text(text) if len(text) < LOOP_TEXT_CHARS else await self.bridge.off(answer_text, text)

    def _keep_file(self, pins: contextlib.ExitStack, unkept: list[StorageFault], image: ResultImage) -> None:
        """Write a verified image to the cache, pinned in `pins` until the store references it (pool thread).

        A data folder that cannot take it is noted in `unkept`, not raised: the answer is still whole
        and paid for, and the task holds it (`_storage_fault`) instead of losing it.
        """
        pins.enter_context(self.cache.pinned(image.sha256))
        try:
            self.folder.check()
            self.cache.put(image.data, image.format, image.sha256)
        except Exception as exc:
            fault = self.folder.fault(exc)
            if fault is None:
                raise
            unkept.append(fault)


async def _lasting(state: RunState, write: Awaitable[Any]) -> None:
    """Await a task's final store write so that cancelling the task cannot cancel the write.

    A stop that lands while a task's end (done, failed, stopped) waits for the store pool would
    otherwise drop the write from the pool's queue: a paid result lost, or the task left
    `running` for ever (seen with controls fired under load). The run's stop waits for these writes
    (`RunState.endings`) before a resume can read the tasks again.
    """
    future = asyncio.ensure_future(write)
    state.endings.add(future)
    future.add_done_callback(state.endings.discard)
    await asyncio.shield(future)


def warned(warnings: list[str]) -> Message | None:
    """Return a call's warnings as the task's one warning ("a; b"), or None when there are none."""
    return say("engine.warnings", warnings=list(warnings)) if warnings else None


def _each(func: Callable[[Any], Any], items: list[Any]) -> None:
    """Call `func` on each item (one hand-off to the pool for all of them)."""
    for item in items:
        func(item)


def _succeeded(started: asyncio.Future | None) -> bool:
    """True when a task's start transaction went through (its first call was counted)."""
    return started is not None and started.done() and not started.cancelled() and \
        started.exception() is None and bool(started.result())


def _costed(state: RunState, task_id: str, cost: float | None) -> None:
    """A call of the task said what it cost: the run's budget counts it, and the task no longer counts as
    a call in flight of unknown cost."""
    if state.budget is not None:
        state.budget.add(cost)
    state.uncosted.discard(task_id)
    state.costed.set()
