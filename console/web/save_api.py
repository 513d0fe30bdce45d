"""HTTP routes that save results into dataset layouts: translate requests into console.saving calls.

A save answers when it is done; `?job=<id>` (letters, digits, - and _) names it, so that while it
runs `GET /api/save-jobs/<id>` tells how far it got and `POST /api/save-jobs/<id>/cancel` stops
it between two items. `POST /api/save-jobs` reserves an id first, so a page can follow
the job from its very start without asking about an id the server has not heard of yet.
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, current_app, request

from ..messages import say
from ..saving import OtherRuns, RuleError, SaveJob, SaveJobs, SaveRule, builtin_presets, save_result, save_run
from .errors import ApiError, answer_as
from .guards import json_body
from .services import cache, store

bp = Blueprint("save_api", __name__)
_JOBS = "console.save_jobs"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def init_app(app: Flask) -> None:
    """Register the save routes; a RuleError is a 400 with its message, OtherRuns a 409 naming the runs."""
    app.register_blueprint(bp)
    app.extensions[_JOBS] = SaveJobs()
    answer_as(app, RuleError)
    answer_as(app, OtherRuns, 409)  # the folder holds another run's dataset: the page asks, then sends append


def _jobs() -> SaveJobs:
    return current_app.extensions[_JOBS]


def _job() -> SaveJob:
    """Return the job the request names in `?job=`, registered; an unnamed save gets a private one."""
    job_id = request.args.get("job")
    if job_id is None:
        return SaveJob()
    if not _JOB_ID.match(job_id):
        raise ApiError(say("saving.bad_job_id"))
    job = _jobs().start(job_id)
    if job is None:
        raise ApiError(say("saving.job_running", job=job_id), 409)
    return job


@bp.post("/api/runs/<run_id>/save")
def save_run_results(run_id: str):
    if store().run(run_id) is None:
        raise ApiError(say("saving.no_run", run_id=run_id), 404)
    # A bad rule, or an output_dir that cannot be created or written, raises RuleError: a 400.
    rule = SaveRule.from_dict(json_body())
    return save_run(store(), cache(), run_id, rule, _job())


@bp.post("/api/results/<result_id>/save")
def save_one_result(result_id: str):
    if store().result(result_id) is None:
        raise ApiError(say("saving.no_result", result_id=result_id), 404)
    rule = SaveRule.from_dict(json_body())
    answer = save_result(store(), cache(), result_id, rule, _job())
    if answer is None:  # deleted between the check and the save
        raise ApiError(say("saving.no_result", result_id=result_id), 404)
    return answer


@bp.post("/api/save-jobs")
def reserve_save_job():
    return _jobs().reserve().snapshot(), 201


@bp.get("/api/save-jobs/<job_id>")
def save_job(job_id: str):
    job = _jobs().get(job_id)
    if job is None:
        raise ApiError(say("saving.no_save_job", job=job_id), 404)
    return job.snapshot()


@bp.post("/api/save-jobs/<job_id>/cancel")
def cancel_save_job(job_id: str):
    job = _jobs().get(job_id)
    if job is None:
        raise ApiError(say("saving.no_save_job", job=job_id), 404)
    job.cancel()
    return {"ok": True, **job.snapshot()}


@bp.get("/api/save-presets")
def save_presets():
    """The built-in save presets (the older console's five), beside the ones a user saves in /api/presets."""
    return {"builtin": builtin_presets()}


@bp.get("/api/results/<result_id>/saves")
def result_saves(result_id: str):
    if store().result(result_id) is None:
        raise ApiError(say("saving.no_result", result_id=result_id), 404)
    return {"result_id": result_id, "saves": store().saves(result_id)}
