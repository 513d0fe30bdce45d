"""Damaged caches and awkward folders on a save and a ZIP export: real runs against the fake gateway, real files.

A cached result cut short or changed on disk is refused as damaged (never saved as good); a
missing or damaged one is left out of the ZIP and listed there; names longer than a file name
holds are shortened, unique and stable; a save into the data folder is refused; what a killed save
left in a folder (named by its journal) is written again, while the user's own files are not touched.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import pytest

from tests.helpers import start, wait_idle
from testkit.images import make

DAMAGED_FIX = "retry the task to fetch the image again"


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def sources(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        (folder / name).write_bytes(make("PNG", (16, 12), (index * 40 % 256, 40, 90)))
    return folder


def finished(client, fake, folder: Path) -> tuple[str, list[dict]]:
    """Run over `folder` (two results per task, JPEG 64x48 then PNG, the same two for every task)."""
    run_id = start(client, fake, folder)
    return run_id, wait_idle(client, run_id)["tasks"]


def save(client, run_id: str, out: Path, status: int = 200, **rule) -> dict:
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(out), "only_selected": False, **rule})
    assert answer.status_code == status, answer.json
    return answer.json


def cached(app, result: dict) -> Path:
    return app.extensions["console.cache"].path(result["sha256"], result["format"])


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text("utf-8").splitlines()]


# -- damaged and missing cache files ------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "changed"])
def test_a_damaged_cached_result_is_refused_and_named_while_the_rest_is_saved(client, app, fake, tmp_path, damage):
    run_id, tasks = finished(client, fake, sources(tmp_path / "src", ["a.png", "b.png"]))
    bad = tasks[0]["results"][0]  # the JPEG every task got
    path = cached(app, bad)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # same length: only the hash can tell
        flip_last_byte(path)
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="aitoolkit_edit")
    damaged = [e for e in answer["errors"] if e["kind"] == "damaged"]
    assert sorted(e["source_name"] for e in damaged) == ["a.png", "b.png"] and len(answer["errors"]) == 2
    assert all(e["fix"] == DAMAGED_FIX and path.name in e["error"] and "damaged" in e["error"] for e in damaged)
    # Nothing of the damaged results is on disk, in the manifest or marked saved. A file cut short is
    # refused while planning (its size), so the good result takes the stem; a changed one when written.
    a, b = ("a", "b") if damage == "truncated" else ("a_2", "b_2")
    assert sorted(Path(s["paths"][-1]).name for s in answer["saved"]) == [f"{a}.png", f"{b}.png"]
    assert tree(out) == [f"dataset_control/{a}.png", f"dataset_control/{b}.png", f"dataset_target/{a}.png",
                         f"dataset_target/{a}.txt", f"dataset_target/{b}.png", f"dataset_target/{b}.txt",
                         "manifest.jsonl"]
    assert {line["result_id"] for line in manifest(out)} == {t["results"][1]["id"] for t in tasks}
    listed = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
    saved_marks = {r["id"]: r["saved"] for t in listed for r in t["results"]}
    assert [saved_marks[t["results"][0]["id"]] for t in tasks] == [False, False]


def test_the_zip_leaves_out_missing_and_damaged_results_and_lists_them(client, app, fake, tmp_path):
    run_id, tasks = finished(client, fake, sources(tmp_path / "src", ["a.png", "b.png"]))
    cached(app, tasks[0]["results"][0]).unlink()
    flip_last_byte(cached(app, tasks[0]["results"][1]))
    answer = client.get(f"/api/runs/{run_id}/export.zip")
    assert answer.status_code == 200, answer.data[:300]
    archive = zipfile.ZipFile(io.BytesIO(answer.data))
    assert archive.namelist() == ["manifest.jsonl", "skipped.txt"]  # every result of the run was one of those two
    rows = [json.loads(line) for line in archive.read("manifest.jsonl").decode().splitlines()]
    assert [(r["source_name"], r["file"]) for r in rows] == [("a.png", None), ("a.png", None), ("b.png", None),
                                                              ("b.png", None)]
    assert [r["skipped"] for r in rows[::2]] == ["missing from the cache"] * 2
    assert all("is damaged in the cache" in r["skipped"] for r in rows[1::2])
    listed = archive.read("skipped.txt").decode()
    assert listed.startswith("4 results are not in this ZIP") and tasks[0]["results"][0]["id"] in listed
    assert "None" not in listed
    # The list is for a person: in the page's language (the manifest is data and stays as it is).
    chinese = zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{run_id}/export.zip?lang=zh").data))
    listed = chinese.read("skipped.txt").decode()
    assert listed.startswith("有 4 个结果不在此 ZIP 中") and listed.count("缓存中已没有此文件") == 2
    assert f"a.png（结果 {tasks[0]['results'][1]['id']}）：" in listed and "damaged" not in listed
    assert chinese.read("manifest.jsonl") == archive.read("manifest.jsonl")
    browser = client.get(f"/api/runs/{run_id}/export.zip", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert zipfile.ZipFile(io.BytesIO(browser.data)).read("skipped.txt").decode() == listed
    assert client.get(f"/api/runs/{run_id}/export.zip?lang=fr").status_code == 400


def test_the_zip_keeps_the_good_results_when_one_is_missing(client, app, fake, tmp_path):
    run_id, tasks = finished(client, fake, sources(tmp_path / "src", ["a.png", "b.png"]))
    cached(app, tasks[0]["results"][1]).unlink()
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{run_id}/export.zip").data))
    assert archive.namelist() == ["a_1.jpg", "b_1.jpg", "manifest.jsonl", "skipped.txt"]
    assert archive.read("a_1.jpg") == client.get(f"/api/results/{tasks[0]['results'][0]['id']}/image").data


# -- names longer than a file name --------------------------------------------------------------

LONG = ["x" * 240 + "a" * 11 + ".png", "x" * 240 + "b" * 11 + ".png"]  # 251-character stems, alike for 240


@pytest.mark.parametrize("layout", ["flat", "aitoolkit_edit", "fal_start_end", "musubi"])
def test_a_251_character_stem_is_shortened_unique_and_stable(client, fake, tmp_path, layout):
    run_id, tasks = finished(client, fake, sources(tmp_path / "src", LONG))
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout=layout, format="png" if layout != "flat" else "keep")
    assert answer["errors"] == [] and len(answer["saved"]) == 4
    written = [Path(p) for s in answer["saved"] for p in s["paths"]]
    assert all(p.is_file() and len(p.name.encode()) <= 255 for p in written)
    assert len({p for p in written}) == len(written)  # the two alike stems stay apart
    assert {p.name[:200] for p in written} == {"x" * 200}
    again = save(client, run_id, out, layout=layout, format="png" if layout != "flat" else "keep")
    assert again["saved"] == [] and {s["kind"] for s in again["skipped"]} == {"saved_before"}


def test_a_251_character_stem_makes_zip_entries_that_unzip(client, fake, tmp_path):
    run_id, _ = finished(client, fake, sources(tmp_path / "src", LONG))
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{run_id}/export.zip").data))
    names = [n for n in archive.namelist() if n != "manifest.jsonl"]
    assert len(names) == len(set(names)) == 4 and all(len(n.encode()) <= 255 for n in names)
    archive.extractall(tmp_path / "unzipped")
    assert sorted(p.name for p in (tmp_path / "unzipped").iterdir()) == sorted([*names, "manifest.jsonl"])


# -- folders ------------------------------------------------------------------------------------

@pytest.mark.parametrize("below", ["", "exports/mine", "cache"])
def test_a_save_into_the_data_folder_is_refused(client, app, fake, tmp_path, below):
    run_id, _ = finished(client, fake, sources(tmp_path / "src", ["a.png"]))
    data = app.extensions["console.cache"].images_dir.parent
    answer = save(client, run_id, data / below if below else data, status=400)
    assert "'output_dir'" in answer["error"] and "inside the console's data folder" in answer["error"]
    assert not (data / "exports").exists()


def test_a_symlink_into_the_data_folder_is_refused(client, app, fake, tmp_path):
    run_id, _ = finished(client, fake, sources(tmp_path / "src", ["a.png"]))
    (tmp_path / "door").symlink_to(app.extensions["console.cache"].images_dir)
    assert "data folder" in save(client, run_id, tmp_path / "door" / "out", status=400)["error"]


def test_what_a_killed_save_left_is_written_again_and_the_users_own_files_are_kept(client, fake, tmp_path):
    run_id, tasks = finished(client, fake, sources(tmp_path / "src", ["a.png", "b.png"]))
    out = tmp_path / "out"
    control, target = out / "dataset_control", out / "dataset_target"
    control.mkdir(parents=True)
    target.mkdir()
    # A save killed between renames: a's control and caption are there, its target is not; a temp
    # file of the dead process is left; the journal names the item.
    (control / "a.png").write_bytes(b"half")
    (target / "a.txt").write_text("half", "utf-8")
    (control / ".tmp-999999999-1-2").write_bytes(b"partial")
    (out / ".console-save-journal.jsonl").write_text(json.dumps(
        {"save_id": "dead", "result_id": tasks[0]["results"][0]["id"],
         "paths": [str(control / "a.png"), str(target / "a.txt"), str(target / "a.png")]}) + "\n" + '{"cut', "utf-8")
    # The user's own file at another item's name, which no journal names.
    (target / "b.png").write_bytes(b"mine")
    answer = save(client, run_id, out, layout="aitoolkit_edit")
    assert answer["report"]["repaired"] == {"interrupted": True, "unfinished": 1, "items": 1, "files": 2, "temp_files": 1,
                                            "paths": [str(control / "a.png"), str(target / "a.txt")]}
    assert (control / "a.png").read_bytes() != b"half" and (target / "a.png").is_file()
    assert (target / "a.txt").read_text("utf-8") == "make it blue"
    assert (target / "b.png").read_bytes() == b"mine"  # conflict 'skip' still applies to the user's files
    assert [s["kind"] for s in answer["skipped"]] == ["exists"]
    assert not (out / ".console-save-journal.jsonl").exists() and not (control / ".tmp-999999999-1-2").exists()


def test_musubis_dataset_jsonl_lost_to_a_kill_is_written_again_by_the_next_save(client, fake, tmp_path):
    from tests.trainers import read_musubi_jsonl

    run_id, _ = finished(client, fake, sources(tmp_path / "src", ["a.png", "b.png"]))
    out = tmp_path / "out"
    first = save(client, run_id, out, layout="musubi")
    jsonl = out / "dataset" / "dataset.jsonl"
    written = jsonl.read_text("utf-8")
    jsonl.unlink()  # killed after the manifest listed the items, before dataset.jsonl was written
    again = save(client, run_id, out, layout="musubi")
    assert again["saved"] == [] and len(again["skipped"]) == len(first["saved"]) == 4
    assert jsonl.read_text("utf-8") == written
    reading = read_musubi_jsonl(jsonl)
    assert reading.problems == [] and len(reading.samples) == 4


def test_files_without_a_journal_are_the_users_and_are_never_written_over(client, fake, tmp_path):
    # A control and a caption without their target, listed nowhere and named by no journal, may be
    # the user's own files (or an older console's leftovers): only a journal says a save wrote them,
    # so they clash like any file and the conflict rule decides (skip: untouched).
    run_id, _ = finished(client, fake, sources(tmp_path / "src", ["a.png"]))
    out = tmp_path / "out"
    control, target = out / "dataset_control", out / "dataset_target"
    control.mkdir(parents=True)
    target.mkdir()
    (control / "a.png").write_bytes(b"mine")
    (target / "a.txt").write_text("my notes", "utf-8")
    answer = save(client, run_id, out, layout="aitoolkit_edit")
    assert answer["report"]["repaired"]["items"] == 0 and answer["report"]["repaired"]["interrupted"] is False
    assert [s["kind"] for s in answer["skipped"]] == ["exists"]
    assert (control / "a.png").read_bytes() == b"mine" and (target / "a.txt").read_text("utf-8") == "my notes"


def test_a_file_older_than_the_killed_saves_note_is_kept(client, fake, tmp_path):
    # A killed save with conflict 'overwrite' had noted b's pair but not reached it yet: the user's
    # older file at that name is not the killed save's, so it stays (and 'skip' keeps it now).
    run_id, tasks = finished(client, fake, sources(tmp_path / "src", ["a.png", "b.png"]))
    out = tmp_path / "out"
    target = out / "dataset_target"
    target.mkdir(parents=True)
    (target / "b.png").write_bytes(b"mine")
    os.utime(target / "b.png", (time.time() - 3600, time.time() - 3600))
    (out / ".console-save-journal.jsonl").write_text(json.dumps(
        {"save_id": "dead", "result_id": tasks[1]["results"][0]["id"], "noted_at": time.time(),
         "paths": [str(out / "dataset_control" / "b.png"), str(target / "b.txt"), str(target / "b.png")]}) + "\n",
        "utf-8")
    answer = save(client, run_id, out, layout="aitoolkit_edit")
    repaired = answer["report"]["repaired"]
    assert repaired["items"] == 0 and repaired["interrupted"] and repaired["unfinished"] == 1
    assert (target / "b.png").read_bytes() == b"mine"
    assert [s["kind"] for s in answer["skipped"]] == ["exists"]
