"""Save chosen results into the dataset layouts trainers read (DATASETS.md): rule, plan, write, manifest.

`SaveRule.from_dict` validates a rule, `candidates_*` pick the results, `plan` decides every file
(names, formats, captions, conflicts, aspect checks) without touching the disk, and `execute`
writes the plan with atomic writes, appends `manifest.jsonl` and returns the answer of DESIGN §5.
Every written path is checked against the resolved `output_dir` (DESIGN §7).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import string
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from PIL import Image, ImageOps, UnidentifiedImageError

from . import atomic
from .cache import ImageCache
from .export import iter_tasks
from .imaging import EXTENSION, FORMATS, OPEN_FORMATS
from .store import Store

LAYOUTS = ("flat", "aitoolkit_edit", "aitoolkit_multi", "musubi", "flat_pairs")
TRAINER_LAYOUTS = ("aitoolkit_edit", "aitoolkit_multi", "musubi")
PAIR_LAYOUTS = (*TRAINER_LAYOUTS, "flat_pairs")
OUTPUT_FORMATS = ("png", "jpeg", "webp", "keep")
TRAINER_FORMATS = ("png", "jpeg", "webp")  # ai-toolkit finds controls as .jpg .jpeg .png .webp only
CAPTIONS = ("none", "prompt", "template")
CONFLICTS = ("skip", "overwrite", "rename")
CONFORMS = ("none", "pad", "crop", "resize")
NAME_VARIABLES = ("stem", "n", "index", "run", "task", "result", "sha8", "date")
CAPTION_VARIABLES = ("prompt", "stem", "trigger")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
CONTROL_LOOKUP = (".jpg", ".jpeg", ".png", ".webp")  # ai-toolkit's order, exact case
MANIFEST = "manifest.jsonl"
MUSUBI_JSONL = "dataset.jsonl"
JPEG_QUALITY = WEBP_QUALITY = 95
SHOWN = 50  # items listed per validation finding
_ORIENTATION = 0x0112
_SAMPLE = {"stem": "image", "n": 1, "index": 1, "run": "r0", "task": "t0", "result": "i0", "sha8": "0123abcd",
           "date": "20250101", "prompt": "prompt", "trigger": "trigger"}
_FORMATTER = string.Formatter()
_WRITE_LOCK = threading.Lock()  # two saves into one folder must not interleave manifest appends


class RuleError(ValueError):
    """A save rule that cannot be used; str(e) names the field."""


# -- the rule ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SaveRule:
    """What to save, where and how (the JSON body of the save routes)."""

    output_dir: Path
    layout: str = "flat"
    name: str = "dataset"
    template: str = "{stem}_{n}"
    sequential: bool = False
    format: str = "keep"
    caption: str = "none"
    caption_template: str = "{prompt}"
    trigger: str = ""
    only_selected: bool = True
    conflict: str = "skip"
    aspect_tolerance: float = 0.02
    conform: str = "none"
    dry_run: bool = False

    @property
    def pairs(self) -> bool:
        return self.layout in PAIR_LAYOUTS

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SaveRule":
        """Return the rule in `data` with defaults per layout; raise RuleError naming a bad field."""
        if not isinstance(data, Mapping):
            raise RuleError("the save rule must be a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise RuleError(f"unknown save rule field(s): {', '.join(unknown)}")
        layout = _choice(data, "layout", LAYOUTS, "flat")
        trainer = layout in TRAINER_LAYOUTS
        rule = cls(
            output_dir=_output_dir(data.get("output_dir")), layout=layout,
            name=_dataset_name(_get(data, "name", str, "") or "dataset"),
            template=_get(data, "template", str, "") or "{stem}_{n}",
            sequential=_get(data, "sequential", bool, False),
            format=_choice(data, "format", OUTPUT_FORMATS, "png" if trainer else "keep"),
            caption=_choice(data, "caption", CAPTIONS, "prompt" if trainer else "none"),
            caption_template=_get(data, "caption_template", str, "") or "{prompt}",
            trigger=_get(data, "trigger", str, "").strip(),
            only_selected=_get(data, "only_selected", bool, True),
            conflict=_choice(data, "conflict", CONFLICTS, "skip"),
            aspect_tolerance=_tolerance(_get(data, "aspect_tolerance", float, 0.02)),
            conform=_choice(data, "conform", CONFORMS, "none"),
            dry_run=_get(data, "dry_run", bool, False),
        )
        check_template(rule.template, NAME_VARIABLES, "template")
        relative_name(render(rule.template, _SAMPLE, "template"), "template")
        check_template(rule.caption_template, CAPTION_VARIABLES, "caption_template")
        return rule


_KINDS = {str: "a string", bool: "true or false", float: "a number"}


def _get(data: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    value = data.get(name)
    if value is None:
        return default
    ok = isinstance(value, (int, float)) if kind is float else isinstance(value, kind)
    if not ok or (kind is not bool and isinstance(value, bool)):
        raise RuleError(f"'{name}' must be {_KINDS[kind]}")
    try:
        return float(value) if kind is float else value
    except OverflowError:  # an integer too big for a float
        raise RuleError(f"'{name}' is out of range") from None


def _choice(data: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = _get(data, name, str, "") or default  # "" (a form's "default" option) means the default
    if value not in choices:
        raise RuleError(f"'{name}' must be one of {', '.join(choices)}, not {value[:80]!r}")
    return value


def _output_dir(value: Any) -> Path:
    if value is None or value == "":
        raise RuleError("'output_dir' is required")
    if not isinstance(value, str) or "\0" in value:
        raise RuleError("'output_dir' must be a string")
    if not os.path.isabs(value):
        raise RuleError(f"'output_dir' must be an absolute path, not {value[:200]!r}")
    return Path(value)


def _dataset_name(value: str) -> str:
    if not value or value in (".", "..") or any(c in value for c in "/\\\0") or value.startswith("."):
        raise RuleError(f"'name' must be a plain folder name (no slashes, not hidden), not {value[:80]!r}")
    return value


def _tolerance(value: float) -> float:
    if not math.isfinite(value) or not 0 <= value <= 10:
        raise RuleError("'aspect_tolerance' must be a number from 0 to 10 (0.02 = 2 %)")
    return value


# -- templates --------------------------------------------------------------------------------

def check_template(template: str, allowed: tuple[str, ...], where: str) -> None:
    """Raise RuleError unless every {variable} is in `allowed`, without attribute access or conversions."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise RuleError(f"'{where}' is not a valid template: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed:
            raise RuleError(f"'{where}': unknown variable {{{name}}} (known: {', '.join(allowed)})")
        if conversion or "{" in (spec or ""):
            raise RuleError(f"'{where}': {{{name}}} may only take a format spec like {{n:04d}}")
    render(template, _SAMPLE, where)


def render(template: str, values: Mapping[str, Any], where: str) -> str:
    """Fill a checked template; raise RuleError when a format spec does not suit its value."""
    try:
        return _FORMATTER.vformat(template, (), values)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise RuleError(f"'{where}': {exc}") from None


def relative_name(text: str, where: str) -> PurePosixPath:
    """Return a rendered name as a relative path, refusing anything that could leave output_dir."""
    parts = text.replace("\\", "/").split("/")
    if text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text):
        raise RuleError(f"'{where}' gives an absolute path {text[:200]!r}: names must stay inside output_dir")
    if "\0" in text or any(part in ("", ".", "..") for part in parts):
        raise RuleError(f"'{where}' gives {text[:200]!r}: empty, '.' and '..' parts are not allowed")
    return PurePosixPath(*parts)


def inside(root: Path, path: Path) -> bool:
    """Return True when `path`, with symlinks resolved, stays inside the resolved `root`."""
    resolved = resolved_path(path)
    return resolved is not None and resolved.is_relative_to(root)


def resolved_path(path: Path) -> Path | None:
    """Return `path` with symlinks resolved, or None for a symlink loop or an unreadable folder."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


# -- choosing results -------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One result to save, with its task and its 1-based number among the task's results."""

    task: dict[str, Any]
    result: dict[str, Any]
    number: int


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
            reason = "no selected result" if task["results"] else f"no results (task {task['status']})"
            skipped.append({"task_id": task["id"], "reason": reason})
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


def folders(rule: SaveRule, root: Path) -> dict[str, Path]:
    """Return the folders a layout writes into, by role."""
    if rule.layout in ("aitoolkit_edit", "aitoolkit_multi"):
        return {"target": root / f"{rule.name}_target", "control": root / f"{rule.name}_control"}
    if rule.layout == "musubi":
        return {"target": root / rule.name / "image", "control": root / rule.name / "control"}
    return {"target": root, "control": root}


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
        rid = c.result["id"]
        try:
            origin = cache.path(c.result["sha256"], c.result["format"])
        except (FileNotFoundError, ValueError):
            self.out.errors.append({"result_id": rid, "error": "the result image is missing from the cache"})
            return
        try:
            item = self._pair(c, origin) if self.rule.pairs else self._flat(c, origin)
        except RuleError as exc:
            self.out.errors.append({"result_id": rid, "error": str(exc)})
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
            self.out.errors.append({"result_id": c.result["id"], "error": str(exc)})
            self.findings["missing_controls"].append({"result_id": c.result["id"], "task_id": c.task["id"],
                                                      "source_path": str(source), "error": str(exc)})
            return None
        size, target_size = (width, height), (c.result["width"], c.result["height"])
        conform = None
        if size != target_size and self.rule.conform != "none":
            conform = (self.rule.conform, *target_size)
            self.findings["conformed"].append({"result_id": c.result["id"], "mode": self.rule.conform,
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
        entry = {"result_id": c.result["id"], "task_id": c.task["id"], "source_size": list(size),
                 "result_size": list(target), "difference": round(difference, 4)}
        self.findings["aspect_refused"].append(entry)
        self.out.skipped.append({**entry, "reason": f"aspect ratio differs: source {size[0]}x{size[1]}, result "
                                 f"{target[0]}x{target[1]} ({difference:.1%} > {self.rule.aspect_tolerance:.1%}); "
                                 "set conform to pad, crop or resize"})
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
        rid = item.candidate.result["id"]
        if not clashes:
            return True
        if self.rule.conflict == "skip":
            self.findings["conflicts"].append({"result_id": rid, "path": str(clashes[0]), "action": "skipped"})
            self.out.skipped.append({"result_id": rid, "reason": f"exists: {clashes[0]}"})
            return False
        if self.rule.conflict == "overwrite":
            item.replaces = [p for p in clashes if p not in {f.path for f in item.files}]
            self.findings["conflicts"].append({"result_id": rid, "path": str(clashes[0]), "action": "overwritten"})
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
        self.findings["conflicts"].append({"result_id": item.candidate.result["id"], "path": str(clash),
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
                self.out.errors.append({"result_id": item.candidate.result["id"],
                                        "error": f"refused: {path} is a source image of this run"})
                return False
            if not inside(self.root, path):
                self.out.errors.append({"result_id": item.candidate.result["id"],
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


def pair_paths(rule: SaveRule, where: dict[str, Path], stem: str, control_fmt: str,
               target_fmt: str) -> tuple[Path, Path, Path]:
    """Return (control, target, caption) paths of one pair in the rule's layout."""
    if rule.layout == "flat_pairs":
        root = where["target"]
        return (root / f"{stem}_start{EXTENSION[control_fmt]}", root / f"{stem}_end{EXTENSION[target_fmt]}",
                root / f"{stem}.txt")
    return (where["control"] / f"{stem}{EXTENSION[control_fmt]}", where["target"] / f"{stem}{EXTENSION[target_fmt]}",
            where["target"] / f"{stem}.txt")


def caption_text(rule: SaveRule, prompt: str, stem: str) -> str | None:
    """Return the caption for one item (None when captions are off), trigger baked in as ai-toolkit does."""
    if rule.caption == "none":
        return None
    prompt = prompt.strip()
    text = prompt
    if rule.caption == "template":
        text = render(rule.caption_template, {"prompt": prompt, "stem": stem, "trigger": rule.trigger}, "caption_template")
    if rule.trigger:
        text = text.replace("[trigger]", rule.trigger)
        if rule.trigger not in text:
            text = f"{rule.trigger} {text}"  # ai-toolkit's inject_trigger_into_prompt: trigger + " " + prompt
    return text.strip() or None


def aspect_difference(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Return how much two aspect ratios differ, relative (0.02 = 2 %)."""
    ra, rb = a[0] / a[1], b[0] / b[1]
    return max(ra, rb) / min(ra, rb) - 1


def source_info(path: Path) -> tuple[str, int, int]:
    """Return (format, width, height) of a source as displayed (EXIF rotation applied); raise ValueError."""
    try:
        with Image.open(path, formats=OPEN_FORMATS) as image:
            fmt = FORMATS.get(image.format or "")
            width, height = image.size
            orientation = image.getexif().get(_ORIENTATION, 1)
    except FileNotFoundError:
        raise ValueError(f"the source file is missing: {path}") from None
    except (OSError, UnidentifiedImageError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"the source file cannot be read: {path}: {exc}") from None
    if fmt is None:
        raise ValueError(f"the source file is not a supported image: {path}")
    return (fmt, height, width) if orientation in (5, 6, 7, 8) else (fmt, width, height)


def notes(rule: SaveRule) -> list[str]:
    """Return the plain-language remarks about a rule's output."""
    found = []
    if rule.layout == "aitoolkit_multi":
        found.append(f"one source per task: only {rule.name}_control/ is written; {rule.name}_control2/ and "
                     f"{rule.name}_control3/ need extra reference images, which runs do not have yet")
    if rule.layout == "flat_pairs":
        found.append("flat_pairs (<stem>_start / <stem>_end) is for people to browse: not trainer-ready")
    if rule.layout in TRAINER_LAYOUTS and rule.caption == "none":
        found.append("no captions: ai-toolkit falls back to default_caption; musubi needs captions")
    if rule.trigger and rule.caption == "none":
        found.append("trigger ignored: captions are off")
    if rule.sequential and rule.pairs:
        found.append("sequential stems continue after the highest number already in the target folder")
    if rule.format == "keep" and rule.layout in TRAINER_LAYOUTS:
        found.append("format keep: GIF, BMP and TIFF images are written as PNG (trainers look for jpg/png/webp)")
    return found


# -- saving -----------------------------------------------------------------------------------

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


# -- writing ----------------------------------------------------------------------------------

def execute(store: Store, plan_: Plan) -> dict[str, Any]:
    """Write the plan (or only describe it in a dry run) and return the answer of the save routes."""
    saved: list[dict] = []
    errors = list(plan_.errors)
    if plan_.rule.dry_run:
        saved = [{"result_id": i.candidate.result["id"], "paths": [str(f.path) for f in i.files]} for i in plan_.items]
        return _answer(plan_, saved, errors, plan_.items)
    provenance = run_provenance(store, plan_.run_id)
    done: list[tuple[PlannedItem, str | None]] = []
    with _WRITE_LOCK:
        for item in plan_.items:
            try:
                source_sha = write_item(item)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                errors.append({"result_id": item.candidate.result["id"], "error": f"cannot write: {exc}"})
                continue
            done.append((item, source_sha))
            saved.append({"result_id": item.candidate.result["id"], "paths": [str(f.path) for f in item.files]})
        try:
            _write_indexes(plan_, done, provenance)
        except OSError as exc:
            errors.append({"error": f"cannot write {MANIFEST}: {exc}"})
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
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as opened:
            image = _normal_mode(ImageOps.exif_transpose(opened))
    except (UnidentifiedImageError, SyntaxError) as exc:
        raise ValueError(f"{f.origin.name} cannot be decoded: {exc}") from None
    if f.conform:
        image = conform(image, *f.conform)
    return encode(image, f.format)


def conform(image: Image.Image, mode: str, width: int, height: int) -> Image.Image:
    """Return `image` at width×height: pad (letterbox in black), crop (centre crop, resize) or resize (stretch)."""
    size = (width, height)
    if mode == "pad":
        black = (0, 0, 0, 255) if image.mode == "RGBA" else (0, 0, 0)
        return ImageOps.pad(image, size, Image.Resampling.LANCZOS, color=black)
    if mode == "crop":
        return ImageOps.fit(image, size, Image.Resampling.LANCZOS)
    return image.resize(size, Image.Resampling.LANCZOS)


def encode(image: Image.Image, fmt: str) -> bytes:
    """Encode as png, jpeg (alpha flattened on black) or webp, or in the other formats Pillow writes."""
    buffer = io.BytesIO()
    if fmt == "jpeg":
        if image.mode == "RGBA":
            flat = Image.new("RGB", image.size)
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=WEBP_QUALITY)
    else:
        image.save(buffer, fmt.upper())
    return buffer.getvalue()


def _normal_mode(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16L", "I;16B"):  # 16-bit greys would clip to white
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _sha256_of(path: Path) -> str | None:
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return None


# -- manifest, musubi index, validation ---------------------------------------------------

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


def _write_indexes(plan_: Plan, done: list[tuple[PlannedItem, str | None]], provenance: dict[str, Any]) -> None:
    if not done:
        return
    lines = [manifest_line(plan_.rule, item, sha, provenance) for item, sha in done]
    append_jsonl(plan_.root / MANIFEST, lines)
    if plan_.rule.layout == "musubi":
        merge_musubi(plan_.root / plan_.rule.name / MUSUBI_JSONL, [item for item, _ in done])


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


def validate(plan_: Plan, written: list[PlannedItem]) -> dict[str, Any]:
    """Check the pair folders as a trainer will see them: every target has a control, stems unique."""
    rule = plan_.rule
    where = folders(rule, plan_.root)
    planned = [f.path for item in (plan_.items if rule.dry_run else written) for f in item.files]
    names = {role: _folder_names(folder, planned) for role, folder in where.items()}
    if rule.layout == "flat_pairs":
        return _validate_flat_pairs(names["target"])
    targets = _stems(names["target"])
    controls = _stems(names["control"])
    unmatched = sorted(s for s, sufs in targets.items() if not any(s + x in names["control"] for x in CONTROL_LOOKUP))
    doubles = sorted({s for s, sufs in targets.items() if len(sufs) > 1} | {s for s, sufs in controls.items() if len(sufs) > 1})
    uncaptioned = sorted(s for s in targets if s + ".txt" not in names["target"])
    return {"ok": not unmatched and not doubles, "targets": len(targets), "controls": len(controls),
            "targets_without_control": unmatched[:SHOWN], "same_stem_images": doubles[:SHOWN],
            "targets_without_caption": len(uncaptioned)}


def _validate_flat_pairs(names: set[str]) -> dict[str, Any]:
    stems = _stems(names)
    starts = {s[: -len("_start")] for s in stems if s.endswith("_start")}
    ends = {s[: -len("_end")] for s in stems if s.endswith("_end")}
    return {"ok": starts == ends, "pairs": len(starts & ends), "ends_without_start": sorted(ends - starts)[:SHOWN]}


def _folder_names(folder: Path, planned: list[Path]) -> set[str]:
    try:
        names = {e.name for e in os.scandir(folder) if e.is_file()}
    except OSError:
        names = set()
    return names | {p.name for p in planned if p.parent == folder}


def _stems(names: set[str]) -> dict[str, list[str]]:
    stems: dict[str, list[str]] = {}
    for name in names:
        suffix = Path(name).suffix
        if suffix.lower() in IMAGE_SUFFIXES:
            stems.setdefault(name[: -len(suffix)], []).append(suffix)
    return stems
