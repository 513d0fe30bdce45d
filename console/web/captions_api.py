"""HTTP routes of captions: find and replace across a run's captions."""

from __future__ import annotations

import re
from typing import Any, Callable

from flask import Blueprint, Flask

from ..fields import flag, quoted, text
from ..messages import say
from ..store_captions import CAPTION_MAX_BYTES, Replacement
from . import sources_api
from .errors import ApiError
from .guards import json_body
from .services import store

bp = Blueprint("captions_api", __name__)
REPLACE_FIELDS = ("find", "replace", "only_selected", "regex", "ignore_case", "preview")
FIND_MAX_CHARS = 1000


def init_app(app: Flask) -> None:
    """Register the routes."""
    app.register_blueprint(bp)


@bp.post("/api/runs/<run_id>/captions/replace")
def replace_captions(run_id: str):
    """Find and replace in the own captions of a run's results (with `preview`, only say what would change)."""
    if store().run(run_id) is None:
        raise ApiError(say("saving.no_run", run_id=run_id), 404)
    body = json_body()
    sources_api.check_fields(body, say("saving.what_find_replace"), REPLACE_FIELDS)
    pattern = _pattern(body)
    replacement = Replacement(pattern, _replace(body, pattern), _flag(body, "only_selected"))
    return store().replace_captions(run_id, replacement, preview=_flag(body, "preview"))


def _pattern(body: dict[str, Any]) -> re.Pattern[str]:
    """Return the compiled `find` (literal unless `regex`), or a 400 naming it."""
    find = text(body.get("find"), "'find'", max_chars=FIND_MAX_CHARS)
    if not find:
        raise ApiError(say("saving.find_required"))
    flags = re.IGNORECASE if _flag(body, "ignore_case") else 0
    try:
        return re.compile(find if _flag(body, "regex") else re.escape(find), flags)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ApiError(say("saving.find_bad_regex", said=str(exc))) from None


def _replace(body: dict[str, Any], pattern: re.Pattern[str]) -> str | Callable[[re.Match[str]], str]:
    """Return what a match becomes: the template (`\\1`, `\\g<name>`) with `regex`, else the text as it is."""
    replacement = text(body.get("replace"), "'replace'", max_bytes=CAPTION_MAX_BYTES)
    if not _flag(body, "regex"):
        return lambda _match: replacement  # a literal: backslashes in it are text, not group references
    try:
        pattern.sub(replacement, "")  # parses the template: a bad group reference is refused before any caption changes
    except (re.error, IndexError) as exc:
        raise ApiError(say("saving.replace_bad", said=str(exc))) from None
    return replacement


def _flag(body: dict[str, Any], name: str) -> bool:
    """Return a body's optional true/false field (default false), or a 400 naming it."""
    return flag(body.get(name), quoted(name), False)
