"""Exposed on a network: off loopback, every route needs the access token; without it, 401.

"Exposed" means the listening address is not a loopback one (settings.is_exposed). The tests bind
0.0.0.0 and connect through 127.0.0.1 only, which is what another machine would do by this one's
address; the in-process tests set the token as the start would.
"""

from __future__ import annotations

import re

import httpx
import pytest

from console.settings import is_exposed, resolve
from console.web import create_app
from tests.figures import record
from testkit.server_process import ServerProcess

TOKEN = "t0ken-for-tests-only-0123456789abcdef"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.mark.parametrize("host, exposed", [
    ("127.0.0.1", False), ("127.0.0.2", False), ("localhost", False), ("::1", False), ("[::1]", False),
    ("0.0.0.0", True), ("::", True), ("", True), ("192.168.1.5", True), ("10.0.0.1", True), ("myhost.lan", True),
])
def test_which_hosts_are_exposed(host, exposed):
    assert is_exposed(host) is exposed


@pytest.fixture(scope="module")
def token_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exposed")
    app = create_app(settings=resolve({"APP_DATA_DIR": str(folder / "data")}, {"host": "0.0.0.0", "access_token": TOKEN}))
    yield app
    app.extensions["console.engine"].close()


def every_route(app) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, with made-up ids in the variable parts."""
    found = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "api" if m.group(1) == "kind" else "x1", rule.rule)
        for method in sorted(rule.methods & set(METHODS)):
            found.append((method, path))
    return found


def test_every_route_answers_401_without_the_token(token_app):
    client = token_app.test_client()
    routes = every_route(token_app)
    assert len(routes) > 25
    for method, path in routes:
        answer = client.open(path, method=method, json={} if method != "GET" else None)
        assert answer.status_code == 401, (method, path, answer.status_code)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        text = answer.get_data(as_text=True)
        assert "access" in text and TOKEN not in text
    record("attacks", requests_without_token_refused=len(routes))


def test_the_token_opens_every_route(token_app):
    client = token_app.test_client()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/health", headers=bearer).status_code == 200
    assert client.get("/api/runs/x1", headers=bearer).status_code == 404  # past the guard: a plain 404
    assert client.post("/api/scan", json={"input_path": "/nonexistent"}, headers=bearer).status_code == 400


@pytest.mark.parametrize("header", [f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN,
                                    "Bearer ", f"Bearer {TOKEN.upper()}"])
def test_a_wrong_token_is_401(token_app, header):
    assert token_app.test_client().get("/api/health", headers={"Authorization": header}).status_code == 401


def test_the_page_trades_the_token_for_a_cookie_and_drops_it_from_the_address(token_app):
    client = token_app.test_client()
    page = client.get("/")
    assert page.status_code == 401 and page.mimetype == "text/html" and "/?token=" in page.get_data(as_text=True)
    handed = client.get(f"/?token={TOKEN}&lang=zh", headers={"Host": "127.0.0.1:5000"})
    assert handed.status_code == 303 and handed.headers["Location"] == "/?lang=zh"
    cookie = handed.headers["Set-Cookie"]
    assert cookie.startswith(f"ibc_token_5000={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/", headers={"Host": "127.0.0.1:5000"}).status_code == 200  # the cookie now
    assert client.get("/api/settings", headers={"Host": "127.0.0.1:5000"}).status_code == 200
    # The cookie is per port: a console on another port of the same machine does not get it.
    assert client.get("/api/settings", headers={"Host": "127.0.0.1:5001"}).status_code == 401


def test_behind_the_token_other_machines_may_come_by_address_but_not_by_foreign_name(token_app):
    client = token_app.test_client()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/health", headers={**bearer, "Host": "192.168.1.5:12607"}).status_code == 200
    assert client.get("/api/health", headers={**bearer, "Host": "[fd00::5]:12607"}).status_code == 200
    answer = client.get("/api/health", headers={**bearer, "Host": "evil.example:12607"})
    assert answer.status_code == 403 and "DNS rebinding" in answer.get_json()["error"]


def test_cross_site_writes_are_still_refused_with_the_token(token_app):
    client = token_app.test_client()
    answer = client.post("/api/stop", headers={"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"})
    assert answer.status_code == 403


def test_an_access_token_given_on_loopback_is_required_too(tmp_path):
    app = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / "d"), "ACCESS_TOKEN": TOKEN}))
    try:
        client = app.test_client()
        assert client.get("/api/health").status_code == 401
        assert client.get("/api/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    finally:
        app.extensions["console.engine"].close()


# -- the real process --------------------------------------------------------------------------------


def test_bound_to_every_address_it_prints_a_token_url_and_requires_it(tmp_path):
    server = ServerProcess(tmp_path / "data", host="0.0.0.0")
    try:
        assert server.token and len(server.token) >= 32
        bare = httpx.get(server.url + "api/health", timeout=10)
        assert bare.status_code == 401 and "access token" in bare.json()["error"]
        assert server.get("/api/health").status_code == 200  # ServerProcess sends the Bearer token
        with httpx.Client(base_url=server.url, timeout=10) as browser:
            handed = browser.get(f"/?token={server.token}")
            assert handed.status_code == 303 and handed.headers["location"] == "/"
            assert browser.get("/").status_code == 200 and browser.get("/api/settings").status_code == 200
        other = ServerProcess(tmp_path / "data2", host="0.0.0.0")
        try:
            assert other.token != server.token  # a new token at every start
        finally:
            other.stop()
    finally:
        server.stop()
    log = (tmp_path / "data" / "logs" / "console.log").read_text(encoding="utf-8")
    assert server.token not in log


def test_on_loopback_no_token_is_needed(server):
    assert server.token is None
    assert httpx.get(server.url + "api/health", timeout=10).status_code == 200
