"""Check the written folders as each trainer will read them: matching inputs, unique stems, captions."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from .layout import IMAGE_SUFFIXES, folders
from .planning import Plan, PlannedItem

CONTROL_LOOKUP = (".jpg", ".jpeg", ".png", ".webp")  # ai-toolkit's order, exact case
SHOWN = 50  # items listed per validation finding
_START_END = re.compile(r"^(?P<root>.+)_(?P<kind>start\d*|end)$")


def validate(plan_: Plan, written: list[PlannedItem]) -> dict[str, Any]:
    """Check the folders of a pair layout (what is there plus what this save writes) as its trainer sees them."""
    rule = plan_.rule
    where = folders(rule, plan_.root)
    planned = [f.path for item in (plan_.items if rule.dry_run else written) for f in item.files]
    names = {role: _folder_names(folder, planned) for role, folder in where.items()}
    if rule.layout in ("flat_pairs", "fal_start_end"):
        return _validate_start_end(names["target"])
    if rule.layout == "musubi":
        return _validate_musubi(names["target"], names["control"])
    return _validate_by_stem(names)


def _validate_by_stem(names: dict[str, set[str]]) -> dict[str, Any]:
    """ai-toolkit and Civitai: every target has `<stem>.<ext>` in the first control folder; stems unique per folder."""
    targets = _stems(names["target"])
    controls = {role: _stems(found) for role, found in names.items() if role != "target"}
    unmatched = sorted(s for s in targets if not any(s + x in names["control"] for x in CONTROL_LOOKUP))
    doubles = sorted({s for stems in [targets, *controls.values()] for s, sufs in stems.items() if len(sufs) > 1})
    count = {s: sum(1 for stems in controls.values() if s in stems) for s in targets}
    most = max(count.values(), default=0)
    # Qwen-Image-Edit-2509 reads every control folder for every target ("Missing control images").
    fewer = sorted(s for s, n in count.items() if n < most)
    orphans = sorted({s for stems in controls.values() for s in stems} - set(targets))
    return {"ok": not unmatched and not doubles and not fewer, "targets": len(targets),
            "controls": len(controls["control"]), "targets_without_control": unmatched[:SHOWN],
            "same_stem_images": doubles[:SHOWN], "targets_with_fewer_controls": fewer[:SHOWN],
            "targets_without_caption": sum(1 for s in targets if s + ".txt" not in names["target"]),
            "controls_per_target": {str(k): v for k, v in sorted(Counter(count.values()).items())},
            "controls_without_target": orphans[:SHOWN]}


def _validate_start_end(names: set[str]) -> dict[str, Any]:
    """fal: `ROOT_start.EXT` and `ROOT_end.EXT` make a pair, `ROOT_start2…` more inputs, `ROOT.txt` the caption."""
    kinds: dict[str, Counter] = {}
    for stem, suffixes in _stems(names).items():
        match = _START_END.match(stem)
        if match:
            kinds.setdefault(match["root"], Counter())[match["kind"]] += len(suffixes)
    pairs = sorted(root for root, k in kinds.items() if k["start"] and k["end"])
    ends = sorted(root for root, k in kinds.items() if k["end"] and not k["start"])
    starts = sorted(root for root, k in kinds.items() if k["start"] and not k["end"])
    doubles = sorted(root for root, k in kinds.items() if any(count > 1 for count in k.values()))
    return {"ok": not ends and not starts and not doubles, "pairs": len(pairs), "ends_without_start": ends[:SHOWN],
            "starts_without_end": starts[:SHOWN], "same_stem_images": doubles[:SHOWN],
            "pairs_without_caption": sum(1 for root in pairs if root + ".txt" not in names)}


def _validate_musubi(images: set[str], controls: set[str]) -> dict[str, Any]:
    """musubi: a target's controls are `<stem>.*` or `<stem>_<digits>.*` in the control folder, captions beside it."""
    targets = _stems(images)
    control_stems = _stems(controls)
    owners: dict[str, list[str]] = {}  # a stem -> the control stems musubi gives a target of that stem
    for stem in control_stems:
        owners.setdefault(stem, []).append(stem)
        base, _, digits = stem.rpartition("_")
        if base and digits.isdigit():
            owners.setdefault(base, []).append(stem)
    matched = {s: owners.get(s, []) for s in targets}
    unmatched = sorted(s for s, found in matched.items() if not found)
    shared = sorted(s for s, found in matched.items() if any(c in targets and c != s for c in found))
    doubles = sorted(s for s, sufs in targets.items() if len(sufs) > 1)
    return {"ok": not unmatched and not shared and not doubles, "targets": len(targets), "controls": len(control_stems),
            "targets_without_control": unmatched[:SHOWN], "targets_sharing_controls": shared[:SHOWN],
            "same_stem_images": doubles[:SHOWN],
            "targets_without_caption": sum(1 for s in targets if s + ".txt" not in images)}


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
