"""Batch delivery: send a batch run's tasks to the provider's batch service, follow each batch, store its answers.

A batch is written with its tasks (running, one attempt each) before it is submitted, under a
label of the console's own that the provider keeps: after a crash between submitting and
storing the provider's id, the batch is looked for by that label and submitted again only if the
provider has no such batch, so no task is ever submitted twice. Everything here runs on the loop;
the store is reached through the store pool and files through the work pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any, Callable

from .. import imaging
from ..cache import ImageCache
from ..diskfault import FULL, DataFolder
from ..messages import Message, say, told
from ..profile import ApiProfile, ProfileError
from ..records import BatchRecord
from ..settings import Settings
from ..store import NewResult, Store, new_id
from ..upstream import (BatchAnswer, BatchLine, BatchService, BatchState, CallOutcome, DebugLog, ProfileProblem,
                        Request, ResultImage, UpstreamClient, UpstreamError, Usage, answer_text,
                        batch_request, priced, service_for)
from .batch_outcomes import answered_request, ending, unfinished
from .batch_state import RunBatches
from .bridge import LoopBridge
from .errors import EngineError
from .tasks import TaskRunner, warned

log = logging.getLogger("console.engine")
FIRST_POLL_S = 5.0  # the first look at a new batch comes after min(this, the profile's poll interval)
STOPPING_POLL_S = 1.0  # a cancelled batch is looked at this often until the provider says it is over
REFUSED_KEY = frozenset({401, 403})  # a look refused for the key pauses the run (looking again changes nothing)
TRANSIENT = frozenset({408, 409, 429, 500, 502, 503, 504})  # a submission refused for these pauses the run
# What one batch's lines may hold: OpenAI takes input files up to 200 MB (the JSONL adds a little to each
# body), and the lines of one batch are all in memory while it is submitted.
BATCH_BYTES_MAX = 190 * 1024 * 1024

Services = Callable[[ApiProfile, UpstreamClient], BatchService]


class BatchDelivery:
    """Submit, follow and finish the batches of every batch run (loop thread only)."""

    def __init__(self, store: Store, cache: ImageCache, settings: Settings, bridge: LoopBridge, client: UpstreamClient,
                 runner: TaskRunner, folder: DataFolder, stored: Callable[[str], None] = lambda run_id: None,
                 services: Services = service_for) -> None:
        self.store, self.cache, self.settings, self.bridge = store, cache, settings, bridge
        self.client, self.runner, self.folder, self.stored = client, runner, folder, stored
        self._services = services
        self._runs: dict[str, RunBatches] = {}
        self.busy: set[str] = set()  # run ids with tasks to submit or batches to follow; read from any thread

    # -- controls ------------------------------------------------------------------------------

    def enqueue(self, run_id: str, task_ids: list[str], profile: ApiProfile) -> int:
        """Queue pending tasks of a batch run for submission, and follow its active batches again."""
        state = self._state(run_id, profile)
        state.profile, state.paused, state.stopping = profile, None, False
        queued = set(state.queue)
        state.queue.extend(task_id for task_id in task_ids if task_id not in queued)
        self._start_submitter(state)
        return len(task_ids)

    async def recover(self) -> None:
        """After a start: follow every active batch again (each run with its stored profile)."""
        for batch in await self.bridge.db(self.store.active_batches):
            if batch.run_id not in self._runs:
                stored = await self.bridge.db(self.store.run_profile, batch.run_id)
                try:
                    self._state(batch.run_id, ApiProfile.from_dict(stored))
                except ProfileError as exc:
                    log.error("run %s: its batches cannot be followed: %s", batch.run_id, exc)
                    continue
            self._follow(self._runs[batch.run_id], batch)

    async def stop(self, run_id: str) -> int:
        """Stop a batch run: unsubmitted tasks become stopped, each active batch is cancelled at the provider
        and followed until it ends (its finished answers are kept); return how many tasks were stopped."""
        state = self._runs.get(run_id)
        if state is None:  # not a batch run: every batch run with an active batch has a state since the start
            return 0
        state.stopping, queued = True, list(state.queue)
        state.queue.clear()
        stopped = await self.bridge.db(self.store.set_status, queued, "stopped", error=say("engine.stopped"),
                                       only_from=("pending",)) if queued else 0
        for batch in await self.bridge.db(self.store.active_batches, run_id):
            stopped += len(await self.bridge.db(self.store.batch_tasks, batch.id))
            await self.bridge.db(self.store.batch_stopped, batch.id)
            if batch.provider_id and not batch.done:  # in the background: a slow provider must not hold the stop
                cancel = asyncio.ensure_future(self._cancel(state, batch.id, batch.provider_id))
                state.cancels.add(cancel)
                cancel.add_done_callback(state.cancels.discard)
        return stopped

    async def stop_all(self) -> int:
        """Stop every batch run."""
        return sum([await self.stop(run_id) for run_id in list(self._runs)])

    def forget(self, run_id: str) -> None:
        """Drop a deleted run: stop following its batches here (the stop already cancelled them)."""
        state = self._runs.pop(run_id, None)
        if state is not None:
            for job in [state.submitter, *state.watchers.values()]:
                if job is not None:
                    job.cancel()
        self.busy.discard(run_id)

    async def close(self) -> None:
        """Stop following batches (they go on at the provider; the next start follows them again)."""
        jobs = [job for state in self._runs.values() for job in [state.submitter, *state.watchers.values()] if job]
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.wait(jobs, timeout=5)

    def on_hold(self, run_id: str) -> bool:
        """True while a batch run waits for a resume: stopped (a cancel may still be going through) or paused
        (its batches' answers wait at the provider). A plain read: any thread."""
        state = self._runs.get(run_id)
        return state is not None and (state.stopping or state.paused is not None)

    def cooling(self, run_id: str) -> dict[str, Any] | None:
        """Why a batch run paused itself, or which of its batches the provider has not answered for a while
        (it is asked again at the poll interval: `retrying`), or None."""
        state = self._runs.get(run_id)
        return state.cooling() if state is not None else None

    # -- submitting ----------------------------------------------------------------------------

    def _state(self, run_id: str, profile: ApiProfile) -> RunBatches:
        state = self._runs.get(run_id)
        if state is None:
            state = self._runs[run_id] = RunBatches(run_id, profile)
        return state

    def _start_submitter(self, state: RunBatches) -> None:
        if state.submitter is None or state.submitter.done():
            state.submitter = asyncio.create_task(self._submit_all(state))
        self._update_busy(state)

    async def _submit_all(self, state: RunBatches) -> None:
        """Follow the run's active batches, then submit its queue in batches of `batch_max_requests`."""
        try:
            for batch in await self.bridge.db(self.store.active_batches, state.run_id):
                self._follow(state, batch)
            while state.queue and not state.paused and not state.stopping:
                size = state.profile.batch_max_requests
                chunk, state.queue[:size] = state.queue[:size], []
                await self._submit(state, chunk)
        except Exception:
            log.exception("run %s: batch submission crashed", state.run_id)
        finally:
            if state.submitter is asyncio.current_task():
                state.submitter = None
            self._update_busy(state)

    async def _submit(self, state: RunBatches, task_ids: list[str]) -> None:
        """Build the chunk's lines (an unusable source fails its task), write the batch, submit it, follow it."""
        profile = state.profile
        built, left = await self.bridge.off(self._lines, task_ids, profile)
        state.queue[:0] = left  # past the size a batch takes: first in the next one
        failed = [(task_id, problem) for task_id, _, problem in built if problem is not None]
        for task_id, problem in failed:
            await self.bridge.db(self.store.finish_task, task_id, "failed", error=told(problem), only_from=("pending",))
        requests = {task_id: request for task_id, request, problem in built if problem is None}
        if not requests or state.stopping:
            if state.stopping:
                await self.bridge.db(self.store.set_status, list(requests), "stopped", error=say("engine.stopped"),
                                     only_from=("pending",))
            return
        try:
            service = self._services(profile, self.client)
        except UpstreamError as exc:
            await self.bridge.db(self.store.set_status, list(requests), "failed", error=told(exc), only_from=("pending",))
            return
        label = new_id("b")
        moved = await self.bridge.db(self.store.open_batch, state.run_id, label, service.name, list(requests))
        if moved:
            self._update_busy(state)
            await self._send(state, service, label, [BatchLine(task_id, requests[task_id]) for task_id in moved])
        else:
            await self.bridge.db(self.store.close_batch, label)

    def _lines(self, task_ids: list[str],
               profile: ApiProfile) -> tuple[list[tuple[str, Request | None, Exception | None]], list[str]]:
        """Read each pending task's inputs and build its batch line request (work pool); skip tasks no longer pending.

        Lines are built until they hold BATCH_BYTES_MAX, and only for the endpoint and model of the first: a
        batch serves one of each (a run may mix edits with generations, or a table row may name its own model).
        The ids left over are returned, in order, for the next batch.
        """
        built: list[tuple[str, Request | None, Exception | None]] = []
        deferred: list[str] = []
        group: tuple[str, Any] | None = None
        size = 0
        for number, task_id in enumerate(task_ids):
            if size >= BATCH_BYTES_MAX:
                return built, deferred + task_ids[number:]
            task = self.store.task(task_id, results=False)
            if task is None or task.status != "pending":
                continue
            try:
                own = ApiProfile.from_dict(task.overrides, base=profile) if task.overrides else profile
                source, references = self.runner.inputs(task, own)
                request = batch_request(own, task.prompt, source, references)
                line_group = (request.url, request.summary.get("model"))
                group = group or line_group
                if line_group != group:
                    deferred.append(task_id)
                    continue
                size += len(request.content or b"")
                built.append((task_id, request, None))
            except (imaging.SourceError, UpstreamError) as exc:
                built.append((task_id, None, exc))
            except ProfileError as exc:  # a stored override the profile rules refuse now
                built.append((task_id, None, imaging.SourceError(say("engine.own_settings_unusable", reason=told(exc)))))
        return built, deferred

    async def _send(self, state: RunBatches, service: BatchService, label: str, lines: list[BatchLine]) -> None:
        """Submit a written batch; a refusal fails its tasks, one that may pass later pauses the run instead."""
        debug = self._debug(state.profile)
        try:
            submitted = await service.submit(state.profile, lines, label, debug)
        except UpstreamError as exc:
            if not isinstance(exc, ProfileProblem) and (exc.http_status is None or exc.http_status in TRANSIENT):
                reason = say("engine.batch_unsent_paused", error=told(exc))
                await self.bridge.db(self.store.batch_unsent, label, reason)
                self._pause(state, reason)
            else:
                debug.note(f"batch {label} could not be submitted")
                await self.bridge.db(self.store.batch_polled, label, "", "failed", True, len(lines), 0, 0, told(exc))
                await self._end_waiting(label, "failed", say("engine.batch_refused", error=told(exc)), debug,
                                        exc.http_status)
            return
        await self._polled(label, submitted)
        log.info("run %s: batch %s submitted (%s %s, %d task(s))", state.run_id, label, service.name,
                 submitted.provider_id, len(lines))
        self._follow(state, await self.bridge.db(self.store.batch, label))
        if state.stopping:  # stopped while it was being submitted
            await self.bridge.db(self.store.batch_stopped, label)
            await self._cancel(state, label, submitted.provider_id)

    def _pause(self, state: RunBatches, reason: Message) -> None:
        """Submit nothing more until the run is resumed; what was not submitted stays pending."""
        state.paused = reason
        state.queue.clear()
        log.warning("run %s paused: %s", state.run_id, reason)

    # -- following -----------------------------------------------------------------------------

    def _follow(self, state: RunBatches, batch: BatchRecord | None) -> None:
        """Follow a batch until its answers are stored, unless it is followed already."""
        if batch is None or batch.finished_at is not None or batch.id in state.watchers:
            return
        state.wake[batch.id] = asyncio.Event()
        job = state.watchers[batch.id] = asyncio.create_task(self._watch(state, batch))
        job.add_done_callback(functools.partial(self._watch_ended, state, batch.id))
        self._update_busy(state)

    def _watch_ended(self, state: RunBatches, label: str, job: asyncio.Task) -> None:
        if state.watchers.get(label) is job:
            del state.watchers[label]
            state.wake.pop(label, None)
            state.failing.pop(label, None)
        if not job.cancelled() and job.exception() is not None:
            log.error("batch %s: following it failed", label, exc_info=job.exception())
        self._update_busy(state)

    async def _watch(self, state: RunBatches, batch: BatchRecord) -> None:
        """Poll a batch until the provider is done with it, then store its answers."""
        service = self._services(state.profile, self.client)
        provider_id = batch.provider_id or await self._adopt(state, service, batch)
        if provider_id is None:
            return
        # A batch already done (answers not all stored: a pause, a restart) is polled once at once, for its output.
        wait = 0.0 if batch.done else min(FIRST_POLL_S, state.profile.batch_poll_s)
        polled: BatchState | None = None
        while polled is None or not polled.done:
            await self._sleep(state, batch.id, wait)
            wait = STOPPING_POLL_S if state.stopping or batch.stopped else state.profile.batch_poll_s
            debug = self._debug(state.profile)
            try:
                polled = await service.poll(state.profile, provider_id, debug)
            except UpstreamError as exc:
                if exc.http_status == 404:  # deleted at the provider, or another account's: nothing will come
                    await self._end_waiting(batch.id, "failed", say("engine.batch_unknown", error=told(exc)),
                                            debug, 404)
                    return
                if exc.http_status in REFUSED_KEY:
                    await self._pause_refused(state, batch.id, exc)
                    return
                log.warning("run %s: batch %s could not be polled (%s); trying again", state.run_id, batch.id, exc)
                await self._failed_look(state, batch.id, exc)
                continue
            state.failing.pop(batch.id, None)
            await self._polled(batch.id, polled)
            batch = await self.bridge.db(self.store.batch, batch.id) or batch
        await self._finish(state, service, batch.id, polled)

    async def _failed_look(self, state: RunBatches, label: str, exc: UpstreamError) -> None:
        number = await self.bridge.db(self.store.batch_number, label)  # as the page numbers its chips
        state.failed_look(label, number, told(exc))

    async def _pause_refused(self, state: RunBatches, label: str, exc: UpstreamError) -> None:
        """The key is refused: looking again changes nothing until it is fixed, so the run waits for a resume."""
        number = await self.bridge.db(self.store.batch_number, label)
        self._pause(state, say("engine.batch_poll_refused_paused", number=number, error=told(exc)))

    async def _adopt(self, state: RunBatches, service: BatchService, batch: BatchRecord) -> str | None:
        """A batch written but not known to be submitted (a crash in between): adopt the provider's batch of that
        label, or, when the provider has none, put its tasks back in the queue to go in a new batch."""
        try:
            found = await service.find(state.profile, batch.id, self._debug(state.profile))
        except UpstreamError as exc:
            self._pause(state, say("engine.batch_lookup_paused", batch=batch.id, error=told(exc)))
            return None
        if found is not None:
            log.info("run %s: batch %s was submitted before the restart (%s): followed", state.run_id, batch.id,
                     found.provider_id)
            await self._polled(batch.id, found)
            if state.stopping or batch.stopped:
                await self._cancel(state, batch.id, found.provider_id)
            return found.provider_id
        ids = await self.bridge.db(self.store.batch_tasks, batch.id)
        await self.bridge.db(self.store.batch_unsent, batch.id, say("engine.batch_resent"))
        if not state.stopping:
            state.queue.extend(ids)
            self._start_submitter(state)
        else:
            await self.bridge.db(self.store.set_status, ids, "stopped", error=say("engine.stopped"), only_from=("pending",))
        return None

    async def _sleep(self, state: RunBatches, label: str, seconds: float) -> None:
        wake = state.wake.get(label)
        if wake is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)
        wake.clear()

    async def _cancel(self, state: RunBatches, label: str, provider_id: str) -> None:
        """Ask the provider to cancel a batch, then look at it soon (its finished lines are kept)."""
        service = self._services(state.profile, self.client)
        try:
            await service.cancel(state.profile, provider_id, self._debug(state.profile))
        except UpstreamError as exc:
            log.warning("run %s: batch %s could not be cancelled: %s", state.run_id, label, exc)
        if label in state.wake:
            state.wake[label].set()

    async def _polled(self, label: str, polled: BatchState) -> None:
        await self.bridge.db(self.store.batch_polled, label, polled.provider_id, polled.status, polled.done,
                             polled.total, polled.completed, polled.failed, polled.error)

    # -- storing answers -----------------------------------------------------------------------

    async def _finish(self, state: RunBatches, service: BatchService, label: str, polled: BatchState) -> None:
        """Store a finished batch's answers; its tasks without one end stopped (a stop) or failed with the reason.

        The data folder filling up pauses the run: the batch stays active and is read again on resume
        (the provider keeps its output), the answers already stored are not stored twice.
        """
        debug = self._debug(state.profile)
        batch = await self.bridge.db(self.store.batch, label)
        if batch is None:
            return  # its run was deleted
        waiting = set(await self.bridge.db(self.store.batch_tasks, label))
        # Each answer is stored as it is read (a batch of images is gigabytes of output); a read that breaks
        # off is read again from the start, and the answers already stored are passed over.
        while True:
            try:
                async for answer in service.each_answer(state.profile, polled, debug):
                    if answer.key in waiting and not unfinished(answer):
                        await self._store_answer(state, batch, answer)
                        waiting.discard(answer.key)
                break
            except UpstreamError as exc:
                if exc.http_status in REFUSED_KEY:
                    await self._pause_refused(state, label, exc)
                    return
                log.warning("run %s: the answers of batch %s could not be read (%s); trying again", state.run_id,
                            label, exc)
                await self._failed_look(state, label, exc)
                await self._sleep(state, label, state.profile.batch_poll_s)
            except Exception as exc:
                fault = self.folder.fault(exc)
                if fault is None:
                    raise
                if fault.kind == FULL:
                    self.folder.give_reserve()
                self._pause(state, say("engine.batch_fault_paused", reason=told(fault)))
                return
        if waiting:
            status, reason = ending(batch, polled)
            ended = await self._end_waiting(label, status, reason, debug, None)
            if status == "stopped" and not state.stopping:  # resumed while the cancel went through
                await self.bridge.db(self.store.set_status, ended, "pending", only_from=("stopped",))
                self.enqueue(state.run_id, ended, state.profile)
        await self.bridge.db(self.store.close_batch, label)
        log.info("run %s: batch %s %s (%d done, %d failed)", state.run_id, label, polled.status, polled.completed,
                 polled.failed)

    async def _end_waiting(self, label: str, status: str, reason: str, debug: DebugLog,
                           http_status: int | None) -> list[str]:
        """End every task still waiting in a batch with one status and reason (and the batch's debug log); return them."""
        ids = await self.bridge.db(self.store.batch_tasks, label)
        for task_id in ids:
            await self.bridge.db(self.store.finish_task, task_id, status, error=reason, http_status=http_status,
                                 debug_log=debug.text(), only_from=("running",))
        await self.bridge.db(self.store.close_batch, label)
        return ids

    async def _store_answer(self, state: RunBatches, batch: BatchRecord, answer: BatchAnswer) -> None:
        """Store one line's answer as a live call's end: its images and text, what it used at the batch price."""
        profile = state.profile
        debug = self._debug(profile)
        debug.note(f"answered by batch {batch.id} ({batch.service} {batch.provider_id})")
        task = await self.bridge.db(self.store.task, answer.key, results=False)
        if task is None:
            return
        if answer.payload is None or answer.error:
            await self.bridge.db(self.store.finish_task, task.id, "failed", error=answer.error or say("engine.batch_line_empty"),
                                 http_status=answer.http_status, debug_log=debug.text(), only_from=("running",))
            return
        with contextlib.ExitStack() as pins:
            try:
                outcome = await self.client.outcome_of(profile, answered_request(profile, task), answer.payload, debug,
                                                       functools.partial(self._keep, pins))
            except UpstreamError as exc:
                await self.bridge.db(self.store.finish_task, task.id, "failed", error=told(exc),
                                     http_status=answer.http_status, debug_log=debug.text(), only_from=("running",))
                return
            await self._record_usage(task.id, task.attempts, outcome, profile)
            text = await self.bridge.off(answer_text, outcome.text)
            results = [NewResult(i.sha256, i.format, i.width, i.height, len(i.data), i.origin, i.url, task.prompt, text)
                       for i in outcome.images]
            await self.bridge.db(self.store.finish_task, task.id, "done", http_status=outcome.http_status,
                                 warning=warned(outcome.warnings), debug_log=debug.text(), results=results,
                                 only_from=("running",))
        if results:
            self.stored(state.run_id)

    async def _record_usage(self, task_id: str, attempt: int, outcome: CallOutcome, profile: ApiProfile) -> None:
        usage = outcome.usage or Usage(images=len(outcome.images))
        cost, basis = priced(usage, profile.prices, batch=True)
        await self.bridge.db(self.store.record_usage, task_id, attempt, usage.to_dict(), cost, basis)

    def _keep(self, pins: contextlib.ExitStack, image: ResultImage) -> None:
        """Write a verified image to the cache, pinned until the store references it (work pool)."""
        pins.enter_context(self.cache.pinned(image.sha256))
        self.folder.check()
        self.cache.put(image.data, image.format, image.sha256)

    def _debug(self, profile: ApiProfile) -> DebugLog:
        return DebugLog(profile.secrets(), self.settings.debug_log_bytes)

    def _update_busy(self, state: RunBatches) -> None:
        if state.busy:
            self.busy.add(state.run_id)
        else:
            self.busy.discard(state.run_id)


def check_budget(profile: ApiProfile, budget: float | None) -> None:
    """Refuse a budget for a batch run: its tasks go to the provider together, with nothing to hold back."""
    if budget is not None and profile.delivery == "batch":
        raise EngineError(say("engine.budget_batch_run"))
