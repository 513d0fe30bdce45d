"""Input is checked where it enters: every profile field, on every path that takes one,
gets a 400 naming the field, nothing is stored, and no input yields a 500 or "internal error"."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.profile import MASK, ApiProfile
from tests.helpers import api, make_sources

KEY = "sk-live-good-1"


@pytest.fixture(scope="module")
def module_app(tmp_path_factory):
    # One app for the fuzzing (hypothesis runs many examples; function fixtures are not reset).
    from console.settings import resolve
    from console.web import create_app

    folder = tmp_path_factory.mktemp("door")
    application = create_app(settings=resolve({"APP_DATA_DIR": str(folder / "data")}))
    yield application
    application.extensions["console.engine"].close()


@pytest.fixture
def client(module_app, fake_upstream_server):
    client = module_app.test_client()
    good = api(fake_upstream_server, "g3_stream_dataurl", api_key=KEY)
    assert client.put("/api/settings", json={"api": good}).status_code == 200
    return client


def refused(answer, *fragments: str) -> str:
    body = answer.get_json()
    assert answer.status_code == 400, (answer.status_code, body)
    assert body["ok"] is False and "internal error" not in body["error"], body
    for fragment in fragments:
        assert fragment in body["error"], body["error"]
    return body["error"]


BAD_FIELDS = [
    ({"api_key": "sk-\u00e9abc"}, "api_key", "position 4", "copy-paste"),
    ({"api_key": "sk-ab\ncd"}, "api_key", "line break", "position 6"),
    ({"api_key": "sk-ａbc"}, "api_key", "position 4"),  # a full-width letter from an input method
    ({"api_key": "sk-a\u200bb"}, "api_key", "invisible", "position 5"),
    ({"api_key": "sk ab"}, "api_key", "position 3"),
    ({"api_key": MASK + "x"}, "api_key", "position 1"),
    ({"api_url": "ftp://gw.example.com/v1"}, "api_url", "http://"),
    ({"api_url": "http://"}, "api_url", "host"),
    ({"api_url": "gw.example.com/v1"}, "api_url", "http://"),
    ({"api_url": "http://gw.example.com:99999/v1"}, "api_url", "port"),
    ({"api_url": "http://gw example.com/v1"}, "api_url", "position 10"),
    ({"extra_headers": {"X-Trace": "a\r\nInjected: 1"}}, "extra_headers['X-Trace']", "line break"),
    ({"extra_headers": {"X-Name": "caf\u00e9"}}, "extra_headers['X-Name']", "position 4"),
    ({"extra_headers": {"Bad Name": "x"}}, "extra_headers", "header name"),
    ({"extra_headers": {"Content-Length": "5"}}, "Content-Length", "set by the console"),
    ({"extra_headers": ["X-A: 1"]}, "extra_headers", "object"),
    ({"extra_body": [1, 2]}, "extra_body", "object"),
    ({"extra_body": "{}"}, "extra_body", "object"),
    ({"concurrency": 0}, "concurrency", "between 1 and 64"),
    ({"concurrency": 1.5}, "concurrency", "whole number"),
    ({"max_retries": -1}, "max_retries", "between"),
    ({"timeout_s": 1e300}, "timeout_s", "between"),
    ({"temperature": "hot"}, "temperature", "number"),
    ({"n": 11}, "n", "between"),
    ({"stream": "yes"}, "stream", "true or false"),
    ({"api_mode": "gemini-ish"}, "api_mode", "one of"),
    ({"edit_format": "json_images"}, "edit_format", "one of"),
    ({"proxy_url": "ftp://127.0.0.1:21"}, "proxy_url", "socks5://"),
    ({"proxy_url": "http://me:secret@127.0.0.1:3128"}, "proxy_url", "PROXY_URL"),
    ({"model": 5}, "model", "string"),
    ({"nonsense": 1}, "nonsense", "unknown"),
]


@pytest.mark.parametrize("case", BAD_FIELDS, ids=[str(case[0])[:40] for case in BAD_FIELDS])
def test_bad_field_is_refused_on_every_path_and_nothing_is_stored(client, case):
    fields, *fragments = case
    before = client.get("/api/settings").json, client.get("/api/presets").json
    refused(client.put("/api/settings", json={"api": fields}), *fragments)
    refused(client.put("/api/presets/api/p", json=fields), *fragments)
    refused(client.post("/api/test-connection", json={"api": fields}), *fragments)
    refused(client.post("/api/runs", json={"input_path": "/nonexistent", "prompt": "p", "api": fields}), *fragments)
    document = {"format": "image-batch-console-config", "version": 1, "settings": {"api": fields},
                "presets": {"api": {"q": fields}}}
    refused(client.post("/api/config/import", json=document), *fragments)
    assert (client.get("/api/settings").json, client.get("/api/presets").json) == before


def test_whitespace_around_key_url_and_header_values_is_trimmed(client, module_app):
    answer = client.put("/api/settings", json={"api": {"api_key": f"  {KEY}\n", "api_url": " http://gw.example.com/v1 ",
                                                        "extra_headers": {" X-Team ": "  blue  "}}})
    assert answer.status_code == 200, answer.json
    profile = module_app.extensions["console.config"].profile()
    assert (profile.api_key, profile.api_url, profile.extra_headers) == (KEY, "http://gw.example.com/v1",
                                                                         {"X-Team": "blue"})


def test_non_finite_numbers_in_extra_body_are_refused(client):
    body = '{"api": {"extra_body": {"x": NaN}}}'  # Python's JSON reader accepts NaN
    refused(client.put("/api/settings", data=body, content_type="application/json"), "extra_body", "plain JSON")


def test_a_run_stored_with_the_mask_as_its_key_is_refused_with_a_way_out(client, module_app, fake, tmp_path):
    # Runs created before input was checked at the door stored the mask as their key.
    store = module_app.extensions["console.store"]
    profile = ApiProfile.from_dict(api(fake, "g3_stream_dataurl")).to_dict(mask_key=False)
    run_id = store.create_run(str(tmp_path), False, "p", {**profile, "api_key": MASK},
                              [("a.png", str(make_sources(tmp_path / "s", 1) / "img1.png"))])
    error = refused(client.post(f"/api/runs/{run_id}/resume", json={}), "stored API profile", "from the page")
    assert "api_key" in error
    assert client.post(f"/api/runs/{run_id}/resume", json={"api": {}}).status_code == 200


# Fuzzing: whatever a user or a script sends as a profile field, the answer is a 200 or a 400
# with a readable message, never a 500 and never "internal error".

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
HOSTILE_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", " ", MASK, f" {MASK} ", "sk-\u00e9", "a\r\nb", "\x00", "ｓｋ", "🔑", "http://", "https://[::1", "http://a:b@c/"])
FIELDS = sorted(f for f in ApiProfile.__dataclass_fields__)


def _answer_ok(answer) -> None:
    text = answer.get_data(as_text=True)
    assert answer.status_code in (200, 201, 400), (answer.status_code, text)
    assert "internal error" not in text and "Traceback" not in text, text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES | HOSTILE_TEXT)
def test_fuzz_settings_and_presets(client, field, value):
    _answer_ok(client.put("/api/settings", json={"api": {field: value}}))
    _answer_ok(client.put("/api/presets/api/fuzz", json={field: value}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from([f for f in FIELDS if f != "api_url"]), value=JSON_VALUES | HOSTILE_TEXT)
def test_fuzz_run_and_connection_overrides(client, field, value):
    # The URL stays the fake's (loopback): a fuzzed host name would be looked up in DNS.
    _answer_ok(client.post("/api/runs", json={"input_path": "/nonexistent/folder", "prompt": "p",
                                              "api": {field: value}}))
    if field not in ("timeout_s",):
        _answer_ok(client.post("/api/test-connection", json={"api": {field: value}}))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.dictionaries(st.sampled_from(["format", "version", "settings", "presets", "x"]),
                                JSON_VALUES, max_size=4))
def test_fuzz_config_import(client, document):
    _answer_ok(client.post("/api/config/import", json=document))
