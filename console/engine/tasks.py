"""Run one task to a final status: prepare it, start it, call the upstream, keep the images.

Every path out of `TaskRunner.run` records a final status, so no task is left `running`. Store
calls go to the store pool and file or image work to the work pool: the loop thread only waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import imaging
from ..cache import ImageCache
from ..logs import LOG_HINT
from ..profile import ApiProfile
from ..settings import Settings
from ..store import NewResult, Store
from ..upstream import CallOutcome, DebugLog, Request, Source, UpstreamClient, UpstreamError
from .bridge import LoopBridge
from .scheduler import RunState, Slot

log = logging.getLogger("console.engine")


class Attempts:
    """Record each upstream attempt in the store, in order, before the task's end is recorded."""

    def __init__(self, bridge: LoopBridge, store: Store, task_id: str) -> None:
        self._bridge, self._store, self._task_id = bridge, store, task_id
        self._writes: list[asyncio.Future] = []

    def record(self, number: int) -> None:
        """Called by the client as each attempt starts; the first was counted when the task started."""
        if number > 1:
            self._writes.append(self._bridge.db(self._store.add_attempt, self._task_id, number))

    async def settled(self) -> None:
        """Wait for the writes so far; a failed one is logged, never lost silently."""
        for outcome in await asyncio.gather(*self._writes, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("task %s: could not record an attempt: %s", self._task_id, outcome)
        self._writes.clear()


@dataclass
class Prepared:
    """A pending task made ready to send: its row, the profile its request was built for, and the request.

    `problem` instead of a request when the source cannot be used (the task fails without a call).
    """

    task: dict[str, Any]
    profile: ApiProfile
    request: Request | None = None
    problem: Exception | None = None


class TaskRunner:
    """Execute tasks with the shared upstream client; one `run` call per task."""

    def __init__(self, store: Store, cache: ImageCache, settings: Settings, bridge: LoopBridge,
                 client: UpstreamClient) -> None:
        self.store, self.cache, self.settings = store, cache, settings
        self.bridge, self.client = bridge, client

    async def prepare(self, state: RunState, task_id: str) -> Prepared | None:
        """Read a pending task and its source and build its request, changing nothing; None if not pending.

        Runs while the task still waits for a slot (scheduler's look-ahead), in the work pool.
        """
        return await self.bridge.off(self._prepare, task_id, state.profile)

    async def run(self, state: RunState, task_id: str, prepared: asyncio.Future, slot: Slot) -> None:
        """Run one task to a final status, whatever happens.

        Two hand-offs and two store transactions per task when all goes well (bench, issue 9):
        the start transaction (its source and request were prepared while it waited), the call,
        then the files into the cache, after which the slot is free for the next call, and the
        results with the final status in one transaction.
        """
        profile = state.profile
        debug = DebugLog([profile.api_key], self.settings.debug_log_bytes)
        attempts = Attempts(self.bridge, self.store, task_id)
        name = f"task {task_id}"  # how the terminal names the task in its one line per failure
        try:
            ready = await prepared
            if ready is not None and ready.profile is not profile:  # the run's profile changed meanwhile
                ready = await self.prepare(state, task_id)
            if ready is None or not await self.bridge.db(self._start, task_id, ready):
                return  # stopped or deleted while it waited in the queue
            name = f"{state.run_id} · {ready.task['source_name']}"
            outcome = await self.client.send(profile, ready.request, debug=debug, on_attempt=attempts.record)
            await attempts.settled()
            # The slot is held until the images are on disk: releasing it earlier let a fast
            # upstream pile up finished answers in memory faster than they were written.
            with contextlib.ExitStack() as pins:  # pinned until referenced: eviction must not take them
                results = await self.bridge.off(self._store_files, outcome, pins)
                slot.release()
                await self._finish(task_id, "done", debug, http_status=outcome.http_status,
                                   warning="; ".join(outcome.warnings) or None, results=results)
        except asyncio.CancelledError:
            debug.note("stopped by the user")
            await self._record_stop(task_id, debug)
            raise
        except (imaging.SourceError, UpstreamError) as exc:
            log.warning("%s failed: %s", name, exc)  # one line in the terminal panel (issue 8)
            await attempts.settled()
            await self._finish(task_id, "failed", debug, error=str(exc), http_status=getattr(exc, "http_status", None),
                               only_from=("pending", "running"))
        except Exception as exc:  # a bug must not leave the task running forever
            log.exception("%s crashed", name)
            debug.note(f"console bug: {exc!r}")
            await attempts.settled()
            await self._finish(task_id, "failed", debug,
                               error=f"the console hit a bug ({type(exc).__name__}: {exc}); the details are in {LOG_HINT}")

    async def _finish(self, task_id: str, status: str, debug: DebugLog, **fields: Any) -> None:
        await self.bridge.db(self._write_end, task_id, status, debug, **fields)

    def _write_end(self, task_id: str, status: str, debug: DebugLog, **fields: Any) -> None:
        """Record a task's end with its debug log (rendering the log is regex work: off the loop)."""
        self.store.finish_task(task_id, status, debug_log=debug.text(), **fields)

    async def _record_stop(self, task_id: str, debug: DebugLog) -> None:
        # The start may still be finishing in the pool: stop the task whether it got to "running"
        # or is still "pending", but never overwrite a final status. Shielded, so a second
        # cancellation cannot skip the write; the write runs in the store pool either way.
        write = self.bridge.db(self._write_end, task_id, "stopped", debug, error="stopped",
                               only_from=("pending", "running"))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            pass

    def _prepare(self, task_id: str, profile: ApiProfile) -> Prepared | None:
        task = self.store.task(task_id)
        if task is None or task["status"] != "pending":
            return None
        try:
            source = self._read_source(task["source_path"], profile)
            return Prepared(task, profile, self.client.prepare(profile, task["prompt"], source))
        except (imaging.SourceError, UpstreamError) as exc:
            return Prepared(task, profile, problem=exc)

    def _start(self, task_id: str, ready: Prepared) -> bool:
        """Mark a prepared task running with its first attempt; False if it is no longer pending.

        A task whose source is unusable never counts an attempt (attempts count upstream calls):
        its problem is raised here and it fails straight from pending.
        """
        if ready.problem is not None:
            raise ready.problem
        return self.store.start_task(task_id, first_attempt=True)

    def _read_source(self, path: str, profile: ApiProfile) -> Source:
        """Read (and optionally shrink) a source within the size and pixel limits; SourceError says why not."""
        data, mime = imaging.read_source(path, max_bytes=profile.source_max_bytes, max_side=profile.source_max_side,
                                         max_pixels=self.settings.max_image_pixels,
                                         max_source_bytes=self.settings.max_source_bytes)
        return Source(Path(path).name, data, mime)

    def _store_files(self, outcome: CallOutcome, pins: contextlib.ExitStack) -> list[NewResult]:
        """Write the images to the cache (pinned in `pins` until recorded); return them as results to record."""
        for image in outcome.images:
            pins.enter_context(self.cache.pinned(image.sha256))
            self.cache.put(image.data, image.format, image.sha256)
        return [NewResult(i.sha256, i.format, i.width, i.height, len(i.data), i.origin, i.url) for i in outcome.images]
