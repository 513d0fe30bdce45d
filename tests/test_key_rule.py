"""The masked key never replaces a stored key, on any path, checked where it lands:
the settings and presets files, and the Authorization header the gateway receives."""

from __future__ import annotations

import json

import pytest

from console.profile import MASK
from tests.helpers import api, make_sources, wait_idle

KEY = "sk-live-stored-1234"
OTHER = "sk-live-other-5678"
CHAT = "/v1/chat/completions"


@pytest.fixture
def configs(app):
    return app.extensions["console.config"]


def put_settings(client, fake, scenario: str = "g3_stream_dataurl", **fields) -> dict:
    answer = client.put("/api/settings", json={"api": api(fake, scenario, **fields)})
    assert answer.status_code == 200, answer.json
    return answer.json


def keys_seen(fake) -> set[str]:
    """Every Authorization header the gateway received."""
    return {rec.headers.get("authorization", "") for rec in fake.requests}


def run_to_end(client, folder, api_fields: dict | None) -> dict:
    body = {"input_path": str(folder), "prompt": "make it blue"}
    if api_fields is not None:
        body["api"] = api_fields
    answer = client.post("/api/runs", json=body)
    assert answer.status_code == 201, answer.json
    return wait_idle(client, answer.json["run_id"])


@pytest.mark.parametrize("sent", ["masked", "absent", "masked-with-spaces"])
def test_run_override_with_masked_or_absent_key_sends_the_stored_key(client, fake, tmp_path, sent):
    put_settings(client, fake, api_key=KEY)
    form = client.get("/api/settings").json["api"]  # what the page holds: the key masked
    assert form["api_key"] == MASK
    if sent == "absent":
        del form["api_key"]
    elif sent == "masked-with-spaces":
        form["api_key"] = f" {MASK} "
    listing = run_to_end(client, make_sources(tmp_path / "src", 3), form)
    assert listing["progress"]["done"] == 3
    assert keys_seen(fake) == {f"Bearer {KEY}"}


def test_run_override_with_a_typed_key_sends_that_key_and_keeps_the_stored_one(client, fake, tmp_path, configs):
    put_settings(client, fake, api_key=KEY)
    run_to_end(client, make_sources(tmp_path / "src", 2), {"api_key": f"  {OTHER}\n"})
    assert keys_seen(fake) == {f"Bearer {OTHER}"}
    assert configs.profile().api_key == KEY


def test_run_without_overrides_uses_the_stored_profile(client, fake, tmp_path):
    put_settings(client, fake, api_key=KEY)
    run_to_end(client, make_sources(tmp_path / "src", 2), None)
    assert keys_seen(fake) == {f"Bearer {KEY}"}


def test_test_connection_with_the_masked_key_sends_the_stored_key(client, fake):
    put_settings(client, fake, api_key=KEY)
    answer = client.post("/api/test-connection", json={"api": client.get("/api/settings").json["api"]})
    assert answer.status_code == 200 and answer.json["ok"], answer.json
    assert "grok-imagine-1.0-edit" in answer.json["models"]
    assert keys_seen(fake) == {f"Bearer {KEY}"}


def test_settings_and_presets_keep_their_keys(client, fake, configs):
    put_settings(client, fake, api_key=KEY)
    assert client.put("/api/settings", json={"api": {"api_key": MASK, "model": "m2"}}).status_code == 200
    assert configs.profile().api_key == KEY
    assert client.put("/api/presets/api/own", json={**api(fake, "x"), "api_key": OTHER}).status_code == 200
    # Saved again from the page: the mask keeps the preset's own key; a new preset takes the settings' key.
    assert client.put("/api/presets/api/own", json={"api_key": MASK, "model": "m3"}).status_code == 200
    assert client.put("/api/presets/api/new", json={"model": "m4"}).status_code == 200
    stored = configs.presets(masked=False)["api"]
    assert stored["own"]["api_key"] == OTHER and stored["own"]["model"] == "m3"
    assert stored["new"]["api_key"] == KEY


def test_import_never_replaces_a_key_with_the_mask_or_nothing(client, fake, configs):
    put_settings(client, fake, api_key=KEY)
    client.put("/api/presets/api/p", json={"api_key": OTHER})
    document = client.get("/api/config/export").json  # keys blank: EXPORT_INCLUDE_SECRETS is off
    document["presets"]["api"]["p"]["api_key"] = MASK
    answer = client.post("/api/config/import", data=json.dumps(document), content_type="application/json")
    assert answer.status_code == 200, answer.json
    assert configs.profile().api_key == KEY
    assert configs.presets(masked=False)["api"]["p"]["api_key"] == OTHER


def test_applying_a_preset_makes_its_key_the_one_sent(client, fake, tmp_path, configs):
    put_settings(client, fake, api_key=KEY)
    client.put("/api/presets/api/second", json={**api(fake, "g3_stream_dataurl"), "api_key": OTHER, "model": "gm"})
    answer = client.post("/api/presets/api/second/apply", json={})
    assert answer.status_code == 200 and answer.json["api"]["api_key"] == MASK and answer.json["api"]["model"] == "gm"
    assert configs.profile().api_key == OTHER
    run_to_end(client, make_sources(tmp_path / "src", 2), answer.json["api"])  # the page sends back the mask
    assert keys_seen(fake) == {f"Bearer {OTHER}"}
    missing = client.post("/api/presets/api/nope/apply", json={})
    assert missing.status_code == 404 and "nope" in missing.json["error"]


def test_retry_failed_with_the_fixed_profile_uses_the_new_key(client, fake, tmp_path):
    put_settings(client, fake, "err_401_g16", api_key="sk-wrong")
    listing = run_to_end(client, make_sources(tmp_path / "src", 3), client.get("/api/settings").json["api"])
    assert listing["progress"]["failed"] == 3 and listing["tasks"][0]["http_status"] == 401
    put_settings(client, fake, api_key=KEY)  # the user fixes URL and key, and saves
    fake.reset()
    run_id = listing["tasks"][0]["run_id"]
    answer = client.post(f"/api/runs/{run_id}/retry-failed", json={"api": client.get("/api/settings").json["api"]})
    assert answer.status_code == 200 and answer.json["queued"] == 3
    assert wait_idle(client, run_id)["progress"]["done"] == 3
    assert keys_seen(fake) == {f"Bearer {KEY}"}


def test_resume_and_task_retry_take_overrides_and_check_them(client, fake, tmp_path):
    put_settings(client, fake, api_key=KEY)
    listing = run_to_end(client, make_sources(tmp_path / "src", 2), None)
    run_id, task_id = listing["tasks"][0]["run_id"], listing["tasks"][0]["id"]
    fake.reset()
    assert client.post(f"/api/tasks/{task_id}/retry", json={"api": {"api_key": OTHER}}).status_code == 200
    wait_idle(client, run_id)
    assert keys_seen(fake) == {f"Bearer {OTHER}"}
    bad = client.post(f"/api/runs/{run_id}/resume", json={"api": {"api_key": "sk-\u00e9"}})
    assert bad.status_code == 400 and "api_key" in bad.json["error"] and "position 4" in bad.json["error"]
    assert client.post(f"/api/runs/{run_id}/resume", json={}).status_code == 200
