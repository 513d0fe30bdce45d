"""The web family of messages: every refusal of a route, a guard or Werkzeug carries its code beside its text.

Each kind of refusal answers `error_msg: {"code", "params"}` with a code the page has Chinese for; a
sweep over every route of the URL map with bad ids, bodies and queries finds any 4xx answer that
still speaks English only; in the browser, the page in 中文 shows a refused request's toast in Chinese.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from console.messages import CATALOG
from console.settings import resolve
from console.web import create_app
from tests.helpers import api, make_sources, start, wait_idle
from tests.test_messages import page_table

WEB = page_table("web")
CHINESE = {code for family in ("config", "engine", "fields", "review", "saving", "sources", "upstream", "web")
           for code in page_table(family)}


@pytest.fixture(scope="module")
def env(tmp_path_factory, fake_upstream_server):
    root = tmp_path_factory.mktemp("web_messages")
    app = create_app(settings=resolve({"APP_DATA_DIR": str(root / "data")}))
    client = app.test_client()
    run_id = start(client, fake_upstream_server, make_sources(root / "src", 1))
    task = wait_idle(client, run_id)["tasks"][0]
    yield {"app": app, "client": client, "run": run_id, "task": task["id"], "result": task["results"][0]["id"],
           "root": root}
    app.extensions["console.engine"].close()


def coded(answer, status: int, code: str) -> dict:
    """Assert the answer is the error shape with `status` and `code` (with Chinese); return its error_msg."""
    body = answer.get_json()
    assert answer.status_code == status, (answer.status_code, body)
    assert body["ok"] is False and isinstance(body["error"], str), body
    msg = body.get("error_msg")
    assert msg and msg["code"] == code, body
    assert code in CATALOG and code in CHINESE, code
    return msg


# -- bodies --------------------------------------------------------------------------------

def test_a_body_that_is_not_a_json_object(env):
    msg = coded(env["client"].post("/api/runs", json=[1, 2]), 400, "web.body_not_object")
    assert msg["params"] == {"kind": "list"}


def test_a_missing_body(env):
    coded(env["client"].post(f"/api/runs/{env['run']}/selection"), 400, "web.body_missing")


def test_json_that_does_not_parse_quotes_the_parser(env):
    answer = env["client"].post("/api/runs", data="{", content_type="application/json")
    msg = coded(answer, 400, "web.json_invalid")
    assert answer.get_json()["error"] == f"invalid JSON: {msg['params']['said']}" and msg["params"]["said"]


def test_json_nested_too_deeply(env):
    answer = env["client"].post("/api/runs", data="[" * 100_000 + "]" * 100_000, content_type="application/json")
    coded(answer, 400, "web.json_too_deep")


def test_a_body_that_is_not_json(env):
    msg = coded(env["client"].post("/api/runs", data="x=1", content_type="text/plain"), 415, "web.not_json_type")
    assert msg["params"] == {"got": "text/plain"}


def test_an_upload_without_its_header(env):
    answer = env["client"].post("/api/uploads", data={"f": (b"x", "a.png")}, content_type="multipart/form-data")
    msg = coded(answer, 415, "web.upload_type_no_header")
    assert msg["params"]["header"] == "X-Console-Upload"


# -- fields and queries ----------------------------------------------------------------------

@pytest.mark.parametrize(("path", "code", "params"), [
    ("/api/runs/{run}/tasks?since=soon", "web.query_not_whole", {"name": "since", "got": "'soon'"}),
    ("/api/runs/{run}/tasks?limit=0", "web.query_below", {"name": "limit", "low": 1}),
    ("/api/runs/{run}/tasks?status=lost", "web.query_not_one_of", {"name": "status"}),
    ("/api/runs/{run}/tasks?flag=odd", "web.query_not_choice", {"name": "flag", "got": "'odd'"}),
    ("/api/spend?days=100000", "web.query_above", {"name": "days"}),
])
def test_a_bad_query(env, path, code, params):
    msg = coded(env["client"].get(path.format(run=env["run"])), 400, code)
    assert params.items() <= msg["params"].items()


@pytest.mark.parametrize(("body", "code", "params"), [
    ({"bogus": 1, "action": "all"}, "web.selection_unknown_field", {"field": "'bogus'"}),
    ({"action": "grab"}, "web.not_choice", {"name": "action", "got": "'grab'"}),
    ({"action": "all", "status": "lost"}, "web.not_choice", {"name": "status"}),
    ({"action": "all", "flag": "odd"}, "web.not_choice", {"name": "flag"}),
    ({"action": "all", "tasks": [1]}, "web.tasks_not_ids", {}),
    ({"action": "all", "tasks": ["t"] * 100_001}, "web.tasks_too_many", {"count": 100_001, "limit": 100_000}),
    ({}, "fields.missing", {"field": "'action'"}),
    ({"action": 5}, "fields.not_string", {"field": "'action'"}),
])
def test_a_bad_selection(env, body, code, params):
    msg = coded(env["client"].post(f"/api/runs/{env['run']}/selection", json=body), 400, code)
    assert params.items() <= msg["params"].items()


def test_the_tasks_limit_reads_with_its_thousands_in_english(env):
    body = {"action": "all", "tasks": ["t"] * 100_001}
    answer = env["client"].post(f"/api/runs/{env['run']}/selection", json=body).get_json()
    assert answer["error"] == "'tasks' lists 100,001 ids; at most 100,000 at once"


@pytest.mark.parametrize(("path", "body", "code"), [
    ("/api/runs/{run}", {}, "web.run_nothing_to_change"),
    ("/api/runs/{run}", {"concurrency": "two"}, "fields.not_whole"),
    ("/api/results/{result}", {}, "web.result_nothing_to_change"),
    ("/api/results/{result}", {"caption": "x" * 70_000}, "fields.too_many_bytes"),
])
def test_a_bad_update(env, path, body, code):
    coded(env["client"].patch(path.format(**env), json=body), 400, code)


@pytest.mark.parametrize(("body", "code"), [
    ({"bogus": 1}, "web.captioning_unknown_field"),
    ({"bogus": 1, "odd": 2}, "web.captioning_unknown_fields"),
    ({"instruction": " "}, "web.instruction_empty"),
    ({"instruction": "say it", "api": [1]}, "web.api_not_object"),
    ({"instruction": "say it", "api_preset": 3}, "web.api_preset_not_name"),
    ({"instruction": "say it", "api_preset": "nowhere"}, "web.api_preset_not_found"),
])
def test_a_bad_captioning_order(env, body, code):
    msg = coded(env["client"].post(f"/api/runs/{env['run']}/captions/generate", json=body), 400, code)
    if code == "web.captioning_unknown_fields":
        assert msg["params"]["names"] == "'bogus', 'odd'"


# -- what is not there -------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "code", "status"), [
    ("GET", "/api/runs/r_nope", "web.no_run", 404),
    ("GET", "/api/runs/r_nope/tasks", "web.no_run", 404),
    ("POST", "/api/runs/r_nope/captions/generate", "web.no_run", 404),
    ("GET", "/api/tasks/t_nope", "web.no_task", 404),
    ("GET", "/api/tasks/t_nope/source", "web.no_task", 404),
    ("GET", "/api/results/x_nope/image", "web.no_result", 404),
    ("GET", "/api/caption-jobs/job_nope", "web.no_caption_job", 404),
    ("POST", "/api/caption-jobs/job_nope/cancel", "web.no_caption_job", 404),
    ("GET", "/api/no-such-route", "web.http_404", 404),
    ("GET", "/nowhere/at/all", "web.http_404", 404),
    ("PUT", "/api/runs", "web.http_405", 405),
    ("DELETE", "/api/spend", "web.http_405", 405),
])
def test_not_found_and_not_allowed(env, method, path, code, status):
    body = {"instruction": "say it"} if method == "POST" else None
    msg = coded(env["client"].open(path, method=method, json=body), status, code)
    if code.startswith("web.no_"):
        assert msg["params"]["id"] == path.split("/")[3]


def test_werkzeugs_own_words_are_kept_as_they_were(env):
    answer = env["client"].get("/api/no-such-route").get_json()
    assert answer["error"].startswith("The requested URL was not found on the server.")
    assert env["client"].put("/api/runs").get_json()["error"] == "The method is not allowed for the requested URL."


def test_a_range_the_image_does_not_have(env):
    answer = env["client"].get(f"/api/results/{env['result']}/image", headers={"Range": "bytes=999999999-"})
    coded(answer, 416, "web.http_416")


def test_a_body_over_the_size_limit(env):
    answer = env["client"].put("/api/settings", data=b'{"x": "' + b"a" * (17 * 1024 * 1024) + b'"}',
                               content_type="application/json")
    coded(answer, 413, "web.http_413")


def test_debug_logs_for_another_machine(env):
    answer = env["client"].get(f"/api/tasks/{env['task']}/debug", environ_base={"REMOTE_ADDR": "10.0.0.7"})
    coded(answer, 403, "web.debug_local_only")


def test_a_result_whose_file_left_the_cache(env, tmp_path, fake_upstream_server):
    client = env["client"]
    run_id = start(client, fake_upstream_server, make_sources(tmp_path / "gone", 1))
    result = wait_idle(client, run_id)["tasks"][0]["results"][0]
    cache = env["app"].extensions["console.cache"]
    cache.path(result["sha256"], result["format"]).unlink()
    coded(client.get(f"/api/results/{result['id']}/image"), 410, "web.image_missing")


# -- guards and access -------------------------------------------------------------------------

def test_cross_site_refusals(env):
    client = env["client"]
    msg = coded(client.post("/api/stop", headers={"Sec-Fetch-Site": "cross-site"}), 403, "web.cross_site_refused")
    assert msg["params"] == {"site": "cross-site"}
    msg = coded(client.post("/api/stop", headers={"Origin": "https://evil.example"}), 403, "web.cross_origin_refused")
    assert msg["params"] == {"origin": "https://evil.example"}
    msg = coded(client.get("/api/runs", headers={"Host": "evil.example"}), 403, "web.host_not_allowed")
    assert msg["params"] == {"host": "evil.example"}


def test_the_access_tokens_401(tmp_path):
    app = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / "data")},
                                      {"host": "0.0.0.0", "access_token": "secret-token"}))
    try:
        answer = app.test_client().get("/api/runs", headers={"Host": "192.168.1.5"})
        msg = coded(answer, 401, "web.token_needed")
        assert msg["params"] == {"host": "0.0.0.0", "header": "Authorization: Bearer <token>"}
        assert answer.get_json()["error"] == (
            "this console listens on 0.0.0.0 and needs its access token: open the URL it printed in the terminal "
            "where it started (…/?token=…), or send the header 'Authorization: Bearer <token>'")
    finally:
        app.extensions["console.engine"].close()


# -- the console's own bug --------------------------------------------------------------------

def test_a_route_that_raises_answers_500_with_the_exception_verbatim(env, monkeypatch):
    store = env["app"].extensions["console.store"]

    def broken(*args, **kwargs):
        raise RuntimeError("the shelf fell")

    monkeypatch.setattr(store, "runs", broken)
    answer = env["client"].get("/api/runs")
    msg = coded(answer, 500, "web.bug")
    assert msg["params"] == {"kind": "RuntimeError", "said": "the shelf fell", "log": "logs/console.log"}
    assert answer.get_json()["error"] == ("the console hit a bug (RuntimeError: the shelf fell); "
                                          "the details are in logs/console.log in the data folder")


# -- the sweep: every route, bad ids, bad bodies, bad queries -----------------------------------

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
BAD_BODIES = (None, b"[1]", b"{", b'{"bogus": 1}', b"{}", b'{"input_path": 5, "prompt": [], "api": 3, "name": 7}')
BAD_QUERIES = ("", "?since=x&limit=0&offset=-1", "?status=lost&flag=odd&days=0&thumb=1&kind=odd")


def _routes(app) -> list[tuple[str, str]]:
    return sorted({(method, rule.rule) for rule in app.url_map.iter_rules()
                   for method in rule.methods & set(METHODS)})


def _fill(rule: str, ids: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda found: ids.get(found.group(1), "nope"), rule)


def test_every_4xx_of_every_route_carries_a_code_the_page_can_say(env):
    client, real = env["client"], {"run_id": env["run"], "task_id": env["task"], "result_id": env["result"],
                                   "kind": "api", "name": "nope", "job_id": "nope", "index": "0", "number": "1"}
    bad = {name: "nope" for name in real} | {"kind": "nope", "index": "99", "number": "99"}
    english_only: dict[str, list[str]] = {}
    for method, rule in _routes(env["app"]):
        if rule.endswith("/stop") or rule in ("/api/stop",) or method == "DELETE" and "<" not in rule:
            continue  # nothing here may stop the shared run's siblings or wipe the store
        for ids in (bad, real):
            if method == "DELETE" and ids is real:
                continue
            path = _fill(rule, ids)
            for query in BAD_QUERIES:
                for body in BAD_BODIES if method != "GET" else (None,):
                    kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}
                    answer = client.open(path + query, method=method, **kwargs)
                    if not 400 <= answer.status_code < 500 or answer.mimetype != "application/json":
                        continue
                    found = answer.get_json()
                    msg = found.get("error_msg")
                    if not msg or msg.get("code") not in CATALOG or msg["code"] not in CHINESE:
                        where = f"{method} {rule}"
                        english_only.setdefault(where, []).append(f"{answer.status_code} {found.get('error')!r}"[:200])
    listed = {where: sorted(set(texts))[:3] for where, texts in english_only.items()}
    assert not listed, "4xx answers without a code the page can say:\n" + json.dumps(listed, indent=1,
                                                                                       ensure_ascii=False)


# -- the page in Chinese ----------------------------------------------------------------------------

@pytest.mark.browser
def test_a_refused_request_toasts_in_chinese(page, server, fake, tmp_path):
    run_id = server.post("/api/runs", {"input_path": str(make_sources(tmp_path / "src", 1)), "prompt": "make it blue",
                                       "api": api(fake, "g3_stream_dataurl")}).json()["run_id"]
    server.wait_idle(run_id)
    page.evaluate("(run) => { localStorage.setItem('ibc.lang', 'zh'); localStorage.setItem('ibc.run', run); }", run_id)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#runbar:not([hidden])")
    page.route(re.compile(r"/tasks\?since="), lambda route: None)  # the poll waits: the run stays open on the page
    page.wait_for_timeout(1_200)
    assert server.http.delete(f"/api/runs/{run_id}").status_code == 200  # deleted elsewhere (a script, another tab)
    page.fill("#run-concurrency", "3")
    page.dispatch_event("#run-concurrency", "change")
    toast = page.locator(".toast-error").first
    toast.wait_for(timeout=10_000)
    assert toast.inner_text().startswith(f"没有批次 {run_id}"), toast.inner_text()
    # fetchJSON's own answers and Werkzeug's: an unknown route, a method the route does not take
    texts = page.evaluate("""async () => {
        const { fetchJSON } = await import('/static/js/api.js');
        const out = [];
        for (const [url, method] of [['/api/no-such-route', 'GET'], ['/api/runs', 'PUT']]) {
          try { await fetchJSON(url, { method }); } catch (err) { out.push(err.message); }
        }
        return out;
    }""")
    assert texts == [WEB["web.http_404"], WEB["web.http_405"]], texts
    page.console_errors[:] = [text for text in page.console_errors if "404" not in text and "405" not in text]
