"""Web attacks, on every route the app has: a web page in the user's browser must not drive the console.

- state-changing requests with a foreign `Origin`, or `Sec-Fetch-Site: cross-site`: 403;
- a foreign `Host` (DNS rebinding): 403 on every route, GETs, the page and static files included;
- a form POST (urlencoded, multipart, text/plain: what a page can send without a preflight): 415;
- ids, templates, dataset names and output folders that try to leave their place (`..`, absolute
  paths, symlinks): refused, and nothing is written outside the output folder.

The refused requests must change nothing: settings, runs and files are compared before and after.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.figures import record
from tests.helpers import make_sources, start, wait_idle

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
FOREIGN_HOSTS = ["evil.example", "evil.example:12607", "127.0.0.1.evil.example", "localhost.evil.example:80",
                 "192.168.1.20:12607", "[fd00::1]:12607"]
CROSS_SITE = [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://localhost:3000"},
              {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
              {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}]
FORMS = [("application/x-www-form-urlencoded", b"a=1"), ("multipart/form-data; boundary=x",
                                                         b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--"),
         ("text/plain", b'{"api": {"api_key": "sk-attacker"}}')]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from console.settings import resolve
    from console.web import create_app

    folder = tmp_path_factory.mktemp("attacks")
    application = create_app(settings=resolve({"APP_DATA_DIR": str(folder / "data")}))
    yield application
    application.extensions["console.engine"].close()


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def run(client, fake_upstream_server, tmp_path_factory) -> dict:
    """A finished run with results: real ids for the routes to aim at."""
    folder = make_sources(tmp_path_factory.mktemp("attack-src"), 2)
    run_id = start(client, fake_upstream_server, folder)
    listing = wait_idle(client, run_id)
    task = listing["tasks"][0]
    return {"run_id": run_id, "task_id": task["id"], "result_id": task["results"][0]["id"], "kind": "api", "name": "p",
            "job_id": "j1", "index": "0"}


def routes(app, ids: dict) -> list[tuple[str, str]]:
    """Every (method, path) of the app, with real ids where the rule has variables."""
    found = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: ids.get(m.group(1), "x1"), rule.rule)
        found += [(method, path) for method in sorted(rule.methods & set(METHODS))]
    return found


def state(client) -> tuple:
    """What a refused request must not change."""
    return (client.get("/api/settings").get_json(), client.get("/api/presets").get_json(),
            [(r["id"], r["task_count"]) for r in client.get("/api/runs").get_json()])


def refused(answer, status: int) -> bool:
    body = answer.get_json(silent=True) or {}
    return answer.status_code == status and body.get("ok") is False and body.get("error")


def test_cross_site_writes_are_refused_on_every_route(app, client, run):
    before = state(client)
    writes = [(method, path) for method, path in routes(app, run) if method in WRITES]
    assert len(writes) > 20
    count = 0
    for method, path in writes:
        for headers in CROSS_SITE:
            answer = client.open(path, method=method, json={"api": {"api_key": "sk-attacker"}}, headers=headers)
            assert refused(answer, 403), (method, path, headers, answer.status_code)
            count += 1
    assert state(client) == before
    record("attacks", cross_site_writes_refused=count)


def test_a_foreign_host_is_refused_on_every_route(app, client, run):
    count = 0
    for method, path in routes(app, run) + [("GET", "/static/js/main.js"), ("GET", "/")]:
        for host in FOREIGN_HOSTS:
            answer = client.open(path, method=method, json={} if method in WRITES else None, headers={"Host": host})
            assert refused(answer, 403), (method, path, host, answer.status_code)
            assert "DNS rebinding" in answer.get_json()["error"]
            count += 1
    record("attacks", foreign_host_refused=count)


def test_form_posts_are_refused_on_every_write_route(app, client, run):
    before = state(client)
    count = 0
    for method, path in routes(app, run):
        if method not in WRITES:
            continue
        for content_type, body in FORMS:
            answer = client.open(path, method=method, data=body, content_type=content_type)
            assert refused(answer, 415), (method, path, content_type, answer.status_code)
            assert "application/json" in answer.get_json()["error"]
            count += 1
    assert state(client) == before
    record("attacks", form_posts_refused=count)


@pytest.mark.parametrize("path", [
    "/api/tasks/..%2F..%2F..%2Fetc%2Fpasswd/source", "/api/tasks/%2Fetc%2Fpasswd/source",
    "/api/results/..%2F..%2Fconsole.db/image", "/api/results/x%00y/image", "/api/tasks/" + "a" * 5000,
    "/api/runs/..%2F..%2F/export.zip", "/api/tasks/%2e%2e/debug",
])
def test_ids_that_try_to_be_paths_are_not_found(client, path):
    answer = client.get(path)
    assert answer.status_code == 404 and answer.get_json()["ok"] is False
    record("attacks", path_ids_refused=1)


@pytest.mark.parametrize("path", ["/static/../console.db", "/static/%2e%2e/console.db", "/static/..%2Fconsole.db",
                                  "/static/../../etc/passwd", "/static//etc/passwd"])
def test_static_files_stay_in_their_folder(client, path):
    answer = client.get(path, follow_redirects=True)  # "//" is merged by a redirect first
    assert answer.status_code == 404
    assert b"SQLite" not in answer.data and b"root:" not in answer.data
    record("attacks", static_escapes_refused=1)


@pytest.mark.parametrize("field, value, message", [
    ("template", "../{stem}", "'..' parts are not allowed"),
    ("template", "{stem}/../../../evil", "'..' parts are not allowed"),
    ("template", "/tmp/evil/{stem}", "absolute path"),
    ("template", "..\\..\\{stem}", "'..' parts are not allowed"),
    ("template", "{stem.__class__}", "template"),
    ("name", "../outside", "plain folder name"),
    ("name", "/abs", "plain folder name"),
    ("output_dir", "relative/out", "absolute path"),
    ("output_dir", "../../out", "absolute path"),
    ("output_dir", "/tmp/a\u0000b", "output_dir"),
])
def test_save_rules_that_try_to_leave_the_output_folder_are_refused(client, run, tmp_path, field, value, message):
    rule = {"output_dir": str(tmp_path / "out"), "only_selected": False, field: value}
    for path in (f"/api/runs/{run['run_id']}/save", f"/api/results/{run['result_id']}/save"):
        answer = client.post(path, json=rule)
        assert refused(answer, 400), (path, answer.get_json())
        assert message in answer.get_json()["error"], answer.get_json()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.*"))
    record("attacks", save_escapes_refused=2)


def test_a_symlink_inside_the_output_folder_does_not_lead_outside(client, run, tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "dataset_target").symlink_to(outside, target_is_directory=True)
    (out / "dataset_control").symlink_to(outside, target_is_directory=True)
    answer = client.post(f"/api/runs/{run['run_id']}/save", json={"output_dir": str(out), "layout": "aitoolkit_edit",
                                                                   "only_selected": False})
    assert answer.status_code in (200, 400), answer.get_json()
    body = answer.get_json()
    assert os.listdir(outside) == []  # nothing written through the links
    if answer.status_code == 200:
        assert body["saved"] == [] and body["errors"] and all("outside" in e["error"] for e in body["errors"])
    record("attacks", symlink_escapes_refused=1)


def test_a_flat_template_cannot_follow_a_symlinked_folder_outside(client, run, tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "sub").symlink_to(outside, target_is_directory=True)
    answer = client.post(f"/api/runs/{run['run_id']}/save",
                         json={"output_dir": str(out), "template": "sub/{stem}_{n}", "only_selected": False})
    assert answer.status_code in (200, 400), answer.get_json()
    assert os.listdir(outside) == []
    record("attacks", symlink_escapes_refused=1)


def test_a_saved_dataset_never_overwrites_a_source(client, run, fake_upstream_server, tmp_path):
    folder = make_sources(tmp_path / "src", 1)
    source = folder / "img1.png"
    before = source.read_bytes()
    run_id = start(client, fake_upstream_server, folder)
    wait_idle(client, run_id)
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(folder), "template": "{stem}",
                                                            "format": "png", "conflict": "overwrite",
                                                            "only_selected": False})
    assert answer.status_code in (200, 400)
    assert source.read_bytes() == before
    record("attacks", source_overwrites_refused=1)


def test_preset_names_are_names_not_paths(client, tmp_path):
    data = Path(client.application.extensions["console.settings"].data_dir)
    before = sorted(p.name for p in data.iterdir())
    answer = client.put("/api/presets/api/..%2F..%2Fescape", json={"model": "m"})
    assert answer.status_code in (200, 400, 404)
    assert sorted(p.name for p in data.iterdir()) == before  # no file made from the name
    assert not (data.parent / "escape").exists()
