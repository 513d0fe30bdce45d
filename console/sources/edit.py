"""Edit mode: one task per image of a folder, its prompt from the template and its sidecar, its references matched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..scan import ScanError, ScanResult, scan
from ..store import NewTask
from . import sidecars
from .problems import SourceProblem, file_problem
from .prompts import SIDECAR_MODES, needs_sidecar, source_prompt, wants_sidecar
from .references import ReferenceIndex, checked_folders
from .spec import MAX_TASKS, Plan, RunSpec

PREVIEW_MISSING = 200  # names listed in a scan preview


def scanned(input_path: str, recursive: bool) -> ScanResult:
    """Scan the sources; SourceProblem says why the path cannot be used."""
    try:
        return scan(input_path, recursive)
    except ScanError as exc:
        raise SourceProblem(str(exc)) from None


def checked_mode(mode: str) -> str:
    """Return the sidecar mode; SourceProblem for an unknown one."""
    if mode not in SIDECAR_MODES:
        raise SourceProblem(f"'sidecar' must be one of {', '.join(SIDECAR_MODES)}; got {mode!r}")
    return mode


def plan_edit(spec: RunSpec, found: ScanResult | None = None) -> Plan:
    """Return one task per source image; SourceProblem lists every source that cannot get its prompt or references."""
    mode = checked_mode(spec.sidecar)
    if not spec.prompt.strip() and mode == "off":
        raise SourceProblem("the prompt is empty")
    found = found or scanned(spec.input_path, spec.recursive)
    if found.cut:  # a run takes every image: one cut short would leave the rest out unseen
        raise SourceProblem(f"{found.root}: {found.cut.stopped()} before it saw every image; a run takes every "
                            "image, so choose a smaller folder, turn off subfolders or raise SCAN_MAX_ENTRIES")
    if len(found.files) > MAX_TASKS:
        raise SourceProblem(f"{len(found.files)} images found; at most {MAX_TASKS} per run")
    names = found.names
    prompts = _prompts(spec.prompt, mode, str(found.root), names)
    references = _references(spec, found, names)
    tasks = [NewTask(name, str(path), prompt=prompt, references=refs)
             for name, path, prompt, refs in zip(names, found.files, prompts, references)]
    run_spec: dict[str, Any] = {"sidecar": mode, "reference_dirs": [str(f) for f in _folders(spec, found)]}
    return Plan(spec.input_path, spec.prompt, tasks, run_spec)


def _prompts(template: str, mode: str, root: str, names: list[str]) -> list[str]:
    captions = sidecars.read_all(names, root=root) if wants_sidecar(template, mode) else [None] * len(names)
    required = needs_sidecar(template, mode)
    prompts: list[str] = []
    bad: list[dict[str, str]] = []
    for name, sidecar in zip(names, captions):
        if required and not sidecar.usable:
            bad.append({"name": name, "error": sidecar.problem})
            continue
        prompt = source_prompt(template, name, sidecar.text if sidecar else None, mode)
        if not prompt:
            bad.append({"name": name, "error": f"no prompt: the run prompt is empty and {sidecar.problem}"})
        prompts.append(prompt)
    if bad:
        why = "{caption} needs" if "{caption}" in template else "sidecar mode '%s' needs" % mode
        raise file_problem(f"{len(bad)} of {len(names)} sources have no usable sidecar ({why} one)", bad)
    return prompts


def _folders(spec: RunSpec, found: ScanResult) -> list[Path]:
    return checked_folders(list(spec.reference_dirs), "reference_dirs", found.root)


def _references(spec: RunSpec, found: ScanResult, names: list[str]) -> list[tuple[str, ...]]:
    indexes = [ReferenceIndex(folder, spec.recursive) for folder in _folders(spec, found)]
    if not indexes:
        return [()] * len(names)
    matched: list[tuple[str, ...]] = []
    bad: list[dict[str, str]] = []
    for name in names:
        refs, problems = match_all(indexes, name)
        if problems:
            bad.append({"name": name, "error": "; ".join(problems)})
        matched.append(refs)
    if bad:
        raise file_problem(f"{len(bad)} of {len(names)} sources have no reference image to pair with", bad)
    return matched


def match_all(indexes: list[ReferenceIndex], name: str) -> tuple[tuple[str, ...], list[str]]:
    """Return (the source's reference paths, one per folder in order; the problems)."""
    refs: list[str] = []
    problems: list[str] = []
    for index in indexes:
        path, problem = index.match(name)
        if path is None:
            problems.append(problem or "no match")
        else:
            refs.append(str(path))
    return tuple(refs), problems


def preview(found: ScanResult, prompt: str, mode: str, reference_dirs: list[str], recursive: bool) -> dict[str, Any]:
    """Return what a scan preview adds for sidecars and references: counts and the names missing one."""
    names = found.names
    captions = sidecars.read_all(names, root=str(found.root))  # names, not 100,000 Paths: seconds saved
    missing = [{"name": name, "error": caption.problem} for name, caption in zip(names, captions) if not caption.usable]
    answer: dict[str, Any] = {"sidecars": {
        "count": len(names) - len(missing), "missing_count": len(missing), "missing": missing[:PREVIEW_MISSING],
        "required": needs_sidecar(prompt, checked_mode(mode)), "used": wants_sidecar(prompt, mode),
    }}
    if reference_dirs:
        indexes = [ReferenceIndex(f, recursive) for f in checked_folders(reference_dirs, "reference_dirs", found.root)]
        unmatched = []
        for name in names:
            _, problems = match_all(indexes, name)
            if problems:
                unmatched.append({"name": name, "error": "; ".join(problems)})
        answer["references"] = {"folders": len(indexes), "matched": len(names) - len(unmatched),
                                "missing_count": len(unmatched), "missing": unmatched[:PREVIEW_MISSING]}
    return answer
