"""Independent readers of dataset folders, written from each trainer's documented rules, not from our writer.

Each reader walks a folder as its trainer does and returns the training samples it would see
(target image, input images in order, caption), plus the problems the trainer would raise or
silently suffer. The tests save real runs and check the folders with these readers only.

Sources of the rules (docs/datasets.md, *What each trainer reads*, sums them up):
- ai-toolkit `toolkit/dataloader_mixins.py`: the control of a target is `control_dir/<target stem>` + the
  first of `.jpg .jpeg .png .webp` found (exact case); a missing one is silently dropped; the caption is
  `<target without ext>.txt`; the target folder is walked recursively, skipping hidden entries and `_controls`.
- musubi-tuner `docs/dataset_config.md` and `ImageDirectoryDatasource`: controls are the files of the control
  directory whose stem is the target's or `<target stem>_<digits>` (the plain one first, then by number); a
  target without one is an error; the caption `<stem>.txt` sits beside the target and must exist. JSONL lines
  hold `image_path`, `control_path` or `control_path_0`, `control_path_1` …, and `caption`.
- fal edit trainers (Kontext, Qwen-Edit, FLUX.2 zips): one folder; `ROOT_start.EXT` is the input, `ROOT_end.EXT`
  the output, `ROOT.txt` the instruction; further inputs `ROOT_start2.EXT` … up to four inputs.
- Civitai edit training (ai-toolkit engine): `main/` holds targets and their `.txt` captions, `control_1/` …
  `control_3/` the inputs with the identical stem; images may be .png, .jpg or .jpeg only.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

AITOOLKIT_CONTROL_ORDER = (".jpg", ".jpeg", ".png", ".webp")
AITOOLKIT_IMAGES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MUSUBI_IMAGES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP")
FAL_IMAGES = (".jpg", ".jpeg", ".png", ".webp")
CIVITAI_IMAGES = (".png", ".jpg", ".jpeg")
FAL_MAX_INPUTS = 4


@dataclass
class Sample:
    """One training example as the trainer sees it."""

    target: Path
    inputs: list[Path]
    caption: str | None


@dataclass
class Reading:
    """What a trainer reads from a dataset: its samples and the problems it would meet."""

    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def by_target_stem(self) -> dict[str, Sample]:
        return {s.target.stem: s for s in self.samples}


def _read_caption(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


# -- ai-toolkit ---------------------------------------------------------------------------------

def read_aitoolkit(target_dir: Path, control_dirs: list[Path], *, require_all: bool = False) -> Reading:
    """Read an ai-toolkit edit dataset: `folder_path` = target_dir, `control_path` = control_dirs (in order).

    `require_all` is qwen_image_edit_plus: a missing control raises "Missing control images"; otherwise
    (Kontext) a missing control is silently dropped, which the reading reports as a problem.
    """
    reading = Reading()
    stems_seen: dict[str, Path] = {}
    for folder, dirs, files in os.walk(target_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "_controls")
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or path.suffix.lower() not in AITOOLKIT_IMAGES:
                continue
            if path.stem in stems_seen:
                reading.problems.append(f"two targets share the stem {path.stem}: controls are looked up by stem")
            stems_seen[path.stem] = path
            inputs: list[Path] = []
            for control_dir in control_dirs:
                found = next((control_dir / (path.stem + ext) for ext in AITOOLKIT_CONTROL_ORDER
                              if (control_dir / (path.stem + ext)).is_file()), None)
                if found is None:
                    reading.problems.append(f"{'Missing control images' if require_all else 'control silently dropped'}"
                                            f" for {path.name} in {control_dir.name}")
                else:
                    inputs.append(found)
            reading.samples.append(Sample(path, inputs, _read_caption(path.with_suffix(".txt"))))
    for control_dir in control_dirs:
        if control_dir.resolve().is_relative_to(target_dir.resolve()):
            reading.problems.append(f"{control_dir} sits inside the target folder: its images train as targets")
    return reading


# -- musubi-tuner -------------------------------------------------------------------------------

def read_musubi(image_dir: Path, control_dir: Path) -> Reading:
    """Read a musubi-tuner image dataset with `image_directory` and `control_directory`, captions `.txt`."""
    reading = Reading()
    for path in sorted(p for p in image_dir.iterdir() if p.is_file() and p.suffix in MUSUBI_IMAGES):
        candidates = []
        for control in control_dir.iterdir():
            if not control.is_file():
                continue
            if control.stem == path.stem:
                candidates.append((0, control))
            elif control.stem.startswith(path.stem + "_") and control.stem[len(path.stem) + 1:].isdigit():
                candidates.append((int(control.stem[len(path.stem) + 1:]) + 1, control))
        if not candidates:
            reading.problems.append(f"Could not find matching control images for {path.name}")
            continue
        caption = _read_caption(path.with_suffix(".txt"))
        if caption is None:
            reading.problems.append(f"caption file missing for {path.name} (musubi opens <stem>.txt)")
        reading.samples.append(Sample(path, [c for _, c in sorted(candidates)], caption))
    return reading


def read_musubi_jsonl(jsonl: Path) -> Reading:
    """Read a musubi-tuner metadata JSONL: `control_path` becomes `control_path_0`, numbered keys in order."""
    reading = Reading()
    for line in jsonl.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if "control_path" in item:
            item["control_path_0"] = item.pop("control_path")
        keys = sorted((k for k in item if k.startswith("control_path_")), key=lambda k: int(k.rsplit("_", 1)[-1]))
        inputs = [Path(item[k]) for k in keys]
        for path in [Path(item["image_path"]), *inputs]:
            if not path.is_file():
                reading.problems.append(f"{path} does not exist")
        if not inputs:
            reading.problems.append(f"{item['image_path']} has no control path")
        reading.samples.append(Sample(Path(item["image_path"]), inputs, item["caption"]))
    return reading


# -- fal edit trainers -------------------------------------------------------------------------

_FAL_NAME = re.compile(r"^(?P<root>.+)_(?P<role>start(?P<n>\d*)|end)$")


def read_fal(folder: Path) -> Reading:
    """Read a fal edit-trainer folder (the zip's contents): ROOT_start / ROOT_startN / ROOT_end / ROOT.txt."""
    reading = Reading()
    roots: dict[str, dict] = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            reading.problems.append(f"{path.name}/ is a folder: fal reads the files at the top of the zip")
            continue
        if path.suffix.lower() not in FAL_IMAGES:
            continue
        match = _FAL_NAME.match(path.stem)
        if not match:
            reading.problems.append(f"{path.name} is neither ROOT_start nor ROOT_end")
            continue
        entry = roots.setdefault(match["root"], {"inputs": {}, "end": []})
        if match["role"] == "end":
            entry["end"].append(path)
        else:
            number = int(match["n"] or 1)
            if number < 2 and match["n"]:
                reading.problems.append(f"{path.name}: the first input has no number")
            entry["inputs"].setdefault(number, []).append(path)
    for root, entry in sorted(roots.items()):
        if len(entry["end"]) != 1 or any(len(v) != 1 for v in entry["inputs"].values()):
            reading.problems.append(f"{root}: more than one file for one role")
            continue
        if 1 not in entry["inputs"]:
            reading.problems.append(f"{root}: ROOT_end without ROOT_start")
            continue
        numbers = sorted(entry["inputs"])
        if numbers != list(range(1, len(numbers) + 1)) or len(numbers) > FAL_MAX_INPUTS:
            reading.problems.append(f"{root}: inputs {numbers} are not 1…n with n ≤ {FAL_MAX_INPUTS}")
        reading.samples.append(Sample(entry["end"][0], [entry["inputs"][n][0] for n in numbers],
                                      _read_caption(folder / f"{root}.txt")))
    return reading


# -- Civitai ----------------------------------------------------------------------------------

def read_civitai(folder: Path) -> Reading:
    """Read a Civitai edit-training folder (the zip's contents): main/ targets, control_1/ … control_3/ inputs."""
    reading = Reading()
    main = folder / "main"
    controls = [folder / f"control_{n}" for n in (1, 2, 3) if (folder / f"control_{n}").is_dir()]
    for sub in [main, *controls]:
        for path in sub.iterdir():
            if path.suffix.lower() not in CIVITAI_IMAGES and path.suffix.lower() != ".txt":
                reading.problems.append(f"{sub.name}/{path.name}: Civitai accepts .png, .jpg and .jpeg images only")
    for path in sorted(p for p in main.iterdir() if p.suffix.lower() in CIVITAI_IMAGES):
        inputs = []
        for sub in controls:
            found = [p for p in sub.iterdir() if p.stem == path.stem and p.suffix.lower() in CIVITAI_IMAGES]
            if len(found) > 1:
                reading.problems.append(f"{sub.name}: several images named {path.stem}")
            if found:
                inputs.append(found[0])
        if not inputs or (controls and inputs[0].parent.name != "control_1"):
            reading.problems.append(f"main/{path.name} has no control_1 image")
        reading.samples.append(Sample(path, inputs, _read_caption(path.with_suffix(".txt"))))
    return reading
