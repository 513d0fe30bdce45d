"""The figures of `python -m bench` (DESIGN §8). Each takes a Config and returns table rows."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from bench import big_payload
from bench.page import page_figures
from bench.harness import CHAT, Row, Servers, Workspace, make_sources, median
from console.settings import resolve
from tests.fake_upstream import FakeUpstream, big_png


@dataclass
class Config:
    quick: bool = False

    @property
    def repeat(self) -> int:
        return 1 if self.quick else 3


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.2f} s"


def _spread(values: list[float], fmt=lambda v: f"{v:.3f}") -> str:
    return "runs: " + ", ".join(fmt(v) for v in values)


# --------------------------------------------------------------------------- 1 + 2: throughput, CPU per task


def throughput(cfg: Config) -> list[Row]:
    """1,000 tasks (200 with --quick), concurrency 32, 0.5 s latency: wall / ideal, and server CPU s per task."""
    tasks, concurrency, latency = (224 if cfg.quick else 1000), 32, 0.5
    ideal = tasks * latency / concurrency
    ratios, cpu_per_task, walls = [], [], []
    with Workspace() as root, FakeUpstream() as fake, Servers(root) as servers:
        folder = make_sources(root / "src", tasks)
        server = servers.start()
        url = fake.url(f"latency.s={latency:g}", CHAT)
        for _ in range(cfg.repeat):
            fake.reset()
            cpu0 = server.cpu_seconds()
            start = time.monotonic()
            run_id = server.start_run(folder, url, concurrency)
            # Poll slowly (the polling costs server CPU), then finely near the end for an exact wall time.
            server.wait_progress(run_id, lambda p: p["done"] + p["failed"] >= tasks - concurrency,
                                 timeout=ideal * 4 + 30, interval=0.25)
            progress = server.wait_progress(run_id, lambda p: p["done"] + p["failed"] >= tasks, timeout=60, interval=0.01)
            wall = time.monotonic() - start
            cpu1 = server.cpu_seconds()
            if progress["done"] != tasks:
                raise RuntimeError(f"throughput run ended with {progress}")
            walls.append(wall)
            ratios.append(wall / ideal)
            cpu_per_task.append((cpu1 - cpu0) / tasks)
            server.http.delete(f"/api/runs/{run_id}")
    ratio = median(ratios)
    cpu = median(cpu_per_task)
    return [
        Row(f"throughput: {tasks} tasks, c={concurrency}, {latency:g} s latency (wall / ideal {ideal:.2f} s)",
            f"{ratio:.3f}", "≤ 1.10", ratio <= 1.10,
            f"median wall {median(walls):.2f} s; {_spread(ratios)}; max in flight {fake.max_in_flight}"),
        Row("server CPU per task in that run (user + sys)", f"{cpu * 1000:.1f} ms", "—", None,
            f"{_spread(cpu_per_task, lambda v: f'{v * 1000:.1f}')} ms; "
            f"= {cpu * concurrency / latency * 100:.0f} % of one core at c={concurrency}"),
    ]


# --------------------------------------------------------------------------- 3: big payload


def big_payload_figure(cfg: Config) -> list[Row]:
    """A 24 MB single-line data URL through the real server (POST → task done), and in-process client."""
    mb = 6.0 if cfg.quick else 24.0
    scenario = f"big_dataurl.mb={mb:g}"
    big_png(mb)  # build the image once, outside the timings
    server_times, client_times = [], []
    with Workspace() as root, FakeUpstream() as fake, Servers(root) as servers:
        folder = make_sources(root / "src", 1)
        server = servers.start()
        url = fake.url(scenario, CHAT)
        for attempt in range(cfg.repeat + 1):  # the first run warms up imports, pools and the cache dir
            start = time.monotonic()
            run_id = server.start_run(folder, url, 1)
            progress = server.wait_progress(run_id, lambda p: p["done"] + p["failed"] >= 1, timeout=60, interval=0.005)
            elapsed = time.monotonic() - start
            if progress["done"] != 1:
                task = server.get(f"/api/runs/{run_id}/tasks").json()["tasks"][0]
                raise RuntimeError(f"big payload task failed: {task['error']}")
            if attempt:
                server_times.append(elapsed)
        settings = resolve({})
        big_payload.through_client(fake, mb, settings)  # warm-up
        for _ in range(cfg.repeat):
            client_times.append(big_payload.through_client(fake, mb, settings))
    s, c = median(server_times), median(client_times)
    return [
        Row(f"big payload: {mb:g} MB data URL via server (POST /api/runs → task done)", _fmt_ms(s), "< 1 s", s < 1.0,
            f"{_spread(server_times)} s; includes the fake encoding the SSE body"),
        Row(f"big payload: {mb:g} MB data URL, in-process client (bench/big_payload)", _fmt_ms(c), "< 1 s", c < 1.0,
            f"{_spread(client_times)} s"),
    ]


# --------------------------------------------------------------------------- 4: stop latency


def stop_latency(cfg: Config) -> list[Row]:
    """64 stalled streams in flight → all tasks stopped and every connection closed at the fake."""
    streams = 64
    times, closes, statuses = [], [], []
    with Workspace() as root, FakeUpstream() as fake, Servers(root) as servers:
        folder = make_sources(root / "src", streams)
        server = servers.start()
        url = fake.url("stall", CHAT)
        for _ in range(cfg.repeat):
            run_id = server.start_run(folder, url, streams)
            deadline = time.monotonic() + 30
            while fake.in_flight < streams:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {fake.in_flight} streams in flight")
                time.sleep(0.01)
            time.sleep(0.2)  # let every stream settle into its stall
            start = time.monotonic()
            answer = server.post(f"/api/runs/{run_id}/stop")
            closed = fake.wait_for_connections(0, timeout=10)
            closed_at = time.monotonic() - start
            while True:
                progress = server.progress(run_id)
                if progress["stopped"] == streams:
                    break
                if time.monotonic() - start > 10:
                    break
                time.sleep(0.005)
            elapsed = time.monotonic() - start
            if not closed or progress["stopped"] != streams:
                raise RuntimeError(f"stop incomplete: closed={closed} progress={progress} answer={answer.text}")
            times.append(max(elapsed, closed_at))
            closes.append(closed_at)
            statuses.append(progress["stopped"])
            server.http.delete(f"/api/runs/{run_id}")
    t = median(times)
    return [Row(f"stop: {streams} stalled streams → all stopped and closed", _fmt_ms(t), "< 1 s", t < 1.0,
                f"{_spread(times)} s; connections closed after {_spread(closes)} s")]


# --------------------------------------------------------------------------- 5: incremental listing


def incremental_listing(cfg: Config) -> list[Row]:
    """A 10,000-task run (stall, concurrency 1, then stopped): GET tasks?since=<current rev>."""
    tasks = 2000 if cfg.quick else 10_000
    queries = 30 if cfg.quick else 100
    with Workspace() as root, FakeUpstream() as fake, Servers(root) as servers:
        folder = make_sources(root / "src", tasks)
        server = servers.start()
        start = time.monotonic()
        run_id = server.start_run(folder, fake.url("stall", CHAT), 1)
        created = time.monotonic() - start
        deadline = time.monotonic() + 30
        while fake.in_flight < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.post(f"/api/runs/{run_id}/stop")
        server.wait_progress(run_id, lambda p: p["running"] == 0, timeout=10)
        full_start = time.monotonic()
        full = server.get(f"/api/runs/{run_id}/tasks")
        full_s = time.monotonic() - full_start
        rev = full.json()["rev"]
        sizes, times = [], []
        for _ in range(queries):
            t0 = time.perf_counter()
            answer = server.get(f"/api/runs/{run_id}/tasks", params={"since": rev})
            times.append(time.perf_counter() - t0)
            sizes.append(len(answer.content))
            if answer.status_code != 200 or answer.json()["tasks"]:
                raise RuntimeError(f"since query changed: {answer.status_code} {answer.text[:200]}")
    size, t = median(sizes), median(times)
    return [
        Row(f"incremental listing: {tasks} tasks, since=<current rev> (bytes)", f"{size:.0f} B", "< 1 KB", size < 1024,
            f"full listing {len(full.content) / 1e6:.1f} MB in {full_s:.2f} s"),
        Row(f"incremental listing: {tasks} tasks, since=<current rev> (time)", f"{t * 1000:.1f} ms", "< 50 ms", t < 0.05,
            f"median of {queries} (HTTP round trip); p90 {statistics.quantiles(times, n=10)[-1] * 1000:.1f} ms; "
            f"run created in {created:.2f} s"),
    ]


# --------------------------------------------------------------------------- 6: memory


def memory(cfg: Config) -> list[Row]:
    """Server RSS after 500 and after 5,000 tasks of one run (0.02 s latency, concurrency 32)."""
    first, tasks = (200, 2000) if cfg.quick else (500, 5000)
    with Workspace() as root, FakeUpstream() as fake, Servers(root) as servers:
        folder = make_sources(root / "src", tasks)
        server = servers.start()
        start = time.monotonic()
        run_id = server.start_run(folder, fake.url("latency.s=0.02", CHAT), 32)
        progress = server.wait_progress(run_id, lambda p: p["done"] + p["failed"] >= first, timeout=300, interval=0.02)
        rss_first, at_first, fds_first = server.rss_bytes(), progress["done"] + progress["failed"], server.open_fds()
        progress = server.wait_progress(run_id, lambda p: p["done"] + p["failed"] >= tasks, timeout=600, interval=0.25)
        elapsed = time.monotonic() - start
        time.sleep(0.5)  # let the last writes settle
        rss_end, fds_end = server.rss_bytes(), server.open_fds()
        polls = server.polls
        if progress["done"] != tasks:
            raise RuntimeError(f"memory run ended with {progress}")
    growth = rss_end / rss_first - 1
    return [Row(f"memory: server RSS after {first} vs {tasks} tasks", f"{growth * 100:+.1f} %", "≤ +20 %", growth <= 0.20,
                f"{rss_first / 2**20:.1f} MiB at {at_first} done → {rss_end / 2**20:.1f} MiB at {tasks}; "
                f"run took {elapsed:.1f} s ({tasks / elapsed:.0f} tasks/s); server open fds {fds_first} → {fds_end} "
                f"after {polls} HTTP requests")]


# --------------------------------------------------------------------------- 7: start-up


def startup(cfg: Config) -> list[Row]:
    """`python app.py` → a healthy /api/health, median of several cold starts (fresh data dir each)."""
    times = []
    with Workspace() as root, Servers(root) as servers:
        for _ in range(2 if cfg.quick else 5):
            start = time.monotonic()
            server = servers.start()
            while True:
                try:
                    if server.get("/api/health").json().get("ok"):
                        break
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                if time.monotonic() - start > 30:
                    raise RuntimeError("server never became healthy")
                time.sleep(0.01)
            times.append(time.monotonic() - start)
            server.stop()
    t = median(times)
    return [Row("start-up: python app.py → healthy /api/health", _fmt_ms(t), "—", None, f"{_spread(times)} s")]


# --------------------------------------------------------------------------- 8: scan


def scan(cfg: Config) -> list[Row]:
    """POST /api/scan of a folder of 100,000 image files."""
    files = 20_000 if cfg.quick else 100_000
    times = []
    with Workspace() as root, Servers(root) as servers:
        folder = make_sources(root / "src", files)
        server = servers.start()
        for _ in range(cfg.repeat):
            t0 = time.monotonic()
            answer = server.post("/api/scan", {"input_path": str(folder), "recursive": False})
            times.append(time.monotonic() - t0)
            if answer.status_code != 200 or answer.json()["count"] != files:
                raise RuntimeError(f"scan answered {answer.status_code}: {answer.text[:200]}")
    t = median(times)
    return [Row(f"scan: POST /api/scan of {files:,} files", _fmt_ms(t), "< 3 s", t < 3.0, f"{_spread(times)} s")]


FIGURES = {
    "throughput": throughput,
    "big_payload": big_payload_figure,
    "stop": stop_latency,
    "listing": incremental_listing,
    "memory": memory,
    "startup": startup,
    "scan": scan,
    "page": page_figures,
}
