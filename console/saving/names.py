"""The values name and caption templates see for one result, in our words and the older console's."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from ..export import NAME_ROOM, fit_name
from ..records import ResultRecord, TaskRecord
from .rule import SaveRule, render

FALLBACK_STEM = "image"
SUFFIX_ROOM = 16  # bytes a save may add to a rendered flat name: -99999 and .jpeg


def source_stem(task: TaskRecord) -> str:
    """Return the stem of the task's source file name (its last part), or "image" when it has none."""
    return PurePosixPath(task.source_name.replace("\\", "/")).stem or FALLBACK_STEM


def base_stem(task: TaskRecord, rule: SaveRule) -> str:
    """Return the stem a save names this task's files after: its output name, else its source's, replaced.

    A task's `output_name` (a generated or table task) stands in for the source stem;
    replace_from → replace_to applies to either. The result is one plain file name.
    """
    stem = rule.replaced(task.output_name or source_stem(task))
    stem = "".join("_" if c in "/\\" or ord(c) < 32 else c for c in stem).strip()
    return fit_name(stem) if stem not in ("", ".", "..") else FALLBACK_STEM


def template_stem(rule: SaveRule, values: dict[str, Any]) -> str:
    """Return a pair's stem from the rule's name template: one plain file name, as base_stem makes it."""
    stem = render(rule.template, values, "template")
    stem = "".join("_" if c in "/\\" or ord(c) < 32 else c for c in stem).strip()
    return fit_name(stem) if stem not in ("", ".", "..") else FALLBACK_STEM


def fit_parts(name: PurePosixPath, room: int = NAME_ROOM) -> PurePosixPath:
    """Return a relative name whose folders fit a file name and whose last part leaves `room` bytes (see fit_name)."""
    *folders, last = name.parts
    return PurePosixPath(*[fit_name(part, 0) for part in folders], fit_name(last, room))


def name_values(task: TaskRecord, result: ResultRecord, number: int, global_index: int,
                rule: SaveRule, date: str) -> dict[str, Any]:
    """Return every name variable for one result: ours ({stem}, {n}, …) and the older console's ({src_stem}, …).

    `number` is the result's 1-based place among its task's results ({n}, {result_index});
    `global_index` its 1-based place among the results this save chose.
    """
    stem = base_stem(task, rule)
    name = PurePosixPath(task.source_name.replace("\\", "/")).name
    return {"stem": stem, "src_stem": stem, "src_name": name, "src_ext": PurePosixPath(name).suffix[1:],
            "n": number, "result_index": number, "index": task.index + 1, "global_index": global_index,
            "run": task.run_id, "task": task.id, "task_id": task.id, "result": result.id,
            "result_id": result.id, "sha8": result.sha256[:8], "date": date}


def caption_values(values: dict[str, Any], prompt: str, rule: SaveRule, image: Path,
                   answer_text: str | None = None) -> dict[str, Any]:
    """Return the caption template's variables: the name variables, the prompt, the trigger, the image written
    and the text the model sent with the result (empty when it sent none)."""
    return {**values, "prompt": prompt, "trigger": rule.trigger, "image_name": image.name, "image_path": str(image),
            "answer_text": answer_text or ""}


def result_prompt(task: TaskRecord, result: ResultRecord) -> str:
    """Return the prompt that made this result (a task's prompt can change since), else the task's."""
    return result.prompt or task.prompt
