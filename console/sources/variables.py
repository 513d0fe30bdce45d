"""Generate mode: one prompt with `{name}` variables, every combination of their values, `count` each."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any, Mapping

from ..messages import say
from ..scan import is_text
from ..store import NewTask
from .names import safe_part, unique
from .problems import SourceProblem, joined
from .prompts import fill, placeholders
from .references import checked_image
from .spec import MAX_TASKS, Plan, RunSpec

COUNT = (1, 100)
MAX_VARIABLES = 10
MAX_VALUES = 1000
VALUE_MAX = 2000
NAME = re.compile(r"\w{1,40}")
UNNAMED = "image"  # the stem of tasks when there are no variables


def checked_variables(raw: Mapping[str, Any]) -> dict[str, list[str]]:
    """Return the variables as {name: [value text]}; SourceProblem names the bad one."""
    if len(raw) > MAX_VARIABLES:
        raise SourceProblem(say("sources.variables_too_many", count=len(raw), limit=MAX_VARIABLES))
    variables: dict[str, list[str]] = {}
    for name, values in raw.items():
        where = f"variables.{name}"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise SourceProblem(say("sources.variable_bad_name", name=repr(name), placeholder="{name}"))
        if not isinstance(values, list) or not values:
            raise SourceProblem(say("sources.variable_not_list", field=where))
        if len(values) > MAX_VALUES:
            raise SourceProblem(say("sources.variable_too_many_values", field=where, count=len(values), limit=MAX_VALUES))
        variables[name] = _values(values, where)
    return variables


def _values(values: list[Any], where: str) -> list[str]:
    texts: list[str] = []
    for number, value in enumerate(values, start=1):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise SourceProblem(say("sources.variable_value_kind", field=f"{where}[{number}]"))
        text = value.strip() if isinstance(value, str) else format(value, "g")
        if not is_text(text):
            raise SourceProblem(say("sources.variable_value_surrogate", field=f"{where}[{number}]"))
        if not text:
            raise SourceProblem(say("sources.variable_value_blank", field=f"{where}[{number}]"))
        if len(text) > VALUE_MAX:
            raise SourceProblem(say("sources.variable_value_long", field=f"{where}[{number}]", limit=VALUE_MAX))
        if text in texts:
            raise SourceProblem(say("sources.variable_value_twice", field=where, value=repr(text)))
        texts.append(text)
    return texts


def task_count(variables: Mapping[str, list[str]], count: int) -> int:
    """Return how many tasks the combinations times `count` make."""
    return math.prod(len(values) for values in variables.values()) * count


def plan_generate(spec: RunSpec) -> Plan:
    """Return the tasks of a generate run: every combination of values, `count` times, named by values."""
    prompt = spec.prompt.strip()
    if not prompt:
        raise SourceProblem(say("sources.prompt_empty"))
    low, high = COUNT
    if isinstance(spec.count, bool) or not isinstance(spec.count, int) or not low <= spec.count <= high:
        raise SourceProblem(say("sources.count_range", low=low, high=high))
    variables = checked_variables(spec.variables)
    unknown = [name for name in placeholders(prompt) if name not in variables]
    if unknown:
        used = ", ".join("{" + n + "}" for n in unknown)
        if variables:
            raise SourceProblem(say("sources.variables_undefined", used=used, defined=", ".join(variables)))
        raise SourceProblem(say("sources.variables_none", used=used))
    total = task_count(variables, spec.count)
    if total > MAX_TASKS:
        raise SourceProblem(say("sources.variables_too_many_tasks", count=total, limit=MAX_TASKS))
    references = shared_references(spec.reference_paths)
    tasks = list(_tasks(prompt, variables, spec.count, references))
    run_spec = {"variables": variables, "count": spec.count, "reference_paths": [str(p) for p in references]}
    return Plan("", prompt, tasks, run_spec)


def shared_references(paths: tuple[str, ...]) -> tuple[str, ...]:
    """Return `reference_paths` checked (absolute image files); SourceProblem lists the bad ones."""
    checked: list[str] = []
    bad: list[dict[str, Any]] = []
    for number, text in enumerate(paths, start=1):
        path, problem = checked_image(text, f"reference_paths[{number}]")
        if problem:
            bad.append({"name": text, "error": problem})
        else:
            checked.append(str(path))
    if bad:
        raise SourceProblem(joined([item["error"] for item in bad]), files=bad)
    return tuple(checked)


def _tasks(prompt: str, variables: dict[str, list[str]], count: int, references: tuple[str, ...]):
    taken: set[str] = set()
    names = list(variables)
    for combination in itertools.product(*variables.values()):
        values = dict(zip(names, combination))
        stem = "_".join(part for part in (safe_part(v) for v in combination) if part) or UNNAMED
        text = fill(prompt, values)
        for copy in range(1, count + 1):
            name = unique(f"{stem}_{copy}" if count > 1 else stem, taken)
            yield NewTask(name, "", prompt=text, references=references, output_name=name)
