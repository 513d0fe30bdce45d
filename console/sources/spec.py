"""What a run is made from (`RunSpec`, as posted) and what it becomes (`Plan`: the tasks to store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..store import RUN_MODES, NewTask

__all__ = ["MAX_TASKS", "RUN_MODES", "Plan", "RunSpec"]
MAX_TASKS = 100_000  # what a scan handles in about a second; a run is one click from paying for it


@dataclass(frozen=True)
class RunSpec:
    """The source fields of `POST /api/runs` (docs/api.md), types already checked."""

    mode: str = "edit"
    input_path: str = ""
    recursive: bool = False
    prompt: str = ""
    sidecar: str = "off"
    reference_dirs: tuple[str, ...] = ()
    variables: Mapping[str, Any] = field(default_factory=dict)
    count: int = 1
    reference_paths: tuple[str, ...] = ()
    table_path: str = ""


@dataclass
class Plan:
    """The run to store: its input path and prompt as shown, its tasks, and the spec it keeps."""

    input_path: str
    prompt: str
    tasks: list[NewTask]
    spec: dict[str, Any]
    notes: dict[str, Any] = field(default_factory=dict)  # told to the caller (e.g. ignored table columns)
