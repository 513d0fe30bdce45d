"""HTTP routes for comparisons: the same sample of a folder through 2 to 4 variants, side by side, then one goes on."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask

from ..config import ConfigError
from ..engine import Conflict, EngineError
from ..fields import Range, quoted, text
from ..messages import say, told
from ..store import new_id
from ..store_pilot import pilot_sample
from . import sources_api
from .errors import ApiError
from .guards import json_body
from .services import engine, store

bp = Blueprint("compare_api", __name__)
COMPARISON_FIELDS = ("input_path", "recursive", "sample", "variants")
VARIANT_FIELDS = ("name", "prompt", "api")
CHOOSE_FIELDS = ("variant",)
VARIANTS_MIN, VARIANTS_MAX = 2, 4
SAMPLE = Range(1, 50, whole=True)  # side by side, more rows than this is no longer a comparison
NAME_MAX = 40


def init_app(app: Flask) -> None:
    """Register the routes."""
    app.register_blueprint(bp)


# -- reading a comparison's body -------------------------------------------------------------------

def _sample(body: dict[str, Any]) -> int:
    return SAMPLE.check(body.get("sample"), "'sample'",
                        meaning=say("saving.sample_meaning", high=SAMPLE.high))


def _text(value: Any, field: str, limit: int | None = None) -> str:
    """Return a variant's non-empty text field; 400 naming the field otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(say("saving.variant_text_required", field=field))
    text(value, quoted(field))  # valid text
    if limit is not None and len(value.strip()) > limit:
        raise ApiError(say("saving.variant_text_too_long", field=field, length=len(value.strip()), limit=limit))
    return value.strip() if limit is not None else value


def _variants(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the body's variants (name, prompt, api), each checked; 400 naming the field that is wrong."""
    variants = body.get("variants")
    if not isinstance(variants, list) or not VARIANTS_MIN <= len(variants) <= VARIANTS_MAX:
        if isinstance(variants, list):
            raise ApiError(say("saving.variants_count", low=VARIANTS_MIN, high=VARIANTS_MAX, count=len(variants)))
        raise ApiError(say("saving.variants_none", low=VARIANTS_MIN, high=VARIANTS_MAX))
    checked: list[dict[str, Any]] = []
    for number, variant in enumerate(variants):
        where = f"variants[{number}]"
        if not isinstance(variant, dict):
            raise ApiError(say("saving.variant_not_object", where=where, fields=", ".join(VARIANT_FIELDS)))
        sources_api.check_fields(variant, f"'{where}'", VARIANT_FIELDS)
        api = variant.get("api")
        if api is not None and not isinstance(api, dict):
            raise ApiError(say("saving.variant_api_not_object", where=where))
        item = {"name": _text(variant.get("name"), f"{where}.name", NAME_MAX),
                "prompt": _text(variant.get("prompt"), f"{where}.prompt"), "api": api}
        for earlier, other in enumerate(checked):
            if other["name"].casefold() == item["name"].casefold():
                raise ApiError(say("saving.variant_same_name", where=where, name=repr(item["name"]), earlier=earlier))
            if (other["prompt"], _key(other["api"])) == (item["prompt"], _key(item["api"])):
                raise ApiError(say("saving.variant_same", where=where, earlier=earlier))
        checked.append(item)
    return checked


def _key(api: dict[str, Any] | None) -> str:
    return json.dumps(api or {}, sort_keys=True)


def _profiles(variants: list[dict[str, Any]]) -> list[Any]:
    """Return each variant's profile, checked before any run starts; 400 naming the variant whose profile is wrong."""
    profiles = []
    for number, variant in enumerate(variants):
        try:
            profile = engine().profile_for(variant["api"])
            engine().check_profile(profile)
        except (EngineError, ConfigError) as exc:
            raise ApiError(say("saving.variant_profile", number=number, said=told(exc))) from None
        profiles.append(profile)
    return profiles


# -- routes -------------------------------------------------------------------------------------

@bp.post("/api/comparisons")
def create_comparison():
    """Start one pilot run per variant over the same folder, each trying the same sample first."""
    body = json_body()
    sources_api.check_fields(body, say("saving.what_comparison"), COMPARISON_FIELDS)
    sample = _sample(body)
    variants = _variants(body)
    profiles = _profiles(variants)
    started: list[tuple[str, int]] = []
    try:
        for variant in variants:
            spec = sources_api.run_spec({"input_path": body.get("input_path"), "prompt": variant["prompt"],
                                         "recursive": body.get("recursive", False)})
            run_id, count, _ = engine().start_run(spec, variant["api"], pilot=sample)
            started.append((run_id, count))
        if len({count for _, count in started}) > 1:  # the folder changed between two starts
            raise Conflict(say("saving.folder_changed"))
    except Exception:
        for run_id, _ in started:  # a half-started comparison would pay for variants nobody sees
            engine().delete_run(run_id)
        raise
    comparison_id = new_id("c")
    first = store().run(started[0][0])  # the folder as the runs stored it (an upload's, a resolved path)
    store().create_comparison(comparison_id, first.input_path if first else spec.input_path, spec.recursive, sample,
                              [(variant["name"], run_id, variant["prompt"], profile.model)
                               for variant, (run_id, _), profile in zip(variants, started, profiles)])
    runs = [{"name": variant["name"], "run_id": run_id} for variant, (run_id, _) in zip(variants, started)]
    return {"comparison_id": comparison_id, "runs": runs, "task_count": started[0][1]}, 201


def _comparison_or_404(comparison_id: str) -> dict[str, Any]:
    comparison = store().comparison(comparison_id)
    if comparison is None:
        raise ApiError(say("saving.no_comparison", comparison_id=comparison_id), 404)
    return comparison


@bp.get("/api/comparisons/<comparison_id>")
def get_comparison(comparison_id: str):
    """The comparison's variants (spend and progress of each run) and one row per sampled source."""
    comparison = _comparison_or_404(comparison_id)
    variants, rows = [], {}
    for variant in comparison["variants"]:
        run = store().run(variant["run_id"])
        gone = run is None  # its run was deleted: the variant stays, with nothing to show
        variants.append({**variant, "gone": gone, "spend": None if gone else run.spend,
                         "progress": None if gone else run.progress,
                         "running": not gone and engine().is_running(run.id),
                         "task_count": None if gone else run.task_count})
        if gone:
            continue
        for idx, task in store().sample_tasks(run.id, pilot_sample(run.task_count, comparison["sample"])).items():
            row = rows.setdefault(idx, {"source_name": task["source_name"], "source_task": task["id"],
                                        "results": {}, "status": {}})
            row["results"][variant["name"]] = task["results"]
            row["status"][variant["name"]] = task["status"]
    names = [variant["name"] for variant in variants]
    for row in rows.values():  # a variant without this task (deleted, gone) shows nothing
        row["results"] = {name: row["results"].get(name, []) for name in names}
        row["status"] = {name: row["status"].get(name) for name in names}
    del comparison["variants"]
    return {**comparison, "variants": variants, "rows": [rows[idx] for idx in sorted(rows)]}


@bp.post("/api/comparisons/<comparison_id>/choose")
def choose_variant(comparison_id: str):
    """Let the chosen variant's run go on to the rest of the folder (its sample is not called again)."""
    comparison = _comparison_or_404(comparison_id)
    body = json_body()
    sources_api.check_fields(body, say("saving.what_choice"), CHOOSE_FIELDS)
    name = body.get("variant")
    names = [variant["name"] for variant in comparison["variants"]]
    if not isinstance(name, str) or name not in names:
        raise ApiError(say("saving.variant_unknown", names=", ".join(repr(n) for n in names), got=f"{name!r:.60}"))
    if comparison["chosen"] is not None:
        raise ApiError(say("saving.variant_chosen", name=repr(comparison["chosen"])), 409)
    run_id = next(variant["run_id"] for variant in comparison["variants"] if variant["name"] == name)
    if store().run(run_id) is None:
        raise ApiError(say("saving.variant_run_deleted", name=repr(name)), 409)
    if not store().choose_variant(comparison_id, name):
        raise ApiError(say("saving.variant_chosen_meanwhile"), 409)
    try:
        queued = engine().release_pilot(run_id)["queued"]
    except Conflict:  # nothing held: the sample was the whole folder, or the rest was already run from the run bar
        queued = 0
    except Exception:
        store().choose_variant(comparison_id, None)  # not released: the choice can be made again
        raise
    return {"run_id": run_id, "queued": queued}
