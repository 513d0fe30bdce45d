"""Package a run's results for download: a ZIP of images with a manifest."""

from __future__ import annotations

import json
import zipfile
from pathlib import PurePosixPath
from typing import IO, Any

from .cache import ImageCache
from .imaging import EXTENSION
from .store import Store

PAGE = 1000


def iter_tasks(store: Store, run_id: str):
    """Yield every task of a run with its results, a page at a time (memory stays flat)."""
    offset = 0
    while True:
        page = store.tasks_since(run_id, offset=offset, limit=PAGE)["tasks"]
        yield from page
        if len(page) < PAGE:
            return
        offset += PAGE


def write_zip(store: Store, cache: ImageCache, run_id: str, only_selected: bool, target: IO[bytes]) -> int:
    """Write the run's results (or only the selected ones) as a ZIP; return how many images."""
    count = 0
    names: set[str] = set()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        manifest: list[str] = []
        for task in iter_tasks(store, run_id):
            results = [r for r in task["results"] if r["selected"] or not only_selected]
            for number, result in enumerate(results, start=1):
                name = entry_name(task["source_name"], number, result["format"], names)
                archive.write(cache.path(result["sha256"], result["format"]), name)
                manifest.append(json.dumps(_manifest_row(task, result, name), ensure_ascii=False))
                count += 1
        archive.writestr("manifest.jsonl", "\n".join(manifest) + ("\n" if manifest else ""))
    return count


def entry_name(source_name: str, number: int, fmt: str, taken: set[str]) -> str:
    """Return `<source path without extension>_<n><ext>`, unique within the archive."""
    stem = str(PurePosixPath(source_name.replace("\\", "/")).with_suffix(""))
    name = f"{stem}_{number}{EXTENSION[fmt]}"
    suffix = 2
    while name in taken:
        name = f"{stem}_{number}-{suffix}{EXTENSION[fmt]}"
        suffix += 1
    taken.add(name)
    return name


def _manifest_row(task: dict[str, Any], result: dict[str, Any], name: str) -> dict[str, Any]:
    return {"file": name, "source_name": task["source_name"], "source_path": task["source_path"],
            "prompt": task["prompt"], "result_id": result["id"], "sha256": result["sha256"],
            "width": result["width"], "height": result["height"], "selected": result["selected"]}
