"""Saved prompts on the server: save, edit, rename, delete, migrate from the browser, export and import."""

from __future__ import annotations

import json

from console.config import ConfigStore


def ok(answer, status: int = 200):
    assert answer.status_code == status, answer.json
    return answer.json


def test_save_edit_rename_delete(client):
    assert ok(client.get("/api/snippets")) == {"snippets": []}
    assert ok(client.put("/api/snippets/ blue ", json={"text": "make it blue"}))["name"] == "blue"
    ok(client.put("/api/snippets/水彩", json={"text": "水彩画风格"}))
    ok(client.put("/api/snippets/blue", json={"text": "make it deep blue"}))  # edit = save again
    assert ok(client.get("/api/snippets"))["snippets"] == [{"name": "blue", "text": "make it deep blue"},
                                                           {"name": "水彩", "text": "水彩画风格"}]
    ok(client.post("/api/snippets/blue/rename", json={"name": "navy"}))
    taken = client.post("/api/snippets/navy/rename", json={"name": "水彩"})
    assert taken.status_code == 400 and taken.json["error"] == "a saved prompt named '水彩' exists already"
    ok(client.delete("/api/snippets/navy"))
    assert client.delete("/api/snippets/navy").status_code == 404
    assert [s["name"] for s in ok(client.get("/api/snippets"))["snippets"]] == ["水彩"]


def test_bad_input_is_a_readable_400(client):
    assert client.put("/api/snippets/x", json={"text": "  "}).json["error"] == "text: the prompt text must be non-blank text"
    assert client.put("/api/snippets/x", json={"text": 5}).status_code == 400
    assert client.put("/api/snippets/x", json={"text": "a" * 20_001}).status_code == 400
    assert "control characters" in client.put("/api/snippets/a%09b", json={"text": "x"}).json["error"]
    assert client.post("/api/snippets/migrate", json={"snippets": ["x"]}).status_code == 400


def test_migrating_the_browsers_prompts_never_loses_one(client):
    ok(client.put("/api/snippets/blue", json={"text": "make it blue"}))
    answer = ok(client.post("/api/snippets/migrate", json={"snippets": {"blue": "make it BLUE", "red": "make it red",
                                                                        "again": "x"}}))
    assert answer == {"ok": True, "added": 3, "unchanged": 0}
    again = ok(client.post("/api/snippets/migrate", json={"snippets": {"red": "make it red"}}))
    assert again["added"] == 0 and again["unchanged"] == 1
    names = {s["name"]: s["text"] for s in ok(client.get("/api/snippets"))["snippets"]}
    assert names == {"again": "x", "blue": "make it blue", "blue (2)": "make it BLUE", "red": "make it red"}


def test_exported_and_imported_with_the_config(client, tmp_path):
    ok(client.put("/api/snippets/blue", json={"text": "make it blue"}))
    exported = json.loads(client.get("/api/config/export").data)
    assert exported["snippets"] == {"blue": "make it blue"}
    other = ConfigStore(tmp_path / "other")
    summary = other.import_config({**exported, "snippets": {"blue": "replaced", "new": "n"}})
    assert summary["snippets"] == 2 and other.snippets.all() == {"blue": "replaced", "new": "n"}
    assert ConfigStore(tmp_path / "other").snippets.all() == {"blue": "replaced", "new": "n"}  # on disk
    only = ok(client.post("/api/config/import", json={"snippets": {"x": "y"}}))
    assert only["snippets"] == 1 and only["settings"] is False
    assert client.post("/api/config/import", json={"snippets": {"x": ""}}).status_code == 400


def test_a_broken_file_keeps_its_good_entries_and_is_set_aside(tmp_path):
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "snippets.json").write_text('{"snippets": {"ok": "fine", "bad": 5}}', encoding="utf-8")
    assert ConfigStore(folder).snippets.all() == {"ok": "fine"}
    (folder / "snippets.json").write_text("{broken", encoding="utf-8")
    assert ConfigStore(folder).snippets.all() == {}
    assert any(path.name.startswith("snippets.json.corrupt-") for path in folder.iterdir())
