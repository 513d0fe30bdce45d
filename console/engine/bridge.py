"""An asyncio loop in its own thread, with the thread pools its work leaves the loop for."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Coroutine

from ..messages import say
from .errors import Busy

CALL_TIMEOUT_S = 30.0
# The loop hands work to pool threads and back several times per task; with the default 5 ms
# GIL switch interval each hand-off could wait that long (bench: throughput).
SWITCH_INTERVAL_S = 0.001
WORKERS = 8
DB_WORKERS = 2


class LoopBridge:
    """Own the loop thread; let any thread run coroutines on it and the loop run blocking work off it.

    Reading sources, decoding, hashing and file writes go to the work pool; SQLite goes to its own
    small pool, so a task's start never queues behind a wave of image decodes and the loop thread
    never touches the database, which keeps the loop and the stop button responsive under load.
    """

    def __init__(self) -> None:
        self.work = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="console-work")
        self.store_pool = ThreadPoolExecutor(max_workers=DB_WORKERS, thread_name_prefix="console-db")
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None

    def start(self, on_loop: Callable[[], None]) -> None:
        """Start the loop thread, run `on_loop()` on it first, and return once it runs."""
        self._thread = threading.Thread(target=self._main, args=(on_loop,), name="console-engine", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed

    def _main(self, on_loop: Callable[[], None]) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.set_default_executor(self.work)
        try:
            on_loop()
        except BaseException as exc:  # start() raises it in the caller's thread instead of waiting forever
            self._failed = exc
            self.loop.close()
            return
        finally:
            self._ready.set()
        self.loop.run_forever()

    @property
    def running(self) -> bool:
        return self.loop is not None and not self.loop.is_closed()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = CALL_TIMEOUT_S) -> Any:
        """Run a coroutine on the loop from another thread and return its result."""
        if not self.running:
            coro.close()
            raise Busy(say("engine.not_running"))
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Busy(say("engine.no_answer", seconds=timeout)) from None

    def soon(self, func: Callable[..., Any], *args: Any) -> None:
        """Schedule a plain call on the loop from another thread."""
        if self.running:
            self.loop.call_soon_threadsafe(func, *args)

    def off(self, func: Callable[..., Any], *args: Any, **kw: Any) -> asyncio.Future:
        """From the loop: run blocking file or image work in the work pool."""
        return asyncio.get_running_loop().run_in_executor(self.work, functools.partial(func, *args, **kw))

    def db(self, func: Callable[..., Any], *args: Any, **kw: Any) -> asyncio.Future:
        """From the loop: run a store call in the store pool."""
        return asyncio.get_running_loop().run_in_executor(self.store_pool, functools.partial(func, *args, **kw))

    def close(self) -> None:
        """Stop the loop, join its thread and shut the pools down."""
        if not self.running:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread:
            self._thread.join(timeout=10)
        self.loop.close()
        self.work.shutdown(wait=True, cancel_futures=True)
        self.store_pool.shutdown(wait=True, cancel_futures=True)
