"""HTTP routes of captioning with a vision model: start a job over a run's results, follow it, cancel it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify, request

from ..captioning import INSTRUCTION_MAX_BYTES, SOURCES, CaptionOrder, presets
from ..config import NotFound as PresetNotFound
from ..fields import choice, flag, quoted, text
from ..messages import say, told
from ..profile import ApiProfile
from .errors import ApiError
from .guards import json_body
from .services import config, engine, store

bp = Blueprint("caption_jobs_api", __name__)
GENERATE_FIELDS = ("api_preset", "api", "instruction", "only_selected", "overwrite", "source")


def init_app(app: Flask) -> None:
    """Register the routes."""
    app.register_blueprint(bp)


@bp.get("/api/caption-presets")
def caption_presets():
    return jsonify(presets())


@bp.post("/api/runs/<run_id>/captions/generate")
def generate(run_id: str):
    body = json_body()
    unknown = sorted(set(body) - set(GENERATE_FIELDS))
    if unknown:
        names, takes = ", ".join(repr(name) for name in unknown), ", ".join(GENERATE_FIELDS)
        if len(unknown) > 1:
            raise ApiError(say("web.captioning_unknown_fields", names=names, fields=takes))
        raise ApiError(say("web.captioning_unknown_field", names=names, fields=takes))
    if store().run(run_id) is None:
        raise ApiError(say("web.no_run", id=run_id), 404)
    order = CaptionOrder(run_id, _instruction(body), only_selected=_flag(body, "only_selected"),
                         overwrite=_flag(body, "overwrite"), source=_source(body))
    return jsonify(engine().caption_run(order, _profile(body))), 202


@bp.get("/api/caption-jobs")
def jobs():
    return jsonify(jobs=engine().captions.jobs(request.args.get("run") or None))


@bp.get("/api/caption-jobs/<job_id>")
def job(job_id: str):
    return jsonify(_found(engine().captions.job(job_id), job_id))


@bp.post("/api/caption-jobs/<job_id>/cancel")
def cancel(job_id: str):
    return jsonify(ok=True, **_found(engine().captions.cancel(job_id), job_id))


def _found(snapshot: dict[str, Any] | None, job_id: str) -> dict[str, Any]:
    if snapshot is None:
        raise ApiError(say("web.no_caption_job", id=job_id), 404)
    return snapshot


def _instruction(body: dict[str, Any]) -> str:
    value = body.get("instruction")
    if not isinstance(value, str) or not value.strip():
        raise ApiError(say("web.instruction_empty"))
    return text(value.strip(), "'instruction'", max_bytes=INSTRUCTION_MAX_BYTES)


def _flag(body: dict[str, Any], name: str) -> bool:
    return flag(body.get(name), quoted(name), False)


def _source(body: dict[str, Any]) -> str:
    return choice(body.get("source"), "'source'", SOURCES, "result")


def _profile(body: dict[str, Any]) -> ApiProfile:
    """The named API preset (with its stored key) or the stored settings, with the body's `api` overrides on top."""
    name, overrides = body.get("api_preset"), body.get("api")
    if overrides is not None and not isinstance(overrides, dict):
        raise ApiError(say("web.api_not_object"))
    if name is None:
        return engine().profile_for(overrides)
    if not isinstance(name, str):
        raise ApiError(say("web.api_preset_not_name"))
    try:
        return config().preset_profile_with(name, overrides)
    except PresetNotFound as exc:
        raise ApiError(say("web.api_preset_not_found", reason=told(exc))) from None
