"""Save chosen results into the dataset layouts trainers read (DATASETS.md): rule, plan, write, manifest.

`SaveRule.from_dict` validates a rule, `candidates_*` pick the results, `plan` decides every file
(names, formats, captions, conflicts, aspect checks) without touching the disk, and `execute`
writes the plan with atomic writes, appends `manifest.jsonl` and returns the answer of DESIGN §5.
Every written path is checked against the resolved `output_dir` (DESIGN §7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..cache import ImageCache
from ..export import iter_tasks
from ..store import Store
from .layout import IMAGE_SUFFIXES, aspect_difference, caption_text, folders, notes, pair_paths
from .manifest import MANIFEST, MUSUBI_JSONL, append_jsonl, manifest_line, merge_musubi, run_provenance
from .planning import (
    Candidate, Plan, PlannedFile, PlannedItem, plan, prepare_root, result_candidate, run_candidates,
)
from .rule import (
    CAPTION_VARIABLES, CAPTIONS, CONFLICTS, CONFORMS, LAYOUTS, NAME_VARIABLES, OUTPUT_FORMATS, PAIR_LAYOUTS,
    TRAINER_FORMATS, TRAINER_LAYOUTS, RuleError, SaveRule, check_template, inside, relative_name, render, resolved_path,
)
from .validation import CONTROL_LOOKUP, SHOWN, validate
from .write import execute, image_bytes, write_item

__all__ = [
    "LAYOUTS", "TRAINER_LAYOUTS", "PAIR_LAYOUTS", "OUTPUT_FORMATS", "TRAINER_FORMATS", "CAPTIONS", "CONFLICTS",
    "CONFORMS", "NAME_VARIABLES", "CAPTION_VARIABLES", "IMAGE_SUFFIXES", "CONTROL_LOOKUP", "MANIFEST", "MUSUBI_JSONL",
    "SHOWN", "RuleError", "SaveRule", "check_template", "render", "relative_name",
    "inside", "resolved_path", "Candidate", "run_candidates", "result_candidate", "PlannedFile", "PlannedItem", "Plan",
    "prepare_root", "folders", "plan", "pair_paths", "caption_text", "aspect_difference", "notes",
    "save_run", "save_result", "execute", "write_item", "image_bytes", "run_provenance",
    "manifest_line", "append_jsonl", "merge_musubi", "validate",
]


def save_run(store: Store, cache: ImageCache, run_id: str, rule: SaveRule) -> dict[str, Any]:
    """Save a run's chosen results by `rule`; return {"saved", "skipped", "errors", "report", "dry_run"}."""
    candidates, skipped, sources = run_candidates(store, run_id, rule.only_selected)
    return _save(store, cache, rule, run_id, candidates, skipped, sources)


def save_result(store: Store, cache: ImageCache, result_id: str, rule: SaveRule) -> dict[str, Any] | None:
    """Save one result by `rule` (only_selected does not apply); None when the result is unknown."""
    candidate = result_candidate(store, result_id)
    if candidate is None:
        return None
    run_id = candidate.task["run_id"]
    sources = {resolved_path(Path(task["source_path"])) for task in iter_tasks(store, run_id)}
    return _save(store, cache, rule, run_id, [candidate], [], sources)


def _save(store: Store, cache: ImageCache, rule: SaveRule, run_id: str, candidates: list[Candidate],
          skipped: list[dict], sources: set[Path]) -> dict[str, Any]:
    root = prepare_root(rule)
    planned = plan(cache, rule, root, run_id, candidates, sources)
    planned.skipped[:0] = skipped
    return execute(store, planned)
