"""What a run is made of, checked before anything is stored: the scan, the plan, the preview, the image counts.

Each turns the sources' own errors into an EngineError, which the web layer answers as a 400 listing every
bad row or file.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import sources
from ..messages import say, told
from ..profile import ApiProfile
from ..scan import ScanError, ScanResult, scan
from ..sources import Plan, RunSpec, SourceProblem
from ..upstream import input_limit, too_many_images
from .errors import EngineError


def scan_path(input_path: str, recursive: bool, stop: Callable[[], bool] | None = None) -> ScanResult:
    """List the images a run of `input_path` would take (abandoned once `stop()` is true, checked now
    and then); EngineError when the path cannot be scanned."""
    try:
        return scan(input_path, recursive, stop=stop)
    except ScanError as exc:
        raise EngineError(told(exc)) from None


def plan_run(spec: RunSpec) -> Plan:
    """Return the tasks `spec` makes, without storing them; EngineError lists every bad row or file."""
    try:
        return sources.plan(spec)
    except SourceProblem as exc:
        raise EngineError(told(exc), **exc.details) from None


def preview_sources(found: ScanResult, prompt: str, sidecar: str, reference_dirs: list[str],
                    recursive: bool) -> dict[str, Any]:
    """Return the sidecar (and reference) summary of a scan preview."""
    try:
        return sources.preview(found, prompt, sidecar, reference_dirs, recursive)
    except SourceProblem as exc:
        raise EngineError(told(exc), **exc.details) from None


def check_image_counts(plan: Plan, profile: ApiProfile) -> None:
    """Refuse a run when any task would send more input images than the profile's request form takes."""
    limit, form = input_limit(profile)
    over = [task for task in plan.tasks if bool(task.path) + len(task.references) > limit]
    if over:
        count = bool(over[0].path) + len(over[0].references)
        names = ", ".join(task.name for task in over[:10]) + (" …" if len(over) > 10 else "")
        reason = too_many_images(count, limit, form)
        raise EngineError(say("engine.too_many_inputs", count=len(over), names=names, reason=reason), summary=reason,
                          files=[{"name": task.name, "error": say("engine.input_images",
                                                                  count=bool(task.path) + len(task.references))}
                                 for task in over])
