"""Package a run's results for download: a ZIP of images with a manifest, and file names that fit a disk."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import PurePosixPath
from typing import IO, Any

from .cache import ImageCache
from .imaging import EXTENSION
from .messages import in_chinese, say, told
from .records import ResultRecord, TaskRecord
from .store import Store

NAME_MAX = 255  # bytes in a file name on Linux file systems, and in a ZIP entry's part that unzip can create
NAME_ROOM = 32  # bytes added to a stem: _end, _start4, _12-3, -99999, .jpeg, .txt …
SKIPPED = "skipped.txt"  # in the ZIP when some results could not be put in it
_MARK = 9  # "~" and 8 hex digits of the whole stem's hash


def write_zip(store: Store, cache: ImageCache, run_id: str, only_selected: bool, target: IO[bytes],
              lang: str = "en") -> int:
    """Write the run's results (or only the selected ones) as a ZIP; return how many images.

    Each image is checked against its hash first; one missing from the cache or damaged there is
    left out, listed in the manifest with why (in English: data), and named in `skipped.txt`, which a
    person reads (in `lang`: "en" or "zh").
    """
    count = 0
    names: set[str] = set()
    skipped: list[str] = []
    said = in_chinese if lang == "zh" else str
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        manifest: list[str] = []
        for task in store.iter_tasks(run_id):
            results = [r for r in task.results if r.selected or not only_selected]
            for number, result in enumerate(results, start=1):
                try:
                    data = cache.read_checked(result.sha256, result.format)
                except (FileNotFoundError, ValueError) as exc:  # DamagedImage is a ValueError
                    reason = say("web.zip_missing") if isinstance(exc, FileNotFoundError) else told(exc)
                    row = {**_manifest_row(task, result, None), "skipped": str(reason)}
                    manifest.append(json.dumps(row, ensure_ascii=False))
                    skipped.append(said(say("web.zip_left_out", name=task.source_name, result=result.id, reason=reason)))
                    continue
                name = entry_name(task.source_name, number, result.format, names)
                archive.writestr(name, data)
                manifest.append(json.dumps(_manifest_row(task, result, name), ensure_ascii=False))
                count += 1
        archive.writestr("manifest.jsonl", "\n".join(manifest) + ("\n" if manifest else ""))
        if skipped:
            head = said(say("web.zip_skipped", count=len(skipped)))
            archive.writestr(SKIPPED, head + "\n" + "".join(line + "\n" for line in skipped))
    return count


def entry_name(source_name: str, number: int, fmt: str, taken: set[str]) -> str:
    """Return `<source path without extension>_<n><ext>`, unique within the archive, each part fitting a file name."""
    path = PurePosixPath(source_name.replace("\\", "/"))
    path = path.with_suffix("") if path.name else path
    *folders, last = [part for part in path.parts if part not in ("", "/", ".", "..")] or ["image"]
    stem = "/".join([*(fit_name(part, 0) for part in folders), fit_name(last)])
    name = f"{stem}_{number}{EXTENSION[fmt]}"
    suffix = 2
    while name in taken:
        name = f"{stem}_{number}-{suffix}{EXTENSION[fmt]}"
        suffix += 1
    taken.add(name)
    return name


def fit_name(stem: str, room: int = NAME_ROOM) -> str:
    """Return `stem` short enough that `room` more bytes still make a valid file name.

    A stem too long is cut and ends in `~` and a hash of the whole stem, so two long stems that
    start alike stay apart, and the same stem is always shortened the same way.
    """
    if _size(stem) + room <= NAME_MAX:
        return stem
    budget = NAME_MAX - room - _MARK
    cut = stem
    while _size(cut) > budget:
        cut = cut[: -max(1, (_size(cut) - budget) // 4)]  # a character is 1 to 4 bytes
    digest = hashlib.sha256(stem.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cut}~{digest}"


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _manifest_row(task: TaskRecord, result: ResultRecord, name: str | None) -> dict[str, Any]:
    return {"file": name, "source_name": task.source_name, "source_path": task.source_path,
            "prompt": task.prompt, "result_id": result.id, "sha256": result.sha256,
            "width": result.width, "height": result.height, "selected": result.selected,
            "caption": result.caption, "answer_text": result.answer_text}
