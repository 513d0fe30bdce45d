"""Decide what a layout writes where: its folders, the names of targets, controls and captions, and remarks.

Each layout follows its trainer's documented reading rules (docs/datasets.md, *What each trainer reads*):

- ai-toolkit (`aitoolkit_edit`, `aitoolkit_multi`): `<name>_target/<stem>.<ext>` + `<stem>.txt`, the inputs
  in sibling folders `<name>_control/`, `<name>_control2/`, `<name>_control3/`, matched by stem.
- musubi-tuner: `<name>/image/` targets + captions, `<name>/control/<stem>.<ext>`, or `<stem>_0`, `<stem>_1` …
  when a target has several inputs, and `<name>/dataset.jsonl`.
- fal edit trainers (`fal_start_end`): one folder `<name>/` of `ROOT_start.EXT`, `ROOT_end.EXT`, `ROOT.txt`,
  further inputs `ROOT_start2.EXT` … (up to four inputs).
- Civitai edit training (`civitai_edit`): `<name>/main/` targets + captions, `<name>/control_1/` … `control_3/`.
- `flat_pairs`: fal's names straight in output_dir, for people to browse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..imaging import EXTENSION
from .rule import TRAINER_LAYOUTS, SaveRule, render

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class LayoutInfo:
    """What a layout is for and how many input images (controls) one target may have."""

    trainer: str
    max_inputs: int | None  # None: any number; 0: no inputs (flat)


LAYOUT_INFO = {
    "flat": LayoutInfo("anything: file names from the template", 0),
    "aitoolkit_edit": LayoutInfo("ai-toolkit Kontext / Qwen-Image-Edit (one control)", 1),
    "aitoolkit_multi": LayoutInfo("ai-toolkit Qwen-Image-Edit-2509 and later (up to three controls)", 3),
    "musubi": LayoutInfo("musubi-tuner (FLUX.1 Kontext, FLUX.2, Qwen-Image-Edit)", None),
    "fal_start_end": LayoutInfo("fal edit trainers (Kontext, Qwen-Edit, FLUX.2 zips; up to four inputs)", 4),
    "civitai_edit": LayoutInfo("Civitai edit training (ai-toolkit engine; up to three controls)", 3),
    "flat_pairs": LayoutInfo("people browsing pairs (fal's names, in output_dir)", 4),
}


def folders(rule: SaveRule, root: Path) -> dict[str, Path]:
    """Return the folders a layout writes into, by role (target, control, control2, control3)."""
    name = rule.name
    if rule.layout == "aitoolkit_edit":
        return {"target": root / f"{name}_target", "control": root / f"{name}_control"}
    if rule.layout == "aitoolkit_multi":
        return {"target": root / f"{name}_target", "control": root / f"{name}_control",
                "control2": root / f"{name}_control2", "control3": root / f"{name}_control3"}
    if rule.layout == "musubi":
        return {"target": root / name / "image", "control": root / name / "control"}
    if rule.layout == "civitai_edit":
        return {"target": root / name / "main", **{control_role(i): root / name / f"control_{i}" for i in (1, 2, 3)}}
    if rule.layout == "fal_start_end":
        return {"target": root / name, "control": root / name}
    if rule.layout == "flat_pairs":
        return {"target": root, "control": root}
    return {"target": root}


def control_role(number: int) -> str:
    """Return the role of the number-th input: control, control2, control3 …"""
    return "control" if number == 1 else f"control{number}"


def control_paths(rule: SaveRule, where: dict[str, Path], stem: str, formats: list[str]) -> list[Path]:
    """Return where the inputs of one target go (the first input first), one per format given."""
    count = len(formats)
    paths = []
    for number, fmt in enumerate(formats, 1):
        ext = EXTENSION[fmt]
        if rule.layout in ("fal_start_end", "flat_pairs"):
            paths.append(where["control"] / f"{stem}_start{'' if number == 1 else number}{ext}")
        elif rule.layout == "musubi":
            paths.append(where["control"] / (f"{stem}{ext}" if count == 1 else f"{stem}_{number - 1}{ext}"))
        else:
            paths.append(where[control_role(number)] / f"{stem}{ext}")
    return paths


def target_path(rule: SaveRule, where: dict[str, Path], stem: str, fmt: str) -> Path:
    """Return where the target image of one pair goes."""
    suffix = "_end" if rule.layout in ("fal_start_end", "flat_pairs") else ""
    return where["target"] / f"{stem}{suffix}{EXTENSION[fmt]}"


def caption_path(rule: SaveRule, where: dict[str, Path], stem: str) -> Path:
    """Return where the caption of one pair goes (next to the target; fal's ROOT.txt)."""
    return where["target"] / f"{stem}.txt"


def pair_stem(rule: SaveRule, target: Path) -> str:
    """Return the stem a pair's names share, from its target's path."""
    stem = target.stem
    return stem.removesuffix("_end") if rule.layout in ("fal_start_end", "flat_pairs") else stem


def caption_text(rule: SaveRule, prompt: str, values: Mapping[str, Any], own: str | None = None) -> str | None:
    """Return the caption for one item (None when captions are off), trigger baked in as ai-toolkit does.

    `values` are the caption template's variables (names.caption_values); `own` is the result's own
    caption, written instead of the prompt or template whenever captions are on.
    """
    if rule.caption == "none":
        return None
    prompt, own = prompt.strip(), (own or "").strip()
    if own:
        text = own
    elif rule.caption == "template":
        text = render(rule.caption_template, {**values, "prompt": prompt, "trigger": rule.trigger}, "caption_template")
    else:
        text = prompt
    if rule.trigger:
        text = text.replace("[trigger]", rule.trigger)
        if rule.trigger not in text:
            text = f"{rule.trigger} {text}"  # ai-toolkit's inject_trigger_into_prompt: trigger + " " + prompt
    return text.strip() or None


def aspect_difference(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Return how much two aspect ratios differ, relative (0.02 = 2 %)."""
    ra, rb = a[0] / a[1], b[0] / b[1]
    return max(ra, rb) / min(ra, rb) - 1


def trainer_snippet(rule: SaveRule, where: dict[str, Path], roles: set[str]) -> dict[str, str] | None:
    """Return the lines a trainer's config needs to read this dataset (ai-toolkit YAML, musubi TOML), or None.

    `roles` are the roles of the files planned, so that only control folders that get files are listed.
    """
    if rule.layout in ("aitoolkit_edit", "aitoolkit_multi"):
        controls = [quote(where[role]) for role in ("control", "control2", "control3") if role in where and
                    (role in roles or role == "control")]
        control = controls[0] if len(controls) == 1 else f"[{', '.join(controls)}]"
        lines = ["datasets:", f"  - folder_path: {quote(where['target'])}", f"    control_path: {control}",
                 '    caption_ext: "txt"', "    resolution: [512, 768, 1024]"]
        return {"trainer": "ai-toolkit", "language": "yaml", "text": "\n".join(lines) + "\n"}
    if rule.layout == "musubi":
        lines = ["[general]", "resolution = [1024, 1024]", 'caption_extension = ".txt"', "batch_size = 1",
                 "enable_bucket = true", "", "[[datasets]]", f"image_directory = {quote(where['target'])}",
                 f"control_directory = {quote(where['control'])}",
                 f"cache_directory = {quote(where['target'].parent / 'cache')}"]
        return {"trainer": "musubi-tuner", "language": "toml", "text": "\n".join(lines) + "\n"}
    return None


def quote(path: Path) -> str:
    """Return a path as a double-quoted string that YAML and TOML both read (a JSON string)."""
    return json.dumps(str(path), ensure_ascii=False)


# The report's remarks by code; the page shows them in its language (note_<code>), these are the English ones.
NOTE_TEXT = {
    "flat_pairs_for_people": "flat_pairs (<stem>_start / <stem>_end in output_dir) is for people to browse; "
                             "fal_start_end writes the same names with captions in a folder of their own, trainer-ready",
    "fal_zip": "zip the folder {name}/ (its files at the top of the zip) for fal's edit trainers",
    "civitai_zip": "zip the contents of {name}/ (main/, control_1/ … at the top of the zip) for Civitai",
    "no_captions": "no captions: ai-toolkit falls back to default_caption; musubi needs captions",
    "trigger_ignored": "trigger ignored: captions are off",
    "sequential_continues": "sequential stems continue after the highest number already in the target folder",
    "keep_converts": "format keep: GIF, BMP and TIFF images (and WebP for Civitai) are written as PNG",
    "role_swap_ignored": "role swap ignored: the flat layout saves results only",
    "role_swap_caption": "role swap: the caption is still the prompt that made the result; for a backward dataset "
                         "write the reverse instruction with a caption template",
    "no_references": "no task here has reference images: only the first control folder is written",
    "references_refused": "aitoolkit_edit holds one control: tasks with reference images are refused",
    "conformed_by_default": "{count} control image(s) of another aspect were resized to their target's size "
                            "(conform auto, what the trainers do to them anyway); choose none to refuse them instead",
}


def note(code: str, **values: str) -> dict[str, Any]:
    """Return one remark of the report: its code, its values and its English text."""
    return {"code": code, "vars": values, "text": NOTE_TEXT[code].format(**values)}


def notes(rule: SaveRule) -> list[dict[str, Any]]:
    """Return the plain-language remarks about a rule's output (see `note`)."""
    found = []
    if rule.layout == "flat_pairs":
        found.append(note("flat_pairs_for_people"))
    if rule.layout == "fal_start_end":
        found.append(note("fal_zip", name=rule.name))
    if rule.layout == "civitai_edit":
        found.append(note("civitai_zip", name=rule.name))
    if rule.layout in TRAINER_LAYOUTS and rule.caption == "none":
        found.append(note("no_captions"))
    if rule.trigger and rule.caption == "none":
        found.append(note("trigger_ignored"))
    if rule.sequential and rule.pairs:
        found.append(note("sequential_continues"))
    if rule.format == "keep" and rule.layout in TRAINER_LAYOUTS:
        found.append(note("keep_converts"))
    if rule.role_swap and not rule.pairs:
        found.append(note("role_swap_ignored"))
    if rule.swapped and rule.caption != "none":
        found.append(note("role_swap_caption"))
    return found
