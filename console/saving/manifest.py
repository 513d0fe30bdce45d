"""Record written items in manifest.jsonl and musubi's dataset.jsonl, with the run's provenance."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

from .. import atomic
from ..store import Store
from .planning import PlannedItem
from .rule import SaveRule

MANIFEST = "manifest.jsonl"
MUSUBI_JSONL = "dataset.jsonl"


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


def manifest_line(rule: SaveRule, item: PlannedItem, source_sha: str | None, provenance: dict[str, Any]) -> dict:
    """Return one manifest.jsonl record for a written item."""
    task, result = item.candidate.task, item.candidate.result
    return {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "layout": rule.layout, "run_id": task["run_id"],
            "task_id": task["id"], "result_id": result["id"], "source_path": task["source_path"],
            "source_sha256": source_sha, "result_sha256": result["sha256"], **provenance,
            "prompt": task["prompt"], "caption": item.caption, "request_id": None,
            "paths": [str(f.path) for f in item.files]}


def append_jsonl(path: Path, records: Iterable[dict]) -> None:
    """Append records to a JSONL file through an atomic rewrite (readers never see half a line)."""
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    new = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    atomic.write_bytes(path, old + new)
    os.chmod(path, 0o644)


def merge_musubi(path: Path, items: list[PlannedItem]) -> None:
    """Rewrite musubi's dataset.jsonl: earlier lines kept unless their image was rewritten, new ones added."""
    records = [{"image_path": str(i.files[-1].path), "control_path": str(i.files[0].path), "caption": i.caption or ""}
               for i in items]
    fresh = {r["image_path"] for r in records}
    kept: list[str] = []
    try:
        for line in path.read_text("utf-8").splitlines():
            try:
                old = json.loads(line)
            except ValueError:
                old = None
            if line.strip() and not (isinstance(old, dict) and old.get("image_path") in fresh):
                kept.append(line)
    except FileNotFoundError:
        pass
    text = "".join(line + "\n" for line in kept) + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic.write_bytes(path, text.encode("utf-8"))
    os.chmod(path, 0o644)
