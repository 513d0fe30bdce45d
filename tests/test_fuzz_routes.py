"""Fuzzing: every route fed wrong types, missing fields, huge and unicode values answers a 4xx with
a readable message, never a 5xx.

Hypothesis draws, for every rule in the app's URL map, the ids in the path (real ones, or text of
any kind), query parameters and a JSON body (any shape; known field names mixed in with wrong
types). So that no draw reaches the network or the user's files, every `api_url` in a body is
the fake gateway's or a malformed URL, and every field whose name says path or dir points into a
temp folder or nowhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.figures import record
from tests.helpers import make_sources, start, wait_idle

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FIELD_NAMES = ["input_path", "recursive", "prompt", "api", "concurrency", "keep_results", "selected", "output_dir",
               "layout", "template", "name", "format", "caption", "conflict", "only_selected", "dry_run",
               "aspect_tolerance", "conform", "settings", "presets", "save", "format", "version", "mode", "variables",
               "count", "table_path", "reference_dirs", "api_key", "model", "api_mode", "stream", "n", "size",
               "max_retries", "timeout_s", "extra_headers", "extra_body", "temperature", "text", "snippets",
               "pilot", "sample", "variants", "variant"]
QUERY_NAMES = ["since", "status", "q", "offset", "limit", "thumb", "only_selected", "job", "kind", "token", "x"]
ODD_TEXT = ["", " ", "..", "../../etc/passwd", "%2e%2e", "\u0000", "a" * 70_000, "💥" * 500, "null", "-1",
            "1e309", "９", "\ud800", "<script>", "${jndi}", "{stem.__class__}", "'; DROP TABLE runs; --"]
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=30) | st.sampled_from(ODD_TEXT))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
BODIES = st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUES, max_size=6) | JSON_VALUES
SEGMENTS = st.text(min_size=1, max_size=40) | st.sampled_from(ODD_TEXT[1:])


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory, fake_upstream_server):
    from console.settings import resolve
    from console.web import create_app

    root = tmp_path_factory.mktemp("fuzz")
    app = create_app(settings=resolve({"APP_DATA_DIR": str(root / "data")}))
    client = app.test_client()
    sources = make_sources(root / "src", 2)
    run_id = start(client, fake_upstream_server, sources)
    task = wait_idle(client, run_id)["tasks"][0]
    ids = {"run_id": run_id, "task_id": task["id"], "result_id": task["results"][0]["id"], "kind": "api",
           "name": "fuzzed", "job_id": "job1", "index": "0"}
    safe_paths = [str(root / "nowhere"), str(sources), str(sources / "img1.png"), str(root / "out"), "", "relative/x",
                  str(root / "out" / "ü nicode"), str(root / "data")]
    safe_urls = [fake_upstream_server.url("g3_stream_dataurl", "/v1/chat/completions"), "http://", "ftp://x",
                 "not a url", "http://127.0.0.1:1/v1", ""]
    yield {"app": app, "client": client, "ids": ids, "paths": safe_paths, "urls": safe_urls, "root": root,
           "counts": {}}
    app.extensions["console.engine"].close()


def routes(app) -> list[tuple[str, str]]:
    return sorted({(method, rule.rule) for rule in app.url_map.iter_rules()
                   for method in rule.methods & set(METHODS)})


def tame(value: Any, paths: list[str], urls: list[str], pick: int, key: str = "") -> Any:
    """Keep a drawn body away from the network and the user's files (see the module docstring)."""
    lowered = key.lower()
    if lowered == "api_url" or lowered.endswith("_url"):
        return urls[pick % len(urls)]
    if "path" in lowered or "dir" in lowered:
        if isinstance(value, list):
            return [paths[(pick + n) % len(paths)] for n in range(min(len(value), 3))]
        return paths[pick % len(paths)] if isinstance(value, str) or value is None else value
    if isinstance(value, dict):
        return {k: tame(v, paths, urls, pick + n, str(k)) for n, (k, v) in enumerate(value.items())}
    if isinstance(value, list):
        return [tame(v, paths, urls, pick + n, key) for n, v in enumerate(value)]
    return value


def fill(rule: str, ids: dict, drawn: list[str], use_real: list[bool]) -> str:
    names = re.findall(r"<(?:[^:>]+:)?([^>]+)>", rule)
    values = iter(ids.get(name, "x") if real else quote(text, safe="", errors="surrogatepass") or "x"
                  for name, text, real in zip(names, drawn, use_real))
    return re.sub(r"<[^>]+>", lambda _: next(values), rule)


def check(answer, what: str) -> None:
    text = answer.get_data(as_text=True) if answer.mimetype and "json" in answer.mimetype else ""
    assert answer.status_code < 500, (what, answer.status_code, text[:500])
    if answer.status_code >= 400 and answer.mimetype == "application/json":
        body = json.loads(text)
        assert body["ok"] is False and isinstance(body["error"], str) and body["error"].strip(), (what, body)
        assert "Traceback" not in body["error"] and "bug" not in body["error"], (what, body)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_route_answers_any_input_with_a_readable_4xx_at_worst(fuzz_env, data):
    app, client = fuzz_env["app"], fuzz_env["client"]
    method, rule = data.draw(st.sampled_from(routes(app)), label="route")
    slots = len(re.findall(r"<[^>]+>", rule))
    drawn = data.draw(st.lists(SEGMENTS, min_size=slots, max_size=slots), label="ids")
    use_real = data.draw(st.lists(st.booleans(), min_size=slots, max_size=slots), label="real ids")
    path = fill(rule, fuzz_env["ids"], drawn, use_real)
    query = data.draw(st.dictionaries(st.sampled_from(QUERY_NAMES), st.text(max_size=20) | st.sampled_from(ODD_TEXT[:9]),
                                      max_size=3), label="query")
    query.pop("token", None)
    pick = data.draw(st.integers(0, 100), label="pick")
    kwargs: dict[str, Any] = {"query_string": query}
    if method != "GET":
        body = tame(data.draw(BODIES, label="body"), fuzz_env["paths"], fuzz_env["urls"], pick)
        kwargs["data"] = json.dumps(body)  # NaN and Infinity as Python writes them: not quite JSON
        kwargs["content_type"] = "application/json"
    answer = client.open(path, method=method, **kwargs)
    check(answer, f"{method} {path[:200]} {query} {str(kwargs.get('data'))[:300]}")
    fuzz_env["counts"][answer.status_code] = fuzz_env["counts"].get(answer.status_code, 0) + 1


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe\x00", b"[" * 10_000 + b"]" * 10_000, b'{"a": ' + b"9" * 5000 + b"}",
                                  b'"' + b"x" * 100_000 + b'"', b'{"api": {"api_key": "\\ud800"}}', b"\x00" * 64])
def test_broken_json_on_every_write_route_is_a_readable_4xx(fuzz_env, body):
    app, client = fuzz_env["app"], fuzz_env["client"]
    for method, rule in routes(app):
        if method == "GET":
            continue
        path = fill(rule, fuzz_env["ids"], ["x"] * 9, [True] * 9)
        answer = client.open(path, method=method, data=body, content_type="application/json")
        check(answer, f"{method} {path} {body[:40]!r}")


def test_a_body_over_the_size_limit_is_413(fuzz_env):
    answer = fuzz_env["client"].put("/api/settings", data=b'{"x": "' + b"a" * (17 * 1024 * 1024) + b'"}',
                                     content_type="application/json")
    assert answer.status_code == 413 and answer.get_json()["ok"] is False


def test_nothing_reached_the_log_as_unhandled(fuzz_env):
    log = Path(fuzz_env["app"].extensions["console.settings"].data_dir) / "logs" / "console.log"
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    assert "unhandled error" not in text
    counts = fuzz_env["counts"]
    record("fuzz", requests=sum(counts.values()), server_errors=sum(n for s, n in counts.items() if s >= 500),
           statuses={str(k): v for k, v in sorted(counts.items())}, routes=len(routes(fuzz_env["app"])))
