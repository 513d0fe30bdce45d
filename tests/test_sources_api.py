"""Prompt sources through the HTTP API against the fake gateway: what each kind of run sends.

Each run completes against the fake, and the test reads what the fake received: the prompt and
every input image (decoded from data URLs or multipart files) of each call.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import socket
from pathlib import Path

import pytest
from openpyxl import load_workbook

import console.scan

from tests.helpers import api, make_sources, wait_idle, words
from testkit.images import make

EDITS = "/v1/images/edits"
GENERATIONS = "/v1/images/generations"
RESPONSES = "/v1/responses"


def calls(fake) -> list:
    """Every image call the fake received, in arrival order."""
    return [r for r in fake.requests if r.scenario is not None and r.method == "POST"]


def data(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


def chat_sent(call) -> tuple[str, list[bytes]]:
    """(prompt, input images) of a chat completions call."""
    content = call.json["messages"][-1]["content"]
    if isinstance(content, str):
        return content, []
    text = [p["text"] for p in content if p["type"] == "text"][0]
    return text, [data(p["image_url"]["url"]) for p in content if p["type"] == "image_url"]


def start_run(client, fake, scenario: str, endpoint: str = "/v1/chat/completions", profile: dict | None = None,
              **body) -> dict:
    answer = client.post("/api/runs", json={"api": {**api(fake, scenario), "api_url": fake.url(scenario, endpoint),
                                                    **(profile or {})}, **body})
    assert answer.status_code == 201, answer.json
    return answer.json


def by_prompt(sent: list[tuple[str, list[bytes]]]) -> dict[str, list[bytes]]:
    return {prompt: images for prompt, images in sent}


# -- edit: sidecars and reference folders ----------------------------------------------------------

def test_edit_run_sends_each_sources_caption_and_its_matched_references(client, fake, tmp_path):
    src = make_sources(tmp_path / "src", 3)
    ref = tmp_path / "ref"
    ref.mkdir()
    for number in (1, 2, 3):
        (src / f"img{number}.txt").write_text(f"car number {number}", encoding="utf-8")
        (ref / f"img{number}.jpg").write_bytes(make("JPEG", (20, 20), (number * 60, 10, 10)))
    answer = start_run(client, fake, "g3_stream_dataurl", input_path=str(src), prompt="{caption}, as a {src_stem} sketch",
                       reference_dirs=[str(ref)])
    listing = wait_idle(client, answer["run_id"])
    assert listing["progress"]["done"] == 3
    sent = by_prompt([chat_sent(call) for call in calls(fake)])
    assert sent == {f"car number {n}, as a img{n} sketch": [(src / f"img{n}.png").read_bytes(),
                                                            (ref / f"img{n}.jpg").read_bytes()] for n in (1, 2, 3)}
    task = listing["tasks"][0]
    assert task["references"] == [str(ref / "img1.jpg")] and task["prompt"] == "car number 1, as a img1 sketch"
    assert all(r["prompt"] == task["prompt"] for r in task["results"])
    assert client.get(f"/api/tasks/{task['id']}/references/1").data == (ref / "img1.jpg").read_bytes()
    assert client.get(f"/api/tasks/{task['id']}/references/1?thumb=1").status_code == 200
    assert client.get(f"/api/tasks/{task['id']}/references/2").status_code == 404
    run = client.get(f"/api/runs/{answer['run_id']}").json
    assert run["mode"] == "edit" and run["spec"] == {"sidecar": "off", "reference_dirs": [str(ref)]}


def test_sidecar_append_and_a_missing_sidecar_refuses_caption_runs_before_any_call(client, fake, tmp_path):
    src = make_sources(tmp_path / "src", 3)
    (src / "img2.txt").write_text("\ufeffa blue car", encoding="utf-8")
    refused = client.post("/api/runs", json={"input_path": str(src), "prompt": "{caption}", "api": api(fake, "g3_stream_dataurl")})
    assert refused.status_code == 400
    assert words(refused.json["files"]) == [{"name": "img1.png", "error": "no img1.txt"}, {"name": "img3.png", "error": "no img3.txt"}]
    assert "2 of 3 sources have no usable sidecar" in refused.json["error"] and client.get("/api/runs").json == []
    answer = start_run(client, fake, "g3_stream_dataurl", input_path=str(src), prompt="watercolor", sidecar="append")
    wait_idle(client, answer["run_id"])
    assert sorted(chat_sent(c)[0] for c in calls(fake)) == ["watercolor", "watercolor", "watercolor\na blue car"]


def test_scan_preview_counts_sidecars_and_reference_matches(client, tmp_path):
    src = make_sources(tmp_path / "src", 3)
    ref = make_sources(tmp_path / "ref", 2)
    (src / "img1.txt").write_text("x", encoding="utf-8")
    (src / "notes.txt").write_text("not a sidecar", encoding="utf-8")
    answer = client.post("/api/scan", json={"input_path": str(src), "prompt": "{caption}", "reference_dirs": [str(ref)]}).json
    assert answer["count"] == 3 and words(answer["skipped"]) == [{"name": "notes.txt", "reason": "not an image file"}]
    assert answer["sidecars"]["count"] == 1 and answer["sidecars"]["required"] is True
    assert [m["name"] for m in answer["sidecars"]["missing"]] == ["img2.png", "img3.png"]
    assert words(answer["references"]) == {"folders": 1, "matched": 2, "missing_count": 1,
                                           "missing": [{"name": "img3.png", "error": f"no img3.* in {ref}"}]}


# -- generate -------------------------------------------------------------------------------------

def test_generate_every_combination_through_the_images_api(client, fake, tmp_path):
    answer = start_run(client, fake, "images_g3_json", GENERATIONS, mode="generate", prompt="a {animal} in the {weather}",
                       variables={"animal": ["cat", "dog"], "weather": ["snow", "rain"]}, count=2)
    assert answer["task_count"] == 8
    listing = wait_idle(client, answer["run_id"])
    assert listing["progress"]["done"] == 8
    names = [t["source_name"] for t in listing["tasks"]]
    assert names[:4] == ["cat_snow_1", "cat_snow_2", "cat_rain_1", "cat_rain_2"]
    assert all(t["output_name"] == t["source_name"] and t["source_path"] == "" for t in listing["tasks"])
    prompts = sorted(call.json["prompt"] for call in calls(fake))
    assert prompts == sorted(["a cat in the snow", "a cat in the rain", "a dog in the snow", "a dog in the rain"] * 2)
    assert all(call.path.endswith(GENERATIONS) and "images" not in call.json for call in calls(fake))
    assert client.get(f"/api/tasks/{listing['tasks'][0]['id']}/source").status_code == 404


def test_generate_with_shared_references_sends_them_as_json_images(client, fake, tmp_path):
    refs = make_sources(tmp_path / "refs", 2)
    answer = start_run(client, fake, "edits_g3_json", EDITS, {"api_mode": "images", "edit_format": "json"},
                       mode="generate", prompt="the product on a {place}", variables={"place": ["beach", "desk"]},
                       reference_paths=[str(refs / "img1.png"), str(refs / "img2.png")])
    assert wait_idle(client, answer["run_id"])["progress"]["done"] == 2
    for call in calls(fake):
        assert call.path.endswith(EDITS)
        assert [data(i["url"]) for i in call.json["images"]] == [(refs / f"img{n}.png").read_bytes() for n in (1, 2)]
    assert sorted(c.json["prompt"] for c in calls(fake)) == ["the product on a beach", "the product on a desk"]


@pytest.mark.parametrize("body, message", [
    ({"variables": {"a": ["x"]}, "prompt": "{b}"}, "the prompt uses {b}"),
    ({"prompt": "x", "count": 0}, "'count' must be a whole number between 1 and 100"),
    ({"prompt": "x", "count": "2"}, "'count' must be a whole number"),
    ({"prompt": "x", "variables": ["a"]}, "'variables' must be an object"),
    ({"prompt": "x", "reference_paths": "/a.png"}, "'reference_paths' must be a list of paths"),
    ({"prompt": "x", "reference_paths": ["/nope.png"]}, "reference_paths[1] not found: /nope.png"),
    ({"mode": "paint", "prompt": "x"}, "'mode' must be one of edit, generate, table"),
])
def test_generate_refusals_name_the_field(client, fake, body, message):
    answer = client.post("/api/runs", json={"mode": "generate", "api": api(fake, "g3_stream_dataurl"), **body})
    assert answer.status_code == 400 and message in answer.json["error"], answer.json
    assert calls(fake) == []


# -- table ------------------------------------------------------------------------------------------

def write_table(path: Path, rows: list[list]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        csv.writer(file).writerows(rows)
    return path


def test_table_run_through_responses_with_rows_of_each_kind_then_export(client, fake, tmp_path):
    photos = make_sources(tmp_path / "photos", 2)
    refs = make_sources(tmp_path / "refs", 2)
    table = write_table(tmp_path / "tasks.csv", [
        ["源图", "提示词", "数量", "文件名", "参考图1", "参考图2", "尺寸"],
        ["photos/img1.png", "把天空改成紫色", "1", "sky", "", "", ""],
        ["photos/img2.png", "hold the bottle", "2", "", "refs/img1.png", "refs/img2.png", "1024x1024"],
        ["", "a fox", "1", "fox", "", "", ""],
    ])
    answer = start_run(client, fake, "responses_g3_stream", RESPONSES, mode="table", table_path=str(table))
    assert answer["task_count"] == 4 and answer["ignored_columns"] == []
    listing = wait_idle(client, answer["run_id"])
    assert listing["progress"]["done"] == 4
    sent = []
    for call in calls(fake):
        body = call.json
        if isinstance(body["input"], str):
            sent.append((body["input"], [], body.get("size")))
            continue
        content = body["input"][0]["content"]
        sent.append((content[0]["text"], [data(p["image_url"]) for p in content[1:]], body.get("size")))
    bottle = [photos.joinpath("img2.png").read_bytes(), refs.joinpath("img1.png").read_bytes(),
              refs.joinpath("img2.png").read_bytes()]
    assert sorted(sent, key=repr) == sorted([("把天空改成紫色", [photos.joinpath("img1.png").read_bytes()], None),
                                             ("hold the bottle", bottle, None), ("hold the bottle", bottle, None),
                                             ("a fox", [], None)], key=repr)
    # size is an images/chat option: the row's override reaches the task (checked on an images run below)
    assert [t["source_name"] for t in listing["tasks"]] == ["sky", "img2_1", "img2_2", "fox"]
    assert listing["tasks"][1]["overrides"] == {"size": "1024x1024"}

    exported = client.get(f"/api/runs/{answer['run_id']}/export.csv")
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig"))))
    assert rows[0][-6:] == ["status", "error", "results", "calls", "cost", "currency"] and len(rows) == 5
    assert rows[1][:4] == [str(photos / "img1.png"), "把天空改成紫色", "1", "sky"] and rows[1][-6:-2] == ["done", "", "sky_1.png", "1"]
    assert rows[2][4:6] == [str(refs / "img1.png"), str(refs / "img2.png")] and rows[2][8] == "1024x1024"
    book = load_workbook(io.BytesIO(client.get(f"/api/runs/{answer['run_id']}/export.xlsx?lang=zh").data)).active
    assert [c.value for c in book[1]][-6:-3] == ["状态", "错误", "结果文件"] and book["D5"].value == "fox"
    again = client.post("/api/tables/check", json={"table_path": str(write_export(tmp_path, exported.data))})
    assert again.status_code == 200 and again.json["task_count"] == 4  # an export reads back as a table


def write_export(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "exported.csv"
    path.write_bytes(data)
    return path


def test_table_rows_own_size_and_n_reach_the_gateway_in_multipart_image_arrays(client, fake, tmp_path):
    photos = make_sources(tmp_path / "photos", 1)
    refs = make_sources(tmp_path / "refs", 1)
    table = write_table(tmp_path / "t.csv", [["source", "prompt", "reference", "size", "n"],
                                             ["photos/img1.png", "combine", "refs/img1.png", "1024x1536", "2"]])
    answer = start_run(client, fake, "edits_g2_multipart", EDITS, {"api_mode": "images", "edit_format": "multipart",
                                                                   "size": "1024x1024"},
                       mode="table", table_path=str(table))
    assert wait_idle(client, answer["run_id"])["progress"]["done"] == 1
    form = calls(fake)[0].form
    assert [item[2] for item in form["image[]"]] == [photos.joinpath("img1.png").read_bytes(), refs.joinpath("img1.png").read_bytes()]
    assert form["size"][0][2] == b"1024x1536" and form["n"][0][2] == b"2" and form["prompt"][0][2] == b"combine"


def test_a_bad_table_reports_every_bad_row_and_runs_nothing(client, fake, tmp_path):
    make_sources(tmp_path / "photos", 1)
    table = write_table(tmp_path / "bad.csv", [
        ["source", "prompt", "count", "output_name"],
        ["photos/img1.png", "ok", "1", "a"], ["photos/gone.png", "x", "1", ""], ["", "", "1", ""],
        ["", "x", "500", ""], ["", "x", "1", "a"],
    ])
    for route, body in (("/api/runs", {"mode": "table", "table_path": str(table), "api": api(fake, "g3_stream_dataurl")}),
                        ("/api/tables/check", {"table_path": str(table)})):
        answer = client.post(route, json=body)
        assert answer.status_code == 400 and [r["row"] for r in answer.json["rows"]] == [3, 4, 5, 6], answer.json
        assert words(answer.json["rows"][2]) == {"row": 5, "error": "count 500 is out of range (1-100)"}
        assert words(answer.json["rows"][3]) == {"row": 6, "error": "duplicate output name 'a' (row 2 has it too)"}
    assert calls(fake) == [] and client.get("/api/runs").json == []
    missing = client.post("/api/runs", json={"mode": "table", "api": api(fake, "g3_stream_dataurl")})
    assert missing.status_code == 400 and missing.json["error"] == "'table_path' is required (a .csv or .xlsx file)"


def test_templates_download_in_both_languages(client):
    csv_en = client.get("/api/tables/template.csv")
    assert csv_en.status_code == 200 and csv_en.data.decode("utf-8-sig").startswith("source,prompt,count,output_name")
    xlsx = client.get("/api/tables/template.xlsx?lang=zh")
    assert load_workbook(io.BytesIO(xlsx.data)).active["B1"].value == "提示词"
    assert 'filename="prompt-table-template-zh.xlsx"' in xlsx.headers["Content-Disposition"]
    assert client.get("/api/tables/template.csv?lang=fr").status_code == 400


# -- several images: limits -------------------------------------------------------------------------

def test_more_references_than_the_mode_takes_is_refused_before_anything_runs(client, fake, tmp_path):
    src = make_sources(tmp_path / "src", 2)
    dirs = [str(make_sources(tmp_path / f"ref{n}", 2)) for n in range(8)]
    answer = client.post("/api/runs", json={"input_path": str(src), "prompt": "p", "reference_dirs": dirs,
                                            "api": api(fake, "g3_stream_dataurl")})
    assert answer.status_code == 400 and calls(fake) == []
    assert "9 input images (source and references) in one request, but chat completions takes at most 8" in answer.json["error"]
    assert [f["name"] for f in answer.json["files"]] == ["img1.png", "img2.png"]
    multipart = start_run(client, fake, "edits_g2_multipart", EDITS, {"api_mode": "images", "edit_format": "multipart_array"},
                          input_path=str(src), prompt="p", reference_dirs=dirs)
    assert wait_idle(client, multipart["run_id"])["progress"]["done"] == 2
    assert all(len(call.form["image[]"]) == 9 for call in calls(fake))


# -- re-prompt and continue ------------------------------------------------------------------------

UNIQUE = "latency_jpeg.s=0.unique=1"


def test_retry_with_a_new_prompt_keeps_it_and_each_result_keeps_its_own(client, fake, tmp_path):
    answer = start_run(client, fake, UNIQUE, input_path=str(make_sources(tmp_path / "src", 1)), prompt="make it blue")
    task = wait_idle(client, answer["run_id"])["tasks"][0]
    retried = client.post(f"/api/tasks/{task['id']}/retry", json={"keep_results": True, "prompt": "make it green"})
    assert retried.status_code == 200
    after = wait_idle(client, answer["run_id"])["tasks"][0]
    assert after["prompt"] == "make it green"
    assert [r["prompt"] for r in after["results"]] == ["make it blue", "make it green"]
    assert [chat_sent(c)[0] for c in calls(fake)] == ["make it blue", "make it green"]
    blank = client.post(f"/api/tasks/{task['id']}/retry", json={"prompt": "  "})
    assert blank.status_code == 400 and blank.json["error"] == "the prompt is empty"


def test_continue_from_a_result_appends_a_task_whose_source_is_that_result(client, fake, tmp_path):
    answer = start_run(client, fake, UNIQUE, input_path=str(make_sources(tmp_path / "src", 2)), prompt="make it blue")
    first = wait_idle(client, answer["run_id"])["tasks"][0]
    result = first["results"][0]
    image = client.get(f"/api/results/{result['id']}/image").data
    made = client.post(f"/api/results/{result['id']}/continue", json={"prompt": "now add snow"})
    assert made.status_code == 201
    listing = wait_idle(client, answer["run_id"])
    step = listing["tasks"][-1]
    assert step["id"] == made.json["task_id"] and step["index"] == 2 and len(listing["tasks"]) == 3
    assert step["source_name"] == "img1_step2.jpg" and step["output_name"] == "img1_step2" and step["status"] == "done"
    assert step["parent"] == {"task_id": first["id"], "result_id": result["id"], "name": "img1.png", "number": 1,
                              "step": 2, "root": "img1"}
    assert chat_sent(calls(fake)[-1]) == ("now add snow", [image])
    assert client.get(f"/api/runs/{answer['run_id']}").json["task_count"] == 3
    # the chain goes on; deleting the first result keeps the file the continuation reads
    again = client.post(f"/api/results/{step['results'][0]['id']}/continue", json={})
    third = wait_idle(client, answer["run_id"])["tasks"][-1]
    assert again.status_code == 201 and third["source_name"] == "img1_step3.jpg" and third["prompt"] == "now add snow"
    assert client.delete(f"/api/results/{result['id']}").status_code == 200
    assert client.get(f"/api/tasks/{step['id']}/source").data == image
    assert client.post("/api/results/nope/continue", json={}).status_code == 404


# -- hostile input --------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("prompt", "a \udcff cat", "'prompt' is not valid text"),
    ("input_path", "SRC/\udcff", "'input_path' is not valid text"),
    ("reference_dirs", ["SRC", "/x/\ud800"], r"'reference_dirs\[2\]' is not valid text"),
])
def test_text_with_a_lone_surrogate_is_refused_at_the_door(client, fake, tmp_path, field, value, message):
    src = make_sources(tmp_path / "src", 1)
    value = [v.replace("SRC", str(src)) for v in value] if isinstance(value, list) else value.replace("SRC", str(src))
    body = {"input_path": str(src), "prompt": "p", "api": api(fake, "g3_stream_dataurl"), field: value}
    refused = client.post("/api/runs", json=body)
    assert refused.status_code == 400 and re.search(message, refused.json["error"]), refused.json
    assert client.get("/api/runs").json == []


def test_generate_values_and_scan_paths_with_a_lone_surrogate_are_refused(client, fake, tmp_path):
    body = {"mode": "generate", "prompt": "a {animal}", "variables": {"animal": ["cat", "\udcffdog"]},
            "api": api(fake, "g3_stream_dataurl")}
    refused = client.post("/api/runs", json=body)
    assert refused.status_code == 400 and "variables.animal[2] is not valid text" in refused.json["error"]
    refused = client.post("/api/scan", json={"input_path": str(tmp_path) + "/\udcff"})
    assert refused.status_code == 400 and "input path is not valid text" in refused.json["error"]


def test_a_scan_preview_cut_short_says_so_and_the_run_is_refused(client, fake, tmp_path, monkeypatch):
    src = make_sources(tmp_path / "src", 12)
    assert client.post("/api/scan", json={"input_path": str(src)}).json["truncated"] is None
    monkeypatch.setitem(console.scan._limits, "entries", 5)
    answer = client.post("/api/scan", json={"input_path": str(src)}).json
    assert answer["count"] == 5 and words(answer["truncated"]) == {
        "reason": "entries", "visited": 5, "limit": 5,
        "message": "the scan stopped after 5 entries (SCAN_MAX_ENTRIES=5); only the images found before that are listed"}
    refused = client.post("/api/runs", json={"input_path": str(src), "prompt": "p", "api": api(fake, "g3_stream_dataurl")})
    assert refused.status_code == 400 and "a run takes every image" in refused.json["error"]
    assert client.get("/api/runs").json == []


def test_the_scan_route_knows_when_its_client_has_gone(app):
    from console.web.sources_api import client_gone

    ours, theirs = socket.socketpair()
    with ours, app.test_request_context(environ_base={"werkzeug.socket": ours}):
        assert client_gone() is False  # connected, nothing sent
        theirs.close()
        assert client_gone() is True
    with app.test_request_context():
        assert client_gone() is False  # no socket: the test client never goes away


def test_paths_pasted_in_quotes_or_as_file_urls_are_understood_everywhere(client, fake, tmp_path):
    folder = make_sources(tmp_path / "my photos", 2)
    refs = make_sources(tmp_path / "refs", 2)
    for typed in (f"'{folder}'", f'"{folder}"', "file://" + str(folder).replace(" ", "%20")):
        answer = client.post("/api/scan", json={"input_path": typed})
        assert answer.status_code == 200 and answer.json["count"] == 2, (typed, answer.json)
    started = client.post("/api/runs", json={"input_path": f"'{folder}'", "prompt": "p",
                                             "reference_dirs": [f"file://{refs}"], "api": api(fake, "g3_stream_dataurl")})
    assert started.status_code == 201, started.json
    run_id = started.json["run_id"]
    wait_idle(client, run_id)
    out = tmp_path / "out dir"
    saved = client.post(f"/api/runs/{run_id}/save", json={"output_dir": f'"{out}"', "only_selected": False})
    assert saved.status_code == 200 and len(saved.json["saved"]) == 4, saved.json  # two images a task
    assert out.is_dir() and not (tmp_path / f'"{out}"').exists()
    refused = client.post("/api/scan", json={"input_path": "photos/holiday"})
    assert refused.status_code == 400
    assert "accepted: /home/me/photos, ~/photos, either one in quotes, or file://" in refused.json["error"]
