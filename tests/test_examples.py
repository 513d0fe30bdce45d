"""The example data in web_data/: keyless, and it imports cleanly through the config import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.config import ConfigStore
from console.profile import ApiProfile
from console.saving import SaveRule
from console.settings import resolve
from console.web import create_app

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "web_data" / "settings.example.json"
PRESETS = ROOT / "web_data" / "presets.example.json"
KEY = "sk-live-kept-through-the-example-import-7"


@pytest.fixture
def client(tmp_path):
    store = ConfigStore(tmp_path / "data")
    app = create_app({"TESTING": True}, resolve({}, {"data_dir": str(tmp_path / "data")}), config_store=store)
    return app.test_client()


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def api_profiles(document: dict) -> list[dict]:
    profiles = list(document.get("presets", {}).get("api", {}).values())
    if "settings" in document:
        profiles.append(document["settings"]["api"])
    return profiles


@pytest.mark.parametrize("path", [SETTINGS, PRESETS], ids=lambda p: p.name)
def test_the_examples_hold_no_key(path: Path):
    document = load(path)
    profiles = api_profiles(document)
    assert profiles and all(profile.get("api_key", "") == "" for profile in profiles)
    assert all("Authorization" not in profile.get("extra_headers", {}) for profile in profiles)


def test_both_examples_import_cleanly_and_keep_the_stored_key(client):
    assert client.put("/api/settings", json={"api": {"api_key": KEY}}).status_code == 200
    for path in (SETTINGS, PRESETS):
        answer = client.post("/api/config/import", json=load(path))
        assert answer.status_code == 200, answer.get_json()
    settings, presets = client.get("/api/settings").get_json(), client.get("/api/presets").get_json()
    expected = load(SETTINGS)["settings"]
    assert {k: settings["api"][k] for k in expected["api"] if k != "api_key"} == \
        {k: v for k, v in expected["api"].items() if k != "api_key"}
    assert settings["save"] == expected["save"]
    assert sorted(presets["api"]) == sorted(load(PRESETS)["presets"]["api"])
    assert sorted(presets["save"]) == sorted(load(PRESETS)["presets"]["save"])
    store = client.application.extensions["console.config"]
    assert store.profile().api_key == KEY  # an import never wipes a stored key
    assert all(p["api_key"] == "" for p in store.presets(masked=False)["api"].values())  # the examples bring none


def test_every_example_profile_and_save_rule_is_valid_as_it_stands(tmp_path):
    """Each API preset is a full profile; each save preset (with an output folder) is a usable save rule."""
    for profile in api_profiles(load(SETTINGS)) + api_profiles(load(PRESETS)):
        ApiProfile.from_dict(profile)
    rules = [load(SETTINGS)["settings"]["save"], *load(PRESETS)["presets"]["save"].values()]
    layouts = set()
    for rule in rules:
        parsed = SaveRule.from_dict({**rule, "output_dir": str(tmp_path)})
        layouts.add(parsed.layout)
    assert {"aitoolkit_edit", "aitoolkit_multi", "musubi", "fal_start_end", "flat"} <= layouts
