"""The settings and presets files: atomic 0600 writes, key masking, presets, import/export, legacy import."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading

import pytest

import console.config
from console.config import ConfigError, ConfigStore, NotFound
from console.profile import MASK

KEY = "sk-secret-123"


@pytest.fixture
def store(tmp_path) -> ConfigStore:
    return ConfigStore(tmp_path / "data")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def stored(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def all_text(store: ConfigStore) -> str:
    return json.dumps([store.settings(), store.presets(), store.export(False)])


# Files.


def test_defaults_without_files(store, tmp_path):
    settings = store.settings()
    assert settings["api"]["api_key"] == "" and settings["api"]["api_mode"] == "auto" and settings["save"] == {}
    assert store.presets() == {"api": {}, "save": {}}
    assert not (tmp_path / "data").exists()  # reading never creates anything


def test_writes_are_atomic_and_owner_only(store, tmp_path):
    store.update_settings({"api": {"api_url": "http://gw:8000/v1", "api_key": KEY}})
    store.put_preset("api", "gw", {"api_key": KEY})
    folder = tmp_path / "data"
    assert mode(folder / "settings.json") == 0o600 and mode(folder / "presets.json") == 0o600
    assert sorted(p.name for p in folder.iterdir()) == ["presets.json", "settings.json"]  # no temp files left
    assert stored(folder / "settings.json")["api"]["api_key"] == KEY  # the file holds the real key


def test_a_failed_write_leaves_the_old_file_and_no_temp(store, tmp_path, monkeypatch):
    store.update_settings({"api": {"model": "m1"}})
    before = (tmp_path / "data" / "settings.json").read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        store.update_settings({"api": {"model": "m2"}})
    assert (tmp_path / "data" / "settings.json").read_bytes() == before
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["settings.json"]
    assert store.settings()["api"]["model"] == "m1"  # memory follows the file


def test_reloaded_from_disk(store, tmp_path):
    store.update_settings({"api": {"model": "grok", "api_key": KEY}, "save": {"template": "{name}"}})
    store.put_preset("save", "pairs", {"layout": "musubi"})
    again = ConfigStore(tmp_path / "data")
    assert again.profile().api_key == KEY and again.settings()["save"] == {"template": "{name}"}
    assert again.presets()["save"] == {"pairs": {"layout": "musubi"}}


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe\x00garbage"])
def test_corrupt_settings_file_is_kept_aside(tmp_path, content, caplog):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "settings.json").write_bytes(content)
    with caplog.at_level(logging.WARNING):
        store = ConfigStore(folder)
    assert store.settings()["api"]["model"] == ""
    aside = [p for p in folder.iterdir() if p.name.startswith("settings.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content and mode(aside[0]) == 0o600
    assert "settings.json" in caplog.text and "corrupt-" in caplog.text
    store.update_settings({"api": {"model": "new"}})  # and the store keeps working
    assert stored(folder / "settings.json")["api"]["model"] == "new"


def test_corrupt_presets_file_is_kept_aside(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "presets.json").write_text('{"api": ', encoding="utf-8")
    store = ConfigStore(folder)
    assert store.presets() == {"api": {}, "save": {}}
    assert any(p.name.startswith("presets.json.corrupt-") for p in folder.iterdir())


def test_partly_bad_file_keeps_the_good_fields(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "settings.json").write_text(json.dumps(
        {"api": {"api_key": KEY, "model": "m", "temperature": "hot", "from_the_future": 1}}), encoding="utf-8")
    store = ConfigStore(folder)
    assert store.profile().api_key == KEY and store.profile().model == "m" and store.profile().temperature is None
    assert any(p.name.startswith("settings.json.corrupt-") for p in folder.iterdir())
    assert stored(folder / "settings.json")["api"]["api_key"] == KEY  # rewritten clean


# Key masking.


def test_outputs_mask_the_key(store):
    store.update_settings({"api": {"api_key": KEY}})
    store.put_preset("api", "p", {"api_key": KEY})
    assert store.settings()["api"]["api_key"] == MASK
    assert store.presets()["api"]["p"]["api_key"] == MASK
    assert KEY not in all_text(store)
    assert store.settings(masked=False)["api"]["api_key"] == KEY and store.profile().api_key == KEY


def test_absent_or_masked_key_keeps_empty_clears(store):
    store.update_settings({"api": {"api_key": KEY}})
    store.update_settings({"api": {"model": "m"}})
    assert store.profile().api_key == KEY
    answer = store.update_settings({"api": {"api_key": MASK, "model": "n"}})
    assert store.profile().api_key == KEY and answer["api"]["api_key"] == MASK and answer["api"]["model"] == "n"
    store.update_settings({"api": {"api_key": "sk-other"}})
    assert store.profile().api_key == "sk-other"
    assert store.update_settings({"api": {"api_key": ""}})["api"]["api_key"] == ""
    assert store.profile().api_key == ""


def test_preset_keeps_its_own_key(store):
    store.update_settings({"api": {"api_key": "settings-key"}})
    store.put_preset("api", "a", {"api_key": KEY, "model": "m"})
    store.put_preset("api", "a", {"api_key": MASK, "model": "m2"})
    # A new preset saved from the page (masked or absent key) takes the key the form stands for.
    store.put_preset("api", "b", {"api_key": MASK})
    store.put_preset("api", "c", {"model": "m3"})
    presets = store.presets(masked=False)["api"]
    assert presets["a"]["api_key"] == KEY and presets["a"]["model"] == "m2"
    assert presets["b"]["api_key"] == "settings-key" and presets["c"]["api_key"] == "settings-key"
    store.put_preset("api", "a", {"api_key": ""})
    assert store.presets(masked=False)["api"]["a"]["api_key"] == ""


# Validation.


def test_settings_validation(store):
    with pytest.raises(ConfigError, match="temperature must be between 0 and 2"):
        store.update_settings({"api": {"temperature": 5}})
    with pytest.raises(ConfigError, match="unknown API profile field"):
        store.update_settings({"api": {"colour": "red"}})
    with pytest.raises(ConfigError, match="unknown section"):
        store.update_settings({"theme": {}})
    with pytest.raises(ConfigError, match="save must be a JSON object"):
        store.update_settings({"save": [1]})
    with pytest.raises(ConfigError, match="API profile must be a JSON object"):
        store.update_settings({"api": "x"})
    with pytest.raises(ConfigError):
        store.update_settings(["api"])
    assert store.settings()["api"]["temperature"] is None


def test_save_section_is_merged_key_by_key(store):
    store.update_settings({"save": {"a": 1, "b": {"x": 1}}})
    assert store.update_settings({"save": {"b": 2, "c": 3}})["save"] == {"a": 1, "b": 2, "c": 3}


def test_failed_update_changes_nothing(store, tmp_path):
    store.update_settings({"api": {"model": "m"}})
    with pytest.raises(ConfigError):
        store.update_settings({"api": {"model": "other"}, "save": "nope"})
    assert store.settings()["api"]["model"] == "m"
    assert stored(tmp_path / "data" / "settings.json")["api"]["model"] == "m"


# Presets.


def test_presets_crud(store):
    store.put_preset("api", "  OpenAI  ", {"api_url": "https://api.openai.com/v1", "model": "gpt-image-1"})
    store.put_preset("save", "pairs", {"layout": "musubi"})
    presets = store.presets()
    assert presets["api"]["OpenAI"]["model"] == "gpt-image-1"
    assert presets["api"]["OpenAI"]["concurrency"] == 4  # stored complete, defaults filled in
    assert presets["save"]["pairs"] == {"layout": "musubi"}
    store.put_preset("save", "pairs", {"layout": "flat"})
    assert store.presets()["save"]["pairs"] == {"layout": "flat"}  # PUT replaces
    store.delete_preset("api", "OpenAI")
    assert store.presets()["api"] == {}
    with pytest.raises(NotFound, match="no api preset named 'OpenAI'"):
        store.delete_preset("api", "OpenAI")


@pytest.mark.parametrize("kind, name, data, message", [
    ("models", "x", {}, "kind must be 'api' or 'save'"),
    ("api", "", {}, "1-100 characters"),
    ("api", "   ", {}, "1-100 characters"),
    ("api", "x" * 101, {}, "1-100 characters"),
    ("api", "a/b", {}, "must not contain '/'"),
    ("api", "a\nb", {}, "control characters"),
    ("api", "x", {"n": 0}, "n must be between 1 and 10"),
    ("api", "x", [], "must be a JSON object"),
    ("save", "x", "layout", "must be a JSON object"),
])
def test_bad_presets_are_refused(store, kind, name, data, message):
    with pytest.raises(ConfigError, match=message):
        store.put_preset(kind, name, data)
    assert store.presets() == {"api": {}, "save": {}}


# Export and import.


def test_export_without_and_with_secrets(store):
    store.update_settings({"api": {"api_key": KEY, "model": "m"}})
    store.put_preset("api", "p", {"api_key": KEY})
    plain = store.export(include_secrets=False)
    assert plain["format"] == "image-batch-console-config" and plain["version"] == 1
    assert plain["settings"]["api"]["api_key"] == "" and plain["presets"]["api"]["p"]["api_key"] == ""
    assert KEY not in json.dumps(plain) and plain["settings"]["api"]["model"] == "m"
    secret = store.export(include_secrets=True)
    assert secret["settings"]["api"]["api_key"] == KEY and secret["presets"]["api"]["p"]["api_key"] == KEY


def test_round_trip_never_wipes_a_stored_key(store, tmp_path):
    store.update_settings({"api": {"api_key": KEY, "model": "m"}, "save": {"t": 1}})
    store.put_preset("api", "p", {"api_key": "preset-key", "model": "pm"})
    exported = store.export(include_secrets=False)
    exported["settings"]["api"]["model"] = "changed"
    summary = store.import_config(exported)
    assert summary == {"ok": True, "settings": True, "api_presets": 1, "save_presets": 0, "snippets": 0}
    assert store.profile().api_key == KEY and store.profile().model == "changed"
    assert store.presets(masked=False)["api"]["p"]["api_key"] == "preset-key"
    # A masked export (what the page shows) keeps them too.
    store.import_config({"settings": store.settings(), "presets": store.presets()})
    assert store.profile().api_key == KEY and store.presets(masked=False)["api"]["p"]["api_key"] == "preset-key"
    # A fresh install takes the keys of an export with secrets.
    fresh = ConfigStore(tmp_path / "fresh")
    fresh.import_config(store.export(include_secrets=True))
    assert fresh.profile().api_key == KEY and fresh.presets(masked=False)["api"]["p"]["api_key"] == "preset-key"


def test_import_merges_presets_and_sets_new_keys(store):
    store.put_preset("api", "old", {"model": "o"})
    store.import_config({"presets": {"api": {"new": {"api_key": "k2", "model": "n"}}, "save": {"s": {"layout": "flat"}}}})
    presets = store.presets(masked=False)
    assert set(presets["api"]) == {"old", "new"} and presets["api"]["new"]["api_key"] == "k2"
    assert presets["save"] == {"s": {"layout": "flat"}}


@pytest.mark.parametrize("document, message", [
    ([], "must be a JSON object"),
    ({"format": "something-else", "settings": {}}, "not an Image Batch Console config export"),
    ({"version": 2, "settings": {}}, "unsupported config version 2"),
    ({"hello": 1}, "nothing to import"),
    ({"settings": {"api": {"temperature": 9}}}, r"settings\.api: temperature"),
    ({"settings": "x"}, "settings: expected a JSON object"),
    ({"presets": {"api": {"ok": {}, "bad": {"concurrency": 0}}}}, r"presets\.api\['bad'\]: concurrency"),
    ({"presets": {"api": {"a/b": {}}}}, r"presets\.api: a preset name must not contain"),
    ({"presets": {"other": {}}}, "unknown kind"),
    ({"presets": {"save": {"s": 3}}}, r"presets\.save\['s'\] must be a JSON object"),
    ({"presets": {"save": {"s": {"layout": "kohya"}}}}, r"presets\.save\['s'\]: 'layout' must be one of flat"),
])
def test_invalid_import_changes_nothing(store, tmp_path, document, message):
    store.update_settings({"api": {"api_key": KEY, "model": "m"}})
    store.put_preset("api", "p", {"model": "pm"})
    before = [(tmp_path / "data" / name).read_bytes() for name in ("settings.json", "presets.json")]
    if isinstance(document, dict) and "settings" in document and isinstance(document["settings"], dict):
        document = {**document, "presets": {"api": {"would-be-added": {}}}}
    with pytest.raises(ConfigError, match=message):
        store.import_config(document)
    assert [(tmp_path / "data" / name).read_bytes() for name in ("settings.json", "presets.json")] == before
    assert store.profile().model == "m" and list(store.presets()["api"]) == ["p"]


def test_bare_document_is_accepted(store):
    assert store.import_config({"settings": {"api": {"model": "bare"}}})["settings"] is True
    assert store.profile().model == "bare"


def test_concurrent_updates_are_serialised(store, tmp_path):
    def put(number: int) -> None:
        store.put_preset("save", f"p{number}", {"template": f"{{stem}}_{number}"})

    threads = [threading.Thread(target=put, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.presets()["save"]) == 20
    assert len(stored(tmp_path / "data" / "presets.json")["save"]) == 20


# Legacy import: the older console's API presets, once, for users moving over.


def legacy_store(tmp_path, content) -> ConfigStore:
    legacy = tmp_path / "home" / ".image-batch-console" / "presets.json"
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return ConfigStore(tmp_path / "data", legacy_presets=legacy)


@pytest.mark.parametrize("content", [
    {"grok": {"base_url": "http://127.0.0.1:8000/v1", "key": KEY, "model": "grok-imagine", "colour": "x"},
     "openai": {"api_url": "https://api.openai.com/v1", "apiKey": "k2", "mode": "images"}},
    [{"name": "grok", "url": "http://127.0.0.1:8000/v1", "api_key": KEY, "model": "grok-imagine"},
     {"name": "openai", "endpoint": "https://api.openai.com/v1", "key": "k2", "api_mode": "images"}],
    {"presets": [{"name": "grok", "apiUrl": "http://127.0.0.1:8000/v1", "apiKey": KEY, "model": "grok-imagine"},
                 {"name": "openai", "baseUrl": "https://api.openai.com/v1", "key": "k2", "apiMode": "images"}]},
    {"api": {"grok": {"url": "http://127.0.0.1:8000/v1", "key": KEY, "model": "grok-imagine"},
             "openai": {"url": "https://api.openai.com/v1", "key": "k2", "mode": "images"}}},
    {"version": 3, "presets": {"api": {"grok": {"api_url": "http://127.0.0.1:8000/v1", "api_key": KEY,
                                                "model": "grok-imagine"},
                                       "openai": {"api_url": "https://api.openai.com/v1", "api_key": "k2",
                                                  "api_mode": "images"}}}},
], ids=["dict", "list", "wrapped-list", "wrapped-dict", "nested"])
def test_legacy_presets_in_several_shapes(tmp_path, content):
    store = legacy_store(tmp_path, content)
    assert store.import_legacy() == 2
    presets = store.presets(masked=False)["api"]
    assert presets["grok"]["api_url"] == "http://127.0.0.1:8000/v1" and presets["grok"]["api_key"] == KEY
    assert presets["grok"]["model"] == "grok-imagine"
    assert presets["openai"]["api_mode"] == "images" and presets["openai"]["api_key"] == "k2"
    assert mode(tmp_path / "data" / "presets.json") == 0o600


def test_legacy_canonical_name_wins_over_alias(tmp_path):
    store = legacy_store(tmp_path, {"p": {"api_url": "http://a/v1", "url": "http://b/v1"}})
    assert store.import_legacy() == 1 and store.presets()["api"]["p"]["api_url"] == "http://a/v1"


def test_legacy_bad_entries_are_skipped_and_logged(tmp_path, caplog):
    store = legacy_store(tmp_path, [{"name": "good", "url": "http://a/v1"}, {"name": "bad", "concurrency": 999},
                                    {"url": "http://nameless/v1"}, "not an object", {"name": "a/b"}])
    with caplog.at_level(logging.WARNING):
        assert store.import_legacy() == 1
    assert list(store.presets()["api"]) == ["good"]
    assert "'bad'" in caplog.text and "concurrency" in caplog.text


@pytest.mark.parametrize("content", ["{broken", "42", "null", '"text"', "[]", "{}"])
def test_legacy_bad_file_never_raises(tmp_path, content):
    store = legacy_store(tmp_path, content)
    assert store.import_legacy() == 0 and store.presets()["api"] == {}


def test_legacy_import_happens_once(tmp_path):
    store = legacy_store(tmp_path, {"grok": {"url": "http://a/v1"}})
    store.put_preset("api", "mine", {})
    assert store.import_legacy() == 0  # we already have API presets
    store.delete_preset("api", "mine")
    assert store.import_legacy() == 1
    store.delete_preset("api", "grok")
    again = ConfigStore(tmp_path / "data", legacy_presets=tmp_path / "home" / ".image-batch-console" / "presets.json")
    assert again.import_legacy() == 0  # deleting them later does not bring them back
    assert again.presets()["api"] == {}


def test_no_legacy_file_or_path(tmp_path):
    assert ConfigStore(tmp_path / "data").import_legacy() == 0
    assert ConfigStore(tmp_path / "data", legacy_presets=tmp_path / "missing.json").import_legacy() == 0
    assert not (tmp_path / "data").exists()


def test_the_package_shows_one_public_face():
    """console.config's __init__ exports a sorted __all__, each name defined behind it."""
    assert console.config.__all__ == sorted(console.config.__all__, key=str.casefold) == [
        "checked_snippets", "ConfigError", "ConfigStore", "NotFound"]
    for name in console.config.__all__:
        assert getattr(console.config, name).__module__.startswith("console.config.")
