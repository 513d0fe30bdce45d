"""Edit mode: one task per image of a folder, its prompt from the template and its sidecar, its references matched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..messages import Message, say, told
from ..scan import ScanError, ScanResult, scan
from ..store import NewTask
from . import sidecars
from .problems import SourceProblem, file_problem, joined
from .prompts import SIDECAR_MODES, needs_sidecar, source_prompt, wants_sidecar
from .references import ReferenceIndex, checked_folders
from .spec import MAX_TASKS, Plan, RunSpec

PREVIEW_MISSING = 200  # names listed in a scan preview


def scanned(input_path: str, recursive: bool) -> ScanResult:
    """Scan the sources; SourceProblem says why the path cannot be used."""
    try:
        return scan(input_path, recursive)
    except ScanError as exc:
        raise SourceProblem(told(exc)) from None


def checked_mode(mode: str) -> str:
    """Return the sidecar mode; SourceProblem for an unknown one."""
    if mode not in SIDECAR_MODES:
        raise SourceProblem(say("fields.not_choice", field="'sidecar'", options=", ".join(SIDECAR_MODES), got=repr(mode)))
    return mode


def plan_edit(spec: RunSpec, found: ScanResult | None = None) -> Plan:
    """Return one task per source image; SourceProblem lists every source that cannot get its prompt or references."""
    mode = checked_mode(spec.sidecar)
    if not spec.prompt.strip() and mode == "off":
        raise SourceProblem(say("sources.prompt_empty"))
    found = found or scanned(spec.input_path, spec.recursive)
    if found.cut:  # a run takes every image: one cut short would leave the rest out unseen
        raise SourceProblem(say("sources.run_scan_cut", path=str(found.root), stopped=found.cut.stopped()))
    if len(found.files) > MAX_TASKS:
        raise SourceProblem(say("sources.too_many_images", count=len(found.files), limit=MAX_TASKS))
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
    bad: list[dict[str, Any]] = []
    for name, sidecar in zip(names, captions):
        if required and not sidecar.usable:
            bad.append({"name": name, "error": sidecar.problem})
            continue
        prompt = source_prompt(template, name, sidecar.text if sidecar else None, mode)
        if not prompt:
            bad.append({"name": name, "error": say("sources.no_prompt", problem=sidecar.problem)})
        prompts.append(prompt)
    if bad:
        what = (say("sources.no_sidecar_caption", count=len(bad), total=len(names), placeholder="{caption}")
                if "{caption}" in template else
                say("sources.no_sidecar_mode", count=len(bad), total=len(names), mode=mode))
        raise file_problem(what, bad)
    return prompts


def _folders(spec: RunSpec, found: ScanResult) -> list[Path]:
    return checked_folders(list(spec.reference_dirs), "reference_dirs", found.root)


def _references(spec: RunSpec, found: ScanResult, names: list[str]) -> list[tuple[str, ...]]:
    indexes = [ReferenceIndex(folder, spec.recursive) for folder in _folders(spec, found)]
    if not indexes:
        return [()] * len(names)
    matched: list[tuple[str, ...]] = []
    bad: list[dict[str, Any]] = []
    for name in names:
        refs, problems = match_all(indexes, name)
        if problems:
            bad.append({"name": name, "error": joined(problems)})
        matched.append(refs)
    if bad:
        raise file_problem(say("sources.no_reference_match", count=len(bad), total=len(names)), bad)
    return matched


def match_all(indexes: list[ReferenceIndex], name: str) -> tuple[tuple[str, ...], list[Message]]:
    """Return (the source's reference paths, one per folder in order; the problems)."""
    refs: list[str] = []
    problems: list[Message] = []
    for index in indexes:
        path, problem = index.match(name)
        if path is None:
            problems.append(problem or say("sources.no_match"))
        else:
            refs.append(str(path))
    return tuple(refs), problems


def preview(found: ScanResult, prompt: str, mode: str, reference_dirs: list[str], recursive: bool) -> dict[str, Any]:
    """Return what a scan preview adds for sidecars and references: counts and the names missing one."""
    names = found.names
    captions = sidecars.read_all(names, root=str(found.root))  # names, not 100,000 Paths: seconds saved
    lacking = [(name, caption) for name, caption in zip(names, captions) if not caption.usable]
    missing = [{"name": name, "error": caption.problem} for name, caption in lacking[:PREVIEW_MISSING]]
    answer: dict[str, Any] = {"sidecars": {
        "count": len(names) - len(lacking), "missing_count": len(lacking), "missing": missing,
        "required": needs_sidecar(prompt, checked_mode(mode)), "used": wants_sidecar(prompt, mode),
    }}
    if reference_dirs:
        indexes = [ReferenceIndex(f, recursive) for f in checked_folders(reference_dirs, "reference_dirs", found.root)]
        unmatched = []
        for name in names:
            _, problems = match_all(indexes, name)
            if problems:
                unmatched.append({"name": name, "error": joined(problems)})
        answer["references"] = {"folders": len(indexes), "matched": len(names) - len(unmatched),
                                "missing_count": len(unmatched), "missing": unmatched[:PREVIEW_MISSING]}
    return answer
