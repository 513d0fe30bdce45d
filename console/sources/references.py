"""Further input images: matched by stem from reference folders, or listed by path."""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from pathlib import Path, PurePosixPath

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
            raise SourceProblem(f"reference folder {exc}") from None
        if found.cut:
            raise SourceProblem(f"reference folder {folder}: {found.cut.stopped()} before it saw every image; "
                                "choose a smaller folder so every source finds its match")
        for name, path in zip(found.names, found.files):
            self._by_stem[os.path.splitext(name)[0]].append(path)

    def match(self, source_name: str) -> tuple[Path | None, str | None]:
        """Return (the image with the source's relative stem, or the bare stem at the top; why none)."""
        rel = PurePosixPath(source_name.replace("\\", "/"))
        stems = [str(rel.with_suffix(""))]
        if len(rel.parts) > 1:
            stems.append(rel.stem)  # sub/001.png may pair with ref/001.png
        for stem in stems:
            hits = self._by_stem.get(stem)
            if hits and len(hits) > 1:
                names = ", ".join(sorted(path.name for path in hits))
                return None, f"more than one image named {stem} in {self.folder} ({names})"
            if hits:
                return hits[0], None
        return None, f"no {stems[-1]}.* in {self.folder}"


def checked_folders(raw: list[str], field: str, input_root: Path | None = None) -> list[Path]:
    """Return the reference folders as absolute paths; SourceProblem names the bad one."""
    if len(raw) > MAX_REFERENCE_DIRS:
        raise SourceProblem(f"'{field}' lists {len(raw)} folders; at most {MAX_REFERENCE_DIRS}")
    folders: list[Path] = []
    for number, text in enumerate(raw, start=1):
        folder = absolute(text, f"{field}[{number}]")
        if not folder.is_dir():
            raise SourceProblem(f"{field}[{number}]: {folder} is not a folder")
        if input_root is not None and _same(folder, input_root):
            raise SourceProblem(f"{field}[{number}]: {folder} is the source folder itself; "
                                "references come from another folder")
        if any(_same(folder, other) for other in folders):
            raise SourceProblem(f"{field}[{number}]: {folder} is listed twice")
        folders.append(folder)
    return folders


def checked_image(text: str, what: str, base: Path | None = None) -> tuple[Path | None, str | None]:
    """Return (an image file's absolute path, None) or (None, why it cannot be used)."""
    if not is_text(text):
        return None, f"{what} is not valid text: {shown(text)}"
    path = Path(typed_path(text))
    if not path.is_absolute():
        if base is None:
            return None, f"{what} must be an absolute path: {text} ({FORMS})"
        path = base / path
    if os.path.splitext(path.name)[1].lower() not in IMAGE_EXTENSIONS:
        return None, f"{what} is not an image file: {path}"
    try:
        mode = path.stat().st_mode
    except OSError:
        return None, f"{what} not found: {path}"
    if not stat.S_ISREG(mode):
        return None, f"{what} is {kind(mode)}, not an image file: {path}"
    if not os.access(path, os.R_OK):
        return None, f"{what} cannot be read: {path}"
    return path, None


def absolute(text: str, field: str) -> Path:
    """Return a path typed by the user (`~` expanded); SourceProblem unless it is absolute."""
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        raise SourceProblem(f"{field} must be the absolute path of a folder")
    if not is_text(text):
        raise SourceProblem(f"{field} is not valid text: {shown(text)}")
    path = Path(typed_path(text))
    if not path.is_absolute():
        raise SourceProblem(f"{field} must be an absolute path: {text} ({FORMS})")
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
