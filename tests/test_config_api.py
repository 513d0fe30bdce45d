"""The settings, presets and config import/export routes (docs/api.md)."""

from __future__ import annotations

import json

import pytest

from console.config import ConfigStore
from console.profile import MASK
from console.settings import resolve
from console.web import create_app

KEY = "sk-live-do-not-show-42"


def make_client(tmp_path, **settings):
    store = ConfigStore(tmp_path / "data")
    app = create_app({"TESTING": True}, resolve({}, {"data_dir": str(tmp_path / "data"), **settings}),
                     config_store=store)
    return app.test_client(), store


@pytest.fixture
def client(tmp_path):
    return make_client(tmp_path)[0]


@pytest.fixture
def store(client):
    return client.application.extensions["console.config"]


def ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert KEY not in answer.get_data(as_text=True)
    return answer.get_json()


def refused(answer, status: int, text: str) -> None:
    body = answer.get_json()
    assert answer.status_code == status and body["ok"] is False and text in body["error"], body
    assert "Traceback" not in body["error"]


# Settings.


def test_settings_round_trip_and_masking(client, store):
    answer = ok(client.put("/api/settings", json={"api": {"api_url": "http://gw:8000/v1", "api_key": KEY,
                                                          "model": "grok"}, "save": {"template": "{stem}"}}))
    assert answer["api"]["api_key"] == MASK and answer["api"]["model"] == "grok"
    assert answer["save"] == {"template": "{stem}"}
    assert ok(client.get("/api/settings")) == answer
    assert store.profile().api_key == KEY


def test_masked_or_absent_key_keeps_it_and_empty_clears(client, store):
    ok(client.put("/api/settings", json={"api": {"api_key": KEY}}))
    ok(client.put("/api/settings", json={"api": {"api_key": MASK, "model": "m"}}))
    ok(client.put("/api/settings", json={"save": {"x": 1}}))
    assert store.profile().api_key == KEY and store.profile().model == "m"
    answer = ok(client.put("/api/settings", json={"api": {"api_key": ""}}))
    assert answer["api"]["api_key"] == "" and store.profile().api_key == ""


@pytest.mark.parametrize("body, status, text", [
    ("[1]", 400, "must be a JSON object"),
    ('{"api": ', 400, "invalid JSON"),
    ("", 400, "expected a JSON object"),
    ('{"api": {"temperature": "warm"}}', 400, "temperature must be a number"),
    ('{"api": {"api_mode": "magic"}}', 400, "api_mode must be one of"),
    ('{"api": {"nope": 1}}', 400, "unknown API profile field(s): nope"),
    ('{"api": []}', 400, "must be a JSON object"),
    ('{"save": 3}', 400, "save must be a JSON object"),
    ('{"other": {}}', 400, "unknown section(s): other"),
])
def test_bad_settings_are_400(client, store, body, status, text):
    refused(client.put("/api/settings", data=body, content_type="application/json"), status, text)
    assert store.settings()["api"]["model"] == ""


def test_settings_need_json_content_type(client):
    refused(client.put("/api/settings", data='{"api": {}}', content_type="text/plain"), 415, "application/json")


def test_config_answers_are_not_cached(client):
    assert client.get("/api/settings").headers["Cache-Control"] == "no-store"


# Presets.


def test_presets_crud(client, store):
    answer = ok(client.put("/api/presets/api/Grok%20local", json={"api_url": "http://127.0.0.1:8000/v1",
                                                                 "api_key": KEY}))
    assert answer == {"ok": True, "kind": "api", "name": "Grok local"}
    ok(client.put("/api/presets/save/pairs", json={"layout": "musubi"}))
    presets = ok(client.get("/api/presets"))
    assert presets["api"]["Grok local"]["api_key"] == MASK and presets["api"]["Grok local"]["api_mode"] == "auto"
    assert presets["save"] == {"pairs": {"layout": "musubi"}}
    ok(client.put("/api/presets/api/Grok%20local", json={"api_key": MASK, "model": "m"}))
    assert store.presets(masked=False)["api"]["Grok local"]["api_key"] == KEY
    assert ok(client.delete("/api/presets/save/pairs")) == {"ok": True}
    assert ok(client.get("/api/presets"))["save"] == {}


@pytest.mark.parametrize("method, path, body, status, text", [
    ("put", "/api/presets/models/x", {}, 400, "kind must be 'api' or 'save'"),
    ("delete", "/api/presets/models/x", None, 400, "kind must be 'api' or 'save'"),
    ("put", "/api/presets/api/%20%20", {}, 400, "1-100 characters"),
    ("put", "/api/presets/api/" + "x" * 101, {}, 400, "1-100 characters"),
    ("put", "/api/presets/api/a%0Ab", {}, 400, "control characters"),
    ("put", "/api/presets/api/x", {"concurrency": 100}, 400, "concurrency must be between 1 and 64"),
    ("put", "/api/presets/api/x", [1], 400, "must be a JSON object"),
    ("put", "/api/presets/save/x", None, 400, "expected a JSON object"),
    ("delete", "/api/presets/api/missing", None, 404, "no api preset named 'missing'"),
])
def test_bad_preset_requests(client, method, path, body, status, text):
    kwargs = {"json": body} if body is not None else {}
    refused(getattr(client, method)(path, **kwargs), status, text)


@pytest.mark.parametrize("rule, text", [
    ({"layout": "kohya"}, "save preset 'x': 'layout' must be one of flat, aitoolkit_edit"),
    ({"template": "{stem}_{colour}"}, "save preset 'x': 'template': unknown variable {colour}"),
    ({"caption": "template", "caption_template": "{prompt!r}"}, "'caption_template': {prompt} may only take"),
    ({"format": "gif"}, "'format' must be one of png, jpeg, webp, keep; got 'gif'"),
    ({"layout": "civitai_edit", "format": "webp"}, "'format' webp does not suit the civitai_edit layout"),
    ({"aspect_tolerance": 11}, "'aspect_tolerance' must be a number from 0 to 10"),
    ({"sequential": "yes"}, "'sequential' must be true or false"),
    ({"output_dir": "relative/folder"}, "'output_dir' must be an absolute path"),
    ({"layuot": "flat"}, "unknown save rule field(s): layuot"),
])
def test_a_save_preset_is_checked_when_stored(client, rule, text):
    """A save preset a save would refuse is refused when stored (400 naming the field), and nothing is kept."""
    refused(client.put("/api/presets/save/x", json=rule), 400, text)
    assert ok(client.get("/api/presets"))["save"] == {}


def test_a_save_preset_as_the_form_keeps_it_is_stored(client, tmp_path):
    """The drawer's whole rule, with an empty output folder or the form's "" defaults, is a good preset."""
    rule = {"output_dir": "", "layout": "aitoolkit_edit", "name": "pairs", "template": "", "sequential": False,
            "format": "", "caption": "template", "caption_template": "{trigger}, {prompt}", "trigger": "ohwx",
            "only_selected": True, "conflict": "", "aspect_tolerance": 0.02, "conform": "", "replace_from": "",
            "replace_to": "", "first_only": False, "role_swap": False}
    ok(client.put("/api/presets/save/form", json=rule))
    ok(client.put("/api/presets/save/folder", json={**rule, "output_dir": str(tmp_path / "out")}))
    assert ok(client.get("/api/presets"))["save"]["form"] == rule


def test_an_import_with_a_bad_save_preset_changes_nothing(client):
    """An imported save preset is checked as a stored one; a bad one refuses the whole import."""
    document = {"presets": {"save": {"good": {"layout": "flat"}, "bad": {"conflict": "merge"}}}}
    refused(client.post("/api/config/import", json=document), 400,
            "presets.save['bad']: 'conflict' must be one of skip, overwrite, rename; got 'merge'")
    assert ok(client.get("/api/presets"))["save"] == {}


# The rules the page checks input by.


def test_the_rules_served_are_the_bounds_the_server_enforces(client):
    """Every number bound the page gets from GET /api/rules is the one a stored profile or rule is held to."""
    rules = ok(client.get("/api/rules"))
    assert rules["run_modes"] == ["edit", "generate", "table"] and rules["profile"]["concurrency"] == {
        "min": 1, "max": 64, "whole": True}
    for name, bounds in rules["profile"].items():
        for value in (bounds["min"], bounds["max"]):
            assert ok(client.put("/api/settings", json={"api": {name: value}}))["api"][name] == value
        step = 1 if bounds["whole"] else 0.5
        for value in (bounds["min"] - step, bounds["max"] + step):
            refused(client.put("/api/settings", json={"api": {name: value}}), 400, f"{name} must be between")
    tolerance = rules["save"]["aspect_tolerance"]
    ok(client.put("/api/presets/save/edge", json={"aspect_tolerance": tolerance["max"]}))
    refused(client.put("/api/presets/save/edge", json={"aspect_tolerance": tolerance["max"] + 0.5}), 400,
            "'aspect_tolerance' must be a number")
    sample = rules["compare"]["sample"]["max"]
    refused(client.post("/api/comparisons", json={"sample": sample + 1}), 400, f"from 1 to {sample}")
    assert "'sample'" not in client.post("/api/comparisons", json={"sample": sample}).get_json()["error"]
    assert rules["captions"] == {"caption_max_bytes": 8192, "instruction_max_bytes": 4096, "find_max_chars": 1000}


# Export and import.


def test_export_is_a_download_without_secrets(client):
    ok(client.put("/api/settings", json={"api": {"api_key": KEY, "model": "m"}}))
    ok(client.put("/api/presets/api/p", json={"api_key": KEY}))
    answer = client.get("/api/config/export")
    data = ok(answer)
    assert answer.headers["Content-Disposition"] == 'attachment; filename="image-batch-console-config.json"'
    assert answer.mimetype == "application/json" and answer.headers["Cache-Control"] == "no-store"
    assert data["format"] == "image-batch-console-config" and data["settings"]["api"]["model"] == "m"
    assert data["settings"]["api"]["api_key"] == "" and data["presets"]["api"]["p"]["api_key"] == ""


def test_export_with_secrets_when_allowed(tmp_path):
    client, _ = make_client(tmp_path, export_include_secrets=True)
    client.put("/api/settings", json={"api": {"api_key": KEY}})
    assert json.loads(client.get("/api/config/export").data)["settings"]["api"]["api_key"] == KEY


def test_export_import_round_trip_keeps_the_key(client, store):
    ok(client.put("/api/settings", json={"api": {"api_key": KEY, "model": "m"}}))
    ok(client.put("/api/presets/api/p", json={"api_key": "preset-" + KEY}))
    exported = ok(client.get("/api/config/export"))
    exported["settings"]["api"]["model"] = "after"
    answer = ok(client.post("/api/config/import", json=exported))
    assert answer == {"ok": True, "settings": True, "api_presets": 1, "save_presets": 0, "snippets": 0}
    assert store.profile().api_key == KEY and store.profile().model == "after"
    assert store.presets(masked=False)["api"]["p"]["api_key"] == "preset-" + KEY
    # What the page shows (masked) imports without harm too.
    ok(client.post("/api/config/import", json={"settings": ok(client.get("/api/settings")),
                                               "presets": ok(client.get("/api/presets"))}))
    assert store.profile().api_key == KEY


@pytest.mark.parametrize("body, text", [
    ("[]", "must be a JSON object"),
    ("{", "invalid JSON"),
    ('{"format": "zip", "settings": {}}', "not an Image Batch Console config export"),
    ('{"settings": {"api": {"n": 50}}}', "settings.api: n must be between 1 and 10"),
    ('{"presets": {"api": {"a/b": {}}}}', "must not contain '/'"),
    ('{"nothing": true}', "nothing to import"),
])
def test_bad_import_is_400_and_changes_nothing(client, store, body, text):
    ok(client.put("/api/settings", json={"api": {"api_key": KEY, "model": "m"}}))
    refused(client.post("/api/config/import", data=body, content_type="application/json"), 400, text)
    assert store.profile().model == "m" and store.profile().api_key == KEY


# Guards and wiring.


def test_cross_site_write_is_refused(client, store):
    answer = client.put("/api/settings", json={"api": {"api_url": "http://evil/v1"}},
                        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    refused(answer, 403, "cross-site request refused")
    assert store.profile().api_url == ""


def test_rebinding_host_cannot_read_settings(client):
    refused(client.get("/api/settings", headers={"Host": "evil.example:12607"}), 403, "is not allowed")


def test_create_app_imports_legacy_presets_from_home(tmp_path):
    legacy = tmp_path / "home" / ".image-batch-console" / "presets.json"  # HOME is tmp (conftest)
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"grok": {"url": "http://127.0.0.1:8000/v1", "key": KEY}}), encoding="utf-8")
    client = create_app({"TESTING": True}).test_client()
    presets = ok(client.get("/api/presets"))
    assert presets["api"]["grok"]["api_url"] == "http://127.0.0.1:8000/v1"
    assert presets["api"]["grok"]["api_key"] == MASK
    assert (tmp_path / "data" / "presets.json").is_file()  # APP_DATA_DIR is tmp (conftest)


def test_test_connection_lists_models_through_the_server(client, fake):
    api = {"api_url": fake.api_base("g3_stream_dataurl"), "api_key": "sk-conn-test", "allow_private_api": True}
    answer = client.post("/api/test-connection", json={"api": api})
    assert answer.status_code == 200 and answer.json["ok"] is True and answer.json["models"]
    assert fake.requests[-1].path.endswith("/v1/models")
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-conn-test"
    assert "sk-conn-test" not in answer.get_data(as_text=True)


def test_test_connection_reports_upstream_errors(client, fake):
    answer = client.post("/api/test-connection", json={"api": {"api_url": fake.api_base("err_401_g16"), "allow_private_api": True}})
    assert answer.status_code == 200 and answer.json["ok"] is False and answer.json["http_status"] == 401
    blocked = client.post("/api/test-connection", json={"api": {"api_url": fake.api_base("g3_stream_dataurl")}})
    assert blocked.json["ok"] is False and "private" in blocked.json["error"]
    assert client.post("/api/test-connection", json={}).status_code == 400  # no URL stored


# A lone surrogate (JSON can carry one as \ud800; UTF-8 cannot store it) is a 400 naming the field, not a crash.


@pytest.mark.parametrize("method, path, body, text", [
    ("put", "/api/settings", '{"api": {"model": "m\\ud800"}}', "model is not valid text: it holds a lone surrogate"),
    ("put", "/api/settings", '{"api": {"system_prompt": "\\udfff"}}', "system_prompt is not valid text"),
    ("put", "/api/settings", '{"api": {"extra_body": {"a": ["\\ud800"]}}}', "extra_body is not valid text"),
    ("put", "/api/settings", '{"api": {"prices": {"currency": "\\ud800"}}}', "prices.currency must be a currency code"),
    ("put", "/api/settings", '{"save": {"template": "\\ud800"}}', "save is not valid text"),
    ("put", "/api/presets/api/p", '{"size": "\\ud800"}', "size is not valid text"),
    ("put", "/api/presets/save/p", '{"trigger": "\\ud800"}', "'trigger' is not valid text"),
    ("put", "/api/snippets/s", '{"text": "\\ud800"}', "the prompt text is not valid text"),
    ("post", "/api/config/import", '{"presets": {"api": {"\\ud800": {}}}}', "must not contain '/', control characters"),
])
def test_a_lone_surrogate_is_refused_naming_the_field(client, method, path, body, text):
    answer = getattr(client, method)(path, data=body, content_type="application/json")
    refused(answer, 400, text)
    assert ok(client.get("/api/settings"))["api"]["model"] == ""
