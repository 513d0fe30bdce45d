"""Run tasks against the upstream: concurrency per run, stop, retry, resume (DESIGN §3–4).

One asyncio loop in a background thread owns all run state and one shared httpx client; other
threads call the public methods, which hop onto the loop and wait for the answer. Reading
sources, decoding, hashing and file writes run in a small thread pool so the loop (and the
stop button) stay responsive. Every path out of `_process` records a final status, so no task
is left `running`; stopping moves queued tasks from `pending` to `stopped`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Coroutine

from . import imaging
from .cache import ImageCache
from .netguard import check_url
from .profile import ApiProfile, ProfileError
from .settings import Settings
from .store import Store
from .upstream.client import UpstreamClient, make_http_client
from .upstream.debuglog import DebugLog
from .upstream.errors import UpstreamError
from .upstream.fetch import ResultImage
from .upstream.payload import Source, endpoint, resolve_mode

log = logging.getLogger("console.engine")
CALL_TIMEOUT_S = 30.0
SWITCH_INTERVAL_S = 0.001
HOUSEKEEPING_FIRST_S = 10.0  # let start-up finish before touching the cache
HOUSEKEEPING_EVERY_S = 3600.0
STOP_WAIT_S = 5.0


class EngineError(Exception):
    """An engine action that cannot be done; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class SourceError(Exception):
    """A source image that cannot be sent."""


class Limiter:
    """A counting semaphore whose limit can change while it is in use."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[asyncio.Future] = deque()

    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        while self.used >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.used += 1

    def release(self) -> None:
        """Give a slot back."""
        self.used -= 1
        self._wake()

    def set_limit(self, limit: int) -> None:
        """Change the limit; a larger one starts waiting work at once."""
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


@dataclass
class RunState:
    """What the loop knows about one run that has work queued or in flight."""

    run_id: str
    profile: ApiProfile
    limiter: Limiter
    queue: deque[str] = field(default_factory=deque)
    inflight: dict[str, asyncio.Task] = field(default_factory=dict)
    dispatcher: asyncio.Task | None = None

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.inflight)


class Engine:
    """Runs and tasks; thread-safe public methods, all state owned by the loop thread."""

    def __init__(self, store: Store, cache: ImageCache, settings: Settings,
                 http_factory: Callable[[], Any] = make_http_client) -> None:
        self.store = store
        self.cache = cache
        self.settings = settings
        self._http_factory = http_factory
        self._runs: dict[str, RunState] = {}
        self._busy: set[str] = set()  # run ids with work, readable from any thread
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="console-work")
        self._db_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="console-db")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from a crash, then start the loop thread."""
        recovered = self.store.recover_interrupted()
        if recovered:
            log.info("%d task(s) left running or pending by the last session are now stopped (interrupted)", recovered)
        self._thread = threading.Thread(target=self._main, name="console-engine", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        # The loop hands work to pool threads and back several times per task; with the default
        # 5 ms GIL switch interval each hand-off could wait that long (bench: throughput).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.set_default_executor(self._pool)
        self._http = self._http_factory()
        self._client = UpstreamClient(self._http, self.settings, executor=self._pool)
        self._housekeeping = self._loop.create_task(self._keep_cache_tidy())
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        """Stop every run, close connections and the loop."""
        if self._loop is None or self._loop.is_closed():
            return
        try:
            self._loop.call_soon_threadsafe(self._housekeeping.cancel)
            self._call(self._stop_all(), timeout=STOP_WAIT_S + 5)
            self._call(self._http.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread:
                self._thread.join(timeout=10)
            self._loop.close()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._db_pool.shutdown(wait=True, cancel_futures=True)

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float = CALL_TIMEOUT_S) -> Any:
        if self._loop is None:
            coro.close()
            raise EngineError("the engine is not running", 503)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _keep_cache_tidy(self) -> None:
        """Evict unreferenced cache files now and then (DESIGN §3: TTL, then the size cap)."""
        await asyncio.sleep(HOUSEKEEPING_FIRST_S)
        while True:
            try:
                removed, freed = await asyncio.get_running_loop().run_in_executor(
                    self._pool, self.cache.evict, self.store.is_referenced)
                if removed:
                    log.info("cache: evicted %d file(s), %d bytes", removed, freed)
            except Exception:
                log.exception("cache eviction failed")
            await asyncio.sleep(HOUSEKEEPING_EVERY_S)

    # -- public, thread-safe ----------------------------------------------------------------

    def check_profile(self, profile: ApiProfile) -> None:
        """Refuse a profile that cannot make requests (no URL or model, URL not allowed)."""
        if not profile.api_url:
            raise EngineError("no API URL set: fill in the API profile first")
        if not profile.model:
            raise EngineError("no model set: fill in the API profile first")
        try:
            url = endpoint(profile, resolve_mode(profile), True)
            self._call(check_url(url, self._client.api_policy(profile)))
        except UpstreamError as exc:
            raise EngineError(str(exc)) from None

    def test_connection(self, profile: ApiProfile) -> dict[str, Any]:
        """List the upstream's models with this profile; report the outcome, never raise for upstream errors."""
        try:
            status, models = self._call(self._client.models(profile))
        except UpstreamError as exc:
            return {"ok": False, "http_status": exc.http_status, "models": [], "error": str(exc)}
        return {"ok": True, "http_status": status, "models": models, "error": None}

    def create_run(self, input_path: str, recursive: bool, prompt: str, profile: ApiProfile,
                   sources: list[tuple[str, str]]) -> str:
        """Store a run with one task per source and start it; return the run id."""
        run_id = self.store.create_run(input_path, recursive, prompt, profile.to_dict(mask_key=False), sources)
        self._call(self._enqueue(run_id, self.store.task_ids(run_id, ["pending"])))
        return run_id

    def is_running(self, run_id: str) -> bool:
        """Return True while a run has tasks queued or in flight."""
        return run_id in self._busy

    def stop_run(self, run_id: str) -> int:
        """Stop one run: queued tasks and in-flight calls become stopped; return how many."""
        return self._call(self._stop(run_id), timeout=STOP_WAIT_S + 5)

    def stop_all(self) -> int:
        """Stop every run."""
        return self._call(self._stop_all(), timeout=STOP_WAIT_S + 5)

    def resume(self, run_id: str, profile: ApiProfile | None = None) -> int:
        """Queue a run's pending and stopped tasks again (with `profile` from now on, if given); return how many."""
        self._require_run(run_id)
        self._use_profile(run_id, profile)
        ids = self.store.task_ids(run_id, ["pending", "stopped"])
        self.store.set_status(ids, "pending", only_from=("pending", "stopped"))
        return self._call(self._enqueue(run_id, ids))

    def retry_failed(self, run_id: str, profile: ApiProfile | None = None) -> int:
        """Queue a run's failed tasks again, results kept (with `profile` from now on, if given); return how many."""
        self._require_run(run_id)
        self._use_profile(run_id, profile)
        ids = self.store.task_ids(run_id, ["failed"])
        self.store.set_status(ids, "pending", only_from=("failed",))
        return self._call(self._enqueue(run_id, ids))

    def retry_task(self, task_id: str, keep_results: bool = True, profile: ApiProfile | None = None) -> None:
        """Queue one task again, keeping or clearing its results; 409 while it is running."""
        task = self.store.task(task_id)
        if task is None:
            raise EngineError(f"no task {task_id}", 404)
        if task["status"] == "running":
            raise EngineError("the task is running; stop it or wait for it to finish", 409)
        self._use_profile(task["run_id"], profile)
        if not keep_results:
            self._release(self.store.clear_results(task_id))
        if task["status"] != "pending":
            self.store.set_status([task_id], "pending")
        self._call(self._enqueue(task["run_id"], [task_id]))

    def delete_task(self, task_id: str) -> None:
        """Delete a task (cancelling it first if it is in flight) and free its files."""
        run_id = self.store.task_run(task_id)
        if run_id is None:
            raise EngineError(f"no task {task_id}", 404)
        self._call(self._cancel_task(run_id, task_id), timeout=STOP_WAIT_S + 5)
        self._release(self.store.delete_task(task_id))

    def delete_run(self, run_id: str) -> None:
        """Stop a run, delete it and free its files."""
        self._require_run(run_id)
        self.stop_run(run_id)
        self._call(self._forget(run_id))
        self._release(self.store.delete_run(run_id))

    def set_concurrency(self, run_id: str, concurrency: int) -> None:
        """Change a run's concurrency; a running run follows at once."""
        self._require_run(run_id)
        profile = ApiProfile.from_dict({"concurrency": concurrency}, base=self._stored_profile(run_id))
        self._use_profile(run_id, profile)

    def _use_profile(self, run_id: str, profile: ApiProfile | None) -> None:
        """Make `profile` the run's profile for every call that starts from now on (stored for resume)."""
        if profile is None:
            return
        self.check_profile(profile)
        self.store.set_run_profile(run_id, profile.to_dict(mask_key=False))
        self._call(self._set_limit(run_id, profile))

    def _stored_profile(self, run_id: str) -> ApiProfile:
        try:
            return ApiProfile.from_dict(self.store.run_profile(run_id))
        except ProfileError as exc:  # a run stored before input was checked at the door (issue 8)
            raise EngineError(f"this run's stored API profile cannot be used ({exc}); "
                              "resume or retry it from the page, which sends the current profile") from None

    def delete_result(self, result_id: str) -> bool:
        """Delete one result and free its file when nothing else uses it."""
        freed = self.store.delete_result(result_id)
        if freed is None:
            return False
        self._release([freed])
        return True

    def _require_run(self, run_id: str) -> None:
        if self.store.run(run_id) is None:
            raise EngineError(f"no run {run_id}", 404)

    def _release(self, freed: list[tuple[str, str]]) -> None:
        for sha256, fmt in freed:
            self.cache.release(sha256, fmt, self.store.is_referenced)

    # -- on the loop ------------------------------------------------------------------------

    def _state(self, run_id: str) -> RunState:
        state = self._runs.get(run_id)
        if state is None:
            profile = self._stored_profile(run_id)
            state = RunState(run_id, profile, Limiter(profile.concurrency))
            self._runs[run_id] = state
        return state

    async def _enqueue(self, run_id: str, task_ids: list[str]) -> int:
        if not task_ids:
            return 0
        state = self._state(run_id)
        queued = set(state.queue) | set(state.inflight)
        state.queue.extend(tid for tid in task_ids if tid not in queued)
        if state.dispatcher is None:
            self.store.mark_run_started(run_id)
            state.dispatcher = asyncio.create_task(self._dispatch(state))
        self._busy.add(run_id)
        return len(task_ids)

    async def _dispatch(self, state: RunState) -> None:
        try:
            while state.queue:
                await state.limiter.acquire()
                if not state.queue:
                    state.limiter.release()
                    break
                task_id = state.queue.popleft()
                job = asyncio.create_task(self._process(state, task_id))
                state.inflight[task_id] = job
                job.add_done_callback(lambda _, tid=task_id: self._finished(state, tid))
        finally:
            state.dispatcher = None
            self._update_busy(state)

    def _finished(self, state: RunState, task_id: str) -> None:
        state.inflight.pop(task_id, None)
        state.limiter.release()
        self._update_busy(state)

    def _update_busy(self, state: RunState) -> None:
        if state.busy or state.dispatcher is not None:
            self._busy.add(state.run_id)
        else:
            self._busy.discard(state.run_id)

    async def _process(self, state: RunState, task_id: str) -> None:
        """Run one task to a final status, whatever happens."""
        loop = asyncio.get_running_loop()

        def off(func: Callable[..., Any], *args: Any, **kw: Any) -> asyncio.Future:
            # File and image work leaves the loop (DESIGN §3).
            return loop.run_in_executor(self._pool, functools.partial(func, *args, **kw))

        def db(func: Callable[..., Any], *args: Any, **kw: Any) -> asyncio.Future:
            # Store calls too, in their own small pool, so a task's start never queues behind
            # a wave of image decodes (bench: 32 tasks finishing at once, 1.31× ideal before).
            return loop.run_in_executor(self._db_pool, functools.partial(func, *args, **kw))

        profile = state.profile
        debug = DebugLog([profile.api_key], self.settings.debug_log_bytes)
        name = f"task {task_id}"  # how the terminal names the task in its one line per failure
        try:
            begun = await off(self._begin, task_id, profile)  # one hop: start, read, shrink
            if begun is None:
                return  # stopped or deleted while it waited in the queue
            task, source = begun
            name = f"{state.run_id} · {task['source_name']}"
            outcome = await self._client.call(profile, task["prompt"], source, debug=debug,
                                              on_attempt=lambda n: db(self.store.add_attempt, task_id, n))
            # The slot is held until the images are stored: releasing it earlier let a fast
            # upstream pile up finished answers in memory faster than they were written.
            await off(self._keep, task_id, outcome.images)
        except asyncio.CancelledError:
            # The start may still be finishing in the pool: stop the task whether it got to
            # "running" or is still "pending", but never overwrite a final status.
            debug.note("stopped by the user")
            self.store.finish_task(task_id, "stopped", error="stopped", debug_log=debug.text(),
                                   only_from=("pending", "running"))
            raise
        except SourceError as exc:
            log.warning("%s failed: %s", name, exc)  # one line in the terminal panel (issue 8)
            await db(self._finish, task_id, "failed", debug, error=str(exc))
        except UpstreamError as exc:
            log.warning("%s failed: %s", name, exc)
            await db(self._finish, task_id, "failed", debug, error=str(exc), http_status=exc.http_status)
        except Exception as exc:  # a bug must not leave the task running forever
            log.exception("task %s crashed", task_id)
            debug.note(f"console bug: {exc!r}")
            self.store.finish_task(task_id, "failed", debug_log=debug.text(),
                                   error=f"the console hit a bug ({type(exc).__name__}: {exc}); "
                                         "the details are in logs/console.log in the data folder")
        else:
            warning = "; ".join(outcome.warnings) or None
            await db(self._finish, task_id, "done", debug, http_status=outcome.http_status, warning=warning)

    def _finish(self, task_id: str, status: str, debug: DebugLog, **fields: Any) -> None:
        """Record a task's end with its debug log (rendering the log is regex work: off the loop)."""
        self.store.finish_task(task_id, status, debug_log=debug.text(), **fields)

    def _begin(self, task_id: str, profile: ApiProfile) -> tuple[dict[str, Any], Source] | None:
        """Mark a pending task running and read its source; None if it is no longer pending."""
        if not self.store.start_task(task_id):
            return None
        task = self.store.task(task_id)
        return task, self._read_source(task["source_path"], profile)

    def _read_source(self, path: str, profile: ApiProfile) -> Source:
        """Read and (optionally) shrink a source image; raise SourceError with the reason."""
        limit = self.settings.max_source_bytes
        try:
            size = Path(path).stat().st_size
            if size > limit:
                raise SourceError(f"source is {size} bytes, over the limit of {limit} (MAX_SOURCE_BYTES)")
            data = Path(path).read_bytes()
            prepared, mime = imaging.prepare_source(data, profile.source_max_side, profile.source_max_bytes)
        except OSError as exc:
            raise SourceError(f"cannot read the source: {exc.strerror or exc}") from None
        except imaging.InvalidImage as exc:
            raise SourceError(f"the source is not a usable image: {exc}") from None
        return Source(Path(path).name, prepared, mime)

    def _keep(self, task_id: str, images: list[ResultImage]) -> None:
        """Write images to the cache and attach them to the task (pinned until referenced)."""
        for image in images:
            with self.cache.pinned(image.sha256):
                self.cache.put(image.data, image.format, image.sha256)
                self.store.add_result(task_id, image.sha256, image.format, image.width, image.height,
                                      len(image.data), image.origin, image.url)

    async def _stop(self, run_id: str) -> int:
        state = self._runs.get(run_id)
        if state is None:
            return 0
        queued = list(state.queue)
        state.queue.clear()
        if state.dispatcher is not None:
            state.dispatcher.cancel()
        stopped = self.store.set_status(queued, "stopped", error="stopped", only_from=("pending",))
        jobs = list(state.inflight.values())
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.wait(jobs, timeout=STOP_WAIT_S)
        self._update_busy(state)
        return stopped + len(jobs)

    async def _stop_all(self) -> int:
        counts = await asyncio.gather(*(self._stop(run_id) for run_id in list(self._runs)))
        return sum(counts)

    async def _cancel_task(self, run_id: str, task_id: str) -> None:
        state = self._runs.get(run_id)
        if state is None:
            return
        if task_id in state.queue:
            state.queue.remove(task_id)
        job = state.inflight.get(task_id)
        if job is not None:
            job.cancel()
            await asyncio.wait([job], timeout=STOP_WAIT_S)
        self._update_busy(state)

    async def _forget(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
        self._busy.discard(run_id)

    async def _set_limit(self, run_id: str, profile: ApiProfile) -> None:
        state = self._runs.get(run_id)
        if state is not None:
            state.profile = profile
            state.limiter.set_limit(profile.concurrency)
