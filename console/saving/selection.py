"""Choose the results a save writes: selected ones or all, the first of each task or every one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..messages import say
from ..records import ResultRecord, TaskRecord
from ..store import Store
from .rule import Resolver, SaveRule


@dataclass(frozen=True)
class Candidate:
    """One result to save, its task, its 1-based place among the task's results and among the save's choices."""

    task: TaskRecord
    result: ResultRecord
    number: int
    global_index: int = 1

    def names(self) -> dict[str, Any]:
        """Return the ids, the source file and the result's place among its task's (2 of 3) every report entry carries."""
        return {"result_id": self.result.id, "task_id": self.task.id, "source_name": self.task.source_name,
                "source_path": self.task.source_path, "result_number": self.number,
                "result_count": len(self.task.results)}


@dataclass
class Selection:
    """The results chosen, the tasks skipped (with why), the images never to overwrite, and what first_only left out."""

    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    protected: set[Path] = field(default_factory=set)
    left_by_first_only: int = 0


def task_inputs(task: TaskRecord) -> list[str]:
    """Return a task's input images: its source (when it has one) then its reference images."""
    return ([task.source_path] if task.source_path else []) + list(task.references)


def protected_paths(tasks: Iterable[TaskRecord], resolve: Resolver | None = None) -> set[Path]:
    """Return every input image of these tasks, resolved: a save never writes over one."""
    resolve = resolve or Resolver()
    found = {resolve(Path(path)) for task in tasks for path in task_inputs(task)}
    found.discard(None)
    return found  # type: ignore[return-value]


def run_candidates(store: Store, run_id: str, rule: SaveRule) -> Selection:
    """Return a run's chosen results by `only_selected` and `first_only`, numbered in task order."""
    chosen = Selection()
    resolve = Resolver()
    for task in store.iter_tasks(run_id):
        chosen.protected |= protected_paths([task], resolve)
        picked = [(n, r) for n, r in enumerate(task.results, 1) if r.selected or not rule.only_selected]
        if rule.first_only and len(picked) > 1:
            chosen.left_by_first_only += len(picked) - 1
            picked = picked[:1]
        for number, result in picked:
            chosen.candidates.append(Candidate(task, result, number, len(chosen.candidates) + 1))
        if not picked:
            chosen.skipped.append(_not_picked(task))
    return chosen


# A task's status as the report's words say it (the page says it in its language).
_STATUS_WORDS = {"pending": say("saving.status_pending"), "running": say("saving.status_running"),
                "done": say("saving.status_done"), "failed": say("saving.status_failed"),
                "stopped": say("saving.status_stopped"), "held": say("saving.status_held")}


def _not_picked(task: TaskRecord) -> dict[str, Any]:
    if task.results:
        kind, reason, fix = "unselected", say("saving.no_selected"), say("saving.fix_unselected")
    else:
        status = _STATUS_WORDS.get(task.status, task.status)
        kind, reason, fix = "no_results", say("saving.no_results", status=status), say("saving.fix_no_results")
    return {"task_id": task.id, "source_name": task.source_name, "source_path": task.source_path,
            "kind": kind, "reason": reason, "fix": fix, "paths": []}


def result_candidate(store: Store, result_id: str) -> Candidate | None:
    """Return one result as a candidate, or None when it is unknown."""
    result = store.result(result_id)
    task = store.task(result.task_id) if result else None
    found = [(n, r) for n, r in enumerate(task.results, 1) if r.id == result_id] if task else []
    return Candidate(task, found[0][1], found[0][0]) if found else None
