"""Check the written pair folders as a trainer will see them: matching controls, unique stems, captions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .layout import IMAGE_SUFFIXES, folders
from .planning import Plan, PlannedItem

CONTROL_LOOKUP = (".jpg", ".jpeg", ".png", ".webp")  # ai-toolkit's order, exact case
SHOWN = 50  # items listed per validation finding


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
