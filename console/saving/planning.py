"""Plan every file of a save (names, inputs, formats, conflicts, aspect checks, earlier saves) without writing."""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cache import ImageCache
from ..imaging import EXTENSION, source_info
from ..messages import say, told
from .claims import Claims
from .layout import (
    IMAGE_SUFFIXES, LAYOUT_INFO, aspect_difference, caption_path, caption_text, control_paths, control_role, folders,
    note, notes, pair_stem, target_path, trainer_snippet,
)
from .memory import Memory
from .names import SUFFIX_ROOM, base_stem, caption_values, fit_parts, name_values, result_prompt, template_stem
from .progress import SaveJob
from .rule import (
    AUTO_CONFORM, LAYOUT_FORMATS, TRAINER_FORMATS, TRAINER_LAYOUTS, Resolver, RuleError, SaveRule, relative_name, render,
)
from .selection import Candidate, task_inputs


# -- the plan ---------------------------------------------------------------------------------

@dataclass
class PlannedFile:
    """One file to write: image bytes from `origin` (converted when needed) or caption `text`."""

    path: Path
    role: str  # image | target | control | control2 … | caption
    origin: Path | None = None
    origin_format: str | None = None
    format: str | None = None
    text: str | None = None
    conform: tuple[str, int, int] | None = None  # (mode, width, height) for the first control
    sha256: str | None = None  # what the origin's bytes hash to when it is a cached result (checked on writing)

    @property
    def converted(self) -> bool:
        return self.conform is not None or self.format != self.origin_format


@dataclass
class PlannedItem:
    """The files of one saved image or pair, written together or not at all."""

    candidate: Candidate
    files: list[PlannedFile]
    caption: str | None
    values: dict[str, Any] = field(default_factory=dict)  # the name variables, for the caption
    caption_from: str | None = None  # "result" (its own caption) or "rule" (the prompt or template); None: no caption
    replaces: list[Path] = field(default_factory=list)  # same-stem images removed by "overwrite"

    @property
    def paths(self) -> list[str]:
        return [str(f.path) for f in self.files]


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
    remembered: list[Candidate] = field(default_factory=list)  # skipped as saved here before
    cancelled: bool = False

    @property
    def files(self) -> list[PlannedFile]:
        return [f for item in self.items for f in item.files]


def prepare_root(rule: SaveRule, data_dir: Path | None = None) -> Path:
    """Create output_dir (not in a dry run) and return it resolved; raise RuleError naming it.

    An output_dir inside the console's `data_dir` is refused: the cache's eviction would delete it.
    """
    root = rule.output_dir
    if data_dir is not None and _within(root, data_dir):
        raise RuleError(say("saving.output_dir_in_data", root=str(root), data_dir=str(data_dir)))
    probe = root
    if rule.dry_run:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
    else:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuleError(say("saving.output_dir_not_created", root=str(root), said=str(exc.strerror or exc))) from None
    if not probe.is_dir():
        raise RuleError(say("saving.output_dir_not_folder", root=str(root), probe=str(probe)))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RuleError(say("saving.output_dir_not_writable", root=str(root)))
    return root.resolve()


def plan(cache: ImageCache, rule: SaveRule, root: Path, run_id: str, candidates: list[Candidate],
         protected: set[Path], job: SaveJob | None = None) -> Plan:
    """Decide every file to write for `candidates` without writing anything; stop early when `job` is cancelled."""
    job = job or SaveJob()
    result = Plan(rule, root, run_id)
    planner = _Planner(rule, root, result, protected, len(candidates))
    for done, candidate in enumerate(candidates):
        if job.cancelled:
            result.cancelled = True
            break
        job.step("planning", done, len(candidates))
        planner.add(cache, candidate)
    result.report = planner.report()
    return result


def _within(path: Path, folder: Path) -> bool:
    """Return True when `path` is `folder` or lies below it, symlinks resolved (either may not exist yet)."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def file_sha256(path: str) -> str | None:
    """Return the SHA-256 of a file, or None when there is no such readable file."""
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return None


class _Refused(Exception):
    """An item the planner refuses: its report entry is ready."""


@dataclass(frozen=True)
class _Image:
    """An image a pair is made of: where its bytes are, their format and its displayed size."""

    origin: Path
    format: str
    size: tuple[int, int]
    sha256: str | None = None  # a cached result's hash; None for the user's own files


class _Planner:
    """Plan items one by one, keeping names unique and recording what the report needs."""

    def __init__(self, rule: SaveRule, root: Path, out: Plan, protected: set[Path], count: int) -> None:
        self.rule, self.root, self.out, self.protected = rule, root, out, protected
        self.folders = folders(rule, root)
        self.memory = Memory(root, rule)
        self.resolve = Resolver()
        self.hashes: dict[str, str | None] = {}
        self.claims = Claims(musubi=rule.layout == "musubi")
        self.findings: dict[str, list] = {k: [] for k in ("aspect_refused", "conformed", "missing_controls",
                                                          "duplicate_stems", "conflicts")}
        self.count = count
        self.with_references = 0
        self.next_number = self._first_number() if rule.sequential and rule.pairs else 1
        self.width = max(4, len(str(self.next_number + count - 1)))  # 0001…, wider only past 9999
        self.date = time.strftime("%Y%m%d")
        if rule.layout == "musubi":
            for name in self.claims.names(self.folders["target"]).values():
                if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                    self.claims.note_target(Path(name).stem)

    # names ------------------------------------------------------------------------------

    def _first_number(self) -> int:
        stems = [pair_stem(self.rule, Path(n)) for n in self.claims.names(self.folders["target"]).values()]
        return max((int(s) for s in stems if s.isdigit() and s.isascii()), default=0) + 1

    def _free(self, item: PlannedItem) -> bool:
        return self.claims.free(_images(item), self._item_stem(item))

    def _claim(self, item: PlannedItem, task_id: str) -> None:
        """Give the item the first free stem: its own, else `stem_2`, `stem_3`… (`-2` for musubi: see Claims)."""
        stem = current = self._item_stem(item)
        owners = self.claims.owners(_images(item))
        joint = "-" if self.rule.layout == "musubi" else "_"
        number = 2
        while not self._free(item):
            nxt = f"{stem}{joint}{number}"
            self._restem(item, current, nxt)
            current, number = nxt, number + 1
        if current != stem and owners != {task_id}:  # another task's stem (not a second result)
            self.findings["duplicate_stems"].append({**item.candidate.names(), "stem": stem, "as": current,
                                                     "paths": item.paths})
        self._take(item, task_id)

    def _take(self, item: PlannedItem, task_id: str) -> None:
        self.claims.take(_images(item), self._item_stem(item) if self.rule.pairs else None, task_id)

    def _item_stem(self, item: PlannedItem) -> str:
        """Return the stem the item's file names share (the image or target file comes last)."""
        return pair_stem(self.rule, item.files[-1].path) if self.rule.pairs else item.files[-1].path.stem

    # items ------------------------------------------------------------------------------

    def add(self, cache: ImageCache, c: Candidate) -> None:
        try:
            origin = cache.path(c.result.sha256, c.result.format)
        except (FileNotFoundError, ValueError):
            self.out.errors.append({**c.names(), "kind": "missing", "error": say("saving.result_missing"),
                                    "fix": say("saving.fix_retry_fetch"), "paths": []})
            return
        if not self._whole(c, origin):
            return
        values = name_values(c.task, c.result, c.number, c.global_index, self.rule, self.date)
        if self._saved_before(c):
            return
        try:
            item = self._pair(c, origin, values) if self.rule.pairs else self._flat(c, origin, values)
        except _Refused:
            return
        except RuleError as exc:
            self.out.errors.append({**c.names(), "kind": "rule", "error": told(exc), "paths": []})
            return
        self._claim(item, c.task.id)
        # Checked before the conflict rule looks into folders, and again after it renamed files.
        if self._guard(item) and self._resolve_conflict(item) and self._guard(item):
            self._finish_caption(item)
            self.out.items.append(item)

    def _whole(self, c: Candidate, origin: Path) -> bool:
        """Refuse a cached result whose file is not as long as the image received (its hash is checked on writing)."""
        expected = c.result.size
        try:
            size = origin.stat().st_size
        except OSError:
            size = None
        if not isinstance(expected, int) or size == expected:
            return True
        self.out.errors.append({**c.names(), "kind": "damaged", "paths": [],
                                "error": say("saving.result_damaged", name=origin.name, size=size, expected=expected),
                                "fix": say("saving.fix_retry_fetch")})
        return False

    def _saved_before(self, c: Candidate) -> bool:
        """Skip a result an earlier save already wrote to this place (unless the rule says resave)."""
        if self.rule.resave or not self.memory.knows(c.result.sha256):
            return False
        path = c.task.source_path
        if path not in self.hashes:
            self.hashes[path] = file_sha256(path)
        before = self.memory.find(self.hashes[path], c.result.sha256)
        if before is None:
            return False
        self.out.remembered.append(c)
        self.out.skipped.append({**c.names(), "kind": "saved_before", "paths": before.paths,
                                 "reason": say("saving.saved_before", timestamp=before.timestamp) if before.timestamp
                                 else say("saving.saved_before_unknown"),
                                 "fix": say("saving.fix_resave")})
        return True

    def _flat(self, c: Candidate, origin: Path, values: dict[str, Any]) -> PlannedItem:
        name = str(fit_parts(relative_name(render(self.rule.template, values, "template"), "template"), SUFFIX_ROOM))
        fmt = self._format(c.result.format)
        image = PlannedFile(self.root / f"{name}{EXTENSION[fmt]}", "image", origin, c.result.format, fmt,
                            sha256=c.result.sha256)
        return self._with_caption(c, [image], values, image.path.with_suffix(".txt"))

    def _pair(self, c: Candidate, origin: Path, values: dict[str, Any]) -> PlannedItem:
        """Plan a pair: the task's inputs as controls and the result as target, or the other way round (role swap)."""
        task, result = c.task, c.result
        stem = base_stem(task, self.rule)
        if task.references:
            self.with_references += 1
        result_file = _Image(origin, result.format, (result.width, result.height), result.sha256)
        if self.rule.swapped:
            if not task.source_path:
                self._refuse(c, "no_source", say("saving.no_source_swap"), say("saving.fix_no_source_swap"))
            target = self._inputs(c, [task.source_path])[0]
            inputs = [result_file, *self._inputs(c, task.references)]
        else:
            inputs = self._inputs(c, task_inputs(task))
            target = result_file
            if not inputs:
                self._refuse(c, "no_source", say("saving.no_input"), say("saving.fix_no_input"))
        self._check_count(c, len(inputs))
        conform = self._conform(c, inputs[0].size, target.size)
        if self.rule.sequential:
            stem = f"{self.next_number:0{self.width}d}"
            self.next_number += 1
        elif self.rule.template_given:
            stem = template_stem(self.rule, values)
        formats = [self._format(image.format) for image in inputs]
        paths = control_paths(self.rule, self.folders, stem, formats)
        controls = [PlannedFile(path, control_role(i), image.origin, image.format, fmt,
                                conform=conform if i == 1 else None, sha256=image.sha256)
                    for i, (image, fmt, path) in enumerate(zip(inputs, formats, paths), 1)]
        target_format = self._format(target.format)
        target_file = PlannedFile(target_path(self.rule, self.folders, stem, target_format), "target", target.origin,
                                  target.format, target_format, sha256=target.sha256)
        return self._with_caption(c, [*controls, target_file], values, caption_path(self.rule, self.folders, stem))

    def _conform(self, c: Candidate, size: tuple[int, int], target: tuple[int, int]) -> tuple[str, int, int] | None:
        """Return how the first control is made to fit its target, or None; refuse the item when it may not be.

        `auto` leaves a control within the aspect tolerance as it is and resizes one beyond it to its
        target's pixels; `none` refuses it; pad, crop and resize conform every control of another size.
        """
        mode = self.rule.conform
        if size == target or mode == "none" or (mode == "auto" and self._within(size, target)):
            if not self._aspect_ok(c, size, target):
                raise _Refused
            return None
        used = AUTO_CONFORM if mode == "auto" else mode
        self.findings["conformed"].append({**c.names(), "mode": used, "by_default": mode == "auto",
                                           "from": list(size), "to": list(target)})
        return (used, *target)

    def _within(self, size: tuple[int, int], target: tuple[int, int]) -> bool:
        return aspect_difference(size, target) <= self.rule.aspect_tolerance

    def _inputs(self, c: Candidate, paths: list[str]) -> list[_Image]:
        """Return the input images at `paths`; refuse the item when one is unreadable."""
        found = []
        for path in paths:
            try:
                fmt, width, height = source_info(Path(path))
            except ValueError as exc:
                self.findings["missing_controls"].append({**c.names(), "input_path": path, "error": told(exc), "paths": []})
                self.out.errors.append({**c.names(), "kind": "missing", "error": told(exc), "paths": []})
                raise _Refused from None
            found.append(_Image(Path(path), fmt, (width, height)))
        return found

    def _check_count(self, c: Candidate, count: int) -> None:
        limit = LAYOUT_INFO[self.rule.layout].max_inputs
        if limit is not None and count > limit:
            self._refuse(c, "inputs", say("saving.too_many_inputs", count=count, layout=self.rule.layout, limit=limit),
                         say("saving.fix_too_many_inputs"))

    def _refuse(self, c: Candidate, kind: str, reason: str, fix: str) -> None:
        self.out.errors.append({**c.names(), "kind": kind, "error": say("saving.refused", reason=reason), "fix": fix,
                                "paths": []})
        raise _Refused

    def _with_caption(self, c: Candidate, images: list[PlannedFile], values: dict[str, Any], path: Path) -> PlannedItem:
        text = self._caption(c, values, images[-1].path)
        files = images[:-1] + ([PlannedFile(path, "caption", text=text)] if text else []) + images[-1:]
        item = PlannedItem(c, files, text, values)  # written in this order: the target comes last
        if text:
            item.caption_from = "result" if c.result.caption else "rule"
        return item

    def _caption(self, c: Candidate, values: dict[str, Any], image: Path) -> str | None:
        """Return one item's caption: the result's own, else the rule's prompt or template."""
        prompt = result_prompt(c.task, c.result)
        values = caption_values(values, prompt, self.rule, image, c.result.answer_text)
        return caption_text(self.rule, prompt, values, c.result.caption)

    def _finish_caption(self, item: PlannedItem) -> None:
        """Render the caption again once the image's final name is known ({image_name}, {image_path})."""
        caption = next((f for f in item.files if f.role == "caption"), None)
        if caption is not None:
            caption.text = item.caption = self._caption(item.candidate, item.values, item.files[-1].path) or caption.text

    def _aspect_ok(self, c: Candidate, size: tuple[int, int], target: tuple[int, int]) -> bool:
        difference = aspect_difference(size, target)
        if difference <= self.rule.aspect_tolerance:
            return True
        source, result = (target, size) if self.rule.swapped else (size, target)
        entry = {**c.names(), "source_size": list(source), "result_size": list(result),
                 "difference": round(difference, 4), "paths": []}
        self.findings["aspect_refused"].append(entry)
        # Percentages as the English shows them (3.4%): the page gets the same rounded number.
        reason = say("saving.aspect_differs", control=f"{size[0]}x{size[1]}", target=f"{target[0]}x{target[1]}",
                     difference=round(difference * 100, 1), tolerance=round(self.rule.aspect_tolerance * 100, 1))
        self.out.skipped.append({**entry, "kind": "aspect", "reason": reason,
                                 "fix": say("saving.fix_aspect", tolerance=math.ceil(difference * 100) / 100)})
        return False

    def _format(self, origin_format: str) -> str:
        if self.rule.format != "keep":
            return self.rule.format
        accepted = LAYOUT_FORMATS.get(self.rule.layout, TRAINER_FORMATS)
        if self.rule.layout in TRAINER_LAYOUTS and origin_format not in accepted:
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
            self.findings["conflicts"].append({**names, "path": str(clashes[0]), "action": "skipped", "paths": item.paths})
            self.out.skipped.append({**names, "kind": "exists", "reason": say("saving.exists", path=str(clashes[0])),
                                     "paths": item.paths, "fix": say("saving.fix_exists")})
            return False
        if self.rule.conflict == "overwrite":
            item.replaces = [p for p in clashes if p not in {f.path for f in item.files}]
            self.findings["conflicts"].append({**names, "path": str(clashes[0]), "action": "overwritten",
                                               "paths": item.paths})
            return True
        self._rename(item, clashes[0])
        return True

    def _clashes(self, item: PlannedItem) -> list[Path]:
        return [p for f in item.files for p in self.claims.on_disk(f.path, f.role != "caption")]

    def _rename(self, item: PlannedItem, clash: Path) -> None:
        """Append -2, -3… to the item's stem until none of its files exists or was planned."""
        base = current = self._item_stem(item)
        task_id = item.candidate.task.id
        # The clashing stem stays claimed, so this task's next result is named as in the first save (x_2-2).
        for number in range(2, 100_000):
            stem = f"{base}-{number}"
            self._restem(item, current, stem)
            current = stem
            if self._free(item) and not self._clashes(item):
                break
        self._take(item, task_id)
        self.findings["conflicts"].append({**item.candidate.names(), "path": str(clash),
                                           "action": "renamed", "as": item.paths, "paths": item.paths})

    @staticmethod
    def _restem(item: PlannedItem, old: str, new: str) -> None:
        for f in item.files:
            f.path = f.path.with_name(new + f.path.name[len(old):])

    def _guard(self, item: PlannedItem) -> bool:
        """Refuse an item that would leave output_dir, or overwrite or remove an input image of the run."""
        for path in [f.path for f in item.files] + item.replaces:
            resolved = self.resolve(path)
            if resolved in self.protected:
                self.out.errors.append({**item.candidate.names(), "kind": "source", "paths": item.paths,
                                        "error": say("saving.refused", reason=say("saving.source_image", path=str(path)))})
                return False
            if resolved is None:
                self.out.errors.append({**item.candidate.names(), "kind": "source", "paths": item.paths,
                                        "error": say("saving.refused", reason=say("saving.path_unchecked", path=str(path)))})
                return False
            if not resolved.is_relative_to(self.root):
                self.out.errors.append({**item.candidate.names(), "kind": "source", "paths": item.paths,
                                        "error": say("saving.refused", reason=say("saving.path_outside", path=str(path)))})
                return False
        return True

    # report -----------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        rule = self.rule
        remarks = notes(rule)
        if rule.layout in ("aitoolkit_multi", "civitai_edit") and not self.with_references:
            remarks.append(note("no_references"))
        if rule.layout == "aitoolkit_edit" and self.with_references:
            remarks.append(note("references_refused"))
        by_default = sum(1 for entry in self.findings["conformed"] if entry.get("by_default"))
        if by_default:
            remarks.append(note("conformed_by_default", count=str(by_default)))
        roles = {f.role for f in self.out.files}
        return {"layout": rule.layout, "output_dir": str(self.root), "role_swap": rule.swapped,
                "folders": {k: str(v) for k, v in self.folders.items()} if rule.pairs else {"images": str(self.root)},
                "counts": {"results": self.count, "planned": len(self.out.items),
                           "files": sum(len(i.files) for i in self.out.items),
                           "saved_before": len(self.out.remembered)},
                **self.findings, "trainer_ready": rule.layout in TRAINER_LAYOUTS,
                "notes": [remark["text"] for remark in remarks],
                "trainer_snippet": trainer_snippet(rule, self.folders, roles) if rule.pairs else None,
                "note_codes": [{"code": remark["code"], "vars": remark["vars"]} for remark in remarks]}


def _images(item: PlannedItem) -> list[Path]:
    return [f.path for f in item.files if f.role != "caption"]
