"""A run back as a table (its tasks with status and result files), and the template to start from."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Iterable

from ..export import entry_name
from ..messages import Message, in_chinese
from ..records import TaskRecord
from ..store import Store
from .sheets import write_csv, write_xlsx

LANGUAGES = ("en", "zh")
# Column headers as an export writes them; import reads both languages back (table.HEADERS).
COLUMNS = {
    "en": ["source", "prompt", "count", "output_name", "reference_1", "reference_2", "reference_3",
           "reference_4", "size", "n"],
    "zh": ["原图", "提示词", "数量", "文件名", "参考图1", "参考图2", "参考图3", "参考图4", "尺寸", "每次张数"],
}
RESULT_COLUMNS = {"en": ["status", "error", "results", "calls", "cost", "currency"],
                  "zh": ["状态", "错误", "结果文件", "调用次数", "费用", "币种"]}
# A task's status as the page names it in Chinese (English exports keep the status as the API says it).
STATUS_NAMES = {"zh": {"pending": "等待中", "running": "运行中", "done": "完成", "failed": "失败", "stopped": "已停止",
                       "held": "暂缓"}}
WIDTHS = [36, 48, 8, 20, 30, 30, 30, 30, 12, 10, 10, 30, 40, 8, 10, 9]
# The template's example rows: paths relative to the table's folder (a cell may also be absolute).
EXAMPLES = {
    "en": [
        ["photos/001.png", "make the sky purple", 1, "", "", "", "", "", "", ""],
        ["photos/002.png", "put the product from the reference in her hand", 2, "product_hand", "refs/bottle.png",
         "", "", "", "1024x1024", ""],
        ["", "a red fox in the snow, photo", 4, "fox_snow", "", "", "", "", "1280x720", 1],
    ],
    "zh": [
        ["photos/001.png", "把天空改成紫色", 1, "", "", "", "", "", "", ""],
        ["photos/002.png", "让她手里拿着参考图中的产品", 2, "product_hand", "refs/bottle.png", "", "", "", "1024x1024", ""],
        ["", "雪地里的一只红狐狸，照片", 4, "fox_snow", "", "", "", "", "1280x720", 1],
    ],
}


def checked_language(lang: str | None) -> str:
    """Return a known header language (default English)."""
    return lang if lang in LANGUAGES else "en"


def template(kind: str, lang: str = "en") -> bytes:
    """Return the template table (headers and three example rows) as CSV or XLSX bytes."""
    lang = checked_language(lang)
    return _write(kind, COLUMNS[lang], EXAMPLES[lang])


def export_run(store: Store, run_id: str, kind: str, lang: str = "en") -> bytes:
    """Return a run's tasks as a table: what each was made from, its status and its result files.

    Result file names are the names the run's ZIP export gives them, so the two go together.
    """
    lang = checked_language(lang)
    return _write(kind, COLUMNS[lang] + RESULT_COLUMNS[lang], _rows(store, run_id, lang))


def _rows(store: Store, run_id: str, lang: str) -> Iterable[list[Any]]:
    statuses = STATUS_NAMES.get(lang, {})
    names: set[str] = set()
    for task in store.iter_tasks(run_id):
        results = [entry_name(task.source_name, number, result.format, names)
                   for number, result in enumerate(task.results, start=1)]
        refs = list(task.references)
        refs = refs[:3] + ["; ".join(refs[3:])] if len(refs) > 4 else refs + [""] * (4 - len(refs))
        overrides = task.overrides
        output = task.output_name or PurePosixPath(task.source_name).stem
        yield [task.source_path, task.prompt, 1, output, *refs, overrides.get("size", ""),
               overrides.get("n", ""), statuses.get(task.status, task.status), _said(task.error, lang),
               "; ".join(results), *_spent(task)]


def _spent(task: TaskRecord) -> list[Any]:
    """The task's calls, their cost (empty when none is known) and its currency."""
    spend = task.spend or {}
    cost = spend.get("cost")
    return [spend.get("calls", 0), "" if cost is None else cost, spend.get("currency", "")]


def _said(error: str | None, lang: str) -> str:
    """A task's error in the export's language: in Chinese from the page's table of server messages, when its code is there."""
    if not error:
        return ""
    if lang != "zh" or not isinstance(error, Message):
        return str(error)
    return in_chinese(error)


def _write(kind: str, header: list[str], rows: Iterable[list[Any]]) -> bytes:
    if kind == "csv":
        return write_csv(header, rows)
    return write_xlsx(header, rows, WIDTHS[: len(header)])
