"""Where a task's slot time goes: per-phase timestamps of the engine under the throughput load.

    python -m bench.phases [--tasks 1000] [--side 128]

Runs the minimal client, then the engine (in this process, without Flask or polling) against the
bench's fake gateway in its own process, with the throughput figure's workload, and prints the
median and mean time of each phase of a task: slot given → call sent (`exec → send`), the HTTP
exchange, the slot freed once the answer is read, the image checks, and the task recorded. It
wraps a few of the engine's internals to take the timestamps, so it follows the code it
measures: a diagnostic, not a figure
(`python -m bench --only throughput` is the figure). It found that a freed slot waited 15–40 ms
for the start transaction at every wave's end.
"""

from __future__ import annotations

import argparse
import bisect
import os
import contextvars
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from console.cache import ImageCache
from console.config import ConfigStore
from console.engine import Engine
from console.engine import tasks as engine_tasks
from console.settings import resolve
from console.store import Store
from console.upstream import client as upstream_client

from . import minimal_client
from .fake_server import FakeProcess
from .harness import make_photo_sources

CONCURRENCY, LATENCY = 32, 0.5
PHASES = (("exec", "send", "slot given → call sent"), ("send", "http_end", "call sent → answer read"),
          ("http_end", "freed", "answer read → slot freed"), ("http_end", "checked", "answer read → images checked and cached"),
          ("checked", "end", "images cached → task recorded"), ("exec", "freed", "slot held"))

_marks: dict[str, dict[str, float]] = {}
_task: contextvars.ContextVar[str] = contextvars.ContextVar("task")


def _mark(name: str, task_id: str | None = None) -> None:
    _marks.setdefault(task_id or _task.get(), {}).setdefault(name, time.perf_counter())


def _wrap() -> None:
    """Take timestamps around the engine's task runner and the client's send, read and check steps."""
    run, send = engine_tasks.TaskRunner.run, upstream_client.UpstreamClient.send
    read, check = upstream_client.UpstreamClient._send, upstream_client.UpstreamClient._materialize

    async def timed_run(self: Any, state: Any, task_id: str, prepared: Any, slot: Any) -> Any:
        _task.set(task_id)
        _mark("exec")
        free = slot._free_call  # the call's place: freed once the answer is read
        slot._free_call = lambda: (_mark("freed", task_id), free())
        try:
            return await run(self, state, task_id, prepared, slot)
        finally:
            _mark("end")

    async def timed_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        _mark("send")
        return await send(self, *args, **kwargs)

    async def timed_read(self: Any, *args: Any, **kwargs: Any) -> Any:
        answer = await read(self, *args, **kwargs)
        _mark("http_end")
        return answer

    async def timed_check(self: Any, *args: Any, **kwargs: Any) -> Any:
        images = await check(self, *args, **kwargs)
        _mark("checked")
        return images

    engine_tasks.TaskRunner.run = timed_run
    upstream_client.UpstreamClient.send = timed_send
    upstream_client.UpstreamClient._send = timed_read
    upstream_client.UpstreamClient._materialize = timed_check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--side", type=int, default=128, help="source side in px (results: 256 for 128, else the same)")
    parser.add_argument("--engine-only", action="store_true",
                        help="time the minimal client on the warm-up folder only (e.g. to attach strace to the engine)")
    args = parser.parse_args()
    result_side = 256 if args.side == 128 else args.side
    ideal = args.tasks * LATENCY / CONCURRENCY
    _wrap()
    root = Path(tempfile.mkdtemp(prefix="ibc-phases-"))
    try:
        with FakeProcess() as fake:
            folder = make_photo_sources(root / "src", args.tasks, args.side)
            warm = make_photo_sources(root / "warm", CONCURRENCY, args.side)
            url = fake.url(f"latency_jpeg.s={LATENCY:g}.side={result_side}.unique=1", "/v1/chat/completions")
            minimal_client.run(url, warm, root / "warm-out", CONCURRENCY)
            start = os.times()
            minimal = minimal_client.run(url, folder if not args.engine_only else warm, root / "minimal-out", CONCURRENCY)
            end = os.times()
            data = root / "data"
            data.mkdir()
            engine = Engine(Store(data / "console.db"), ImageCache(data, 168, 1 << 34),
                            resolve({"APP_DATA_DIR": str(data)}), ConfigStore(data))
            engine.start()
            try:
                profile = {"api_url": url, "model": "m", "allow_private_api": True, "max_retries": 0,
                           "concurrency": CONCURRENCY}
                _run(engine, str(warm), profile, CONCURRENCY)
                _marks.clear()
                before = os.times()
                wall = _run(engine, str(folder), profile, args.tasks)
                after = os.times()
            finally:
                engine.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"minimal client {minimal.wall_s:.2f} s ({minimal.wall_s / ideal:.3f}× ideal); engine {wall:.2f} s "
          f"({wall / ideal:.3f}× ideal); engine / minimal {wall / minimal.wall_s:.3f}")
    per_task = lambda a, b, field: (getattr(b, field) - getattr(a, field)) / args.tasks * 1000  # noqa: E731
    print(f"  CPU per task (user / system): minimal client {per_task(start, end, 'user'):.1f} / "
          f"{per_task(start, end, 'system'):.1f} ms; engine {per_task(before, after, 'user'):.1f} / "
          f"{per_task(before, after, 'system'):.1f} ms")
    for start, end, label in PHASES:
        spans = [m[end] - m[start] for m in _marks.values() if start in m and end in m]
        print(f"  {label:<42} median {statistics.median(spans) * 1000:7.2f} ms   mean {statistics.mean(spans) * 1000:7.2f} ms")
    freed = sorted(m["freed"] for m in _marks.values() if "freed" in m)
    given = sorted(m["exec"] for m in _marks.values() if "exec" in m)
    gaps = [given[i] - t for t in freed if (i := bisect.bisect_left(given, t)) < len(given)]
    print(f"  {'slot freed → next slot given':<42} median {statistics.median(gaps) * 1000:7.2f} ms   "
          f"mean {statistics.mean(gaps) * 1000:7.2f} ms")
    return 0


def _run(engine: Engine, folder: str, profile: dict[str, Any], tasks: int) -> float:
    started = time.perf_counter()
    run_id, _ = engine.create_run(folder, False, "make it blue", profile)
    finished = lambda: (lambda p: p["done"] + p["failed"])(engine.store.progress(run_id))  # noqa: E731
    while finished() < tasks - CONCURRENCY:  # slowly, as the bench polls; finely near the end
        time.sleep(0.25)
    while finished() < tasks:
        time.sleep(0.01)
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
