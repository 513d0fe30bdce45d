"""Record written items in manifest.jsonl and musubi's dataset.jsonl, with the run's provenance."""

from __future__ import annotations

import json
import os
import time
from contextlib import suppress
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

from .. import atomic
from ..store import Store
from .memory import MANIFEST, destination, line_destination, manifest_lines
from .names import result_prompt
from .planning import PlannedItem
from .rule import SaveRule

MUSUBI_JSONL = "dataset.jsonl"
_APPEND = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


def run_provenance(store: Store, run_id: str) -> dict[str, Any]:
    """Return provider, model and params of a run: only named fields, never the API key."""
    profile = store.run_profile(run_id)
    try:
        parts = urlsplit(profile.get("api_url") or "")
        host = parts.hostname or ""
        provider = f"{host}:{parts.port}" if host and parts.port else host  # never the userinfo of the URL
    except ValueError:
        provider = ""
    params = {"size": profile.get("size") or None, "n": profile.get("n"), "api_mode": profile.get("api_mode")}
    return {"provider": provider, "model": profile.get("model", ""), "params": params}


def manifest_line(rule: SaveRule, item: PlannedItem, source_sha: str | None, provenance: dict[str, Any],
                  save_id: str = "") -> dict:
    """Return one manifest.jsonl record for a written item; `save_id` names the save that wrote it."""
    task, result = item.candidate.task, item.candidate.result
    return {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "layout": rule.layout, "name": rule.name,
            "destination": destination(rule), "role_swap": rule.swapped, "run_id": task.run_id,
            "task_id": task.id, "result_id": result.id, "source_name": task.source_name,
            "source_path": task.source_path, "source_sha256": source_sha, "references": list(task.references),
            "output_name": task.output_name, "result_sha256": result.sha256, **provenance,
            "prompt": result_prompt(task, result), "caption": item.caption,
            "caption_from": item.caption_from, "request_id": None, "paths": item.paths,
            "save_id": save_id}


def append_jsonl(path: Path, records: Iterable[dict]) -> None:
    """Append records to a JSONL file in one write and make them durable before returning.

    A write cut short (a killed process, a full disk) can leave part of a line at the end; readers
    skip such a line, and the next append starts on a new line so its own lines stay whole.
    """
    new = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    fd = os.open(path, _APPEND, 0o644)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        if end and os.pread(fd, 1, end - 1) != b"\n":
            new = b"\n" + new
        try:
            view = memoryview(new)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            with suppress(OSError):  # take back a part-written line (a full disk); else readers skip it
                os.ftruncate(fd, end)
            raise
        if not end:
            os.fchmod(fd, 0o644)  # a dataset, not a secret, whatever the umask
    finally:
        os.close(fd)


def musubi_records(root: Path, rule: SaveRule) -> list[dict[str, str]]:
    """Return musubi's JSONL lines for every item the manifest lists at this rule's destination, its target on disk.

    Built from the manifest, so a save that was killed before it wrote dataset.jsonl is made good
    by the next one, which lists the items the killed save finished as well as its own.
    """
    place = destination(rule)
    found: dict[str, dict[str, str]] = {}
    for line in manifest_lines(root / MANIFEST):
        paths = [p for p in line.get("paths") or [] if isinstance(p, str)]
        if not paths or line_destination(line) != place or not Path(paths[-1]).is_file():
            continue
        controls = [p for p in paths[:-1] if not p.endswith(".txt")]
        found[paths[-1]] = _musubi_record(paths[-1], controls, line.get("caption"))
    return list(found.values())


def merge_musubi(path: Path, records: list[dict[str, str]]) -> None:
    """Rewrite musubi's dataset.jsonl: earlier lines kept unless `records` has their image, then `records`."""
    fresh = {r["image_path"] for r in records}
    kept: list[str] = []
    try:
        before = path.read_text("utf-8")
    except FileNotFoundError:
        before = ""
    for line in before.splitlines():
        try:
            old = json.loads(line)
        except ValueError:
            old = None
        if line.strip() and not (isinstance(old, dict) and old.get("image_path") in fresh):
            kept.append(line)
    text = "".join(line + "\n" for line in kept) + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if text == before:
        return  # nothing new: the file stays as it was, its time too
    atomic.write_bytes(path, text.encode("utf-8"))
    os.chmod(path, 0o644)


def _musubi_record(target: str, controls: list[str], caption: Any) -> dict[str, str]:
    """Return musubi's JSONL line: `control_path` for one input, `control_path_0`, `_1` … for several."""
    record = {"image_path": target}
    if len(controls) == 1:
        record["control_path"] = controls[0]
    else:
        record.update({f"control_path_{n}": path for n, path in enumerate(controls)})
    record["caption"] = caption if isinstance(caption, str) else ""
    return record
