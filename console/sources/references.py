"""Further input images: matched by stem from reference folders, or listed by path."""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from pathlib import Path, PurePosixPath

from ..messages import Message, say, told
from ..scan import IMAGE_EXTENSIONS, ScanError, is_text, listing, shown
from ..typedpath import FORMS, typed_path
from ..userfiles import kind
from .problems import SourceProblem

MAX_REFERENCE_DIRS = 15  # with the source, 16 images: the most any mode takes (OpenAI edits)


class ReferenceIndex:
    """The images of one reference folder, by relative stem (`sub/001`), for matching sources."""

    def __init__(self, folder: Path, recursive: bool) -> None:
        self.folder = folder
        self._by_stem: dict[str, list[Path]] = defaultdict(list)
        try:  # the source scan's walk: symlink loops, unreadable subfolders and its caps handled alike
            found = listing(str(folder), recursive)
        except ScanError as exc:
            raise SourceProblem(say("sources.reference_folder", problem=told(exc))) from None
        if found.cut:
            raise SourceProblem(say("sources.reference_scan_cut", path=str(folder), stopped=found.cut.stopped()))
        for name, path in zip(found.names, found.files):
            self._by_stem[os.path.splitext(name)[0]].append(path)

    def match(self, source_name: str) -> tuple[Path | None, Message | None]:
        """Return (the image with the source's relative stem, or the bare stem at the top; why none)."""
        rel = PurePosixPath(source_name.replace("\\", "/"))
        stems = [str(rel.with_suffix(""))]
        if len(rel.parts) > 1:
            stems.append(rel.stem)  # sub/001.png may pair with ref/001.png
        for stem in stems:
            hits = self._by_stem.get(stem)
            if hits and len(hits) > 1:
                names = ", ".join(sorted(path.name for path in hits))
                return None, say("sources.reference_ambiguous", stem=stem, folder=str(self.folder), names=names)
            if hits:
                return hits[0], None
        return None, say("sources.reference_missing", stem=stems[-1], folder=str(self.folder))


def checked_folders(raw: list[str], field: str, input_root: Path | None = None) -> list[Path]:
    """Return the reference folders as absolute paths; SourceProblem names the bad one."""
    if len(raw) > MAX_REFERENCE_DIRS:
        raise SourceProblem(say("sources.too_many_folders", field=f"'{field}'", count=len(raw), limit=MAX_REFERENCE_DIRS))
    folders: list[Path] = []
    for number, text in enumerate(raw, start=1):
        folder = absolute(text, f"{field}[{number}]")
        if not folder.is_dir():
            raise SourceProblem(say("sources.folder_not_folder", field=f"{field}[{number}]", path=str(folder)))
        if input_root is not None and _same(folder, input_root):
            raise SourceProblem(say("sources.folder_is_source", field=f"{field}[{number}]", path=str(folder)))
        if any(_same(folder, other) for other in folders):
            raise SourceProblem(say("sources.folder_twice", field=f"{field}[{number}]", path=str(folder)))
        folders.append(folder)
    return folders


def checked_image(text: str, what: str, base: Path | None = None) -> tuple[Path | None, Message | None]:
    """Return (an image file's absolute path, None) or (None, why it cannot be used).

    `what` names the image: a message (`source image`, `reference image 2`), or a field as typed
    (`reference_paths[1]`).
    """
    if not is_text(text):
        return None, say("sources.value_not_text", what=what, text=shown(text))
    path = Path(typed_path(text))
    if not path.is_absolute():
        if base is None:
            return None, say("sources.value_not_absolute", what=what, text=text, forms=FORMS)
        path = base / path
    if os.path.splitext(path.name)[1].lower() not in IMAGE_EXTENSIONS:
        return None, say("sources.image_not_image_file", what=what, path=str(path))
    try:
        mode = path.stat().st_mode
    except OSError:
        return None, say("sources.image_not_found", what=what, path=str(path))
    if not stat.S_ISREG(mode):
        return None, say("sources.image_not_regular", what=what, kind=kind(mode), path=str(path))
    if not os.access(path, os.R_OK):
        return None, say("sources.image_unreadable", what=what, path=str(path))
    return path, None


def absolute(text: str, field: str) -> Path:
    """Return a path typed by the user (`~` expanded); SourceProblem unless it is absolute."""
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        raise SourceProblem(say("sources.folder_required", field=field))
    if not is_text(text):
        raise SourceProblem(say("sources.value_not_text", what=field, text=shown(text)))
    path = Path(typed_path(text))
    if not path.is_absolute():
        raise SourceProblem(say("sources.value_not_absolute", what=field, text=text, forms=FORMS))
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
