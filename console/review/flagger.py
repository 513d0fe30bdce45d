"""The flagger: one background thread that looks at every stored result once and records its flags.

The engine wakes it when a task stores results, the web layer when a run is opened (results
stored before flags existed, or while the console was down, are looked at then). It works run by
run through the store's unchecked results, so nothing is lost to a crash: a result not yet
recorded is simply looked at again. Decoding is done by Pillow in C without the GIL, so the
engine's loop keeps its pace; the Python left per result is a few hundred microseconds.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..messages import say
from .judge import Twins, judge, requested_aspect
from .look import MARK_BYTES, Look, Mark, look_at

if TYPE_CHECKING:
    from ..cache import ImageCache
    from ..records import UncheckedResult
    from ..store import Store

log = logging.getLogger(__name__)
BATCH = 64  # results read from the store at a time
RUNS_KEPT = 4  # near-duplicate indexes kept in memory (a run's is rebuilt from the store when needed)
SOURCES_KEPT = 64  # source looks kept (a task's results share its source)
RETRY_AFTER_S = 30.0  # after a failed write (a full disk): the results stay unchecked until then


class Flagger:
    """Look at results in the background (see the module docstring)."""

    def __init__(self, store: "Store", cache: "ImageCache", *, enabled: bool = True) -> None:
        self.store, self.cache = store, cache
        self.enabled = enabled  # off (REVIEW_FLAGS=0): results stay unchecked, nothing is decoded
        self._wanted: OrderedDict[str, None] = OrderedDict()
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._twins: OrderedDict[str, Twins] = OrderedDict()
        self._sources: OrderedDict[str, tuple[Look | None, Mark | None]] = OrderedDict()
        self._idle = threading.Event()
        self._idle.set()

    def start(self) -> None:
        """Start the thread (runs are queued when they store results or are opened, not at start:
        a console with many old runs starts as fast as ever)."""
        if self.enabled:
            self._thread = threading.Thread(target=self._work, name="flagger", daemon=True)
            self._thread.start()

    def wake(self, run_id: str) -> None:
        """Queue a run whose results may need a look (cheap; call it as often as results arrive)."""
        if not self.enabled or self._closed:
            return
        with self._wake:
            self._wanted[run_id] = None
            self._idle.clear()
            self._wake.notify()

    def forget_run(self, run_id: str) -> None:
        """Drop what is kept of a deleted run."""
        with self._wake:
            self._wanted.pop(run_id, None)
            self._twins.pop(run_id, None)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued run was looked at (tests and benchmarks); True unless it timed out."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop the thread (results left unchecked are looked at next time)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- the thread ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._wanted and not self._closed:
                    self._idle.set()
                    self._wake.wait()
                if self._closed:
                    self._idle.set()
                    return
                run_id, _ = self._wanted.popitem(last=False)
            try:
                self._look_at_run(run_id)
            except Exception as exc:  # a full disk or a gone folder: try again later, never stop
                if self._closed:  # the store is being closed under us: nothing to retry
                    continue
                log.warning("review flags: run %s could not be looked at (%s); trying again in %.0f s",
                            run_id, exc, RETRY_AFTER_S)
                retry = threading.Timer(RETRY_AFTER_S, self.wake, (run_id,))
                retry.daemon = True  # a pending retry must never hold the process at exit
                retry.start()

    def _look_at_run(self, run_id: str) -> None:
        run = self.store.run(run_id)
        if run is None:
            return
        size = (self.store.run_profile(run_id) or {}).get("size")
        while not self._closed:
            batch = self.store.unchecked_results(run_id, BATCH)
            if not batch:
                return
            twins = self._run_twins(run_id)
            looked = {result.id: self._look_at(result, twins, size) for result in batch}
            duplicates = []  # earlier results that this batch found a copy of
            for result in batch:
                flags, _, twin = looked[result.id]
                if twin is None:
                    continue
                reason = say("review.near_duplicate", number=result.index + 1, name=result.source_name)
                if twin in looked:  # in this batch, not written yet
                    looked[twin][0].setdefault("near_duplicate", reason)
                elif twin not in twins.duplicated:
                    duplicates.append((twin, reason))
                twins.duplicated.add(twin)
            # One transaction per batch: the engine's writes wait for the store's lock far less.
            self.store.record_flags([(result_id, flags, mark) for result_id, (flags, mark, _) in looked.items()],
                                    duplicates)

    def _look_at(self, result: UncheckedResult, twins: Twins, size: str | None) -> tuple[dict[str, str], bytes | None, str | None]:
        """Return a result's flags, its stored mark, and the id of an earlier result it duplicates."""
        try:
            look = look_at(self.cache.path(result.sha256, result.format))
        except Exception as exc:  # gone from the cache, or undecodable: nothing to judge, never again
            log.info("review flags: result %s not looked at (%s)", result.id, exc)
            return {}, None, None
        source, source_mark = self._source(result)
        overrides = result.overrides
        try:
            flags = judge(look, source, requested_aspect(overrides.get("size") or size))
        except Exception:  # a bug must not hold back the run's other results
            log.exception("review flags: result %s could not be judged", result.id)
            return {}, None, None
        if "blank" in flags:  # a blank frame is flagged as such, not as a copy of the others
            return flags, None, None
        mark = Mark.of(look)
        twin = self._twin(twins, mark, source_mark)
        if twin is not None:
            index, name, other = twin
            flags["near_duplicate"] = say("review.near_duplicate", number=index + 1, name=name)
        twins.add(result.id, mark, source_mark)
        if twin is not None:
            twins.duplicated.add(result.id)
        return flags, mark.to_bytes() + (source_mark.to_bytes() if source_mark else b""), twin and twin[2]

    def _twin(self, twins: Twins, mark: Mark, source: Mark | None) -> tuple[int, str, str] | None:
        """Return (task index, source name, result id) of an earlier result this one duplicates, skipping deleted ones."""
        while True:
            other = twins.find(mark, source)
            if other is None:
                return None
            place = self.store.result_place(other)  # read each time: the twin may have been deleted since
            if place is not None:
                return (*place, other)
            twins.forget(other)

    def _source(self, result: UncheckedResult) -> tuple[Look | None, Mark | None]:
        """Return the look of a result's task source (None in generate mode, or when it cannot be read)."""
        path = result.source_path
        if not path:
            return None, None
        key = result.task_id
        if key in self._sources:
            self._sources.move_to_end(key)
            return self._sources[key]
        try:
            look = look_at(path)
            found: tuple[Look | None, Mark | None] = (look, Mark.of(look))
        except Exception as exc:  # moved or deleted since the run: judge the result alone
            log.info("review flags: source %s not read (%s)", path, exc)
            found = (None, None)
        self._sources[key] = found
        if len(self._sources) > SOURCES_KEPT:
            self._sources.popitem(last=False)
        return found

    def _run_twins(self, run_id: str) -> Twins:
        """Return the run's near-duplicate index, rebuilt from the stored marks when not in memory."""
        twins = self._twins.get(run_id)
        if twins is None:
            twins = Twins()
            for result_id, data in self.store.run_marks(run_id):
                mark = Mark.from_bytes(data)
                source = Mark.from_bytes(data[MARK_BYTES:]) if len(data) > MARK_BYTES else None
                twins.add(result_id, mark, source)
            self._twins[run_id] = twins
            if len(self._twins) > RUNS_KEPT:
                self._twins.popitem(last=False)
        else:
            self._twins.move_to_end(run_id)
        return twins
