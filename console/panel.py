"""Show what the server is doing in the terminal: a Rich live panel, or plain log lines."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from . import __version__
from .logs import OneLineFormatter

EVENTS_SHOWN = 8
RUNS_SHOWN = 5
BATCHES_SHOWN = 3  # per batch run; older ones are counted
LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class RunLine:
    """One run as the panel shows it."""

    id: str
    prompt: str
    running: bool
    progress: dict[str, Any]
    cooling: dict[str, Any] | None = None  # Engine.cooling: a rate-limit cooldown, or why it paused
    keys: tuple[dict[str, Any], ...] = ()  # Engine.keys: a key pool's keys, masked
    spend: dict[str, Any] | None = None  # Store.run_spend: calls made and what they cost
    batches: tuple[dict[str, Any], ...] = ()  # a batch run's batches (BatchRecord.to_dict), newest first


@dataclass(frozen=True)
class Snapshot:
    """Everything one frame of the panel shows; built by `collect`, drawn by `render`."""

    version: str
    url: str
    data_dir: str
    uptime_s: float
    runs: tuple[RunLine, ...] = ()
    events: tuple[str, ...] = field(default_factory=tuple)


def render(snapshot: Snapshot) -> RenderableType:
    """Draw one frame (pure: the same snapshot gives the same output)."""
    head = Text.assemble(("Image Batch Console ", "bold"), snapshot.version, "  ", (snapshot.url, "cyan underline"),
                         f"  up {_duration(snapshot.uptime_s)}")
    parts: list[RenderableType] = [head, Text(f"data: {snapshot.data_dir}", style="dim")]
    parts.append(_runs_table(snapshot.runs) if snapshot.runs else Text("No runs yet: open the page to start one."))
    parts.extend(_keys(run) for run in snapshot.runs if run.keys and run.running)
    parts.extend(_batches(run) for run in snapshot.runs if run.batches)
    if snapshot.events:
        parts.append(Text("\n".join(snapshot.events), style="dim"))
    return Panel(Group(*parts), title="status", border_style="blue")


def _runs_table(runs: tuple[RunLine, ...]) -> Table:
    table = Table(expand=True, box=None, pad_edge=False)
    for name, justify in (("run", "left"), ("prompt", "left"), ("state", "left"), ("done", "right"),
                          ("failed", "right"), ("left", "right"), ("rate/min", "right"), ("ETA", "right"),
                          ("spend", "right")):
        table.add_column(name, justify=justify, no_wrap=name != "prompt", overflow="ellipsis")
    for run in runs:
        p = run.progress
        state = _state(run)
        left = p["pending"] + p["running"]
        rate = f"{p['rate_per_min']:.1f}" if p.get("rate_per_min") else "–"
        eta = _duration(p["eta_s"]) if run.running and p.get("eta_s") is not None else "–"
        table.add_row(run.id, run.prompt, state, f"{p['done']}/{p['total']}", str(p["failed"]), str(left), rate, eta,
                      spend_text(run.spend))
    return table


def spend_text(spend: dict[str, Any] | None) -> str:
    """"212 calls · 4.13 USD" (with "+" when some calls' cost is unknown), "3 calls" when none is known, or "–"."""
    if not spend or not spend.get("calls"):
        return "–"
    calls = _count(spend["calls"], "call")
    if spend.get("cost") is None:
        return calls
    partial = "+" if spend.get("cost_known", 0) < spend["calls"] else ""
    return f"{calls} · {money(spend['cost'])}{partial} {spend.get('currency') or 'USD'}"


def money(amount: float) -> str:
    """Return an amount with two decimals, or with four when it is under a cent (a single call's cost)."""
    return f"{amount:.2f}" if amount == 0 or abs(amount) >= 0.01 else f"{amount:.4f}"


def _state(run: RunLine) -> Text:
    """running / idle, or what holds the run back: "cooling until 14:32 (429 from the gateway)"."""
    cooling = run.cooling or {}
    if cooling.get("paused"):
        return Text(cooling["paused"], style="yellow")
    if run.running and cooling.get("retrying"):  # a batch the provider has not answered for a while
        return Text(str(cooling["reason"]), style="yellow")
    if run.running and cooling.get("until", 0) > time.time():
        until = time.strftime("%H:%M:%S", time.localtime(cooling["until"]))
        return Text(f"cooling until {until} ({cooling['reason']})", style="yellow")
    if run.running and cooling:
        return Text(f"running, {cooling['concurrency']}/{cooling['target']} at once after 429s", style="green")
    held = run.progress.get("held", 0)  # a pilot's rest, waiting for "Run the rest" on the page
    if run.running:
        return Text(f"running, {held} held" if held else "running", style="green")
    return Text(f"pilot done, {held} held", style="magenta") if held else Text("idle", style="dim")


def _keys(run: RunLine) -> Text:
    """A key pool's keys, one line each: "r1 key 2 ••••••••BBBB  12 calls, 1 error  parked: refused …"."""
    lines = Text()
    for key in run.keys:
        if lines:
            lines.append("\n")
        calls, errors = _count(key["calls"], "call"), _count(key["errors"], "error")
        lines.append(f"{run.id} key {key['number']} {key['key']}  {calls}, {errors}  "
                     f"{key['in_flight']}/{key['concurrency']} at once  ", style="dim")
        if key["state"] == "parked":
            lines.append(f"parked: {key['reason']}", style="red")
        elif key["state"] == "cooling" and (key["until"] or 0) > time.time():
            until = time.strftime("%H:%M:%S", time.localtime(key["until"]))
            lines.append(f"cooling until {until} ({key['reason']})", style="yellow")
        else:
            lines.append(key["state"], style="green")
    return lines


def _batches(run: RunLine) -> Text:
    """A batch run's batches, newest first, one line each: "r1 batch b1f… · in_progress · 340/1000"."""
    lines = Text()
    for batch in run.batches[:BATCHES_SHOWN]:
        if lines:
            lines.append("\n")
        answered = f"{batch['completed'] + batch['failed']}/{batch['total']}"
        style = "green" if batch["finished_at"] is None else "dim"
        lines.append(f"{run.id} batch {batch['id']} · {batch['status'].replace('_', ' ')} · {answered}", style=style)
        if batch["failed"]:
            lines.append(f" · {batch['failed']} failed", style="red")
        if batch["error"]:
            lines.append(f" · {batch['error']}", style="red")
    if len(run.batches) > BATCHES_SHOWN:
        lines.append(f"\n{run.id} … {len(run.batches) - BATCHES_SHOWN} older batch(es)", style="dim")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class EventBuffer(logging.Handler):
    """Keep the last few log messages of the console for the panel."""

    def __init__(self, size: int = EVENTS_SHOWN) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=size)
        self.setFormatter(OneLineFormatter("%(asctime)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def collect(app: Any, url: str, started: float, events: EventBuffer | None = None) -> Snapshot:
    """Read the store and engine into a Snapshot: busy runs first, then the newest."""
    store, engine = app.extensions["console.store"], app.extensions["console.engine"]
    ids = sorted(store.run_ids(), key=lambda run_id: not engine.is_running(run_id))[:RUNS_SHOWN]
    runs = [run for run in map(store.run, ids) if run is not None]  # progress only for those shown
    lines = tuple(RunLine(run.id, run.prompt.replace("\n", " ")[:60], engine.is_running(run.id),
                          run.progress, engine.cooling(run.id), tuple(engine.keys(run.id)), run.spend,
                          tuple(batch.to_dict() for batch in run.batches))
                  for run in runs)
    return Snapshot(__version__, url, str(app.extensions["console.settings"].data_dir), time.time() - started, lines,
                    tuple(events.lines) if events else ())


class StatusReporter:
    """Keep the terminal informed until stopped: a live panel (`cli`) or periodic log lines (`none`)."""

    def __init__(self, mode: str, snapshot: Callable[[], Snapshot], console: Console | None = None) -> None:
        self._mode = mode
        self._snapshot = snapshot
        self._console = console or Console(stderr=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="console-status", daemon=True)

    def start(self) -> None:
        """Begin reporting in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop reporting and restore the terminal."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        if self._mode == "cli" and self._console.is_terminal:
            with Live(render(self._snapshot()), console=self._console, refresh_per_second=2,
                      redirect_stderr=False) as live:
                while not self._stop.wait(0.5):
                    live.update(render(self._snapshot()))
            return
        log = logging.getLogger("console.status")
        while not self._stop.wait(LOG_EVERY_S):
            for run in self._snapshot().runs:
                if run.running:
                    p = run.progress
                    log.info("run %s: %d/%d done, %d failed, %s/min, ETA %s, spend %s", run.id, p["done"], p["total"],
                             p["failed"], p.get("rate_per_min") or "–",
                             _duration(p["eta_s"]) if p.get("eta_s") is not None else "–", spend_text(run.spend))
