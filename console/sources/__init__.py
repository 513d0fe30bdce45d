"""Prompt sources: what the tasks of a run are made from.

A run is a folder of images to edit (prompts from a template and `<stem>.txt` sidecars, further
input images matched from reference folders), a generate prompt with `{variables}`, or a table
of task rows (CSV or XLSX). `plan(spec)` turns a `RunSpec` into the tasks to store, or raises
`SourceProblem` listing every bad row or file; nothing here calls the upstream.
"""

from ..messages import say
from .edit import plan_edit, preview, scanned
from .problems import SourceProblem
from .prompts import SIDECAR_MODES, fill, placeholders, source_prompt
from .spec import MAX_TASKS, RUN_MODES, Plan, RunSpec
from .table import plan_table
from .table_export import LANGUAGES, export_run, template
from .variables import COUNT, plan_generate, task_count


def plan(spec: RunSpec) -> Plan:
    """Return the tasks of the run `spec` describes; SourceProblem when it cannot be made."""
    if spec.mode not in RUN_MODES:
        raise SourceProblem(say("fields.not_choice", field="'mode'", options=", ".join(RUN_MODES), got=repr(spec.mode)))
    return {"edit": plan_edit, "generate": plan_generate, "table": plan_table}[spec.mode](spec)


__all__ = [
    "COUNT",
    "export_run",
    "fill",
    "LANGUAGES",
    "MAX_TASKS",
    "placeholders",
    "Plan",
    "plan",
    "plan_edit",
    "plan_generate",
    "plan_table",
    "preview",
    "RUN_MODES",
    "RunSpec",
    "scanned",
    "SIDECAR_MODES",
    "source_prompt",
    "SourceProblem",
    "task_count",
    "template",
]
