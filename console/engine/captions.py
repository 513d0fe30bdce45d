"""Caption a run's results with a vision model: jobs on the engine's loop, through the upstream client.

A job is a small dispatcher of its own beside the scheduler's runs: the captioning profile's
concurrency (`Limiter`), its keys (`Lanes`: a 429 slows and cools a key and the item goes back to
the queue, a parked key's item goes to another), the client's retry policy, and each call recorded
as an attempt of kind 'caption' on the captioned result's task, with what it used and cost. Each
result is one item of one job, and one job at a time runs per run, so no result is called for
twice at once; a caption is written as soon as its answer is read. Jobs live in memory: after a
restart none is running, and the captions and the spend are in the store.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections import deque
from typing import Any, Callable

from ..cache import ImageCache
from ..captioning import (CaptionItem, CaptionJob, CaptionOrder, ImageProblem, JobSpend, NoCaption, caption_from,
                          caption_jpeg)
from ..diskfault import FULL, DataFolder
from ..messages import Message, say, told
from ..profile import ApiProfile
from ..records import ScopedResult
from ..settings import Settings
from ..store import Store
from ..store_spend import currency_of
from ..upstream import (DebugLog, ProfileProblem, Source, UpstreamClient, UpstreamError, Usage, build_text_request,
                        priced, text_mode)
from .bridge import LoopBridge
from .errors import Conflict, EngineError
from .lanes import Lane, Lanes
from .throttle import FAIL, PAUSE, RETRY, Limiter

log = logging.getLogger("console.engine")
STOP_WAIT_S = 5.0
JOBS_KEPT = 200  # finished jobs remembered for the page (the newest)
HELD_MAX = 10_000  # captions paid for and held while the data folder cannot take them (8 KiB at most each)


class CaptionJobs:
    """Every captioning job since the server started; thread-safe public methods, the jobs run on the loop."""

    def __init__(self, store: Store, cache: ImageCache, settings: Settings, bridge: LoopBridge,
                 client: Callable[[], UpstreamClient], folder: DataFolder) -> None:
        self._store, self._cache, self._settings, self._bridge = store, cache, settings, bridge
        self._folder = folder
        self._client = client  # made on the loop once it runs
        self._jobs: dict[str, CaptionJob] = {}
        self._runners: dict[str, "_JobRunner"] = {}  # loop-owned
        self._lock = threading.Lock()
        # result id -> a caption a call brought that the data folder could not take: the next job writes it
        # without a call (its own lock: the loop adds to it while `start` holds `_lock` waiting on the loop)
        self._held: dict[str, str] = {}
        self._held_lock = threading.Lock()

    @staticmethod
    def check_mode(profile: ApiProfile) -> None:
        """Refuse a profile whose endpoint does not answer text (an images endpoint)."""
        try:
            text_mode(profile)
        except ProfileProblem as exc:
            raise EngineError(told(exc)) from None

    def start(self, order: CaptionOrder, profile: ApiProfile) -> dict[str, Any]:
        """Start a job over the results `order` names; return its snapshot.

        EngineError "nothing to caption: …" when no result is left to caption; Conflict while
        another job of the run is running.
        """
        with self._lock:
            running = self.running(order.run_id)
            if running is not None:
                raise Conflict(say("engine.caption_job_running", job=running.id, done=running.done,
                                   total=running.total))
            items, skipped, restored = self._plan(order)
            total = sum(len(item.result_ids) for item in items) + restored
            job = CaptionJob(order, profile.model, profile.api_url, total, skipped,
                             JobSpend(currency_of(profile.to_dict())), captioned=restored)
            runner = _JobRunner(job, items, profile, self)
            self._bridge.call(self._launch(runner))
            self._jobs[job.id] = job
            self._prune()
            return job.snapshot()

    def job(self, job_id: str) -> dict[str, Any] | None:
        """Return a job's snapshot, or None."""
        job = self._jobs.get(job_id)
        return job.snapshot() if job is not None else None

    def jobs(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Return the jobs (of one run, if given), newest first."""
        found = [job for job in list(self._jobs.values()) if run_id is None or job.order.run_id == run_id]
        return [job.snapshot() for job in sorted(found, key=lambda job: job.started_at, reverse=True)]

    def running(self, run_id: str) -> CaptionJob | None:
        """Return the run's job that is still running, or None."""
        return next((job for job in list(self._jobs.values()) if job.order.run_id == run_id and not job.finished), None)

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a job: calls in flight are cancelled, nothing new starts, captions written stay; None if unknown."""
        job = self._jobs.get(job_id)
        if job is None:
            return None
        if not job.finished and self._bridge.running:
            self._bridge.call(self._cancel(job_id), timeout=STOP_WAIT_S * 3)
        return job.snapshot()

    def cancel_run(self, run_id: str) -> None:
        """Cancel the run's running job, if any (the run is being deleted)."""
        running = self.running(run_id)
        if running is not None:
            self.cancel(running.id)

    async def close(self) -> None:
        """Cancel every running job (the engine is closing)."""
        await asyncio.gather(*(self._cancel(job_id) for job_id in list(self._runners)))

    # -- on the loop ------------------------------------------------------------------------

    async def _launch(self, runner: "_JobRunner") -> None:
        self._runners[runner.job.id] = runner
        runner.main = asyncio.create_task(runner.run())
        runner.main.add_done_callback(lambda _: self._runners.pop(runner.job.id, None))

    async def _cancel(self, job_id: str) -> None:
        runner = self._runners.get(job_id)
        if runner is not None:
            await runner.cancel()

    # -- in the caller's thread -------------------------------------------------------------

    def hold(self, result_ids: tuple[str, ...], caption: str) -> bool:
        """Keep a caption paid for that the data folder could not take, for the next job; False when full."""
        with self._held_lock:
            if len(self._held) + len(result_ids) > HELD_MAX:
                return False
            self._held.update(dict.fromkeys(result_ids, caption))
            return True

    def holds(self, result_ids: tuple[str, ...]) -> bool:
        """Return whether a caption is held for any of these results."""
        with self._held_lock:
            return any(result_id in self._held for result_id in result_ids)

    def _restore(self, rows: list[ScopedResult]) -> set[str]:
        """Write the captions held for these results, without a call (never over one written since); return
        the ids written. A data folder that still cannot take them raises, and they stay held."""
        with self._held_lock:
            held = {row.id: self._held[row.id] for row in rows if row.id in self._held}
        written = set()
        for result_id, caption in held.items():
            if self._store.write_generated_caption(result_id, caption, replace=False) == "written":
                written.add(result_id)
            with self._held_lock:
                self._held.pop(result_id, None)
        return written

    def _plan(self, order: CaptionOrder) -> tuple[list[CaptionItem], dict[str, int], int]:
        """Return the items to call for (one per result; per task with its source image), what is skipped, and
        how many held captions were written without a call."""
        rows = self._store.caption_scope(order.run_id, order.only_selected)
        if not rows:
            raise EngineError(say("engine.nothing_to_caption", reason=say("engine.no_selected_results")
                                  if order.only_selected else say("engine.no_results_yet")))
        restored = self._restore(rows)
        rows = [row for row in rows if row.id not in restored]
        skipped: dict[str, int] = {}
        wanted = []
        for row in rows:
            reason = "has_caption" if row.caption is not None and not order.overwrite else \
                "no_source" if order.source == "source" and not row.source_path else None
            if reason:
                skipped[reason] = skipped.get(reason, 0) + 1
            else:
                wanted.append(row)
        if not wanted and not restored:
            raise EngineError(say("engine.nothing_to_caption", reason=_why_none(skipped, order)))
        items = self._by_task(wanted) if order.source == "source" else [self._item(row) for row in wanted]
        return items, skipped, len(restored)

    def _item(self, row: ScopedResult) -> CaptionItem:
        try:
            path = str(self._cache.path(row.sha256, row.format))
        except FileNotFoundError:
            path = ""  # the call fails with "the image file is gone"
        return CaptionItem(row.task_id, row.source_name, path, (row.id,))

    @staticmethod
    def _by_task(rows: list[ScopedResult]) -> list[CaptionItem]:
        """One call per task's source image, its caption going to each of the task's results in scope."""
        tasks: dict[str, list[ScopedResult]] = {}
        for row in rows:
            tasks.setdefault(row.task_id, []).append(row)
        return [CaptionItem(task_id, group[0].source_name, group[0].source_path,
                            tuple(row.id for row in group)) for task_id, group in tasks.items()]

    def _prune(self) -> None:
        finished = sorted((job for job in self._jobs.values() if job.finished), key=lambda job: job.started_at)
        for job in finished[:max(0, len(self._jobs) - JOBS_KEPT)]:
            del self._jobs[job.id]


def _why_none(skipped: dict[str, int], order: CaptionOrder) -> list[Message]:
    parts = []
    if skipped.get("has_caption"):
        count = skipped["has_caption"]
        parts.append(say("engine.selected_have_caption", count=count) if order.only_selected else
                     say("engine.results_have_caption", count=count))
    if skipped.get("no_source"):
        count = skipped["no_source"]
        parts.append(say("engine.selected_no_source", count=count) if order.only_selected else
                     say("engine.results_no_source", count=count))
    return parts


class _JobRunner:
    """One job's dispatcher: items start within the profile's concurrency, on its keys, until none is left."""

    def __init__(self, job: CaptionJob, items: list[CaptionItem], profile: ApiProfile, jobs: CaptionJobs) -> None:
        self.job, self.profile = job, profile
        self.queue: deque[CaptionItem] = deque(items)
        self.limiter = Limiter(profile.concurrency)
        self.lanes = Lanes(profile)
        self.inflight: dict[asyncio.Task, CaptionItem] = {}
        self.writes: set[asyncio.Future] = set()  # captions and logs being written; they outlive a cancel
        self.main: asyncio.Task | None = None
        self.halted: str | None = None
        self._changed = asyncio.Event()
        self._store, self._settings, self._bridge = jobs._store, jobs._settings, jobs._bridge
        self._folder, self._jobs = jobs._folder, jobs
        self._client = jobs._client()

    async def run(self) -> None:
        """Call for every item, then end the job (cancelled: end what is in flight and stop)."""
        try:
            await self._dispatch()
        except asyncio.CancelledError:
            self.job.end(cancelled=True)
            await self._stop_calls()
        except Exception as exc:  # a bug must not leave the job running for ever
            log.exception("captioning job %s crashed", self.job.id)
            self.job.end(reason=say("engine.console_bug_short", kind=type(exc).__name__, error=str(exc)))
            await self._stop_calls()
        if self.writes:
            await asyncio.wait(self.writes, timeout=STOP_WAIT_S)
        self.job.end(reason=self.halted)

    async def cancel(self) -> None:
        """Cancel the job and wait (a little) for its calls to end and its writes to land."""
        if self.main is not None and not self.main.done():
            self.main.cancel()
            await asyncio.wait([self.main], timeout=STOP_WAIT_S * 2)

    async def _dispatch(self) -> None:
        while (self.queue and not self.halted) or self.inflight:
            if not self.queue or self.halted:
                self._changed.clear()
                await self._changed.wait()
                continue
            await self.limiter.acquire()
            try:
                lane = await self.lanes.take()
            except asyncio.CancelledError:
                self.limiter.release()
                raise
            if lane is None or not self.queue or self.halted:
                self.limiter.release()
                if lane is None:
                    self.halted = self.halted or self.lanes.job_reason()
                else:
                    self.lanes.release(lane)
                continue
            item = self.queue.popleft()
            call = asyncio.create_task(self._call(item, lane))
            self.inflight[call] = item
            call.add_done_callback(functools.partial(self._finished, lane))

    def _finished(self, lane: Lane, call: asyncio.Task) -> None:
        self.inflight.pop(call, None)
        self.limiter.release()
        self.lanes.release(lane)
        if not call.cancelled() and call.exception() is not None:
            log.error("captioning job %s: an item failed", self.job.id, exc_info=call.exception())
        self._changed.set()

    async def _stop_calls(self) -> None:
        self.queue.clear()
        for call in self.inflight:
            call.cancel()
        if self.inflight:
            await asyncio.wait(list(self.inflight), timeout=STOP_WAIT_S)

    async def _call(self, item: CaptionItem, lane: Lane) -> None:
        """Caption one item: its image shrunk, one call (with the client's retries), the caption written."""
        debug = DebugLog([*self.profile.secrets(), *lane.profile.secrets()], self._settings.debug_log_bytes)
        calls = _Calls(self._bridge, self._store, item.task_id, lane.profile, self.job.spend)
        try:
            await self._caption(item, lane, debug, calls)
        except asyncio.CancelledError:
            debug.note("cancelled: the captioning job was cancelled; the call's answer is not used")
            raise
        except Exception as exc:
            self._crashed(item, exc)
        finally:
            self._later(self._log(item, debug, calls))

    async def _caption(self, item: CaptionItem, lane: Lane, debug: DebugLog, calls: "_Calls") -> None:
        try:
            jpeg, width, height = await self._bridge.off(caption_jpeg, item.path, self._settings.max_image_pixels)
            request = await self._bridge.off(build_text_request, lane.profile, self.job.order.instruction,
                                             [Source(f"{item.task_id}.jpg", jpeg, "image/jpeg")])
        except (ImageProblem, UpstreamError) as exc:
            debug.note(f"no call: {exc}")
            return self.job.fail(item, told(exc))
        what = "the task's source image" if self.job.order.source == "source" else "the result"
        debug.note(f"sending {what} as a {width}x{height} JPEG ({len(jpeg)} bytes)")
        if self.lanes.pooled:
            debug.note(f"with key {lane.number} of the key pool")
        try:
            outcome = await self._client.send_text(lane.profile, request, debug=debug, on_attempt=calls.started,
                                                   on_usage=calls.used, rate_limits=False)
        except UpstreamError as exc:
            return self._call_failed(item, lane, exc, debug)
        self.lanes.succeeded(lane)
        try:
            caption = caption_from(outcome.text, outcome.refusal)
        except NoCaption as exc:
            debug.note(f"no caption: {exc}")
            return self.job.fail(item, told(exc))
        debug.note(f"caption: {caption if len(caption) <= 300 else caption[:300] + '…'}")
        await self._write(item, caption)

    def _crashed(self, item: CaptionItem, exc: Exception) -> None:
        """A data folder that cannot take the caption stops the job (no more calls paid for nothing); else a bug."""
        fault = self._folder.fault(exc)
        if fault is None:
            log.exception("captioning job %s: %s crashed", self.job.id, item.source_name)
            return self.job.fail(item, say("engine.console_bug_short", kind=type(exc).__name__, error=str(exc)))
        if fault.kind == FULL:
            self._folder.give_reserve()  # so the writes that follow (the call logs) still fit
        log.warning("captioning job %s stops: %s", self.job.id, fault)
        self.halted = self.halted or say("engine.job_stopped_early", reason=told(fault))
        self.job.fail(item, say("engine.caption_unwritten_kept", reason=told(fault)) if self._jobs.holds(item.result_ids)
                      else say("engine.caption_unwritten", reason=told(fault)))

    def _call_failed(self, item: CaptionItem, lane: Lane, exc: UpstreamError, debug: DebugLog) -> None:
        """A rate limit or a parked key sends the item back to the queue (or stops the job); else it failed."""
        verdict = self.lanes.failed(lane, exc)
        if verdict == RETRY:
            debug.note("rate limited: the item goes back to the queue")
            self.queue.appendleft(item)
            return
        if verdict == PAUSE:
            self.halted = self.halted or self.lanes.job_reason()
            self.queue.appendleft(item)  # not called again by this job: it ends without it
            return
        if verdict == FAIL:
            exc = UpstreamError(say("engine.rate_limited_too_long", seconds=lane.throttle.max_wait_s, error=told(exc)),
                                http_status=exc.http_status)
        self.job.fail(item, told(exc))

    async def _write(self, item: CaptionItem, caption: str) -> None:
        """Write the caption to each of the item's results (the writes land even if the job is cancelled)."""
        for index, result_id in enumerate(item.result_ids):
            write = self._bridge.db(self._store.write_generated_caption, result_id, caption,
                                    replace=self.job.order.overwrite)
            self._track(write)
            try:
                state = await asyncio.shield(write)
            except Exception as exc:  # paid for: a data folder that cannot take it holds it for the next job
                if self._folder.fault(exc) is not None:
                    self._jobs.hold(item.result_ids[index:], caption)
                raise
            if state == "written":
                self.job.captioned += 1
            else:
                self.job.skip("deleted" if state == "gone" else "has_caption")

    async def _log(self, item: CaptionItem, debug: DebugLog, calls: "_Calls") -> None:
        await calls.settled()
        await self._bridge.db(_append_log, self._store, item.task_id, self.job.id, debug,
                              self._settings.debug_log_bytes * 2)

    def _later(self, write: Any) -> None:
        self._track(asyncio.ensure_future(write))

    def _track(self, future: asyncio.Future) -> None:
        self.writes.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future) -> None:
        self.writes.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("captioning job %s: a write failed: %s", self.job.id, future.exception())


class _Calls:
    """Record each call of an item as an attempt of kind 'caption', with what it used and cost, in order."""

    def __init__(self, bridge: LoopBridge, store: Store, task_id: str, profile: ApiProfile, spend: JobSpend) -> None:
        self._bridge, self._store, self._task_id, self._spend = bridge, store, task_id, spend
        self._profile = {"api_url": profile.api_url, "model": profile.model, "prices": profile.prices}
        self._prices = profile.prices or {}
        self._ids: dict[int, asyncio.Future] = {}
        self._writes: list[asyncio.Future] = []

    def started(self, number: int) -> None:
        """Called by the client as each attempt starts."""
        self._spend.calls += 1
        written = self._bridge.db(self._store.add_caption_attempt, self._task_id, number, self._profile)
        self._ids[number] = written
        self._writes.append(written)

    def used(self, number: int, usage: Usage) -> None:
        """Called by the client when an attempt's answer said what it used."""
        cost, basis = priced(usage, self._prices)
        if cost is not None:
            self._spend.cost += cost
            self._spend.cost_known += 1
        self._spend.input_tokens += (usage.input_tokens or 0) + (usage.input_image_tokens or 0)
        self._spend.output_tokens += usage.output_tokens or 0
        self._writes.append(asyncio.ensure_future(self._usage(self._ids[number], usage, cost, basis)))

    async def _usage(self, attempt: asyncio.Future, usage: Usage, cost: float | None, basis: str | None) -> None:
        attempt_id = await asyncio.shield(attempt)
        if attempt_id is not None:
            await self._bridge.db(self._store.record_caption_usage, attempt_id, usage.to_dict(), cost, basis)

    async def settled(self) -> None:
        """Wait for the writes so far; a failed one is logged, never lost silently."""
        for outcome in await asyncio.gather(*self._writes, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("task %s: could not record a captioning call: %s", self._task_id, outcome)


def _append_log(store: Store, task_id: str, job_id: str, debug: DebugLog, cap: int) -> None:
    """Render a call's log (regex work: in the pool) and add it to its task's debug log."""
    store.append_debug_log(task_id, job_id, debug.text(), cap)
