"""HTTP routes for runs, tasks and results: translate requests into engine and store calls."""

from __future__ import annotations

import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

from flask import Blueprint, Flask, jsonify, request, send_file

from ..diskfault import out_of_room
from ..estimate import estimate, images_of
from ..export import write_zip
from ..fields import flag, kib, quoted
from ..masking import mask_url
from ..messages import Message, say, told
from ..records import ResultRecord, RunRecord, TaskRecord
from ..store import STATUSES
from ..store_captions import CAPTION_MAX_BYTES, CaptionTooLong, clean_caption
from ..store_selection import SELECTION_ACTIONS
from ..store_flags import FLAG_FILTERS
from ..store_spend import SPEND_DAYS_MAX
from ..upstream import batch_prices
from . import sources_api
from .errors import ApiError
from .guards import is_local_request, json_body
from .services import cache, engine, settings, store

bp = Blueprint("runs_api", __name__)
SAMPLE_NAMES = 20
SKIPPED_SHOWN = 200
IMMUTABLE = 365 * 24 * 3600


def init_app(app: Flask) -> None:
    """Register the routes (engine errors are answered by web/errors.py)."""
    app.register_blueprint(bp)


# -- inputs --------------------------------------------------------------------------------

def _field(body: dict[str, Any], name: str, kind: type, default: Any = None, required: bool = False) -> Any:
    if name not in body or body[name] is None:
        if required:
            raise ApiError(say("fields.missing", field=quoted(name)))
        return default
    value = body[name]
    if kind is bool:
        return flag(value, quoted(name))
    # Text is only type-checked here: the scan names a path's lone surrogate itself, as the path it stands for.
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ApiError(_not_kind(kind, quoted(name)))
    return value


def _not_kind(kind: type, field: str) -> Message:
    if kind is str:
        return say("fields.not_string", field=field)
    if kind is int:
        return say("fields.not_whole", field=field)
    return say("web.not_object", field=field)


def _query_int(name: str, default: int | None, low: int = 0) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(say("web.query_not_whole", name=name, got=repr(raw))) from None
    if value < low:
        raise ApiError(say("web.query_below", name=name, low=low))
    return value


def _overrides(body: dict[str, Any]) -> dict[str, Any] | None:
    """Return the body's `api` profile overrides, or None when it has none."""
    return _field(body, "api", dict)


Found = TypeVar("Found")


def _found(item: Found | None, kind: str, key: str) -> Found:
    if item is None:
        raise ApiError(_missing(kind, key), 404)
    return item


def _missing(kind: str, key: str) -> Message:
    if kind == "run":
        return say("web.no_run", id=key)
    if kind == "task":
        return say("web.no_task", id=key)
    return say("web.no_result", id=key)


# -- runs ----------------------------------------------------------------------------------

@bp.post("/api/scan")
def scan_preview():
    body = json_body()
    sources_api.check_fields(body, say("sources.body_scan_preview"))  # the run form's fields: a misspelt one is named
    recursive = _field(body, "recursive", bool, False)
    found = sources_api.scan_folder(_field(body, "input_path", str, required=True), recursive)
    names = found.names[:SAMPLE_NAMES]
    # Sidecar captions are not images, but they are not skipped either: they are counted below.
    captions = [name for name, _ in found.skipped if name.lower().endswith(".txt")]
    stems = {name.rpartition(".")[0] for name in found.names} if captions else set()
    passed = [(name, reason) for name, reason in found.skipped
              if not (name.lower().endswith(".txt") and name[:-4] in stems)]
    skipped = [{"name": name, "reason": reason} for name, reason in passed[:SKIPPED_SHOWN]]
    sources = engine().preview_sources(found, _field(body, "prompt", str, ""), _field(body, "sidecar", str, "off"),
                                       list(sources_api.path_list(body, "reference_dirs")),
                                       recursive)
    return {"count": len(found.files), "sample": names, "skipped": skipped, "skipped_count": len(passed),
            "truncated": sources_api.cut_note(found), **sources}


@bp.post("/api/runs")
def create_run():
    body = json_body()
    run_id, count, notes = engine().start_run(sources_api.run_spec(body), _overrides(body),
                                              pilot=sources_api.pilot_size(body), budget=sources_api.budget_amount(body))
    return {"run_id": run_id, "task_count": count, **notes}, 201


@bp.post("/api/runs/estimate")
def estimate_run():
    """What the run this body would start will cost: its tasks, calls and images, and a cost with its basis."""
    body = json_body()
    if isinstance(body.get("prompt"), str) and not body["prompt"].strip():
        body = {**body, "prompt": "-"}  # Preview comes before the prompt is typed; the counts do not need it
    spec, pilot = sources_api.run_spec(body), sources_api.pilot_size(body)
    sources_api.budget_amount(body)  # checked as the start would
    profile = engine().profile_for(_overrides(body))
    plan = engine().plan(spec)
    history = store().call_history(profile.api_url, profile.model)
    prices = batch_prices(profile.prices) if profile.delivery == "batch" else profile.prices
    return estimate(images_of([task.overrides or {} for task in plan.tasks], profile.n), prices, history, pilot)


@bp.get("/api/runs")
def list_runs():
    return jsonify([{**_shown(run), **_live(run.id)} for run in store().runs()])


def _live(run_id: str) -> dict[str, Any]:
    """What the engine knows of a run beyond the store: is it running, is it held back (rate limits),
    and for a key pool how each key fares (masked)."""
    keys = [{**key, "api_url": mask_url(key.get("api_url") or "")} for key in engine().keys(run_id)]
    return {"running": engine().is_running(run_id), "cooling": engine().cooling(run_id), "keys": keys}


def _shown(run: RunRecord) -> dict[str, Any]:
    """Return a run as answers show it: the credentials in its API URL's query masked, like the settings'."""
    return {**run.to_dict(), "api_url": mask_url(run.api_url or "")}


def _run_or_404(run_id: str) -> dict[str, Any]:
    return _shown(_found(store().run(run_id), "run", run_id))


@bp.get("/api/runs/<run_id>")
def get_run(run_id: str):
    live = _live(run_id)  # read first, as in run_tasks
    run = _run_or_404(run_id)
    engine().flagger.wake(run_id)  # results stored before the flags existed are looked at once
    return {**run, **live}


def _flag_filter(value: str | None, query: bool) -> str | None:
    """Return a valid flag filter (a flag's name, or `any`), or None; a 400 names the accepted values
    (of the query's `flag` when `query`, else of the body's)."""
    if not value:
        return None
    if value not in FLAG_FILTERS:
        options = ", ".join(FLAG_FILTERS)
        if query:
            raise ApiError(say("web.query_not_choice", name="flag", options=options, got=repr(value)))
        raise ApiError(say("web.not_choice", name="flag", options=options, got=repr(value)))
    return value


@bp.patch("/api/runs/<run_id>")
def update_run(run_id: str):
    _run_or_404(run_id)
    body = json_body()
    sources_api.check_fields(body, say("sources.body_run_update"), RUN_UPDATES)
    if not body:
        raise ApiError(say("web.run_nothing_to_change", fields=", ".join(RUN_UPDATES)))
    if "concurrency" in body:
        engine().set_concurrency(run_id, _field(body, "concurrency", int, required=True))
    if "budget" in body:  # null removes it
        engine().set_budget(run_id, sources_api.budget_amount(body))
    return {**_run_or_404(run_id), **_live(run_id)}


RUN_UPDATES = ("concurrency", "budget")


@bp.get("/api/runs/<run_id>/tasks")
def run_tasks(run_id: str):
    _run_or_404(run_id)
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise ApiError(say("web.query_not_one_of", name="status", options=", ".join(STATUSES)))
    flag = _flag_filter(request.args.get("flag"), query=True)
    since = _query_int("since", 0)
    live = _live(run_id)  # read first: "not running" then means every task listed below is final
    offset, limit = _query_int("offset", 0), _query_int("limit", None, low=1)
    with store().snapshot():  # the counts and the tasks of one moment: the page's chips never lead its cards
        answer = store().tasks_since(run_id, since=since, status=status, q=request.args.get("q") or None,
                                     offset=offset, limit=limit, flag=flag).to_dict()
        answer["progress"] = store().progress(run_id)
        if not since or answer["tasks"] or answer["removed"]:  # an unchanged poll keeps the counts it had
            answer["flag_counts"] = store().flag_counts(run_id)
            answer["spend"] = store().run_spend(run_id)  # a call's usage lands with its task's change
    answer.update(live)
    answer["review_flags"] = settings().review_flags  # off: results stay unchecked, nothing is being looked at
    if not since:  # the run is being opened: results stored before the flags existed are looked at once
        engine().flagger.wake(run_id)
    return answer


SELECTION_KEYS = ("action", "status", "q", "flag", "tasks")
SELECTION_TASKS_MAX = 100_000


@bp.post("/api/runs/<run_id>/selection")
def bulk_selection(run_id: str):
    _run_or_404(run_id)
    body = json_body()
    unknown = sorted(set(body) - set(SELECTION_KEYS))
    if unknown:
        raise ApiError(say("web.selection_unknown_field", field=repr(unknown[0]), fields=", ".join(SELECTION_KEYS)))
    action = _field(body, "action", str, required=True)
    if action not in SELECTION_ACTIONS:
        raise ApiError(say("web.not_choice", name="action", options=", ".join(SELECTION_ACTIONS), got=repr(action)))
    status = _field(body, "status", str) or None
    if status is not None and status not in STATUSES:
        raise ApiError(say("web.not_choice", name="status", options=", ".join(STATUSES), got=repr(status)))
    flag = _flag_filter(_field(body, "flag", str), query=False)
    return {"selected": store().bulk_select(run_id, action, status=status, q=_field(body, "q", str) or None,
                                            task_ids=_task_ids(body), flag=flag)}


def _task_ids(body: dict[str, Any]) -> list[str] | None:
    """Return the body's optional `tasks` (task ids the selection is narrowed to)."""
    ids = body.get("tasks")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
        raise ApiError(say("web.tasks_not_ids"))
    if len(ids) > SELECTION_TASKS_MAX:
        raise ApiError(say("web.tasks_too_many", count=len(ids), limit=SELECTION_TASKS_MAX))
    return ids


@bp.get("/api/runs/<run_id>/export.zip")
def export_zip(run_id: str):
    _run_or_404(run_id)
    only_selected = request.args.get("only_selected") == "1"
    lang = sources_api.asked_language()
    spool = None
    try:
        spool = tempfile.TemporaryFile()  # deleted when Werkzeug closes it after sending
        write_zip(store(), cache(), run_id, only_selected, spool, lang)  # a missing or damaged file is listed, not fatal
        spool.seek(0)  # writes what is still buffered
    except OSError as exc:
        if spool is not None:
            with suppress(OSError):  # closing flushes what is buffered, which fails the same way
                spool.close()
        if out_of_room(exc):  # the spool lives in the temporary folder, not the data folder
            raise ApiError(say("web.zip_no_room", folder=tempfile.gettempdir(), said=exc.strerror), 507) from None
        raise
    suffix = "-selected" if only_selected else ""
    return send_file(spool, mimetype="application/zip", as_attachment=True, download_name=f"{run_id}{suffix}.zip")


@bp.post("/api/runs/<run_id>/stop")
def stop_run(run_id: str):
    stopped = engine().stop_run(run_id)
    # A batch run's tasks at the provider end as its cancel goes through: those it finished first are kept.
    return {"ok": True, "stopped": stopped, **_at_provider(run_id)}


@bp.post("/api/runs/<run_id>/resume")
def resume_run(run_id: str):
    queued = engine().resume(run_id, _overrides(json_body(required=False)))
    # A batch run's resume may queue nothing and still start things again: the batches it follows.
    return {"ok": True, "queued": queued, **_at_provider(run_id)}


def _at_provider(run_id: str) -> dict[str, int]:
    """Return {"at_provider": n} while n of a batch run's tasks wait in its batches; nothing otherwise (the
    answer of a live run stays as it always was)."""
    waiting = len(store().waiting_in_batches(run_id))
    return {"at_provider": waiting} if waiting else {}


@bp.post("/api/runs/<run_id>/retry-failed")
def retry_failed(run_id: str):
    return {"ok": True, "queued": engine().retry_failed(run_id, _overrides(json_body(required=False)))}


RELEASE_KEYS = ("prompt", "api")


@bp.post("/api/runs/<run_id>/release")
def release_run(run_id: str):
    """Queue a pilot run's held tasks, with the body's edited prompt and profile overrides if given."""
    _run_or_404(run_id)
    body = json_body(required=False)
    sources_api.check_fields(body, say("sources.body_release"), RELEASE_KEYS)
    answer = engine().release_pilot(run_id, sources_api.optional_string(body, "prompt"), _overrides(body))
    return {"ok": True, **answer}


@bp.delete("/api/runs/<run_id>")
def delete_run(run_id: str):
    engine().delete_run(run_id)
    return {"ok": True}


@bp.post("/api/stop")
def stop_everything():
    return {"ok": True, "stopped": engine().stop_all()}


@bp.get("/api/spend")
def daily_spend():
    """What the calls of the last `days` days (default 7, today included) cost, per local day and per profile."""
    days = _query_int("days", 7, low=1)
    if days > SPEND_DAYS_MAX:
        raise ApiError(say("web.query_above", name="days", high=SPEND_DAYS_MAX))
    return store().daily_spend(days)


# -- tasks ---------------------------------------------------------------------------------

def _task_or_404(task_id: str) -> TaskRecord:
    return _found(store().task(task_id), "task", task_id)


@bp.get("/api/tasks/<task_id>")
def get_task(task_id: str):
    return _found(store().task(task_id, spend=True), "task", task_id).to_dict()


@bp.delete("/api/tasks/<task_id>")
def delete_task(task_id: str):
    engine().delete_task(task_id)
    return {"ok": True}


@bp.post("/api/tasks/<task_id>/retry")
def retry_task(task_id: str):
    body = json_body(required=False)
    engine().retry_task(task_id, keep_results=_field(body, "keep_results", bool, True), overrides=_overrides(body),
                        prompt=_field(body, "prompt", str))
    return {"ok": True}


@bp.get("/api/tasks/<task_id>/source")
def task_source(task_id: str):
    path = _task_or_404(task_id).source_path
    if not path:
        raise ApiError(say("web.no_source_image"), 404)
    return sources_api.send_input_image(Path(path), say("sources.input_source"))


@bp.get("/api/tasks/<task_id>/debug")
def task_debug(task_id: str):
    if not (is_local_request() or settings().allow_remote_debug_log_api):
        raise ApiError(say("web.debug_local_only"), 403)
    _task_or_404(task_id)
    return {"task_id": task_id, "log": store().debug_log(task_id) or ""}


# -- results -------------------------------------------------------------------------------

def _result_or_404(result_id: str) -> ResultRecord:
    return _found(store().result(result_id), "result", result_id)


RESULT_UPDATES = ("selected", "caption")


@bp.patch("/api/results/<result_id>")
def update_result(result_id: str):
    """Select or deselect a result and/or give it its own caption (null: the save rule's caption)."""
    _result_or_404(result_id)
    body = json_body()
    sources_api.check_fields(body, say("sources.body_result_update"), RESULT_UPDATES)
    if not body:
        raise ApiError(say("web.result_nothing_to_change", fields=", ".join(RESULT_UPDATES)))
    changes: dict[str, Any] = {"selected": _field(body, "selected", bool, required="selected" in body)}
    if "caption" in body:
        changes["caption"] = _caption(body)
    edited = _found(store().edit_result(result_id, **changes), "result", result_id)  # deleted meanwhile: 404
    return edited.to_dict(with_task=True)


def _caption(body: dict[str, Any]) -> str | None:
    """Return the body's caption as stored (trimmed; empty is None), or a 400 naming `caption`."""
    try:
        return clean_caption(sources_api.optional_string(body, "caption"))
    except CaptionTooLong as exc:
        raise ApiError(say("fields.too_many_bytes", field=quoted("caption"), limit=kib(CAPTION_MAX_BYTES),
                           size=exc.size)) from None


@bp.delete("/api/results/<result_id>")
def delete_result(result_id: str):
    engine().delete_result(result_id)
    return {"ok": True}


@bp.get("/api/results/<result_id>/image")
def result_image(result_id: str):
    result = _result_or_404(result_id)
    try:
        if request.args.get("thumb") == "1":
            path = cache().thumbnail(result.sha256, result.format)
        else:
            path = cache().path(result.sha256, result.format)
    except FileNotFoundError:
        raise ApiError(say("web.image_missing"), 410) from None
    except ValueError as exc:  # a cached file Pillow cannot thumbnail
        raise ApiError(say("web.thumbnail_failed", said=told(exc)), 422) from None
    answer = send_file(path, max_age=IMMUTABLE, etag=result.sha256)
    answer.headers["Cache-Control"] = f"public, max-age={IMMUTABLE}, immutable"
    return answer
