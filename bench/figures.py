"""The figures of `python -m bench` (the budgets in docs/development.md). Each takes a Config and returns table rows."""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import big_payload, minimal_client, pyspy
from bench.fake_server import FakeProcess
from bench.page import page_figures
from bench.harness import CHAT, Row, Server, Servers, Workspace, make_photo_sources, make_sources, median
from console.store import Store
from console.web import DB_NAME
from console.settings import resolve
from testkit.fake_upstream import FakeUpstream, big_png


ROOT = Path(__file__).resolve().parent.parent
PROFILE_RATE = 200  # py-spy samples per second


@dataclass
class Config:
    quick: bool = False
    profile: str | None = None  # None, "active", "gil" or "both": py-spy on extra throughput runs

    repeats: int | None = None  # --repeat: overrides the default (3, or 1 with --quick)

    @property
    def repeat(self) -> int:
        return self.repeats or (1 if self.quick else 3)


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.2f} s"


def _spread(values: list[float], fmt=lambda v: f"{v:.3f}") -> str:
    return "runs: " + ", ".join(fmt(v) for v in values)


# --------------------------------------------------------------------------- 1 + 2: throughput, CPU per task

THROUGHPUT_SIZES = ((128, 256), (512, 512))  # (source side, result side) in pixels
SOURCE_SIDE_NOTE = "photo-like PNG sources (~25 KB at 128 px, ~390 KB at 512 px), JPEG q90 results"


def throughput(cfg: Config) -> list[Row]:
    """1,000 tasks (224 with --quick), c=32, 0.5 s latency, fake gateway in its own process; console vs minimal client.

    Per size: a warm-up of one wave for each client, then `repeat` rounds of (minimal client, console)
    in alternating order. The ratios are taken within each round; the medians are reported.
    """
    tasks, concurrency, latency = (224 if cfg.quick else 1000), 32, 0.5
    ideal = tasks * latency / concurrency
    if cfg.profile:
        pyspy.py_spy()  # fail before the timed rounds, not after them
    rows: list[Row] = []
    with Workspace() as root, FakeProcess() as fake, Servers(root) as servers:
        server = servers.start()
        plain = servers.start("noflags", env={"REVIEW_FLAGS": "0"})  # the same console, review flags off
        for source_side, result_side in THROUGHPUT_SIZES:
            label = f"{source_side}→{result_side} px"
            folder = make_photo_sources(root / f"src{source_side}", tasks, source_side)
            warm = make_photo_sources(root / f"warm{source_side}", concurrency, source_side)
            url = fake.url(f"latency_jpeg.s={latency:g}.side={result_side}.unique=1", CHAT)
            for each in (server, plain):
                _console_run(each, fake, warm, url, concurrency, concurrency)  # imports, pools, connections
            minimal_client.run(url, warm, root / "warm-out", concurrency)
            shutil.rmtree(root / "warm-out", ignore_errors=True)
            console, minimal, unflagged = [], [], []
            orders = (("minimal", "console", "plain"), ("console", "plain", "minimal"), ("plain", "minimal", "console"))
            for round_ in range(cfg.repeat):
                for who in orders[round_ % len(orders)]:
                    if who == "console":
                        console.append(_console_run(server, fake, folder, url, tasks, concurrency, flags=True))
                    elif who == "plain":
                        unflagged.append(_console_run(plain, fake, folder, url, tasks, concurrency))
                    else:
                        minimal.append(_minimal_run(fake, folder, url, root / "minimal-out", tasks, concurrency))
                print(f"   {label} round {round_ + 1}: console {console[-1]['wall']:.2f} s "
                      f"({console[-1]['wall'] / ideal:.3f}× ideal), minimal {minimal[-1]['wall']:.2f} s "
                      f"({minimal[-1]['wall'] / ideal:.3f}× ideal), console / minimal "
                      f"{console[-1]['wall'] / minimal[-1]['wall']:.3f}; flags off {unflagged[-1]['wall']:.2f} s; "
                      f"flags done {console[-1]['flag_lag']:.2f} s after the last task; load {_load()}\n"
                      f"      console {console[-1]['timeline']}", file=sys.stderr, flush=True)
            if cfg.profile:
                _profiled_runs(cfg, server, fake, folder, url, tasks, concurrency, label)
            # The ideal is a budget for the first size only: at 512 px even the minimal client is
            # CPU-bound on a 2-core machine (its own 1.13–1.31× ideal, BENCHMARKS.md).
            rows += _throughput_rows(label, tasks, concurrency, latency, ideal, console, minimal,
                                     ideal_budget=source_side == THROUGHPUT_SIZES[0][0])
            rows += _flag_rows(label, tasks, console, minimal, unflagged)
    return rows


def _flag_rows(label: str, tasks: int, console: list[dict], minimal: list[dict], unflagged: list[dict]) -> list[Row]:
    """What the review flags cost a run: the same console with them off, in the same rounds."""
    off = [u["wall"] / m["wall"] for u, m in zip(unflagged, minimal)]
    on_off = [c["wall"] / u["wall"] for c, u in zip(console, unflagged)]
    lag = [c["flag_lag"] for c in console]
    extra = [(c["cpu_flagged"] - c["cpu"]) / tasks for c in console]
    per_task = [c["cpu_flagged"] / tasks for c in console]
    plain_cpu = [u["cpu"] / tasks for u in unflagged]
    return [
        Row(f"throughput {label}: console with review flags off / minimal client", f"{median(off):.3f}", "—", None,
            f"{_spread(off)}; the same rounds as the row above (REVIEW_FLAGS=0, a second server)"),
        Row(f"throughput {label}: review flags on / off (console wall)", f"{median(on_off):.3f}", "—", None,
            f"{_spread(on_off)}; every result flagged {median(lag):.2f} s (median) after the run's last task"),
        Row(f"throughput {label}: server CPU per task with flags, until all are flagged", f"{median(per_task) * 1000:.1f} ms",
            "—", None, f"{_spread(per_task, lambda v: f'{v * 1000:.1f}')} ms; flags off "
            f"{median(plain_cpu) * 1000:.1f} ms; CPU after the last task {median(extra) * 1000:.1f} ms per task"),
    ]


def _load() -> str:
    """The 1-minute load average (other work on the machine skews every figure here)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _console_run(server, fake: FakeProcess, folder, url: str, tasks: int, concurrency: int,
                 flags: bool = False) -> dict[str, float]:
    """One run through the console, polled with GET /api/runs/<id> only; return its figures.

    With `flags`, wait after the run until every result is flagged, and count that time and CPU too.
    """
    fake.reset()
    fake_cpu0, cpu0 = fake.stats()["cpu_s"], server.cpu_seconds()
    start = time.monotonic()
    run_id = server.start_run(folder, url, concurrency)
    created = time.monotonic() - start
    # Poll slowly (the polling costs server CPU), then finely near the end for an exact wall time.
    server.wait_progress(run_id, lambda p: p["done"] + p["failed"] >= tasks - concurrency,
                         timeout=tasks * 0.5 / concurrency * 4 + 30, interval=0.25)
    progress = server.wait_progress(run_id, lambda p: p["done"] + p["failed"] >= tasks, timeout=60, interval=0.01)
    wall = time.monotonic() - start
    cpu = server.cpu_seconds() - cpu0
    stats = fake.stats()
    if progress["done"] != tasks:
        task = next((t for t in server.get(f"/api/runs/{run_id}/tasks").json()["tasks"] if t["error"]), None)
        raise RuntimeError(f"console run ended with {progress}; first error: {task and task['error']}")
    flag_lag, cpu_flagged = 0.0, cpu
    if flags:
        _wait_flagged(server, run_id, timeout=120)
        flag_lag, cpu_flagged = time.monotonic() - start - wall, server.cpu_seconds() - cpu0
    timeline = _timeline(server.data_dir / "console.db", run_id, wall, concurrency)
    server.http.delete(f"/api/runs/{run_id}")
    return {"wall": wall, "cpu": cpu, "fake_cpu": stats["cpu_s"] - fake_cpu0, "created": created,
            "max_in_flight": stats["max_in_flight"], "connections": stats["connections_opened"],
            "timeline": timeline, "flag_lag": flag_lag, "cpu_flagged": cpu_flagged}


def _wait_flagged(server, run_id: str, timeout: float) -> None:
    """Wait until every result of the run was looked at by the flagger (read from its database, not the API)."""
    import sqlite3

    deadline = time.monotonic() + timeout
    database = sqlite3.connect(f"file:{server.data_dir / 'console.db'}?mode=ro", uri=True)
    try:
        while time.monotonic() < deadline:
            left = database.execute("SELECT COUNT(*) FROM results r JOIN tasks t ON t.id = r.task_id "
                                    "WHERE t.run_id = ? AND r.flags IS NULL", (run_id,)).fetchone()[0]
            if not left:
                return
            time.sleep(0.02)
    finally:
        database.close()
    raise RuntimeError(f"run {run_id}: results still unflagged after {timeout:g} s")


def _timeline(db_path, run_id: str, wall: float, concurrency: int) -> str:
    """Where a task's slot time went, from the run's own timestamps (best effort: the schema may change).

    start → call: task marked running → its attempt recorded (read + check the source, build the
    request); call → end: attempt → task finished (upstream latency, reading, decoding, storing);
    slot idle: the slots' time not covered by any task (hand-offs between one task and the next).
    """
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT t.started_at, MIN(a.started_at), t.finished_at FROM tasks t "
                "JOIN attempts a ON a.task_id = t.id WHERE t.run_id = ? GROUP BY t.id", (run_id,)).fetchall()
    except sqlite3.Error as exc:
        return f"timeline unavailable ({exc})"
    if not rows:
        return "timeline unavailable (no attempts)"
    pre = median([attempt - start for start, attempt, _ in rows])
    call = median([end - attempt for _, attempt, end in rows])
    busy = sum(end - start for start, _, end in rows)
    idle = (wall * concurrency - busy) / len(rows)
    return (f"per task (median): start → call {pre * 1000:.1f} ms, call → end {call * 1000:.0f} ms; "
            f"slot idle {idle * 1000:.0f} ms per task (mean)")


def _minimal_run(fake: FakeProcess, folder, url: str, out, tasks: int, concurrency: int) -> dict[str, float]:
    """One run of bench/minimal_client.py in this process; return its figures."""
    fake.reset()
    fake_cpu0 = fake.stats()["cpu_s"]
    outcome = minimal_client.run(url, folder, out, concurrency)
    stats = fake.stats()
    shutil.rmtree(out, ignore_errors=True)
    if outcome.done != tasks:
        raise RuntimeError(f"minimal client: {outcome.done} done, {outcome.failed} failed: {outcome.errors}")
    return {"wall": outcome.wall_s, "cpu": outcome.cpu_s, "fake_cpu": stats["cpu_s"] - fake_cpu0,
            "max_in_flight": stats["max_in_flight"], "connections": stats["connections_opened"]}


def _profiled_runs(cfg: Config, server, fake: FakeProcess, folder, url: str, tasks: int, concurrency: int,
                   label: str) -> None:
    """Extra, untimed console runs with py-spy attached; print and save the summary."""
    modes = ("active", "gil") if cfg.profile == "both" else (cfg.profile,)
    out_dir = ROOT / "bench" / "out"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for mode in modes:
        raw = out_dir / f"throughput-{label.split()[0].replace('→', '-')}-{mode}-{stamp}.raw"
        recorder = pyspy.Recorder(server.pid, raw, rate=PROFILE_RATE, mode=mode)
        time.sleep(0.5)  # py-spy attaches
        started = time.monotonic()
        figures = _console_run(server, fake, folder, url, tasks, concurrency)
        seconds = time.monotonic() - started
        message = recorder.stop()
        if not raw.exists():
            print(f"   py-spy wrote nothing ({message or 'no message'})", file=sys.stderr, flush=True)
            continue
        text = pyspy.report(pyspy.load(raw), seconds, PROFILE_RATE, mode)
        header = (f"== {label}, profiled console run ({mode}): {figures['wall']:.2f} s "
                  f"({figures['wall'] / (tasks * 0.5 / concurrency):.3f}× ideal, not counted); {message}")
        raw.with_suffix(".txt").write_text(header + "\n" + text + "\n")
        print(header, text, f"   (raw stacks: {raw}; summary: {raw.with_suffix('.txt')})", sep="\n",
              file=sys.stderr, flush=True)


def _throughput_rows(label: str, tasks: int, concurrency: int, latency: float, ideal: float,
                     console: list[dict], minimal: list[dict], ideal_budget: bool = True) -> list[Row]:
    walls = [c["wall"] for c in console]
    ratios = [c["wall"] / ideal for c in console]
    base = [m["wall"] / ideal for m in minimal]
    versus = [c["wall"] / m["wall"] for c, m in zip(console, minimal)]
    cpu = [c["cpu"] / tasks for c in console]
    client_cpu = [m["cpu"] / tasks for m in minimal]
    fake_cpu = [c["fake_cpu"] / tasks for c in console]
    ratio, vs = median(ratios), median(versus)
    ms = lambda v: f"{v * 1000:.1f}"  # noqa: E731
    turn = lambda ws: f"{(median(ws) * concurrency / tasks - latency) * 1000:.0f}"  # noqa: E731
    return [
        Row(f"throughput {label}: console wall / ideal ({tasks} tasks, c={concurrency}, {latency:g} s latency, "
            f"ideal {ideal:.2f} s)", f"{ratio:.3f}", "≤ 1.10" if ideal_budget else "—",
            (ratio <= 1.10) if ideal_budget else None,
            f"median wall {median(walls):.2f} s; {_spread(ratios)}; max in flight "
            f"{max(c['max_in_flight'] for c in console)}; {max(c['connections'] for c in console)} TCP connections "
            f"opened; POST /api/runs took "
            f"{median([c['created'] for c in console]) * 1000:.0f} ms; fake gateway in its own process; "
            f"{SOURCE_SIDE_NOTE}"),
        Row(f"throughput {label}: console / minimal client (same run)", f"{vs:.3f}", "≤ 1.05", vs <= 1.05,
            f"{_spread(versus)}; a slot's turnaround beyond the latency (wall × c / tasks − latency): console "
            f"{turn(walls)} ms, minimal {turn([m['wall'] for m in minimal])} ms per task; "
            f"bench/minimal_client.py: httpx, one loop, verify + load, write"),
        Row(f"throughput {label}: minimal client wall / ideal", f"{median(base):.3f}", "—", None,
            f"median wall {median([m['wall'] for m in minimal]):.2f} s; {_spread(base)}; max in flight "
            f"{max(m['max_in_flight'] for m in minimal)}; {max(m['connections'] for m in minimal)} TCP connections "
            f"opened"),
        Row(f"throughput {label}: server CPU per task (user + sys)", f"{median(cpu) * 1000:.1f} ms", "—", None,
            f"{_spread(cpu, ms)} ms; = {median(cpu) * concurrency / latency * 100:.0f} % of one core at "
            f"c={concurrency}; minimal client {ms(median(client_cpu))} ms/task; fake gateway "
            f"{ms(median(fake_cpu))} ms/task"),
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


# --------------------------------------------------------------------------- 9: bulk selection

SELECTION_STEPS = (("all", {}), ("invert", {"status": "done"}), ("first", {}), ("none", {"q": "img1"}),
                   ("all", {"status": "failed"}), ("none", {}))


def _selection_run(data_dir: Path, tasks: int) -> str:
    """Write a finished run straight into a data folder's database: 2 results on two tasks of three, done and failed."""
    store = Store(data_dir / DB_NAME)
    run_id = store.create_run("/in", False, "edit", {"model": "m"},
                              [(f"img{i:05d}.png", f"/in/img{i:05d}.png") for i in range(tasks)])
    db, now = store._db(), time.time()
    db.execute("BEGIN")
    for i, task in enumerate(store.tasks_since(run_id).tasks):
        db.executemany("INSERT INTO results (id, task_id, sha256, format, width, height, bytes, origin, created_at) "
                       "VALUES (?, ?, ?, 'png', 8, 8, 100, 'b64', ?)",
                       [(f"i{i}x{k}", task.id, f"{i:060d}{k:04d}", now + k) for k in range(2 if i % 3 else 0)])
        db.execute("UPDATE tasks SET status = ?, finished_at = ? WHERE id = ?", ("done" if i % 2 else "failed", now, task.id))
    db.execute("COMMIT")
    store.close()
    return run_id


def bulk_selection(cfg: Config) -> list[Row]:
    """POST /api/runs/<id>/selection on a finished 10,000-task run (6,666 with two results): each action, HTTP round trip."""
    tasks = 2000 if cfg.quick else 10_000
    times: dict[str, list[float]] = {}
    with Workspace() as root, Servers(root) as servers:
        data_dir = root / "data"
        data_dir.mkdir()
        run_id = _selection_run(data_dir, tasks)
        server = Server(data_dir)
        servers.started.append(server)
        for _ in range(cfg.repeat):
            for action, filters in SELECTION_STEPS:
                t0 = time.perf_counter()
                answer = server.post(f"/api/runs/{run_id}/selection", {"action": action, **filters})
                times.setdefault(f"{action} {filters}" if filters else action, []).append(time.perf_counter() - t0)
                if answer.status_code != 200:
                    raise RuntimeError(f"selection answered {answer.status_code}: {answer.text[:200]}")
        listing_s = time.perf_counter()
        server.get(f"/api/runs/{run_id}")
        run_s = time.perf_counter() - listing_s
    medians = {name: median(values) for name, values in times.items()}
    worst = max(medians, key=medians.get)
    note = "; ".join(f"{name} {value * 1000:.0f} ms" for name, value in medians.items())
    return [Row(f"bulk selection: {tasks:,}-task run, slowest action ({worst})", _fmt_ms(medians[worst]), "< 200 ms",
                medians[worst] < 0.2, f"medians of {cfg.repeat}: {note}; GET the run (with its selected count) "
                f"{run_s * 1000:.0f} ms")]


FIGURES = {
    "throughput": throughput,
    "big_payload": big_payload_figure,
    "stop": stop_latency,
    "listing": incremental_listing,
    "memory": memory,
    "startup": startup,
    "scan": scan,
    "page": page_figures,
    "selection": bulk_selection,
}


# --------------------------------------------------------------------------- 10: review flags

def review_flags(cfg: Config) -> list[Row]:
    """The flags' precision and recall on the labelled set (bench/flagset), and their cost per result."""
    from bench.flagset import cost_per_result, evaluate_seed

    rows: list[Row] = []
    seeds = (20,) if cfg.quick else (20, 21, 22)
    for seed in seeds:
        cases, table, (flagged, good) = evaluate_seed(seed)
        role = "the seed the thresholds were chosen on" if seed == 20 else "held out"
        for score in table:
            rows.append(Row(f"review flags, seed {seed}: {score.flag} recall / precision",
                            f"{score.recall:.3f} / {score.precision:.3f}", "recall ≥ 0.95", score.recall >= 0.95,
                            f"tp {score.tp}, fp {score.fp}, fn {score.fn}; {len(cases)} results, {role}"))
        rows.append(Row(f"review flags, seed {seed}: good edits flagged", f"{flagged / good:.1%}", "≤ 2 %",
                        flagged / good <= 0.02, f"{flagged} of {good} plausible edits"))
    cost = cost_per_result(repeat=cfg.repeat)
    for label, seconds in cost.items():
        rows.append(Row(f"review flags: cost per result, {label}", _fmt_ms(seconds), "—", None,
                        "one thread, CPU time (decode, look, judge, duplicate lookup); median"))
    return rows


FIGURES["flags"] = review_flags
