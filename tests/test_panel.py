"""The terminal status panel, rendered from snapshots with a capture console (no colour)."""

from __future__ import annotations

import logging

from rich.console import Console

from console.panel import EventBuffer, RunLine, Snapshot, render


def text_of(snapshot: Snapshot, width: int = 110) -> str:
    console = Console(width=width, color_system=None, record=True, file=open("/dev/null", "w"))
    console.print(render(snapshot))
    return console.export_text()


def progress(**counts) -> dict:
    base = {"total": 10, "pending": 0, "running": 0, "done": 0, "failed": 0, "stopped": 0, "percent": 0.0,
            "rate_per_min": None, "eta_s": None}
    return {**base, **counts}


def test_empty_panel_says_how_to_start():
    text = text_of(Snapshot("0.1.0", "http://127.0.0.1:12607/", "/data", 5))
    assert "Image Batch Console 0.1.0" in text and "http://127.0.0.1:12607/" in text and "up 5s" in text
    assert "No runs yet" in text and "data: /data" in text


def test_runs_with_progress_rate_and_eta():
    runs = (RunLine("r1", "make it blue", True, progress(done=4, failed=1, running=2, pending=3, rate_per_min=12.5,
                                                         eta_s=150)),
            RunLine("r0", "old run", False, progress(done=10)))
    text = text_of(Snapshot("0.1.0", "http://x/", "/d", 3725, runs, ("10:00:00 run r1 started",)))
    running_row = next(line for line in text.splitlines() if "r1" in line)
    assert "running" in running_row and "4/10" in running_row and "12.5" in running_row and "2m30s" in running_row
    idle_row = next(line for line in text.splitlines() if "r0" in line)
    assert "idle" in idle_row and "10/10" in idle_row
    assert "up 1h02m" in text and "run r1 started" in text


def test_a_pilot_run_says_how_many_tasks_are_held():
    runs = (RunLine("r2", "pilot", True, progress(done=1, running=2, held=7)),
            RunLine("r1", "pilot", False, progress(done=3, held=7)))
    lines = text_of(Snapshot("0.1.0", "http://x/", "/d", 1, runs), width=140).splitlines()
    assert "running, 7 held" in next(line for line in lines if "r2" in line)
    assert "pilot done, 7 held" in next(line for line in lines if "r1" in line)


def test_long_prompts_are_cut_not_wrapped():
    runs = (RunLine("r1", "x" * 200, False, progress()),)
    text = text_of(Snapshot("0.1.0", "http://x/", "/d", 1, runs), width=80)
    assert len([line for line in text.splitlines() if "r1" in line]) == 1


def test_event_buffer_keeps_the_last_lines():
    buffer = EventBuffer(size=2)
    log = logging.getLogger("test.panel")
    log.addHandler(buffer)
    log.setLevel(logging.INFO)
    for n in range(3):
        log.info("event %d", n)
    log.removeHandler(buffer)
    assert [line.split(" ", 1)[1] for line in buffer.lines] == ["event 1", "event 2"]


def test_collect_reads_busy_runs_first(tmp_path, fake):
    from console.panel import collect
    from console.settings import resolve
    from console.web import create_app
    from tests.helpers import make_sources

    app = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / "d")}))
    engine = app.extensions["console.engine"]
    source = make_sources(tmp_path / "src", 1) / "img1.png"
    stalled = {"api_url": fake.url("stall", "/v1/chat/completions"), "model": "m", "allow_private_api": True}
    busy, _ = engine.create_run(str(source), False, "first", stalled)
    app.extensions["console.store"].create_run("/in", False, "second", {"model": "m"}, [("b.png", "/in/b.png")])
    snapshot = collect(app, "http://127.0.0.1:1/", 0.0)
    assert [run.prompt for run in snapshot.runs] == ["first", "second"]
    assert snapshot.runs[0].running and snapshot.runs[0].id == busy and snapshot.runs[0].progress["total"] == 1
    engine.stop_all()


def test_a_rate_limited_run_says_until_when_and_why_and_a_paused_one_why():
    import time

    until = time.time() + 600
    runs = (RunLine("r2", "blue", True, progress(running=2), {"until": until, "reason": "429 from the gateway",
                                                              "concurrency": 2, "target": 8}),
            RunLine("r1", "red", True, progress(running=4), {"until": 0, "reason": "429 from the gateway",
                                                             "concurrency": 4, "target": 8}),
            RunLine("r0", "green", False, progress(done=3, stopped=7),
                    {"paused": "paused: 429 from the gateway (upstream_quota_exhausted)"}),
            RunLine("r3", "gray", True, progress(running=2),  # a batch run whose provider does not answer for now
                    {"reason": "batch b1 unread 2 times (HTTP 503)", "retrying": True}))
    text = text_of(Snapshot("0.1.0", "http://x/", "/d", 1, runs), width=180)
    rows = {run: next(line for line in text.splitlines() if f" {run} " in line) for run in ("r0", "r1", "r2", "r3")}
    assert "batch b1 unread 2 times (HTTP 503)" in rows["r3"]
    assert f"cooling until {time.strftime('%H:%M:%S', time.localtime(until))} (429 from the gateway)" in rows["r2"]
    assert "running, 4/8 at once after 429s" in rows["r1"]
    assert "paused: 429 from the gateway (upstream_quota_exhausted)" in rows["r0"]


def test_a_key_pool_shows_each_key_masked_with_its_calls_and_state():
    import time

    until = time.time() + 60
    keys = ({"number": 1, "key": "••••••••AAAA", "calls": 12, "errors": 0, "in_flight": 3, "concurrency": 4,
             "state": "ready", "until": None, "reason": ""},
            {"number": 2, "key": "••••••••BBBB", "calls": 3, "errors": 1, "in_flight": 0, "concurrency": 2,
             "state": "cooling", "until": until, "reason": "429 from the gateway (upstream_cooling)"},
            {"number": 3, "key": "••••••••", "calls": 1, "errors": 1, "in_flight": 0, "concurrency": 4,
             "state": "parked", "until": None, "reason": "refused by the gateway: HTTP 401: bad key"})
    runs = (RunLine("r1", "blue", True, progress(running=3), None, keys),
            RunLine("r0", "old", False, progress(done=3), None, keys))
    lines = [line for line in text_of(Snapshot("0.1.0", "http://x/", "/d", 1, runs), width=200).splitlines() if " key " in line]
    assert len(lines) == 3  # the idle run's keys are not repeated
    assert "r1 key 1 ••••••••AAAA  12 calls, 0 errors  3/4 at once  ready" in lines[0]
    assert f"cooling until {time.strftime('%H:%M:%S', time.localtime(until))} (429 from the gateway (upstream_cooling))" in lines[1]
    assert "r1 key 3 ••••••••  1 call, 1 error  0/4 at once  parked: refused by the gateway: HTTP 401: bad key" in lines[2]


def test_each_run_shows_its_spend():
    def spend(calls, cost, known):
        return {"calls": calls, "images": calls, "input_tokens": 0, "output_tokens": 0, "cost": cost,
                "cost_known": known, "currency": "EUR"}

    runs = (RunLine("r3", "priced", True, progress(done=4), spend=spend(212, 4.134, 212)),
            RunLine("r2", "partly", False, progress(done=4), spend=spend(3, 0.004, 2)),
            RunLine("r1", "unpriced", False, progress(done=4), spend=spend(5, None, 0)),
            RunLine("r0", "none yet", False, progress()))
    lines = [line.strip("│ ") for line in text_of(Snapshot("0.1.0", "http://x/", "/d", 1, runs), 140).splitlines()]
    rows = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in ("r0", "r1", "r2", "r3")}
    assert rows["r3"].endswith("212 calls · 4.13 EUR")
    assert rows["r2"].endswith("3 calls · 0.0040+ EUR")  # one call's cost is not known
    assert rows["r1"].endswith("5 calls") and rows["r0"].endswith("–")
