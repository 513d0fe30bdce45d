"""The engine's public face: runs and tasks, with thread-safe methods that the web layer calls.

Work starts here in the caller's thread (checks, store reads and writes), then hops onto the
loop, where the scheduler queues tasks and the task runner executes them (docs/architecture.md, *A task's life*).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from pathlib import PurePosixPath
from typing import Any, Callable

from .. import uploads
from ..cache import ImageCache
from ..captioning import CaptionOrder
from ..config import ConfigStore
from ..diskfault import DataFolder
from ..estimate import estimate
from ..imaging import EXTENSION
from ..messages import say, told
from ..profile import CONCURRENCY, ApiProfile, ProfileError
from ..review import Flagger
from ..settings import Settings
from ..sources import RunSpec
from ..records import ResultRecord, TaskRecord
from ..store import NewTask, Store
from ..store_pilot import pilot_sample
from ..upstream import ProfileProblem, UpstreamClient, make_http_client
from .batches import BatchDelivery, check_budget
from .bridge import LoopBridge
from .captions import CaptionJobs
from . import planning
from .connection import try_keys
from .budget import Budget
from .errors import Conflict, EngineError, NotFound
from .held import HeldAnswers
from .scheduler import STOP_WAIT_S, Scheduler
from .tasks import TaskRunner

log = logging.getLogger("console.engine")
HOUSEKEEPING_FIRST_S = 10.0  # let start-up finish before touching the cache
HOUSEKEEPING_EVERY_S = 3600.0
STOP_TIMEOUT_S = STOP_WAIT_S + 5


def _one_control_at_a_time(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a control (stop, resume, retry, delete) while no other runs: a stop's last writes land
    before a resume that follows it reads and queues the stopped tasks, even under load."""
    @functools.wraps(method)
    def controlled(self: "Engine", *args: Any, **kw: Any) -> Any:
        with self._control:
            return method(self, *args, **kw)
    return controlled


class Engine:
    """Runs and tasks; thread-safe public methods, all scheduling state owned by the loop thread."""

    def __init__(self, store: Store, cache: ImageCache, settings: Settings, configs: ConfigStore,
                 http_factory: Callable[[], Any] = make_http_client, folder: DataFolder | None = None) -> None:
        self.store, self.cache, self.settings = store, cache, settings
        self.configs = configs
        self.folder = folder or DataFolder(store.path.parent)
        self.held = HeldAnswers()  # answers paid for that the data folder could not take yet
        self.flagger = Flagger(store, cache, enabled=settings.review_flags)  # the review flags, in the background
        self._http_factory = http_factory
        self._bridge = LoopBridge()
        self._control = threading.RLock()  # see _one_control_at_a_time
        self._scheduler: Scheduler | None = None
        self.captions = CaptionJobs(store, cache, settings, self._bridge, lambda: self._client, self.folder)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from a crash, then start the loop thread."""
        recovered = self.store.recover_interrupted()
        if recovered:
            log.info("%d task(s) left running or pending by the last session are now stopped (interrupted)", recovered)
        self._bridge.start(self._on_loop)
        self._bridge.call(self._batches.recover())  # follow the batches submitted before the restart
        self.flagger.start()

    def _on_loop(self) -> None:
        self._http = self._http_factory()
        self._client = UpstreamClient(self._http, self.settings, executor=self._bridge.work)
        runner = TaskRunner(self.store, self.cache, self.settings, self._bridge, self._client, self.folder, self.held,
                            stored=self.flagger.wake)
        self._scheduler = Scheduler(runner.prepare, runner.run, self._mark_stopped)
        self._batches = BatchDelivery(self.store, self.cache, self.settings, self._bridge, self._client, runner,
                                      self.folder, stored=self.flagger.wake)
        self._housekeeping = self._bridge.loop.create_task(self._keep_cache_tidy())

    def close(self) -> None:
        """Stop every run, close connections and the loop."""
        if not self._bridge.running:
            return
        self.flagger.close()
        try:
            self._bridge.soon(self._housekeeping.cancel)
            self._bridge.call(self.captions.close(), timeout=STOP_TIMEOUT_S)
            self._bridge.call(self._scheduler.stop_all(), timeout=STOP_TIMEOUT_S)
            self._bridge.call(self._batches.close(), timeout=STOP_TIMEOUT_S)
            self._bridge.call(self._http.aclose())
        finally:
            self._bridge.close()

    async def _keep_cache_tidy(self) -> None:
        """Evict unreferenced cache files now and then: first by age (TTL), then down to the size cap."""
        await asyncio.sleep(HOUSEKEEPING_FIRST_S)
        while True:
            try:
                removed, freed = await self._bridge.off(self.cache.evict, self.store.is_referenced)
                if removed:
                    log.info("cache: evicted %d file(s), %d bytes", removed, freed)
            except Exception:
                log.exception("cache eviction failed")
            await asyncio.sleep(HOUSEKEEPING_EVERY_S)

    async def _mark_stopped(self, task_ids: list[str], reason: str) -> int:
        return await self._bridge.db(self.store.set_status, task_ids, "stopped", error=reason,
                                     only_from=("pending",))

    # -- profiles and runs --------------------------------------------------------------------

    def profile_for(self, overrides: dict[str, Any] | None) -> ApiProfile:
        """Return the stored profile with a request's overrides (a masked or absent key keeps the stored one)."""
        return self.configs.profile_with(overrides or {})

    def check_profile(self, profile: ApiProfile) -> None:
        """Refuse a profile that cannot make requests (no URL or model, URL not allowed)."""
        try:
            self._bridge.call(self._client.check_profile(profile))
        except ProfileProblem as exc:
            raise EngineError(told(exc)) from None

    def test_connection(self, profile: ApiProfile) -> dict[str, Any]:
        """List the upstream's models with this profile; report the outcome, never raise for upstream errors.

        With a key pool every key is tried (at once) and `keys` says how each fared (masked).
        """
        if not profile.api_url:
            raise EngineError(say("engine.no_api_url"))
        return self._bridge.call(try_keys(self._client, profile))

    def caption_run(self, order: CaptionOrder, profile: ApiProfile) -> dict[str, Any]:
        """Start captioning a run's results with a vision model's profile; return the job's snapshot."""
        self._require_run(order.run_id)
        self.captions.check_mode(profile)
        self.check_profile(profile)
        self._room_to_write()
        return self.captions.start(order, profile)

    scan = staticmethod(planning.scan_path)

    def create_run(self, input_path: str, recursive: bool, prompt: str,
                   overrides: dict[str, Any] | None = None) -> tuple[str, int]:
        """Store a run with one task per image found (stored profile + `overrides`) and start it; return (id, count)."""
        run_id, count, _ = self.start_run(RunSpec(input_path=input_path, recursive=recursive, prompt=prompt), overrides)
        return run_id, count

    def start_run(self, spec: RunSpec, overrides: dict[str, Any] | None = None,
                  pilot: int | None = None, budget: float | None = None) -> tuple[str, int, dict[str, Any]]:
        """Make the tasks `spec` describes (edit, generate or table), store the run and start it.

        Every source is checked before anything is stored or sent: a bad row, a missing sidecar
        or reference, or a task with more input images than the profile's mode takes refuses
        the whole run, each one listed. With `pilot` N, only N tasks spread over the
        run are queued and the rest are held until `release_pilot`. With `budget`, the run pauses before a call
        that could spend more. Return (run id, task count, notes).
        """
        profile = self.profile_for(overrides)
        self.check_profile(profile)
        check_budget(profile, budget)
        self._room_to_write()
        plan = self.plan(spec)
        planning.check_image_counts(plan, profile)
        count = len(plan.tasks)
        held = frozenset(range(count)) - frozenset(pilot_sample(count, pilot)) if pilot else frozenset()
        run_id = self.store.create_run(plan.input_path, spec.recursive, plan.prompt, profile.to_dict(mask_key=False),
                                       plan.tasks, mode=spec.mode, spec=plan.spec, held=held)
        if budget is not None:
            self.store.set_run_budget(run_id, budget)
        self._enqueue(run_id, self.store.task_ids(run_id, ["pending"]), profile)
        return run_id, count, {**plan.notes, "held": len(held)} if pilot else plan.notes

    plan = staticmethod(planning.plan_run)
    preview_sources = staticmethod(planning.preview_sources)

    @_one_control_at_a_time
    def continue_from(self, result_id: str, prompt: str | None = None,
                      overrides: dict[str, Any] | None = None) -> str:
        """Queue a new task whose source is a result, for a second adjustment; return its id.

        It is appended to the result's run: the chain stays in the grid, the save and the export
        it started from, and runs with the run's profile.
        """
        result = self.store.result(result_id)
        if result is None:
            raise NotFound(say("engine.no_result", result_id=result_id))
        parent = self.store.task(result.task_id)
        if parent is None:
            raise NotFound(say("engine.no_task", task_id=result.task_id))
        prompt = parent.prompt if prompt is None else prompt
        if not prompt.strip():
            raise EngineError(say("engine.prompt_empty"))
        self._room_to_write()
        try:
            path = self.cache.path(result.sha256, result.format)
        except FileNotFoundError:
            raise EngineError(say("engine.result_image_gone")) from None
        run_id = parent.run_id
        task, origin = self._continuation(parent, result, str(path), prompt)
        profile = self._use_overrides(run_id, overrides)
        task_id = self.store.append_task(run_id, task, source_sha=result.sha256, parent=origin)
        self._enqueue(run_id, [task_id], profile)
        return task_id

    def _continuation(self, parent: TaskRecord, result: ResultRecord, path: str,
                      prompt: str) -> tuple[NewTask, dict[str, Any]]:
        """Name the continuation `<root>_step<N>` (unique in the run) and say where it came from."""
        before = parent.parent or {}
        root = before.get("root") or parent.output_name or PurePosixPath(parent.source_name).stem
        step = before.get("step", 1) + 1
        taken = {PurePosixPath(t.source_name).stem.casefold()
                 for t in self.store.tasks_since(parent.run_id, q=f"{root}_step").tasks}
        name = f"{root}_step{step}"
        suffix = 2
        while name.casefold() in taken:
            name, suffix = f"{root}_step{step}-{suffix}", suffix + 1
        number = next(n for n, r in enumerate(parent.results, start=1) if r.id == result.id)
        origin = {"task_id": parent.id, "result_id": result.id, "name": parent.source_name,
                  "number": number, "step": step, "root": root}
        task = NewTask(name + EXTENSION[result.format], path, prompt=prompt, output_name=name,
                       overrides=parent.overrides or None)
        return task, origin

    def is_running(self, run_id: str) -> bool:
        """Return True while a run has tasks queued or in flight."""
        return self._scheduler is not None and (run_id in self._scheduler.busy or run_id in self._batches.busy)

    def cooling(self, run_id: str) -> dict[str, Any] | None:
        """What holds a run back (a rate-limit cooldown, or why it paused itself), or None.

        Plain reads of loop-owned state, like `is_running`: safe from any thread.
        """
        return self._scheduler.cooling(run_id) or self._batches.cooling(run_id) if self._scheduler is not None else None

    def keys(self, run_id: str) -> list[dict[str, Any]]:
        """A run's keys (masked) with their calls, errors and state since the server started; plain reads too."""
        return self._scheduler.keys(run_id) if self._scheduler is not None else []

    @_one_control_at_a_time
    def stop_run(self, run_id: str) -> int:
        """Stop one run: queued tasks and in-flight calls become stopped; return how many."""
        self._require_run(run_id)
        return sum(self._bridge.call(_all(functools.partial(self._scheduler.stop, run_id),
                                          functools.partial(self._batches.stop, run_id)),
                                     timeout=STOP_TIMEOUT_S))

    @_one_control_at_a_time
    def stop_all(self) -> int:
        """Stop every run."""
        return sum(self._bridge.call(_all(self._scheduler.stop_all, self._batches.stop_all), timeout=STOP_TIMEOUT_S))

    @_one_control_at_a_time
    def resume(self, run_id: str, overrides: dict[str, Any] | None = None) -> int:
        """Queue a run's pending and stopped tasks again (with the overridden profile, if any); return how many."""
        self._require_run(run_id)
        self._room_to_write()
        profile = self._use_overrides(run_id, overrides)
        ids = self.store.task_ids(run_id, ["pending", "stopped"]) + self._stranded(run_id)
        self.store.set_status(ids, "pending", only_from=("pending", "stopped", "running"))
        return self._enqueue(run_id, ids, profile)

    def _stranded(self, run_id: str) -> list[str]:
        """Tasks recorded running that nothing runs: their stop could not be written (a read-only data folder)."""
        running = self.store.task_ids(run_id, ["running"])
        if not running:
            return []
        busy = self._bridge.call(self._on_loop_call(self._scheduler.in_flight, run_id))
        busy |= self.store.waiting_in_batches(run_id)  # the provider has them
        return [task_id for task_id in running if task_id not in busy]

    @_one_control_at_a_time
    def retry_failed(self, run_id: str, overrides: dict[str, Any] | None = None) -> int:
        """Queue a run's failed tasks again, results kept (with the overridden profile, if any); return how many."""
        self._require_run(run_id)
        self._room_to_write()
        profile = self._use_overrides(run_id, overrides)
        ids = self.store.task_ids(run_id, ["failed"])
        self.store.set_status(ids, "pending", only_from=("failed",))
        return self._enqueue(run_id, ids, profile)

    @_one_control_at_a_time
    def release_pilot(self, run_id: str, prompt: str | None = None,
                      overrides: dict[str, Any] | None = None) -> dict[str, int]:
        """Queue a pilot run's held tasks, with an edited prompt and profile if given; return `queued` and `prompted`.

        The prompt goes to the held tasks that use the run's prompt; tasks with a prompt of their
        own (a sidecar caption, a table row, the prompt's variables) keep it. The pilot's tasks
        are not queued again. Conflict when nothing is held.
        """
        run = self.store.run(run_id)
        if run is None:
            raise NotFound(say("engine.no_run", run_id=run_id))
        held, plain = self.store.held_count(run_id)
        if not held:
            raise Conflict(say("engine.no_held_tasks"))
        if prompt is not None:
            if not prompt.strip():
                raise EngineError(say("engine.prompt_field_empty"))
            if prompt != run.prompt and not plain:
                raise EngineError(say("engine.prompt_cannot_change"))
        self._room_to_write()
        profile = self._use_overrides(run_id, overrides)
        released = self.store.release_held(run_id, prompt)
        queued = self._enqueue(run_id, released["ids"], profile)
        return {"queued": queued, "prompted": released["prompted"]}

    @_one_control_at_a_time
    def retry_task(self, task_id: str, keep_results: bool = True, overrides: dict[str, Any] | None = None,
                   prompt: str | None = None) -> None:
        """Queue one task again, keeping or clearing its results, with a new prompt if given; Conflict while it is running.

        The new prompt stays the task's prompt; each result keeps the prompt that made it.
        """
        task = self.store.task(task_id)
        if task is None:
            raise NotFound(say("engine.no_task", task_id=task_id))
        if task.status == "running":
            raise Conflict(say("engine.task_running"))
        if prompt is not None and not prompt.strip():
            raise EngineError(say("engine.prompt_empty"))
        self._room_to_write()
        profile = self._use_overrides(task.run_id, overrides)
        if prompt is not None and prompt != task.prompt:
            self.store.set_task_prompt(task_id, prompt)
            self.held.release(task_id)  # an answer held for the old prompt is not what is asked now
        if not keep_results:
            self._release(self.store.clear_results(task_id))
            self.held.release(task_id)  # a fresh start: a new call
        if task.status != "pending":
            self.store.set_status([task_id], "pending")
        self._enqueue(task.run_id, [task_id], profile)

    @_one_control_at_a_time
    def set_budget(self, run_id: str, budget: float | None) -> None:
        """Set (None: remove) the most a run may spend; a running run follows at once, a paused one on resume."""
        self._require_run(run_id)
        check_budget(self._stored_profile(run_id), budget)
        self.store.set_run_budget(run_id, budget)
        limit = self._budget(run_id, self._stored_profile(run_id))
        self._bridge.call(self._on_loop_call(self._scheduler.set_budget, run_id, limit))

    def _budget(self, run_id: str, profile: ApiProfile) -> Budget | None:
        """Return a run's budget with what it spent so far (from the store), or None when it has none."""
        limit = self.store.run_budget(run_id)
        if limit is None:
            return None
        spend = self.store.run_spend(run_id)
        history = self.store.call_history(profile.api_url, profile.model)
        hint = estimate([profile.n or 1], profile.prices, history)["cost"]
        return Budget(limit, spend["currency"], spent=spend["cost"] or 0.0, priced=spend["cost_known"], hint=hint)

    def set_concurrency(self, run_id: str, concurrency: int) -> None:
        """Change a run's concurrency; a running run follows at once."""
        self._require_run(run_id)
        low, high = CONCURRENCY.low, CONCURRENCY.high
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not low <= concurrency <= high:
            raise EngineError(say("engine.concurrency_range", low=low, high=high))
        self._use_profile(run_id, ApiProfile.from_dict({"concurrency": concurrency}, base=self._stored_profile(run_id)))

    # -- deleting -----------------------------------------------------------------------------

    @_one_control_at_a_time
    def delete_task(self, task_id: str) -> None:
        """Delete a task (cancelling it first if it is in flight) and free its files."""
        run_id = self.store.task_run(task_id)
        if run_id is None:
            raise NotFound(say("engine.no_task", task_id=task_id))
        self._bridge.call(self._scheduler.cancel(run_id, task_id), timeout=STOP_TIMEOUT_S)
        self._release(self.store.delete_task(task_id))
        self.held.release(task_id)

    @_one_control_at_a_time
    def delete_run(self, run_id: str) -> None:
        """Stop a run, delete it and free its files (an uploaded folder goes with its last run)."""
        self.stop_run(run_id)
        self.captions.cancel_run(run_id)
        run = self.store.run(run_id)
        self._bridge.call(self._forget(run_id))
        self._release(self.store.delete_run(run_id))
        self.held.release_run(run_id)
        self.flagger.forget_run(run_id)
        if run is not None:
            uploads.remove_if_unused(self.folder.path, run.input_path, self.store)

    def delete_result(self, result_id: str) -> None:
        """Delete one result and free its file when nothing else uses it."""
        freed = self.store.delete_result(result_id)
        if freed is None:
            raise NotFound(say("engine.no_result", result_id=result_id))
        self._release([freed])

    # -- helpers (caller's thread) --------------------------------------------------------------

    def _room_to_write(self) -> None:
        """Start nothing while the data folder cannot take the results: StorageFault (507) says why.

        Taking the folder's reserve back is the test: it fails while the disk is still full.
        """
        self.folder.check()
        self.folder.take_reserve()

    def _require_run(self, run_id: str) -> None:
        if self.store.run(run_id) is None:
            raise NotFound(say("engine.no_run", run_id=run_id))

    def _release(self, freed: list[tuple[str, str]]) -> None:
        for sha256, fmt in freed:
            self.cache.release(sha256, fmt, self.store.is_referenced)

    def _stored_profile(self, run_id: str) -> ApiProfile:
        stored = self.store.run_profile(run_id)
        if not stored:
            raise NotFound(say("engine.no_run", run_id=run_id))  # deleted meanwhile
        try:
            return ApiProfile.from_dict(stored)
        except ProfileError as exc:  # a run stored before input was checked at the door
            raise EngineError(say("engine.stored_profile_unusable", reason=told(exc))) from None

    def _use_overrides(self, run_id: str, overrides: dict[str, Any] | None) -> ApiProfile | None:
        """With overrides, make the stored profile plus them the run's profile from now on; return it."""
        if overrides is None:
            return None
        profile = self.profile_for(overrides)
        self._use_profile(run_id, profile)
        return profile

    def _use_profile(self, run_id: str, profile: ApiProfile) -> None:
        """Make `profile` the run's profile for every call that starts from now on (stored for resume)."""
        self.check_profile(profile)
        self.store.set_run_profile(run_id, profile.to_dict(mask_key=False))
        self._bridge.call(self._on_loop_call(self._scheduler.use_profile, run_id, profile))

    def _enqueue(self, run_id: str, task_ids: list[str], profile: ApiProfile | None) -> int:
        if not task_ids and not self._batches.on_hold(run_id):
            return 0
        profile = profile or self._stored_profile(run_id)  # used only when the run is not queued yet
        if profile.delivery == "batch":  # even with nothing to queue, it ends a stop or a pause of its batches
            return self._bridge.call(self._on_loop_call(self._batches.enqueue, run_id, task_ids, profile))
        budget = self._budget(run_id, profile)
        if not self.is_running(run_id):
            self.store.mark_run_started(run_id)  # the rate and ETA count from here
        return self._bridge.call(self._on_loop_call(self._scheduler.enqueue, run_id, task_ids, profile, budget))

    async def _forget(self, run_id: str) -> None:
        self._scheduler.forget(run_id)
        self._batches.forget(run_id)

    @staticmethod
    async def _on_loop_call(func: Callable[..., Any], *args: Any) -> Any:
        return func(*args)


async def _all(*calls: Callable[[], Any]) -> list[Any]:
    """Run the coroutine functions together on the loop (made there, so a refused call leaves none unawaited)."""
    return list(await asyncio.gather(*(call() for call in calls)))
