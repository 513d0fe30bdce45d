"""The review flags: judged on real image files, found by the background flagger on a real run, listed,
filtered and selected through the API, computed once for results stored before them, and kept across
a restart (the near-duplicate index is rebuilt from the store)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from bench.flagset import PHOTOS, cut
from console.review.judge import Twins, judge, requested_aspect
from console.review.look import MARK_BYTES, Mark, look_at
from console.store import NewResult, Store
from tests.helpers import CHAT, wait_idle

PHOTO_NAMES = ("astronaut", "cat", "coffee", "rocket", "camera", "coins", "clock", "retina")


def _photo(name: str, size: tuple[int, int] = (480, 320)) -> Image.Image:
    return cut(Image.open(PHOTOS / f"{name}.jpg").convert("RGB"), size, max(size))


def _save(image: Image.Image, path: Path, fmt: str = "PNG", **options) -> Path:
    image.save(path, fmt, **options)
    return path


# -- judging real files ---------------------------------------------------------------------------

def test_each_kind_of_bad_result_gets_its_flag_and_a_plausible_edit_gets_none(tmp_path):
    picture = _photo("coffee")
    source = look_at(_save(picture, tmp_path / "source.jpg", "JPEG", quality=90))
    edited = picture.copy()
    ImageDraw.Draw(edited).ellipse((150, 90, 300, 220), fill=(200, 30, 30))
    cases = {
        "edit": (edited, set()),
        "same": (picture.resize((960, 640)), {"unchanged"}),
        "other": (_photo("rocket"), {"unrelated"}),
        "blank": (Image.new("RGB", (480, 320), (250, 250, 250)), {"blank"}),
        "squeezed": (edited.resize((400, 400)), {"off_size"}),
    }
    for name, (image, expected) in cases.items():
        result = look_at(_save(image, tmp_path / f"{name}.webp", "WEBP", quality=80))
        flags = judge(result, source, None)
        assert set(flags) == expected, (name, flags)
        assert all(reason for reason in flags.values())


def test_the_requested_size_decides_off_size_when_one_is_asked_for(tmp_path):
    square = look_at(_save(_photo("cat", (512, 512)), tmp_path / "square.png"))
    wide = look_at(_save(_photo("cat", (640, 360)), tmp_path / "wide.png"))
    assert requested_aspect("1024x1024") == 1 and requested_aspect("16:9") == pytest.approx(16 / 9)
    assert requested_aspect("auto") is None and requested_aspect("") is None and requested_aspect("2K") is None
    assert "off_size" not in judge(square, None, requested_aspect("1024x1024"))  # generate: the size asked for
    assert "1024" not in judge(wide, None, requested_aspect("1024×1024"))["off_size"]
    assert "off_size" in judge(wide, None, requested_aspect("1024x1024"))
    assert "off_size" not in judge(wide, None, None)  # nothing asked, no source: nothing to compare with
    assert "off_size" not in judge(wide, square, requested_aspect("16:9"))  # an asked size wins over the source


def test_exif_orientation_and_transparency_are_seen_as_a_viewer_shows_them(tmp_path):
    picture = _photo("astronaut", (480, 320))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: viewers turn it back
    stored = picture.transpose(Image.Transpose.ROTATE_90)
    turned = look_at(_save(stored, tmp_path / "turned.jpg", "JPEG", exif=exif, quality=92))
    upright = look_at(_save(picture, tmp_path / "upright.png"))
    assert (turned.width, turned.height) == (480, 320)
    assert set(judge(turned, upright, None)) == {"unchanged"}
    cutout = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    ImageDraw.Draw(cutout).ellipse((100, 100, 200, 200), fill=(10, 10, 10, 255))
    assert "blank" not in judge(look_at(_save(cutout, tmp_path / "cutout.png")), None, None)
    empty = Image.new("RGBA", (300, 300), (0, 0, 0, 0))  # fully transparent: white on a viewer
    assert "blank" in judge(look_at(_save(empty, tmp_path / "empty.png")), None, None)


def test_near_duplicates_are_found_across_sizes_and_formats_but_not_for_copies_of_one_source(tmp_path):
    stock = _photo("clock")
    marks = {fmt: Mark.of(look_at(_save(stock.resize(size), tmp_path / f"stock.{fmt.lower()}", fmt)))
             for fmt, size in (("PNG", (480, 320)), ("JPEG", (960, 640)), ("WEBP", (240, 160)))}
    source_a = Mark.of(look_at(_save(_photo("cat"), tmp_path / "a.png")))
    source_b = Mark.of(look_at(_save(_photo("coins"), tmp_path / "b.png")))
    twins = Twins()
    twins.add("r1", marks["PNG"], source_a)
    assert twins.find(marks["JPEG"], source_b) == "r1"
    assert twins.find(marks["WEBP"], None) == "r1"  # generate mode: no source
    assert twins.find(marks["JPEG"], source_a) is None  # the same source again: not a duplicate
    other = Mark.of(look_at(_save(_photo("rocket"), tmp_path / "other.png")))
    assert twins.find(other, source_b) is None
    twins.forget("r1")
    assert twins.find(marks["JPEG"], source_b) is None
    packed = marks["PNG"].to_bytes()
    assert len(packed) == MARK_BYTES and Mark.from_bytes(packed + b"rest") == marks["PNG"]


# -- the flagger on a real run ----------------------------------------------------------------------

def _photo_folder(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(PHOTO_NAMES[:count]):
        _save(_photo(name), folder / f"{index + 1:02d}_{name}.png")
    return folder


def _start(client, fake, folder: Path, plan: str, **fields) -> str:
    body = {"input_path": str(folder), "prompt": "warmer, with a red ball",
            "api": {"api_url": fake.url(f"review_mix.plan={plan}", CHAT), "model": "grok-imagine-1.0-edit",
                    "allow_private_api": True, "max_retries": 0, "timeout_s": 20, "concurrency": 1, **fields}}
    answer = client.post("/api/runs", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json["run_id"]


def _flags_by_source(client, run_id: str) -> dict[str, list[str]]:
    tasks = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
    return {task["source_name"].split("_", 1)[1].split(".")[0]: [flag for r in task["results"] for flag in r["flags"]]
            for task in tasks}


def _settled(app, client, run_id: str) -> dict:
    wait_idle(client, run_id)
    assert app.extensions["console.engine"].flagger.wait_idle(20)
    return client.get(f"/api/runs/{run_id}/tasks").json


PLAN = "edit~blank~same~other~dup~squeeze~dup~edit"


def test_a_run_gets_its_flags_in_the_background_and_lists_filters_and_selects_by_them(app, client, fake, tmp_path):
    run_id = _start(client, fake, _photo_folder(tmp_path / "src", 8), PLAN)
    listing = _settled(app, client, run_id)
    assert all(r["flags_checked"] for t in listing["tasks"] for r in t["results"]) and listing["review_flags"] is True
    assert _flags_by_source(client, run_id) == {
        "astronaut": [], "cat": ["blank"], "coffee": ["unchanged"], "rocket": ["unrelated"],
        "camera": ["unrelated", "near_duplicate"], "coins": ["off_size"], "clock": ["unrelated", "near_duplicate"],
        "retina": []}
    assert listing["flag_counts"] == {"unchanged": 1, "unrelated": 3, "blank": 1, "off_size": 1,
                                      "near_duplicate": 2, "any": 6}
    camera = next(t for t in listing["tasks"] if "camera" in t["source_name"])
    assert camera["results"][0]["flag_reasons"]["near_duplicate"].startswith("the same picture as the result of task #7")
    blank = client.get(f"/api/runs/{run_id}/tasks?flag=blank").json
    assert [t["source_name"] for t in blank["tasks"]] == ["02_cat.png"] and blank["total"] == 1
    assert client.get(f"/api/runs/{run_id}/tasks?flag=any").json["total"] == 6
    assert client.get(f"/api/runs/{run_id}/tasks?flag=near_duplicate&q=clock").json["total"] == 1
    bad = client.get(f"/api/runs/{run_id}/tasks?flag=ugly")
    assert bad.status_code == 400 and "query 'flag' must be one of unchanged" in bad.json["error"]
    assert client.post(f"/api/runs/{run_id}/selection", json={"action": "all", "flag": "any"}).json == {"selected": 6}
    assert client.post(f"/api/runs/{run_id}/selection", json={"action": "invert"}).json == {"selected": 2}
    kept = [t["source_name"] for t in client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
            if t["results"][0]["selected"]]
    assert kept == ["01_astronaut.png", "08_retina.png"]  # the good edits, in two clicks


def test_results_stored_before_the_flags_are_looked_at_once_when_their_run_is_opened(app, client, fake, tmp_path):
    run_id = _start(client, fake, _photo_folder(tmp_path / "src", 3), "blank~edit~same")
    _settled(app, client, run_id)
    database = sqlite3.connect(tmp_path / "data" / "console.db")
    with database:  # as an older console left them: never looked at
        database.execute("UPDATE results SET flags = NULL, mark = NULL")
    database.close()
    flagger = app.extensions["console.engine"].flagger
    flagger.forget_run(run_id)
    polled = client.get(f"/api/runs/{run_id}/tasks?since=1").json["tasks"]  # a poll is not an opening
    assert flagger.wait_idle(20) and not any(r["flags_checked"] for t in polled for r in t["results"])
    client.get(f"/api/runs/{run_id}/tasks")  # the page opens the run
    assert flagger.wait_idle(20)
    assert _flags_by_source(client, run_id) == {"astronaut": ["blank"], "cat": [], "coffee": ["unchanged"]}


def test_a_restarted_console_still_finds_duplicates_of_results_from_before(tmp_path, fake):
    from console.settings import resolve
    from console.web import create_app

    settings = resolve({"APP_DATA_DIR": str(tmp_path / "data")})
    folder = _photo_folder(tmp_path / "src", 4)
    first = create_app(settings=settings)
    client = first.test_client()
    run_id = _start(client, fake, folder, "dup~edit~edit~edit")
    _settled(first, client, run_id)
    first.extensions["console.engine"].close()

    again = create_app(settings=settings)  # a new process: the index comes back from the stored marks
    try:
        client = again.test_client()
        tasks = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
        answer = client.post(f"/api/tasks/{tasks[3]['id']}/retry",
                             json={"keep_results": False,
                                   "api": {"api_url": fake.url("review_mix.plan=dup", CHAT), "allow_private_api": True,
                                           "model": "grok-imagine-1.0-edit", "max_retries": 0}})
        assert answer.status_code == 200, answer.json
        _settled(again, client, run_id)
        flags = _flags_by_source(client, run_id)
        assert flags["astronaut"] == ["unrelated", "near_duplicate"] and flags["rocket"] == ["unrelated", "near_duplicate"]
        assert flags["cat"] == [] and flags["coffee"] == []
    finally:
        again.extensions["console.engine"].close()


def test_a_result_whose_file_is_gone_is_marked_looked_at_without_flags(app, client, fake, tmp_path):
    flagger = app.extensions["console.engine"].flagger
    run_id = _start(client, fake, _photo_folder(tmp_path / "src", 2), "blank~same")
    _settled(app, client, run_id)
    database = sqlite3.connect(tmp_path / "data" / "console.db")
    with database:
        database.execute("UPDATE results SET flags = NULL, mark = NULL")
        sha = database.execute("SELECT r.sha256, r.format FROM results r JOIN tasks t ON t.id = r.task_id "
                               "WHERE t.idx = 1").fetchone()
    database.close()
    cache = app.extensions["console.engine"].cache
    shutil.move(cache.path(*sha), tmp_path / "moved")
    client.get(f"/api/runs/{run_id}/tasks")
    assert flagger.wait_idle(20)
    results = [r for t in client.get(f"/api/runs/{run_id}/tasks").json["tasks"] for r in t["results"]]
    assert all(r["flags_checked"] for r in results)
    assert [r["flags"] for r in results] == [["blank"], []]  # the copy of its source is gone: nothing to judge


def test_the_store_filters_counts_and_forgets_flags(tmp_path):
    store = Store(tmp_path / "x.db")
    run_id = store.create_run("/in", False, "p", {}, [("a.png", "/in/a.png"), ("b.png", "/in/b.png")])
    tasks = store.tasks_since(run_id).tasks
    for task, sha in zip(tasks, ("a" * 64, "b" * 64)):
        store.finish_task(task.id, "done", results=[NewResult(sha, "png", 8, 8, 10, "inline")])
    first, second = (store.task(task.id).results[0].id for task in tasks)
    assert [r.id for r in store.unchecked_results(run_id)] == [first, second]
    store.record_flags([(first, {"blank": "one colour"}, None), (second, {}, b"m")])
    assert store.unchecked_results(run_id) == []
    store.record_flags([], [(second, "same as #1"), (second, "again")])  # the first reason found stays
    assert store.flag_counts(run_id) == {"unchanged": 0, "unrelated": 0, "blank": 1, "off_size": 0,
                                         "near_duplicate": 1, "any": 2}
    assert store.tasks_since(run_id, flag="near_duplicate").total == 1
    assert store.result(second).flag_reasons == {"near_duplicate": "same as #1"}
    assert list(store.run_marks(run_id)) == [(second, b"m")]
    store.delete_result(second)
    store.record_flags([(second, {}, None)], [(second, "gone")])  # a result deleted meanwhile: skipped
    with pytest.raises(ValueError):
        store.tasks_since(run_id, flag="ugly")


def test_review_flags_off_leaves_results_unchecked(tmp_path, fake):
    from console.settings import resolve
    from console.web import create_app

    app = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / "data"), "REVIEW_FLAGS": "0"}))
    try:
        client = app.test_client()
        run_id = _start(client, fake, _photo_folder(tmp_path / "src", 2), "blank~same")
        listing = _settled(app, client, run_id)
        assert [r["flags_checked"] for t in listing["tasks"] for r in t["results"]] == [False, False]
        assert listing["flag_counts"]["any"] == 0 and listing["review_flags"] is False
    finally:
        app.extensions["console.engine"].close()
