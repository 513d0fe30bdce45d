"""Table mode: one row per task line (source or none, prompt, count, output name, references, size, n).

The header row may be English or Chinese. Every bad row is reported with its spreadsheet row
number (the header is row 1) before anything runs.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..messages import Message, say
from ..scan import IMAGE_EXTENSIONS
from ..store import NewTask
from . import sidecars
from .names import STEM_MAX, safe_part, unique
from .problems import SourceProblem, joined, listing
from .prompts import source_prompt, uses_caption
from .references import ReferenceIndex, absolute, checked_folders, checked_image
from .sheets import read_rows
from .spec import MAX_TASKS, Plan, RunSpec
from .variables import COUNT

MAX_REFERENCES = 4
N_RANGE = (1, 10)
SIZE_MAX = 40
_SPLIT = re.compile(r"[;\n|]+")
_NUMBERED = re.compile(r"^(.*?)[\s#_-]*(\d+)$")

# Header names per column, compared in lower case with `_`/`-` as spaces (docs/runs.md, Table).
HEADERS: dict[str, tuple[str, ...]] = {
    "source": ("source", "source path", "source image", "source file", "image", "image path", "input",
               "input image", "源图", "源图片", "源文件", "图片", "图片路径", "原图", "输入图片"),
    "prompt": ("prompt", "提示词", "提示语", "指令", "描述"),
    "count": ("count", "copies", "数量", "张数", "生成数量"),
    "output_name": ("output name", "output", "name", "file name", "filename", "文件名", "输出文件名", "名称"),
    "reference": ("reference", "references", "ref", "reference image", "参考图", "参考图片", "参考"),
    "size": ("size", "尺寸", "图片尺寸"),
    "n": ("n", "images per call", "每次张数"),
}
# Columns an export adds; read back without complaint, and without effect.
EXPORT_ONLY = ("status", "error", "results", "result files", "attempts", "状态", "错误", "结果", "结果文件",
               "calls", "cost", "currency", "调用次数", "费用", "币种")
_BY_HEADER = {name: column for column, names in HEADERS.items() for name in names}


@dataclass
class Columns:
    """Where each known column is in the header row; the headers that were not understood."""

    index: dict[str, int] = field(default_factory=dict)
    references: list[int] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def normal(header: str) -> str:
    """Return a header as compared: lower case, `_` and `-` as spaces, spaces collapsed."""
    return " ".join(header.casefold().replace("_", " ").replace("-", " ").split())


def read_header(cells: list[str]) -> tuple[Columns, list[Message]]:
    """Map the header row to columns; return (columns, problems with the header)."""
    columns, problems = Columns(), []
    slots: dict[int, int] = {}
    for position, raw in enumerate(cells):
        name = normal(raw)
        if not name:
            continue
        column, number = _BY_HEADER.get(name), None
        if column is None and (match := _NUMBERED.match(name)) and _BY_HEADER.get(match.group(1).strip()) == "reference":
            column, number = "reference", int(match.group(2))
        if column == "reference":
            if number is None:
                number = next(n for n in range(1, 100) if n not in slots)
            if number in slots or not 1 <= number <= MAX_REFERENCES:
                problems.append(say("sources.header_reference", header=raw, limit=MAX_REFERENCES))
            slots[number] = position
        elif column is not None:
            if column in columns.index:
                problems.append(say("sources.header_twice", column=column, first=cells[columns.index[column]], second=raw))
            columns.index[column] = position
        elif name not in EXPORT_ONLY:
            columns.ignored.append(raw)
    columns.references = [slots[n] for n in sorted(slots)]
    if "prompt" not in columns.index:
        problems.append(say("sources.header_no_prompt"))
    return columns, problems


@dataclass
class TableRow:
    """One checked row: what its tasks are made from."""

    number: int
    source: Path | None
    prompt: str
    count: int
    name: str | None  # the output name given in the table
    references: list[Path]
    overrides: dict[str, Any]


def plan_table(spec: RunSpec) -> Plan:
    """Return the tasks of a table run; SourceProblem with `rows` lists every bad row."""
    path = absolute(spec.table_path, "table_path")
    rows = read_rows(path)
    if not rows:
        raise SourceProblem(say("sources.table_empty", name=path.name))
    header_row, header = rows[0]
    columns, problems = read_header(header)
    if problems:
        raise SourceProblem(say("sources.header_bad", name=path.name, row=header_row, problems=problems),
                            rows=[{"row": header_row, "error": joined(problems)}])
    if len(rows) == 1:
        raise SourceProblem(say("sources.table_no_rows", name=path.name))
    folders = checked_folders(list(spec.reference_dirs), "reference_dirs")
    indexes = [ReferenceIndex(folder, False) for folder in folders]
    errors: dict[int, list[Message]] = defaultdict(list)
    checked = [_row(number, cells, columns, path.parent, indexes, errors[number]) for number, cells in rows[1:]]
    tasks = _tasks(checked, errors)
    bad = [{"row": number, "error": joined(found)} for number, found in sorted(errors.items()) if found]
    if bad:
        shown = [say("sources.row_item", row=item["row"], error=item["error"]) for item in bad]
        raise SourceProblem(say("sources.rows_bad", count=len(bad), name=path.name, rows=listing(shown, 10)), rows=bad)
    if len(tasks) > MAX_TASKS:
        raise SourceProblem(say("sources.table_too_many_tasks", count=len(tasks), limit=MAX_TASKS))
    run_spec = {"table_path": str(path), "reference_dirs": [str(f) for f in folders], "rows": len(checked)}
    return Plan(str(path), "", tasks, run_spec, notes={"ignored_columns": columns.ignored})


def _cell(cells: list[str], columns: Columns, name: str) -> str:
    position = columns.index.get(name)
    return cells[position].strip() if position is not None and position < len(cells) else ""


def _row(number: int, cells: list[str], columns: Columns, base: Path, indexes: list[ReferenceIndex],
         errors: list[Message]) -> TableRow:
    """Check one row, appending each problem to `errors`; return what could be read (names are checked across rows)."""
    source = None
    if text := _cell(cells, columns, "source"):
        source, problem = checked_image(text, say("sources.what_source_image"), base)
        if problem:
            errors.append(problem)
    references = _references(cells, columns, base, errors)
    if source is not None:
        for index in indexes:
            match, problem = index.match(source.name)
            if match is None:
                errors.append(problem or say("sources.no_reference_match_row"))
            else:
                references.append(match)
    prompt = _prompt(_cell(cells, columns, "prompt"), source, errors)
    count = _whole(_cell(cells, columns, "count"), "count", COUNT, 1, errors) or 1
    overrides = _overrides(cells, columns, errors)
    name = _name(_cell(cells, columns, "output_name"), errors)
    return TableRow(number, source, prompt, count, name, references, overrides)


def _references(cells: list[str], columns: Columns, base: Path, errors: list[Message]) -> list[Path]:
    found: list[Path] = []
    for position in columns.references:
        text = cells[position] if position < len(cells) else ""
        for item in (part.strip() for part in _SPLIT.split(text)):
            if item:
                path, problem = checked_image(item, say("sources.what_reference_image", number=len(found) + 1), base)
                if problem:
                    errors.append(problem)
                else:
                    found.append(path)
    if len(found) > MAX_REFERENCES:
        errors.append(say("sources.row_too_many_references", count=len(found), limit=MAX_REFERENCES))
    return found


def _prompt(text: str, source: Path | None, errors: list[Message]) -> str:
    if not text:
        errors.append(say("sources.row_prompt_empty"))
        return ""
    if not uses_caption(text):
        return source_prompt(text, source.name, None, "off") if source else text
    if source is None:
        errors.append(say("sources.row_caption_no_source", placeholder="{caption}"))
        return ""
    sidecar = sidecars.read_all([source])[0]
    if not sidecar.usable:
        errors.append(say("sources.row_caption_problem", placeholder="{caption}", problem=sidecar.problem))
        return ""
    return source_prompt(text, source.name, sidecar.text, "off")


def _whole(text: str, what: str, bounds: tuple[int, int], default: int | None, errors: list[Message]) -> int | None:
    if not text:
        return default
    try:
        number = float(text)
    except ValueError:
        errors.append(say("sources.row_not_number", column=what, value=repr(text)))
        return default
    low, high = bounds
    if not number.is_integer():
        errors.append(say("sources.row_not_whole", column=what, value=text))
        return default
    if not low <= number <= high:
        errors.append(say("sources.row_out_of_range", column=what, value=text, low=low, high=high))
        return default
    return int(number)


def _overrides(cells: list[str], columns: Columns, errors: list[Message]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if size := _cell(cells, columns, "size"):
        if len(size) > SIZE_MAX or any(char.isspace() for char in size):
            errors.append(say("sources.row_bad_size", value=repr(size)))
        else:
            overrides["size"] = size
    n = _whole(_cell(cells, columns, "n"), "n", N_RANGE, None, errors)
    if n is not None:
        overrides["n"] = n
    return overrides


def _name(text: str, errors: list[Message]) -> str | None:
    if not text:
        return None
    if "/" in text or "\\" in text:
        errors.append(say("sources.row_name_is_path", value=repr(text)))
        return None
    stem, ext = os.path.splitext(text)
    name = safe_part(stem if ext.lower() in IMAGE_EXTENSIONS else text, STEM_MAX)
    if not name:
        errors.append(say("sources.row_name_unusable", value=repr(text)))
        return None
    return name


def _tasks(rows: list[TableRow], errors: dict[int, list[Message]]) -> list[NewTask]:
    """Name every row's tasks: given names must not repeat (an error); derived ones are made unique."""
    taken: dict[str, int] = {}
    for row in rows:
        if row.name is None:
            continue
        for name in _expanded(row.name, row.count):
            first = taken.setdefault(name.casefold(), row.number)
            if first != row.number:
                errors[row.number].append(say("sources.row_duplicate_name", value=repr(name), row=first))
                break
    names: set[str] = set(taken)
    tasks: list[NewTask] = []
    for row in rows:
        base = row.name or (row.source.stem if row.source else f"row{row.number}")
        for name in _expanded(base, row.count):
            if row.name is None:
                name = unique(name, names)
            tasks.append(NewTask(name, str(row.source) if row.source else "", prompt=row.prompt,
                                 references=tuple(str(p) for p in row.references), output_name=name,
                                 overrides=row.overrides or None))
    return tasks


def _expanded(base: str, count: int) -> list[str]:
    return [base] if count == 1 else [f"{base}_{copy}" for copy in range(1, count + 1)]
