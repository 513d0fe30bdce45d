"""Decide what a layout writes where: folders, pair paths, captions and remarks."""

from __future__ import annotations

from pathlib import Path

from ..imaging import EXTENSION
from .rule import TRAINER_LAYOUTS, SaveRule, render

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def folders(rule: SaveRule, root: Path) -> dict[str, Path]:
    """Return the folders a layout writes into, by role."""
    if rule.layout in ("aitoolkit_edit", "aitoolkit_multi"):
        return {"target": root / f"{rule.name}_target", "control": root / f"{rule.name}_control"}
    if rule.layout == "musubi":
        return {"target": root / rule.name / "image", "control": root / rule.name / "control"}
    return {"target": root, "control": root}



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
