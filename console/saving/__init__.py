"""Save chosen results into the dataset layouts trainers read (docs/datasets.md): rule, plan, write, manifest.

`SaveRule.from_dict` validates a rule, `run_candidates` / `result_candidate` pick the results,
`plan` decides every file (names, inputs, formats, captions, conflicts, aspect checks, what an
earlier save already wrote there) without touching the disk, and `execute` writes the plan item
by item (each noted first in the save's journal), lists each in `manifest.jsonl`, then marks its
result saved in the store, and returns the answer of `POST /api/runs/<id>/save` (docs/api.md); `recover` first undoes what a
killed save left half-done. A `SaveJob` follows a save and cancels it between items. Every written path is
checked against the resolved `output_dir`, so nothing is written outside it.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

from ..cache import ImageCache
from ..store import Store
from .journal import JOURNAL, Journal, Recovery, new_save_id, recover
from .layout import (
    IMAGE_SUFFIXES, LAYOUT_INFO, NOTE_TEXT, LayoutInfo, aspect_difference, caption_path, caption_text, control_paths,
    folders, note, notes, target_path,
)
from .listing import Listing
from .manifest import MUSUBI_JSONL, append_jsonl, manifest_line, merge_musubi, musubi_records, run_provenance
from .memory import MANIFEST, Memory, OtherRuns, SavedBefore, destination, line_destination, manifest_lines, other_runs
from .names import base_stem, caption_values, fit_parts, name_values, source_stem
from .planning import Plan, PlannedFile, PlannedItem, file_sha256, plan, prepare_root
from .presets import LEGACY_PRESETS, builtin_presets
from .progress import SaveJob, SaveJobs
from .rule import (
    CAPTION_VARIABLES, CAPTIONS, CONFLICTS, CONFORMS, LAYOUT_FORMATS, LAYOUTS, NAME_VARIABLES,
    OUTPUT_FORMATS, PAIR_LAYOUTS, TRAINER_FORMATS, TRAINER_LAYOUTS, Resolver, RuleError, SaveRule, check_template, inside,
    relative_name, render, resolved_path,
)
from .selection import Candidate, Selection, protected_paths, result_candidate, run_candidates, task_inputs
from .validation import CONTROL_LOOKUP, SHOWN, validate
from .write import execute, folder_lock, image_bytes, write_item

__all__ = ["append_jsonl", "aspect_difference", "base_stem", "builtin_presets", "Candidate", "caption_path",
           "caption_text", "caption_values", "CAPTION_VARIABLES", "CAPTIONS", "check_template", "CONFLICTS",
           "CONFORMS", "CONTROL_LOOKUP", "control_paths", "destination", "execute", "file_sha256", "fit_parts",
           "folder_lock", "folders", "image_bytes", "IMAGE_SUFFIXES", "inside", "JOURNAL", "Journal", "LAYOUT_FORMATS",
           "LAYOUT_INFO", "LayoutInfo", "LAYOUTS", "LEGACY_PRESETS", "line_destination", "Listing", "MANIFEST",
           "manifest_line", "manifest_lines", "Memory", "merge_musubi", "MUSUBI_JSONL", "musubi_records",
           "name_values", "NAME_VARIABLES", "new_save_id", "note", "NOTE_TEXT", "notes", "other_runs", "OtherRuns",
           "OUTPUT_FORMATS", "PAIR_LAYOUTS", "Plan", "plan", "PlannedFile", "PlannedItem", "prepare_root",
           "protected_paths", "recover", "Recovery", "relative_name", "render", "resolved_path", "Resolver",
           "result_candidate", "RuleError", "run_candidates", "run_provenance", "save_result", "save_run",
           "SavedBefore", "SaveJob", "SaveJobs", "SaveRule", "Selection", "SHOWN", "source_stem", "target_path",
           "task_inputs", "TRAINER_FORMATS", "TRAINER_LAYOUTS", "validate", "write_item"]


def save_run(store: Store, cache: ImageCache, run_id: str, rule: SaveRule, job: SaveJob | None = None) -> dict[str, Any]:
    """Save a run's chosen results by `rule`; return {"saved", "skipped", "errors", "report", "dry_run", "cancelled"}."""
    job = job or SaveJob()
    with _finishing(job):
        chosen = run_candidates(store, run_id, rule)
        answer = _save(store, cache, rule, run_id, chosen.candidates, chosen.skipped, chosen.protected, job)
        answer["report"]["counts"]["left_by_first_only"] = chosen.left_by_first_only
        return answer


def save_result(store: Store, cache: ImageCache, result_id: str, rule: SaveRule,
                job: SaveJob | None = None) -> dict[str, Any] | None:
    """Save one result by `rule` (only_selected and first_only do not apply); None when the result is unknown."""
    job = job or SaveJob()
    with _finishing(job):
        candidate = result_candidate(store, result_id)
        if candidate is None:
            return None
        run_id = candidate.task.run_id
        protected = protected_paths(store.iter_tasks(run_id))
        return _save(store, cache, rule, run_id, [candidate], [], protected, job)


def _refuse_other_runs(store: Store, root: Path, run_id: str) -> None:
    """Raise OtherRuns when the folder's manifest lists items another run saved there (append not asked for)."""
    found = other_runs(root, run_id)
    if found:
        for entry in found:
            run = store.run(entry["run_id"])
            entry["created_at"] = run.created_at if run else None
        raise OtherRuns(root, found)


@contextmanager
def _finishing(job: SaveJob) -> Iterator[None]:
    """Mark the job done however the save ends (a refused output_dir included)."""
    try:
        yield
    finally:
        job.step("done", job.done, job.total)


def _save(store: Store, cache: ImageCache, rule: SaveRule, run_id: str, candidates: list[Candidate],
          skipped: list[dict], protected: set[Path], job: SaveJob) -> dict[str, Any]:
    root = prepare_root(rule, cache.images_dir.parent)
    with nullcontext() if rule.dry_run else folder_lock(root):
        if not rule.append:
            _refuse_other_runs(store, root, run_id)
        # What a killed save left half-done goes first, so that planning sees the folder as it was.
        repaired = Recovery() if rule.dry_run else recover(root, folders(rule, root).values())
        planned = plan(cache, rule, root, run_id, candidates, protected, job)
        planned.skipped[:0] = skipped
        planned.report["repaired"] = repaired.report()
        return execute(store, planned, job)
