"""Sample the server with py-spy during a bench run and summarize where each kind of thread spent its time.

    python -m bench --only throughput --profile          # py-spy on one extra (untimed) console run per size
    python -m bench.pyspy bench/out/<file>.raw [--rate 200 --seconds 18]   # summarize a recording again

py-spy is not a requirement of the console: `.venv/bin/pip install py-spy`. It records the raw
(collapsed) stacks of every thread, `thread (tid): name` first; threads are grouped by what they
are: the engine's event loop (`console-engine`), its work pool (`console-work_*`: sources, decodes,
cache writes), its store pool (`console-db_*`), werkzeug's request threads (one per HTTP request),
the accept loop (`MainThread`). Without `--idle`, py-spy drops samples of threads waiting in a
system call, so a group's samples are its busy time; with mode `gil` only the thread holding the
GIL is sampled, so the groups' shares add up to how long the GIL was held.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?):(?P<line>\d+)\)$")
_THREAD = re.compile(r"^thread \((?P<tid>\d+)\): ?(?P<name>.*)$")


def py_spy() -> str:
    """Return the py-spy executable, or raise with how to install it."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


class Recorder:
    """`py-spy record` attached to a process until stop()."""

    def __init__(self, pid: int, out: Path, rate: int = 200, mode: str = "active") -> None:
        self.out = out
        self.rate = rate
        out.parent.mkdir(parents=True, exist_ok=True)
        command = [py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--threads", "--format", "raw",
                   "--output", str(out), "--nonblocking"]
        if mode == "gil":
            command.append("--gil")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> str:
        """Stop sampling, let py-spy write its file; return py-spy's last message."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return (err or "").strip().splitlines()[-1] if err and err.strip() else ""


def group_of(name: str, stack: list[str]) -> str:
    """Name the kind of thread a stack was sampled on."""
    if name == "console-engine":
        return "engine loop"
    if name.startswith("console-work"):
        return "work pool"
    if name.startswith("console-db"):
        return "db pool"
    if name == "MainThread":
        return "main (accept)"
    if any("process_request_thread" in frame for frame in stack):
        return "HTTP requests"
    return f"other ({re.sub(r'[0-9_]+$', '', name) or '?'})"


def short(frame: str) -> str:
    """`Func (path/file.py:123)` -> `path/file.py:Func` (lines merged)."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "lib/python3":
                path = "py:" + path.split("/", 1)[-1]
    return f"{path}:{match['func']}"


@dataclass
class Group:
    samples: int = 0
    threads: set[str] = field(default_factory=set)
    own: collections.Counter = field(default_factory=collections.Counter)
    cumulative: collections.Counter = field(default_factory=collections.Counter)


def load(raw: Path) -> dict[str, Group]:
    """Read py-spy's raw output into per-group counters."""
    groups: dict[str, Group] = collections.defaultdict(Group)
    for line in raw.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack_text.split(";")
        head = _THREAD.match(frames[0])
        tid, name = (head["tid"], head["name"]) if head else ("?", "?")
        stack = frames[1:] if head else frames
        if name and stack and stack[0] == name:  # py-spy puts the thread name as a frame of its own
            stack = stack[1:]
        group = groups[group_of(name, stack)]
        group.samples += count
        group.threads.add(tid)
        if stack:
            group.own[short(stack[-1])] += count
        for frame in {short(f) for f in stack}:
            group.cumulative[frame] += count
    return dict(groups)


def report(groups: dict[str, Group], seconds: float, rate: int, mode: str = "active", top: int = 12) -> str:
    """Return a text summary: per group, busy share and top functions by own and cumulative samples."""
    possible = seconds * rate  # samples one thread busy all the time would have
    total = sum(g.samples for g in groups.values()) or 1
    what = "holding the GIL" if mode == "gil" else "busy (not waiting in a system call)"
    lines = [f"py-spy, {mode} samples, {seconds:.1f} s at {rate} Hz; 100 % = one thread {what} the whole time"]
    order = sorted(groups.items(), key=lambda item: -item[1].samples)
    lines.append("  " + ", ".join(f"{name} {g.samples / possible * 100:.0f} % ({len(g.threads)} thr)"
                                  for name, g in order))
    for name, group in order:
        if group.samples < total * 0.01:
            continue
        lines.append(f"\n[{name}] {group.samples} samples = {group.samples / possible * 100:.1f} % of a thread, "
                     f"{group.samples / total * 100:.0f} % of all samples, {len(group.threads)} thread(s)")
        lines.append("  own time:")
        for frame, count in group.own.most_common(top):
            lines.append(f"    {count / group.samples * 100:5.1f} %  {count / possible * 100:5.1f} %wall  {frame}")
        lines.append("  cumulative:")
        for frame, count in group.cumulative.most_common(top + 8):
            lines.append(f"    {count / group.samples * 100:5.1f} %  {count / possible * 100:5.1f} %wall  {frame}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, required=True, help="how long the recording ran")
    parser.add_argument("--mode", choices=("active", "gil"), default="active")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    print(report(load(args.raw), args.seconds, args.rate, args.mode, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
