"""Choose the results to save and plan every file (names, formats, conflicts, aspect checks) without writing."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..cache import ImageCache
from ..export import iter_tasks
from ..imaging import EXTENSION, source_info
from ..store import Store
from .layout import IMAGE_SUFFIXES, aspect_difference, caption_text, folders, notes, pair_paths
from .rule import TRAINER_FORMATS, TRAINER_LAYOUTS, RuleError, SaveRule, inside, relative_name, render, resolved_path

# -- choosing results -------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One result to save, with its task and its 1-based number among the task's results."""

    task: dict[str, Any]
    result: dict[str, Any]
    number: int

    def names(self) -> dict[str, Any]:
        """Return the ids and the source file name every report entry about this result carries."""
        return {"result_id": self.result["id"], "task_id": self.task["id"], "source_name": self.task["source_name"]}


def run_candidates(store: Store, run_id: str, only_selected: bool) -> tuple[list[Candidate], list[dict], set[Path]]:
    """Return a run's chosen results, the tasks skipped, and every source path (never overwritten)."""
    chosen: list[Candidate] = []
    skipped: list[dict] = []
    sources: set[Path | None] = set()
    for task in iter_tasks(store, run_id):
        sources.add(resolved_path(Path(task["source_path"])))
        picked = [Candidate(task, r, n) for n, r in enumerate(task["results"], 1) if r["selected"] or not only_selected]
        if picked:
            chosen.extend(picked)
        else:
            if task["results"]:
                kind, reason, fix = "unselected", "no selected result", "select a result, or untick 'only selected'"
            else:
                kind, reason, fix = "no_results", f"no results (task {task['status']})", "retry the task"
            skipped.append({"task_id": task["id"], "source_name": task["source_name"], "kind": kind, "reason": reason,
                            "fix": fix})
    return chosen, skipped, sources


def result_candidate(store: Store, result_id: str) -> Candidate | None:
    """Return one result as a candidate, or None when it is unknown."""
    result = store.result(result_id)
    task = store.task(result["task_id"]) if result else None
    found = [(n, r) for n, r in enumerate(task["results"], 1) if r["id"] == result_id] if task else []
    return Candidate(task, found[0][1], found[0][0]) if found else None


# -- the plan ---------------------------------------------------------------------------------

@dataclass
class PlannedFile:
    """One file to write: image bytes from `origin` (converted when needed) or caption `text`."""

    path: Path
    role: str  # image | target | control | caption
    origin: Path | None = None
    origin_format: str | None = None
    format: str | None = None
    text: str | None = None
    conform: tuple[str, int, int] | None = None  # (mode, width, height) for a control

    @property
    def converted(self) -> bool:
        return self.conform is not None or self.format != self.origin_format


@dataclass
class PlannedItem:
    """The files of one saved image or pair, written together or not at all."""

    candidate: Candidate
    files: list[PlannedFile]
    caption: str | None
    replaces: list[Path] = field(default_factory=list)  # same-stem images removed by "overwrite"


@dataclass
class Plan:
    """Everything a save would do: the items, what was skipped or failed, the validation report."""

    rule: SaveRule
    root: Path
    run_id: str
    items: list[PlannedItem] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> list[PlannedFile]:
        return [f for item in self.items for f in item.files]


def prepare_root(rule: SaveRule) -> Path:
    """Create output_dir (not in a dry run) and return it resolved; raise RuleError naming it."""
    root = rule.output_dir
    probe = root
    if rule.dry_run:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
    else:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuleError(f"'output_dir' {root} cannot be created: {exc.strerror or exc}") from None
    if not probe.is_dir():
        raise RuleError(f"'output_dir' {root}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RuleError(f"'output_dir' {root} is not writable")
    return root.resolve()


def plan(cache: ImageCache, rule: SaveRule, root: Path, run_id: str,
         candidates: list[Candidate], protected: set[Path]) -> Plan:
    """Decide every file to write for `candidates` without writing anything."""
    result = Plan(rule, root, run_id)
    planner = _Planner(rule, root, result, protected, len(candidates))
    for candidate in candidates:
        planner.add(cache, candidate)
    result.report = planner.report()
    return result


class _Planner:
    """Plan items one by one, keeping stems unique and recording what the report needs."""

    def __init__(self, rule: SaveRule, root: Path, out: Plan, protected: set[Path], count: int) -> None:
        self.rule, self.root, self.out, self.protected = rule, root, out, protected
        self.folders = folders(rule, root)
        self.existing: dict[Path, dict[str, str]] = {}  # folder -> casefolded name -> name
        self.claimed: dict[str, str] = {}  # casefolded stem or flat name -> task id that claimed it
        self.findings: dict[str, list] = {k: [] for k in ("aspect_refused", "conformed", "missing_controls",
                                                          "duplicate_stems", "conflicts")}
        self.count = count
        self.next_number = self._first_number() if rule.sequential and rule.pairs else 1
        self.width = max(4, len(str(self.next_number + count - 1)))  # 0001…, wider only past 9999
        self.date = time.strftime("%Y%m%d")

    # names ------------------------------------------------------------------------------

    def _names(self, folder: Path) -> dict[str, str]:
        if folder not in self.existing:
            try:
                self.existing[folder] = {e.name.casefold(): e.name for e in os.scandir(folder)}
            except OSError:
                self.existing[folder] = {}
        return self.existing[folder]

    def _first_number(self) -> int:
        stems = [Path(n).stem.removesuffix("_end") for n in self._names(self.folders["target"]).values()]
        return max((int(s) for s in stems if s.isdigit() and s.isascii()), default=0) + 1

    def _claim(self, stem: str, task_id: str) -> str:
        """Return `stem`, or `stem_2`, `stem_3`… when this save already used it (stems are dataset-wide)."""
        chosen, number = stem, 2
        while chosen.casefold() in self.claimed:
            chosen, number = f"{stem}_{number}", number + 1
        owner = self.claimed.get(stem.casefold())
        if chosen != stem and owner != task_id:
            self.findings["duplicate_stems"].append({"task_id": task_id, "stem": stem, "as": chosen})
        self.claimed[chosen.casefold()] = task_id
        return chosen

    def _taken(self, path: Path, image: bool) -> list[Path]:
        """Return existing files that `path` would clash with (any image with its stem, or the same caption)."""
        names = self._names(path.parent)
        wanted = [path.stem + s for s in IMAGE_SUFFIXES] if image else [path.name]
        return [path.parent / names[w.casefold()] for w in wanted if w.casefold() in names]

    # items ------------------------------------------------------------------------------

    def add(self, cache: ImageCache, c: Candidate) -> None:
        try:
            origin = cache.path(c.result["sha256"], c.result["format"])
        except (FileNotFoundError, ValueError):
            self.out.errors.append({**c.names(), "kind": "missing", "error": "the result image is missing from the cache"})
            return
        try:
            item = self._pair(c, origin) if self.rule.pairs else self._flat(c, origin)
        except RuleError as exc:
            self.out.errors.append({**c.names(), "kind": "rule", "error": str(exc)})
            return
        # Checked before the conflict rule looks into folders, and again after it renamed files.
        if item is not None and self._guard(item) and self._resolve_conflict(item) and self._guard(item):
            self.out.items.append(item)

    def _flat(self, c: Candidate, origin: Path) -> PlannedItem:
        values = {"stem": _source_stem(c.task), "n": c.number, "index": c.task["index"] + 1, "run": c.task["run_id"],
                  "task": c.task["id"], "result": c.result["id"], "sha8": c.result["sha256"][:8], "date": self.date}
        name = str(relative_name(render(self.rule.template, values, "template"), "template"))
        name = self._claim(name, c.task["id"])
        fmt = self._format(c.result["format"])
        image = PlannedFile(self.root / f"{name}{EXTENSION[fmt]}", "image", origin, c.result["format"], fmt)
        return self._with_caption(c, [image], values["stem"], image.path.with_suffix(".txt"))

    def _pair(self, c: Candidate, origin: Path) -> PlannedItem | None:
        source = Path(c.task["source_path"])
        try:
            src_format, width, height = source_info(source)
        except ValueError as exc:
            self.out.errors.append({**c.names(), "kind": "missing", "error": str(exc)})
            self.findings["missing_controls"].append({**c.names(), "source_path": str(source), "error": str(exc)})
            return None
        size, target_size = (width, height), (c.result["width"], c.result["height"])
        conform = None
        if size != target_size and self.rule.conform != "none":
            conform = (self.rule.conform, *target_size)
            self.findings["conformed"].append({**c.names(), "mode": self.rule.conform,
                                               "from": list(size), "to": list(target_size)})
        elif not self._aspect_ok(c, size, target_size):
            return None
        if self.rule.sequential:
            stem = self._claim(f"{self.next_number:0{self.width}d}", c.task["id"])
            self.next_number += 1
        else:
            stem = self._claim(_source_stem(c.task), c.task["id"])
        control = PlannedFile(source, "control", source, src_format, self._format(src_format), conform=conform)
        target = PlannedFile(source, "target", origin, c.result["format"], self._format(c.result["format"]))
        return self._name_pair(c, control, target, stem)

    def _name_pair(self, c: Candidate, control: PlannedFile, target: PlannedFile, stem: str) -> PlannedItem:
        """Place control and target of `stem` in the layout's folders and add the caption."""
        control.path, target.path, caption = pair_paths(self.rule, self.folders, stem, control.format, target.format)
        return self._with_caption(c, [control, target], stem, caption)

    def _with_caption(self, c: Candidate, images: list[PlannedFile], stem: str, path: Path) -> PlannedItem:
        text = caption_text(self.rule, c.task["prompt"], stem)
        files = images[:-1] + ([PlannedFile(path, "caption", text=text)] if text else []) + images[-1:]
        return PlannedItem(c, files, text)  # written in this order: the target comes last

    def _aspect_ok(self, c: Candidate, size: tuple[int, int], target: tuple[int, int]) -> bool:
        difference = aspect_difference(size, target)
        if difference <= self.rule.aspect_tolerance:
            return True
        entry = {**c.names(), "source_size": list(size), "result_size": list(target),
                 "difference": round(difference, 4)}
        self.findings["aspect_refused"].append(entry)
        self.out.skipped.append({**entry, "kind": "aspect", "reason": f"aspect ratio differs: source {size[0]}x{size[1]}, result "
                                 f"{target[0]}x{target[1]} ({difference:.1%} > {self.rule.aspect_tolerance:.1%}); "
                                 "set conform to pad, crop or resize",
                                 "fix": "set conform to pad, crop or resize (the control is made to match the "
                                        f"result), or raise the aspect tolerance to {math.ceil(difference * 100) / 100:g}"})
        return False

    def _format(self, origin_format: str) -> str:
        if self.rule.format != "keep":
            return self.rule.format
        if self.rule.layout in TRAINER_LAYOUTS and origin_format not in TRAINER_FORMATS:
            return "png"
        return origin_format

    # conflicts --------------------------------------------------------------------------

    def _resolve_conflict(self, item: PlannedItem) -> bool:
        """Apply the conflict rule to an item whose files exist already; return False to skip it."""
        clashes = self._clashes(item)
        names = item.candidate.names()
        if not clashes:
            return True
        if self.rule.conflict == "skip":
            self.findings["conflicts"].append({**names, "path": str(clashes[0]), "action": "skipped"})
            self.out.skipped.append({**names, "kind": "exists", "reason": f"exists: {clashes[0]}",
                                     "fix": "choose 'rename' or 'overwrite' for existing files, or another folder"})
            return False
        if self.rule.conflict == "overwrite":
            item.replaces = [p for p in clashes if p not in {f.path for f in item.files}]
            self.findings["conflicts"].append({**names, "path": str(clashes[0]), "action": "overwritten"})
            return True
        self._rename(item, clashes[0])
        return True

    def _clashes(self, item: PlannedItem) -> list[Path]:
        return [p for f in item.files for p in self._taken(f.path, f.role != "caption")]

    def _rename(self, item: PlannedItem, clash: Path) -> None:
        """Append -2, -3… to the item's stem until none of its files exists or was planned."""
        base = current = _item_stem(self.rule, item)
        for number in range(2, 100_000):
            stem = f"{base}-{number}"
            self._restem(item, current, stem)
            current = stem
            key = self._key(item)
            if key.casefold() not in self.claimed and not self._clashes(item):
                self.claimed[key.casefold()] = item.candidate.task["id"]
                break
        self.findings["conflicts"].append({**item.candidate.names(), "path": str(clash),
                                           "action": "renamed", "as": [str(f.path) for f in item.files]})

    def _key(self, item: PlannedItem) -> str:
        """Return what `_claim` keys an item by: the flat name relative to the root, or the pair stem."""
        if self.rule.layout == "flat":
            return item.files[-1].path.relative_to(self.root).with_suffix("").as_posix()
        return _item_stem(self.rule, item)

    @staticmethod
    def _restem(item: PlannedItem, old: str, new: str) -> None:
        for f in item.files:
            f.path = f.path.with_name(new + f.path.name[len(old):])

    def _guard(self, item: PlannedItem) -> bool:
        """Refuse an item that would leave output_dir, or overwrite or remove a source image of the run."""
        for path in [f.path for f in item.files] + item.replaces:
            if resolved_path(path) in self.protected:
                self.out.errors.append({**item.candidate.names(), "kind": "source",
                                        "error": f"refused: {path} is a source image of this run"})
                return False
            if not inside(self.root, path):
                self.out.errors.append({**item.candidate.names(), "kind": "source",
                                        "error": f"refused: {path} is outside output_dir"})
                return False
        return True

    # report -----------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        rule = self.rule
        return {"layout": rule.layout, "output_dir": str(self.root),
                "folders": {k: str(v) for k, v in self.folders.items()} if rule.pairs else {"images": str(self.root)},
                "counts": {"results": self.count, "planned": len(self.out.items),
                           "files": sum(len(i.files) for i in self.out.items)},
                **self.findings, "trainer_ready": rule.layout in TRAINER_LAYOUTS, "notes": notes(rule)}


def _source_stem(task: dict[str, Any]) -> str:
    return PurePosixPath(task["source_name"].replace("\\", "/")).stem or "image"


def _item_stem(rule: SaveRule, item: PlannedItem) -> str:
    """Return the stem the item's file names share (the image or target file comes last)."""
    stem = item.files[-1].path.stem
    return stem.removesuffix("_end") if rule.layout == "flat_pairs" else stem
