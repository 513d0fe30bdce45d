"""The request guards (docs/security.md): Host allowlist, cross-site refusal, JSON bodies, CORS."""

from __future__ import annotations

import pytest
from flask import Flask, request

from console.settings import resolve
from console.web import errors, guards
from console.web.guards import is_local_request, json_body


def make_app(**settings) -> Flask:
    app = Flask(__name__)
    app.extensions["console.settings"] = resolve({}, settings)
    errors.init_app(app)
    guards.init_app(app)

    @app.route("/api/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def echo():
        return {"ok": True, "body": json_body(required=False)}

    @app.post("/api/strict")
    def strict():
        return {"ok": True, "body": json_body()}

    @app.post("/api/plain-get-json")
    def plain_get_json():
        return {"ok": True, "body": request.get_json()}

    @app.get("/api/local")
    def local():
        return {"local": is_local_request()}

    return app


@pytest.fixture
def client():
    return make_app().test_client()


def refused(answer, status: int, text: str) -> bool:
    body = answer.get_json()
    return answer.status_code == status and body["ok"] is False and text in body["error"]


# Host allowlist (DNS rebinding).


@pytest.mark.parametrize("host", ["evil.example", "evil.example:12607", "localhost.evil.example", "10.0.0.5:12607",
                                  "127.0.0.1.nip.io", "bad host", "localhost:notaport"])
def test_foreign_host_is_refused(client, host):
    for method in (client.get, client.post):
        answer = method("/api/echo", headers={"Host": host})
        assert refused(answer, 403, "is not allowed"), (host, answer.get_json())
    assert f"Host '{host}'" in client.get("/api/echo", headers={"Host": host}).get_json()["error"]


@pytest.mark.parametrize("host", ["localhost", "localhost:12607", "LOCALHOST:80", "127.0.0.1", "127.0.0.1:12607",
                                  "127.8.9.10:5", "[::1]", "[::1]:12607"])
def test_loopback_hosts_pass(client, host):
    assert client.get("/api/echo", headers={"Host": host}).status_code == 200


def test_configured_host_and_allowed_origin_hosts_pass():
    client = make_app(host="192.168.1.5", allowed_origins=("https://tool.example.com",)).test_client()
    assert client.get("/api/echo", headers={"Host": "192.168.1.5:12607"}).status_code == 200
    assert client.get("/api/echo", headers={"Host": "tool.example.com"}).status_code == 200
    assert client.get("/api/echo", headers={"Host": "other.example.com"}).status_code == 403


def test_wildcard_host_setting_does_not_open_every_name():
    client = make_app(host="0.0.0.0").test_client()
    assert client.get("/api/echo", headers={"Host": "0.0.0.0"}).status_code == 403
    assert client.get("/api/echo", headers={"Host": "evil.example"}).status_code == 403
    assert client.get("/api/echo", headers={"Host": "127.0.0.1:12607"}).status_code == 200


# Cross-site requests (CSRF).


@pytest.mark.parametrize("headers, text", [
    ({"Origin": "http://evil.example"}, "cross-origin request refused"),
    ({"Origin": "http://localhost:3000"}, "cross-origin request refused"),  # another local app
    ({"Origin": "null"}, "cross-origin request refused"),
    ({"Sec-Fetch-Site": "cross-site"}, "cross-site request refused"),
    ({"Sec-Fetch-Site": "same-site"}, "cross-site request refused"),
    ({"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"}, "cross-site request refused"),
])
def test_cross_site_writes_are_refused(client, headers, text):
    for method in (client.post, client.put, client.patch, client.delete):
        assert refused(method("/api/echo", json={"a": 1}, headers=headers), 403, text)
    assert client.get("/api/echo", headers=headers).status_code == 200  # reads are not state-changing


@pytest.mark.parametrize("headers", [
    {"Origin": "http://localhost"},
    {"Origin": "http://localhost:80"},
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    {"Sec-Fetch-Site": "none"},
    {},
])
def test_same_origin_writes_pass(client, headers):
    answer = client.post("/api/echo", json={"a": 1}, headers=headers)
    assert answer.status_code == 200 and answer.get_json()["body"] == {"a": 1}


def test_same_origin_with_a_port(client):
    headers = {"Host": "127.0.0.1:12607", "Origin": "http://127.0.0.1:12607", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/echo", json={}, headers=headers).status_code == 200
    headers["Origin"] = "http://localhost:12607"  # same machine, but another origin
    assert client.post("/api/echo", json={}, headers=headers).status_code == 403


# CORS.


def test_no_cors_headers_by_default(client):
    answer = client.get("/api/echo", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in answer.headers
    preflight = client.options("/api/echo", headers={"Origin": "http://evil.example",
                                                     "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_allowed_origin_gets_cors_headers():
    client = make_app(allowed_origins=("http://tool.example:8080",)).test_client()
    origin = {"Origin": "http://tool.example:8080"}
    answer = client.post("/api/echo", json={"a": 1}, headers={**origin, "Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "http://tool.example:8080"
    assert "Origin" in answer.headers["Vary"]
    preflight = client.options("/api/echo", headers={**origin, "Access-Control-Request-Method": "PUT",
                                                     "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://tool.example:8080"
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "Content-Type"
    other = client.post("/api/echo", json={}, headers={"Origin": "http://tool.example:9090"})
    assert other.status_code == 403 and "Access-Control-Allow-Origin" not in other.headers


def test_never_a_wildcard():
    client = make_app(allowed_origins=("http://tool.example",)).test_client()
    for origin in ("http://tool.example", "http://evil.example", None):
        headers = {"Origin": origin} if origin else {}
        assert client.get("/api/echo", headers=headers).headers.get("Access-Control-Allow-Origin") != "*"


def test_safety_headers(client):
    answer = client.get("/api/echo")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


# JSON bodies.


def test_text_plain_write_is_415(client):
    answer = client.post("/api/echo", data='{"a": 1}', content_type="text/plain")
    assert refused(answer, 415, "expected Content-Type: application/json, got text/plain")
    form = client.put("/api/echo", data={"a": "1"})
    assert refused(form, 415, "application/x-www-form-urlencoded")


def test_json_with_parameters_passes(client):
    answer = client.post("/api/echo", data='{"a": 1}', content_type="application/json; charset=utf-8")
    assert answer.status_code == 200 and answer.get_json()["body"] == {"a": 1}


@pytest.mark.parametrize("body", ['{"a": ', "{'a': 1}", "\xff"])
def test_invalid_json_is_400(client, body):
    for path in ("/api/echo", "/api/plain-get-json"):
        answer = client.post(path, data=body, content_type="application/json")
        assert refused(answer, 400, "invalid JSON: "), answer.get_json()


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "3", "null"])
def test_non_object_body_is_400(client, body):
    answer = client.post("/api/strict", data=body, content_type="application/json")
    assert refused(answer, 400, "must be a JSON object")


def test_post_without_body_passes_the_guard(client):
    answer = client.post("/api/echo")
    assert answer.status_code == 200 and answer.get_json()["body"] == {}
    assert refused(client.post("/api/strict"), 400, "expected a JSON object")


def test_get_json_on_a_non_json_route_is_readable(client):
    answer = client.post("/api/plain-get-json")
    assert refused(answer, 415, "expected Content-Type: application/json")


# Local requests.


@pytest.mark.parametrize("address, local", [("127.0.0.1", True), ("127.5.5.5", True), ("::1", True),
                                            ("::ffff:127.0.0.1", True), ("192.168.1.20", False),
                                            ("8.8.8.8", False), ("", False)])
def test_is_local_request(client, address, local):
    answer = client.get("/api/local", environ_base={"REMOTE_ADDR": address})
    assert answer.get_json()["local"] is local
