"""Remember what earlier saves wrote into an output folder, read from its manifest.jsonl (never twice).

A result counts as saved to a place when a manifest line of that output folder has the same
destination (layout, dataset name, role swap) and the same source and result hashes. The
manifest is the memory, so it travels with the folder, and a deleted folder forgets.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..messages import say
from .rule import TRAINER_LAYOUTS, RuleError, SaveRule

log = logging.getLogger(__name__)
MANIFEST = "manifest.jsonl"


def destination(rule: SaveRule) -> str:
    """Return the place a rule saves to, as the manifest records it ("aitoolkit_edit/blue", "flat", "+swap")."""
    place = f"{rule.layout}/{rule.name}" if rule.layout in TRAINER_LAYOUTS else rule.layout
    return place + ("+swap" if rule.swapped else "")


@dataclass(frozen=True)
class SavedBefore:
    """What an earlier save wrote for one result: its files and when."""

    paths: list[str]
    timestamp: str


class Memory:
    """The results an output folder's manifest says were saved to one destination."""

    def __init__(self, root: Path, rule: SaveRule) -> None:
        self.place = destination(rule)
        self.saved: dict[tuple[str, str], SavedBefore] = {}
        self.results: set[str] = set()
        for line in manifest_lines(root / MANIFEST):
            if line_destination(line) == self.place and isinstance(line.get("result_sha256"), str):
                key = (line.get("source_sha256") or "", line["result_sha256"])
                self.saved[key] = SavedBefore([str(p) for p in line.get("paths") or []], str(line.get("timestamp", "")))
                self.results.add(line["result_sha256"])

    def knows(self, result_sha: str) -> bool:
        """Return True when some earlier save wrote this result here (then the source is worth hashing)."""
        return result_sha in self.results

    def find(self, source_sha: str | None, result_sha: str) -> SavedBefore | None:
        """Return what an earlier save wrote for this pair of hashes, or None."""
        return self.saved.get((source_sha or "", result_sha))


class OtherRuns(RuleError):
    """A save into a folder that holds another run's dataset, without `append`; `details` name those runs."""

    def __init__(self, root: Path, runs: list[dict[str, Any]]) -> None:
        names = ", ".join(r["run_id"] for r in runs[:5]) + (" …" if len(runs) > 5 else "")
        super().__init__(say("saving.other_runs", root=str(root), runs=names))
        self.details = {"other_runs": [r["run_id"] for r in runs], "other_run_details": runs}


def other_runs(root: Path, run_id: str) -> list[dict[str, Any]]:
    """Return the other runs whose items the folder's manifest lists: run id, first prompt, items, last saved."""
    found: dict[str, dict[str, Any]] = {}
    for line in manifest_lines(root / MANIFEST):
        other = line.get("run_id")
        if not isinstance(other, str) or not other or other == run_id:
            continue
        entry = found.setdefault(other, {"run_id": other, "prompt": str(line.get("prompt") or "")[:200], "items": 0,
                                         "saved_at": ""})
        entry["items"] += 1
        entry["saved_at"] = str(line.get("timestamp") or entry["saved_at"])
    return list(found.values())


def manifest_lines(path: Path) -> list[dict[str, Any]]:
    """Return the records of a manifest.jsonl, skipping lines that are not JSON objects (cut or hand-edited)."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s cannot be read (%s): earlier saves there are not known", path, exc)
        return []
    found = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a hand-edited or cut line: the rest still counts
        if isinstance(record, dict):
            found.append(record)
    return found


def line_destination(line: dict[str, Any]) -> str | None:
    """Return a line's destination; lines written before it was recorded get it from their layout and paths."""
    if isinstance(line.get("destination"), str):
        return line["destination"]
    layout, paths = line.get("layout"), line.get("paths") or []
    if not isinstance(layout, str) or not paths or not isinstance(paths[-1], str):
        return None
    if layout not in TRAINER_LAYOUTS:
        return layout
    target = PurePosixPath(paths[-1].replace("\\", "/")).parent
    name = target.parent.name if layout == "musubi" else target.name.removesuffix("_target")
    return f"{layout}/{name}"
