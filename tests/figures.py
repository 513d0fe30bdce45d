"""Record what the reliability tests measured, for RELIABILITY.md (`python -m tests.reliability`).

Each test adds its figures under a name; the numbers land in tests/artifacts/reliability/<name>.json
and the generator turns them into the report. A test run outside the generator records them too,
so the last run's figures are always on disk.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

FIGURES_DIR = Path(__file__).resolve().parent / "artifacts" / "reliability"
SESSION = "_session"  # the pid of the pytest process that recorded the figures
_lock = threading.Lock()


def record(name: str, **figures: Any) -> None:
    """Merge `figures` into the record called `name` (numbers recorded again in one test run add up)."""
    path = FIGURES_DIR / f"{name}.json"
    with _lock:
        FIGURES_DIR.mkdir(parents=True, exist_ok=True)
        current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        if current.get(SESSION) != os.getpid():  # an earlier test run's figures: start again
            current = {SESSION: os.getpid()}
        for key, value in figures.items():
            old = current.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(old, (int, float)):
                current[key] = old + value
            else:
                current[key] = value
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temp, path)


def read_all() -> dict[str, dict[str, Any]]:
    """Return every record on disk by name."""
    if not FIGURES_DIR.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(FIGURES_DIR.glob("*.json"))}


def clear() -> None:
    """Forget the previous run's figures (the generator starts from nothing)."""
    for path in FIGURES_DIR.glob("*.json"):
        path.unlink()
