"""File-safe stems for task and output names, made unique within a run."""

from __future__ import annotations

import re

# Characters Windows, macOS or Linux refuse in a file name, and control characters.
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')
_SPACES = re.compile(r"\s+")
PART_MAX = 40
STEM_MAX = 120


def safe_part(text: str, limit: int = PART_MAX) -> str:
    """Return `text` as a piece of a file name: each run of unsafe characters and spaces becomes `-`."""
    cleaned = _SPACES.sub("-", _UNSAFE.sub(" ", text).strip())
    return cleaned[:limit].strip(".-") or ""


def unique(name: str, taken: set[str]) -> str:
    """Return `name`, or `name-2`, `name-3` … when it is taken (compared without letter case); record it."""
    candidate, number = name, 2
    while candidate.casefold() in taken:
        candidate = f"{name}-{number}"
        number += 1
    taken.add(candidate.casefold())
    return candidate
