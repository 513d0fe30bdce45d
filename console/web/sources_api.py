"""HTTP routes for prompt sources: run specs, table checks, templates and exports, continuations."""

from __future__ import annotations

import os
import select
import socket
from pathlib import Path
from typing import Any, BinaryIO

from flask import Blueprint, Flask, Response, request, send_file

from ..fields import Range, choice, flag, quoted, text
from ..messages import Message, say, told
from ..scan import MAX_ENTRIES, ScanResult
from ..scan import configure as configure_scan
from ..sources import LANGUAGES, RUN_MODES, RunSpec, export_run, template
from ..userfiles import open_regular
from .errors import ApiError
from .guards import json_body
from .services import cache, engine, settings, store

bp = Blueprint("sources_api", __name__)
TABLE_KINDS = {"csv": "text/csv; charset=utf-8",
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
LIST_MAX = 1000


def init_app(app: Flask) -> None:
    """Register the routes, and give the scans their cap (SCAN_MAX_ENTRIES)."""
    app.register_blueprint(bp)
    with app.app_context():
        configure_scan(getattr(settings(), "scan_max_entries", MAX_ENTRIES))


def client_gone() -> bool:
    """Return True when the client of the current request has closed its connection (a long scan then stops)."""
    sock = request.environ.get("werkzeug.socket")
    if sock is None:  # not the real server (a test client): nobody can go away
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        # A closed connection reads as end of file; a live one has nothing to say until we answer.
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


# -- reading a run spec ------------------------------------------------------------------------

def _string(body: dict[str, Any], name: str, default: str = "") -> str:
    return text(body.get(name), quoted(name), default=default)


def optional_string(body: dict[str, Any], name: str) -> str | None:
    """Return a body's optional text field, or None; 400 unless it is a string of valid text."""
    return None if body.get(name) is None else _string(body, name)


def path_list(body: dict[str, Any], name: str) -> tuple[str, ...]:
    """Return a body's list of paths (blank ones dropped); 400 unless it is a list of strings."""
    value = body.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError(say("sources.paths_not_list", field=f"'{name}'"))
    if len(value) > LIST_MAX:
        raise ApiError(say("sources.paths_too_many", field=f"'{name}'", count=len(value), limit=LIST_MAX))
    return tuple(text(item, quoted(f"{name}[{number}]")) for number, item in enumerate(value, start=1) if item.strip())


# Every field a run body may carry; anything else is refused, so a misspelt field is never
# ignored while the whole folder is paid for.
RUN_FIELDS = ("mode", "input_path", "recursive", "prompt", "sidecar", "reference_dirs", "variables", "count",
              "reference_paths", "table_path", "api", "pilot", "budget")
BUDGET_MAX = 1e9
PILOT = Range(1, None, whole=True)  # tasks tried first


# What a body is, in the words of the refusal of its unknown fields (a message, or a field name as typed).
def check_fields(body: dict[str, Any], what: str | Message, accepted: tuple[str, ...] = RUN_FIELDS) -> None:
    """Refuse (400) a body with fields outside `accepted`, naming them and listing the accepted ones.

    `what` is the body as the refusal names it: a Message ("a run"), or a field name as typed
    ('variants[1]').
    """
    unknown = sorted(set(body) - set(accepted))
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        accepted_ = ", ".join(accepted)
        raise ApiError(say("sources.unknown_field", names=names, what=what, accepted=accepted_) if len(unknown) == 1
                       else say("sources.unknown_fields", names=names, what=what, accepted=accepted_))


def pilot_size(body: dict[str, Any]) -> int | None:
    """Return a run body's `pilot` (how many tasks to try first), or None; 400 unless a whole number >= 1."""
    return PILOT.check(body.get("pilot"), "'pilot'", optional=True, meaning=say("sources.pilot_meaning"))


def budget_amount(body: dict[str, Any]) -> float | None:
    """Return a body's `budget` (the most a run may spend, in its prices' currency), or None; 400 unless above 0."""
    budget = body.get("budget")
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= BUDGET_MAX:
        raise ApiError(say("sources.budget_bad", got=repr(budget)[:40]))
    return float(budget)


def run_spec(body: dict[str, Any]) -> RunSpec:
    """Return the run spec of a `POST /api/runs` body, its fields and types checked (400 naming the field)."""
    check_fields(body, say("sources.body_run"))
    mode = choice(_string(body, "mode", "edit"), "'mode'", RUN_MODES)
    recursive = flag(body.get("recursive"), "'recursive'", False)
    variables = body.get("variables") or {}
    if not isinstance(variables, dict):
        raise ApiError(say("sources.variables_not_object"))
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int):
        raise ApiError(say("fields.not_whole", field="'count'"))
    if mode == "edit" and not _string(body, "input_path").strip():
        raise ApiError(say("fields.missing", field="'input_path'"))
    if mode == "table" and not _string(body, "table_path").strip():
        raise ApiError(say("sources.table_path_missing"))
    if mode != "table" and body.get("prompt") is None:
        raise ApiError(say("fields.missing", field="'prompt'"))
    return RunSpec(mode=mode, input_path=_string(body, "input_path"), recursive=recursive,
                   prompt=_string(body, "prompt"), sidecar=_string(body, "sidecar", "off"),
                   reference_dirs=path_list(body, "reference_dirs"), variables=variables, count=count,
                   reference_paths=path_list(body, "reference_paths"), table_path=_string(body, "table_path"))


# -- scans -------------------------------------------------------------------------------------

def scan_folder(input_path: str, recursive: bool) -> ScanResult:
    """Scan for a preview, abandoned when the client goes away; 400 (EngineError) saying why a path cannot be scanned."""
    return engine().scan(input_path, recursive, stop=client_gone)


def cut_note(found: ScanResult) -> dict[str, Any] | None:
    """Return how a scan was cut short (`reason` "entries" or "time", `visited`, `limit`, `message`), or None."""
    cut = found.cut
    if cut is None:
        return None
    return {"reason": cut.reason, "visited": cut.visited, "limit": cut.limit, "message": cut.message()}


# -- tables ------------------------------------------------------------------------------------

def _lang(default: str = "en") -> str:
    lang = request.args.get("lang") or default
    if lang not in LANGUAGES:
        raise ApiError(say("sources.lang_bad", options=", ".join(LANGUAGES)))
    return lang


def _download(data: bytes, kind: str, name: str) -> Response:
    answer = Response(data, mimetype=TABLE_KINDS[kind])
    answer.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    answer.headers["Cache-Control"] = "no-store"
    return answer


@bp.post("/api/tables/check")
def check_table():
    """Read a table as a run would, without starting anything: its task count, or every bad row (400)."""
    body = json_body()
    spec = run_spec({**body, "mode": "table"})
    plan = engine().plan(spec)
    return {"ok": True, "task_count": len(plan.tasks), "rows": plan.spec["rows"],
            "ignored_columns": plan.notes.get("ignored_columns", []),
            "sample": [{"name": t.name, "prompt": t.prompt, "source": t.path, "references": len(t.references)}
                       for t in plan.tasks[:20]]}


@bp.get("/api/tables/template.csv", defaults={"kind": "csv"})
@bp.get("/api/tables/template.xlsx", defaults={"kind": "xlsx"})
def table_template(kind: str):
    """Download the table template (headers in English, or Chinese with ?lang=zh, and example rows)."""
    lang = _lang()
    return _download(template(kind, lang), kind, f"prompt-table-template{'-zh' if lang == 'zh' else ''}.{kind}")


@bp.get("/api/runs/<run_id>/export.csv", defaults={"kind": "csv"})
@bp.get("/api/runs/<run_id>/export.xlsx", defaults={"kind": "xlsx"})
def export_table(run_id: str, kind: str):
    """Download a run as a table: each task's source, prompt, references, status and result files."""
    if store().run(run_id) is None:
        raise ApiError(say("sources.no_run", run_id=run_id), 404)
    return _download(export_run(store(), run_id, kind, asked_language()), kind, f"{run_id}.{kind}")


def asked_language() -> str:
    """Return the language of what the server writes for this request: `?lang`, else the browser's
    Accept-Language (a script sending neither gets English)."""
    return _lang(request.accept_languages.best_match(LANGUAGES, default="en"))


# -- tasks: references and continuations -------------------------------------------------------------

@bp.get("/api/tasks/<task_id>/references/<int:number>")
def task_reference(task_id: str, number: int):
    """Serve a task's reference image `number` (1-based), by id and position, never by a client's path."""
    task = store().task(task_id)
    if task is None:
        raise ApiError(say("sources.no_task", task_id=task_id), 404)
    if not 1 <= number <= len(task.references):
        raise ApiError(say("sources.no_such_reference", task_id=task_id, count=len(task.references), number=number), 404)
    return send_input_image(Path(task.references[number - 1]), say("sources.input_reference"))


def send_input_image(path: Path, what: Message) -> Response:
    """Send a task's input image (its source or a reference) as is, or its thumbnail with `?thumb=1`.

    `what` names it in a refusal ("reference image").
    """
    try:
        file = open_regular(path)  # a source swapped for a FIFO since the run must not hang the request
        if request.args.get("thumb") == "1":
            file.close()
            return send_file(cache().source_thumbnail(path), max_age=0)
        return _send_open(file, path.name)
    except FileNotFoundError:
        raise ApiError(say("sources.input_gone", what=what, path=str(path)), 404) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or told(exc)  # the OS's words, or ours (not a regular file)
        raise ApiError(say("sources.input_unreadable", what=what, reason=reason), 422) from None


def _send_open(file: BinaryIO, name: str) -> Response:
    """Send an open regular file, conditional on its modification time and size as send_file does for a path."""
    st = os.fstat(file.fileno())
    answer = send_file(file, download_name=name, max_age=0, conditional=True, last_modified=st.st_mtime,
                       etag=f"{st.st_mtime_ns:x}-{st.st_size:x}")
    if answer.status_code == 200:
        answer.content_length = st.st_size
    return answer


@bp.post("/api/results/<result_id>/continue")
def continue_result(result_id: str):
    """Start a new task (at the end of the run) whose source is this result, with the body's prompt."""
    body = json_body(required=False)
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ApiError(say("fields.not_string", field="'prompt'"))
    overrides = body.get("api")
    if overrides is not None and not isinstance(overrides, dict):
        raise ApiError(say("sources.api_not_object"))
    task_id = engine().continue_from(result_id, prompt, overrides)
    return {"ok": True, "task_id": task_id}, 201
