"""Write a plan to disk item by item, each whole or not at all (journalled, staged, renamed target last)."""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .. import atomic, imaging
from ..cache import DamagedImage, verify
from ..messages import say, told
from ..store import Store
from .journal import Journal, new_save_id
from .listing import Listing
from .manifest import MUSUBI_JSONL, merge_musubi, musubi_records, run_provenance
from .planning import Plan, PlannedFile, PlannedItem, file_sha256
from .progress import SaveJob
from .validation import validate

WRITERS = 4  # items written at once
JOURNAL_CHUNK = 32  # items noted in the journal at once, ahead of their writing
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def folder_lock(root: Path) -> Iterator[None]:
    """Hold the lock of one output folder: two saves into it plan and write one after the other."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(root, threading.Lock())
    with lock:
        yield


def execute(store: Store, plan_: Plan, job: SaveJob | None = None) -> dict[str, Any]:
    """Write the plan (or only describe it in a dry run) and return the answer of the save routes.

    Items are noted in the save's journal, written a few at once, and listed in the manifest in
    plan order; a result is marked saved once its manifest line is on disk. A cancelled job starts
    no further item and finishes those under way, so every item on disk is whole, listed and marked.
    """
    job = job or SaveJob()
    errors = list(plan_.errors)
    if plan_.rule.dry_run:
        saved = [{**i.candidate.names(), "paths": i.paths} for i in plan_.items]
        job.step("done", len(plan_.items), len(plan_.items))
        return _answer(plan_, saved, errors, plan_.items, 0)
    save_id = new_save_id()
    listing = Listing(store, plan_, run_provenance(store, plan_.run_id), save_id)
    listing.mark([c.result.id for c in plan_.remembered])
    journal = Journal(plan_.root, save_id)
    started = _write_items(plan_, job, errors, journal, listing)
    listing.flush()
    journal.close()  # every item noted is listed, undone or never started
    written = [item for item, _ in listing.listed]
    errors += listing.undone_errors()
    if listing.mark_error:
        errors.append({"kind": "write", "error": say("saving.not_marked", said=listing.mark_error), "paths": []})
    _write_musubi(plan_, written, errors)
    saved = [{**item.candidate.names(), "paths": item.paths} for item in written]
    job.step("done", len(written), len(plan_.items), saved=len(saved))
    return _answer(plan_, saved, errors, written, len(plan_.items) - started)


def _write_items(plan_: Plan, job: SaveJob, errors: list[dict], journal: Journal, listing: Listing) -> int:
    """Write the items WRITERS at a time (each file is fsynced; parallel fsyncs are ~3x faster), in plan order.

    Each item is noted in the journal before it starts and listed once it is written; return how
    many items were started. A manifest or journal that cannot be written stops the save.
    """
    total = len(plan_.items)
    in_flight: deque[tuple[PlannedItem, Future]] = deque()
    started = 0

    def collect() -> None:
        item, future = in_flight.popleft()
        try:
            source_sha = future.result()
        except (OSError, ValueError) as exc:  # imaging.InvalidImage is a ValueError
            errors.append(_write_error(item, exc))
        else:
            listing.add(item, source_sha)
        job.step("writing", started - len(in_flight), total, saved=len(listing.listed) + len(listing.pending))

    job.step("writing", 0, total)
    with ThreadPoolExecutor(WRITERS, thread_name_prefix="save") as pool:
        for item in plan_.items:
            if job.cancelled:
                plan_.cancelled = True
                break
            if listing.failure is not None or not _noted(journal, plan_.items, started, errors):
                break
            in_flight.append((item, pool.submit(write_item, item)))
            started += 1
            if len(in_flight) >= 2 * WRITERS:
                collect()
        while in_flight:  # what was started is finished: never half an item on disk
            collect()
    return started


def _noted(journal: Journal, items: list[PlannedItem], started: int, errors: list[dict]) -> bool:
    """Note the next items in the journal before the first of them starts; False when the journal cannot be written."""
    if journal.noted > started:
        return True
    try:
        journal.note(items[started:started + JOURNAL_CHUNK])
    except OSError as exc:
        errors.append({"kind": "write", "error": say("saving.journal_unwritable", path=str(journal.path), said=str(exc)),
                       "fix": say("saving.fix_free_space"), "paths": []})
        return False
    return True


def _write_error(item: PlannedItem, exc: Exception) -> dict[str, Any]:
    if isinstance(exc, DamagedImage):
        return {**item.candidate.names(), "kind": "damaged", "error": told(exc), "paths": item.paths,
                "fix": say("saving.fix_retry_fetch")}
    return {**item.candidate.names(), "kind": "write", "error": say("saving.cannot_write", said=told(exc)),
            "paths": item.paths}


def _answer(plan_: Plan, saved: list[dict], errors: list[dict], written: list[PlannedItem],
            not_written: int) -> dict[str, Any]:
    report = dict(plan_.report)
    report["counts"] = {**report["counts"], "saved": len(saved), "skipped": len(plan_.skipped), "errors": len(errors),
                        "not_written": not_written}
    if plan_.rule.layout != "flat":
        report["validation"] = validate(plan_, written)
        report["trainer_ready"] = report["trainer_ready"] and report["validation"]["ok"]
    report["captions"] = _caption_counts(written)
    return {"saved": saved, "skipped": plan_.skipped, "errors": errors, "report": report,
            "dry_run": plan_.rule.dry_run, "cancelled": plan_.cancelled, "captions": report["captions"]}


def _caption_counts(items: list[PlannedItem]) -> dict[str, int]:
    """Return how many caption files of these items came from a result's own caption and how many from the rule."""
    sources = [item.caption_from for item in items]
    return {"from_results": sources.count("result"), "from_rule": sources.count("rule")}


def write_item(item: PlannedItem) -> str | None:
    """Write one item's files, whole or not at all, and return the source's hash.

    Every file is first written to a temp name and made durable; then they are renamed in plan
    order (controls, caption, the target last), so a killed save leaves at most the first few
    names of an item, never a target without its controls. The save's journal names them.
    """
    source_sha = file_sha256(item.candidate.task.source_path)
    staged: list[tuple[Path, Path]] = []
    renamed: list[Path] = []
    try:
        for path in item.replaces:
            path.unlink(missing_ok=True)
        for number, f in enumerate(item.files):
            f.path.parent.mkdir(parents=True, exist_ok=True)  # usual modes (atomic.write_bytes would use 0700)
            data = f.text.encode("utf-8") if f.role == "caption" else image_bytes(f)
            staged.append((_stage(f.path, data, number), f.path))
        for temp, path in staged:
            os.replace(temp, path)
            renamed.append(path)
    except BaseException:
        for path in [temp for temp, _ in staged] + renamed:
            path.unlink(missing_ok=True)
        raise
    return source_sha


def _stage(path: Path, data: bytes, number: int) -> Path:
    """Write `data` durably to a temp file beside `path` (this thread's own name) and return it."""
    temp = path.with_name(f"{atomic.TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{number}")
    temp.unlink(missing_ok=True)  # left by a killed process that had this pid and thread id
    fd = os.open(temp, _CREATE, 0o644)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fchmod(file.fileno(), 0o644)  # a dataset, not a secret: trainers may run as another user
            os.fsync(file.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def image_bytes(f: PlannedFile) -> bytes:
    """Return the bytes to write: the origin unchanged, or decoded, conformed and re-encoded."""
    data = f.origin.read_bytes()
    if f.sha256 is not None:
        verify(data, f.sha256, f.origin.name)
    if not f.converted:
        return data
    try:
        return imaging.convert(data, f.format, f.conform)
    except imaging.InvalidImage as exc:
        raise ValueError(say("saving.cannot_decode", name=f.origin.name, said=told(exc))) from None


def _write_musubi(plan_: Plan, written: list[PlannedItem], errors: list[dict]) -> None:
    if plan_.rule.layout != "musubi" or not (written or plan_.remembered):
        return
    path = plan_.root / plan_.rule.name / MUSUBI_JSONL
    try:
        merge_musubi(path, musubi_records(plan_.root, plan_.rule))
    except OSError as exc:
        errors.append({"kind": "write", "error": say("saving.cannot_write_file", path=str(path), said=str(exc)),
                       "paths": [str(path)]})
