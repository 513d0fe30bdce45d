"""HTTP routes that save results into dataset layouts: translate requests into console.saving calls."""

from __future__ import annotations

from flask import Blueprint, Flask

from ..saving import RuleError, SaveRule, save_result, save_run
from .errors import ApiError, answer_as
from .guards import json_body
from .services import cache, store

bp = Blueprint("save_api", __name__)


def init_app(app: Flask) -> None:
    """Register the save routes; a RuleError is a 400 with its message."""
    app.register_blueprint(bp)
    answer_as(app, RuleError)


@bp.post("/api/runs/<run_id>/save")
def save_run_results(run_id: str):
    if store().run(run_id) is None:
        raise ApiError(f"no run {run_id}", 404)
    # A bad rule, or an output_dir that cannot be created or written, raises RuleError: a 400.
    return save_run(store(), cache(), run_id, SaveRule.from_dict(json_body()))


@bp.post("/api/results/<result_id>/save")
def save_one_result(result_id: str):
    if store().result(result_id) is None:
        raise ApiError(f"no result {result_id}", 404)
    answer = save_result(store(), cache(), result_id, SaveRule.from_dict(json_body()))
    if answer is None:  # deleted between the check and the save
        raise ApiError(f"no result {result_id}", 404)
    return answer
