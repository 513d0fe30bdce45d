"""Write a plan to disk: image files (converted and conformed when needed), captions, then the indexes."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from .. import atomic, imaging
from ..store import Store
from .manifest import MANIFEST, MUSUBI_JSONL, append_jsonl, manifest_line, merge_musubi, run_provenance
from .planning import Plan, PlannedFile, PlannedItem
from .validation import validate

_WRITE_LOCK = threading.Lock()  # two saves into one folder must not interleave manifest appends


def execute(store: Store, plan_: Plan) -> dict[str, Any]:
    """Write the plan (or only describe it in a dry run) and return the answer of the save routes."""
    saved: list[dict] = []
    errors = list(plan_.errors)
    if plan_.rule.dry_run:
        saved = [{**i.candidate.names(), "paths": [str(f.path) for f in i.files]} for i in plan_.items]
        return _answer(plan_, saved, errors, plan_.items)
    provenance = run_provenance(store, plan_.run_id)
    done: list[tuple[PlannedItem, str | None]] = []
    with _WRITE_LOCK:
        for item in plan_.items:
            try:
                source_sha = write_item(item)
            except (OSError, ValueError) as exc:  # imaging.InvalidImage is a ValueError
                errors.append({**item.candidate.names(), "kind": "write", "error": f"cannot write: {exc}"})
                continue
            done.append((item, source_sha))
            saved.append({**item.candidate.names(), "paths": [str(f.path) for f in item.files]})
        try:
            _write_indexes(plan_, done, provenance)
        except OSError as exc:
            errors.append({"kind": "write", "error": f"cannot write {MANIFEST}: {exc}"})
    return _answer(plan_, saved, errors, [item for item, _ in done])


def _answer(plan_: Plan, saved: list[dict], errors: list[dict], written: list[PlannedItem]) -> dict[str, Any]:
    report = dict(plan_.report)
    report["counts"] = {**report["counts"], "saved": len(saved), "skipped": len(plan_.skipped), "errors": len(errors)}
    if plan_.rule.layout != "flat":
        report["validation"] = validate(plan_, written)
        report["trainer_ready"] = report["trainer_ready"] and report["validation"]["ok"]
    return {"saved": saved, "skipped": plan_.skipped, "errors": errors, "report": report, "dry_run": plan_.rule.dry_run}


def write_item(item: PlannedItem) -> str | None:
    """Write one item's files (control, caption, then target); undo them all if one fails."""
    source_sha = _sha256_of(Path(item.candidate.task["source_path"]))
    written: list[Path] = []
    try:
        for path in item.replaces:
            path.unlink(missing_ok=True)
        for f in item.files:
            f.path.parent.mkdir(parents=True, exist_ok=True)  # usual modes (atomic.write_bytes would use 0700)
            data = f.text.encode("utf-8") if f.role == "caption" else image_bytes(f)
            atomic.write_bytes(f.path, data)
            os.chmod(f.path, 0o644)  # a dataset, not a secret: trainers may run as another user
            written.append(f.path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return source_sha


def image_bytes(f: PlannedFile) -> bytes:
    """Return the bytes to write: the origin unchanged, or decoded, conformed and re-encoded."""
    data = f.origin.read_bytes()
    if not f.converted:
        return data
    try:
        return imaging.convert(data, f.format, f.conform)
    except imaging.InvalidImage as exc:
        raise ValueError(f"{f.origin.name} cannot be decoded: {exc}") from None


def _sha256_of(path: Path) -> str | None:
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return None


def _write_indexes(plan_: Plan, done: list[tuple[PlannedItem, str | None]], provenance: dict[str, Any]) -> None:
    if not done:
        return
    lines = [manifest_line(plan_.rule, item, sha, provenance) for item, sha in done]
    append_jsonl(plan_.root / MANIFEST, lines)
    if plan_.rule.layout == "musubi":
        merge_musubi(plan_.root / plan_.rule.name / MUSUBI_JSONL, [item for item, _ in done])
