"""Messages of the sources family reach the page as codes: bad tables, scans, paths, uploads, run bodies.

Each answer keeps its English text and says `<field>_msg: {"code", "params"}` beside it; the page says
the code in Chinese (static/js/messages/sources.js). The browser tests switch the page to 中文 and
check that a bad table's rows and a scan's skipped files read in Chinese.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from openpyxl import Workbook

from console.messages import CATALOG, Message
from console.scan import scan
from console.sources import RunSpec, SourceProblem, plan
from tests.helpers import api, make_sources
from testkit.images import make

PNG = make("PNG", (16, 12))
CJK = re.compile(r"[\u4e00-\u9fff]")
# An English sentence on a Chinese page: three or more English words in a row.
ENGLISH_SENTENCE = re.compile(r"[A-Za-z][a-z']+(?:[ ,;:]+[A-Za-z][a-z']+){2,}")


def write_table(path: Path, rows: list[list]) -> Path:
    """Write `rows` as a CSV or an XLSX, by the file's suffix."""
    if path.suffix == ".xlsx":
        book = Workbook()
        for row in rows:
            book.active.append(row)
        book.save(path)
    else:
        path.write_text("\n".join(",".join(str(cell) for cell in row) for row in rows) + "\n", encoding="utf-8")
    return path


def check(client, table: Path):
    return client.post("/api/tables/check", json={"table_path": str(table)})


def code(msg: dict | None) -> str | None:
    return msg["code"] if msg else None


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_table_without_a_prompt_column_answers_its_header_row_with_a_code(client, tmp_path, suffix):
    answer = check(client, write_table(tmp_path / f"t{suffix}", [["source", "count"], ["", 1]]))
    assert answer.status_code == 400
    body = answer.json
    assert body["error_msg"]["code"] == "sources.header_bad" and body["error_msg"]["params"]["row"] == 1
    assert body["rows"] == [{"row": 1, "error": body["rows"][0]["error"], "error_msg": body["rows"][0]["error_msg"]}]
    assert body["rows"][0]["error_msg"] == {"code": "sources.header_no_prompt", "params": {}}
    assert body["rows"][0]["error"].startswith("no prompt column: the header row (row 1) must name one")


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_table_with_bad_cells_and_a_missing_reference_answers_every_row_with_codes(client, tmp_path, suffix):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(PNG)
    table = write_table(tmp_path / f"t{suffix}", [
        ["source", "prompt", "count", "output_name", "reference"],
        ["photos/a.png", "ok", 1, "a", ""],
        ["", "x", 500, "", ""],                       # row 3: a count out of range
        ["photos/a.png", "x", 1, "", "refs/gone.png"],  # row 4: a reference file that is not there
        ["", "", 1, "", ""],                          # row 5: no prompt
        ["", "x", 1, "a", ""],                        # row 6: a name row 2 has
    ])
    answer = check(client, table)
    assert answer.status_code == 400, answer.json
    body = answer.json
    assert body["error_msg"]["code"] == "sources.rows_bad" and body["error_msg"]["params"]["count"] == 4
    rows = {row["row"]: row for row in body["rows"]}
    assert sorted(rows) == [3, 4, 5, 6]
    assert rows[3]["error"] == "count 500 is out of range (1-100)"
    assert rows[3]["error_msg"] == {"code": "sources.row_out_of_range",
                                    "params": {"column": "count", "value": "500", "low": 1, "high": 100}}
    missing = rows[4]["error_msg"]
    assert missing["code"] == "sources.image_not_found"
    assert missing["params"]["path"] == str(tmp_path / "refs" / "gone.png")
    assert missing["params"]["what"] == {"code": "sources.what_reference_image", "params": {"number": 1},
                                         "text": "reference image 1"}
    assert rows[5]["error_msg"] == {"code": "sources.row_prompt_empty", "params": {}}
    assert rows[6]["error_msg"]["code"] == "sources.row_duplicate_name"
    assert rows[6]["error"] == "duplicate output name 'a' (row 2 has it too)"


def test_a_row_with_two_problems_says_both_in_one_message(client, tmp_path):
    table = write_table(tmp_path / "t.csv", [["prompt", "count", "size"], ["x", "abc", "1 2"]])
    row = check(client, table).json["rows"][0]
    assert row["error"] == "count 'abc' is not a number; size '1 2' is not a size (like 1024x1024)"
    assert row["error_msg"]["code"] == "sources.problems"
    assert [item["code"] for item in row["error_msg"]["params"]["problems"]] == ["sources.row_not_number",
                                                                                 "sources.row_bad_size"]


def test_a_folder_scan_lists_its_skipped_files_with_codes(client, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4")
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    answer = client.post("/api/scan", json={"input_path": str(folder)})
    assert answer.status_code == 200, answer.json
    skipped = {item["name"]: item for item in answer.json["skipped"]}
    assert skipped["notes.pdf"]["reason"] == "not an image file"
    assert skipped["notes.pdf"]["reason_msg"] == {"code": "sources.skip_not_image", "params": {}}
    assert skipped["gone.png"]["reason_msg"] == {"code": "sources.skip_broken_link", "params": {}}


def test_a_path_that_does_not_exist_is_refused_with_its_code(client, tmp_path):
    gone = tmp_path / "nowhere"
    answer = client.post("/api/scan", json={"input_path": str(gone)})
    assert answer.status_code == 400
    assert answer.json["error"] == f"{gone} does not exist"
    assert answer.json["error_msg"] == {"code": "sources.not_found", "params": {"path": str(gone)}}
    relative = client.post("/api/scan", json={"input_path": "photos"}).json
    assert relative["error_msg"]["code"] == "sources.path_not_absolute"
    assert relative["error_msg"]["params"]["forms"]["code"] == "sources.path_forms"


def test_a_folder_with_no_images_says_how_many_files_it_skipped(client, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.pdf").write_bytes(b"%PDF")
    answer = client.post("/api/scan", json={"input_path": str(folder)}).json
    assert answer["error"] == f"no images in {folder} (1 other files skipped)"
    assert answer["error_msg"] == {"code": "sources.no_images_skipped", "params": {"path": str(folder), "count": 1}}


def test_sources_without_sidecars_list_each_file_and_a_summary_with_codes(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    (folder / "img1.txt").write_text("", encoding="utf-8")
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "{caption}",
                                            "api": api(fake, "g3_stream_dataurl")})
    assert answer.status_code == 400
    body = answer.json
    assert body["summary_msg"]["code"] == "sources.no_sidecar_caption"
    assert body["summary_msg"]["params"] == {"count": 2, "total": 2, "placeholder": "{caption}"}
    assert body["error_msg"]["code"] == "sources.files_listed"
    assert [item["error_msg"]["code"] for item in body["files"]] == ["sources.sidecar_empty", "sources.sidecar_missing"]
    assert body["files"][1]["error"] == "no img2.txt"


def upload(client, files: list[tuple[str, bytes]]):
    data = {"files": [(io.BytesIO(body), name) for name, body in files]}
    return client.post("/api/uploads", data=data, content_type="multipart/form-data",
                       headers={"X-Console-Upload": "1"})


def test_an_upload_says_why_it_left_files_out_and_why_it_was_refused(client):
    kept = upload(client, [("a.png", PNG), ("notes.pdf", b"%PDF"), ("../up.png", PNG)]).json
    reasons = {item["name"]: item["reason_msg"]["code"] for item in kept["skipped"]}
    assert reasons == {"notes.pdf": "sources.upload_not_image", "../up.png": "sources.upload_unsafe_path"}
    refused = upload(client, [("notes.pdf", b"%PDF")])
    assert refused.status_code == 400 and refused.json["error_msg"]["code"] == "sources.upload_no_images"
    assert refused.json["error"].startswith("no images in the upload (accepted: bmp, gif, jpeg, jpg, png")


@pytest.mark.parametrize("body, expected", [
    ({"input_path": "/x", "prompt": "p", "colour": 1}, "sources.unknown_field"),
    ({"input_path": "/x", "prompt": "p", "colour": 1, "size": 2}, "sources.unknown_fields"),
    ({"input_path": "/x", "prompt": "p", "reference_dirs": "nope"}, "sources.paths_not_list"),
    ({"input_path": "/x", "prompt": "p", "budget": -1}, "sources.budget_bad"),
    ({"mode": "generate", "prompt": "p", "variables": "x"}, "sources.variables_not_object"),
    ({"mode": "table"}, "sources.table_path_missing"),
    ({"mode": "generate", "prompt": "a {animal}"}, "sources.variables_none"),
    ({"mode": "generate", "prompt": "a {animal}", "variables": {"animal": ["cat", "cat"]}}, "sources.variable_value_twice"),
    ({"mode": "generate", "prompt": "p", "reference_paths": ["relative.png"]}, "sources.value_not_absolute"),
    ({"mode": "table", "table_path": "/nowhere/t.xls"}, "sources.table_xls"),
    ({"mode": "table", "table_path": "/nowhere/t.csv"}, "sources.table_unreadable"),
])
def test_run_bodies_the_sources_refuse_answer_codes(client, fake, body, expected):
    answer = client.post("/api/runs", json={**body, "api": api(fake, "g3_stream_dataurl")})
    assert answer.status_code == 400, answer.json
    assert answer.json["error_msg"]["code"] == expected, answer.json
    assert expected in CATALOG


def test_a_missing_task_reference_and_a_bad_lang_answer_codes(client):
    assert client.get("/api/tasks/nope/references/1").json["error_msg"] == {"code": "sources.no_task",
                                                                            "params": {"task_id": "nope"}}
    assert client.get("/api/tables/template.csv?lang=fr").json["error_msg"]["code"] == "sources.lang_bad"


def test_the_messages_keep_the_english_they_had(tmp_path):
    folder = make_sources(tmp_path / "src", 1)
    (folder / "a.txt").write_text("x", encoding="utf-8")
    found = scan(str(folder))
    assert found.skipped == [("a.txt", "not an image file")] and isinstance(found.skipped[0][1], Message)
    with pytest.raises(SourceProblem) as refused:
        plan(RunSpec(mode="generate", prompt="a {b}", variables={"c": ["1"]}))
    assert str(refused.value) == "the prompt uses {b}, which 'variables' does not define (defined: c)"
    assert refused.value.args[0].code == "sources.variables_undefined"


# -- the page in Chinese ---------------------------------------------------------------------------


def chinese_page(page) -> None:
    page.evaluate("localStorage.setItem('ibc.lang', 'zh')")
    page.reload()
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")


def shown_text(page, testid: str, contains: str) -> str:
    page.wait_for_function("([id, text]) => { const o = document.querySelector(`[data-testid=${id}]`);"
                           " return o && !o.hidden && o.textContent.includes(text); }", arg=[testid, contains],
                           timeout=15000)
    return page.inner_text(f"[data-testid={testid}]")


def assert_chinese(text: str) -> None:
    assert CJK.search(text), text
    assert not ENGLISH_SENTENCE.findall(text), f"English on the Chinese page: {ENGLISH_SENTENCE.findall(text)}\n{text}"


@pytest.mark.browser
def test_the_chinese_page_says_a_bad_tables_rows_and_a_scans_skips_in_chinese(page, tmp_path):
    chinese_page(page)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(PNG)
    no_prompt = write_table(tmp_path / "no_prompt.csv", [["source", "count"], ["photos/a.png", 1]])
    page.click("[data-testid=mode-switch] label:has([value=table])")
    page.fill("[data-testid=table-path]", str(no_prompt))
    page.click("[data-testid=table-check]")
    text = shown_text(page, "table-output", "提示词列")
    assert_chinese(text)
    bad = write_table(tmp_path / "bad.xlsx", [
        ["原图", "提示词", "数量", "文件名", "参考图"],
        ["photos/a.png", "把天空改成紫色", 1, "sky", ""],
        ["photos/missing.png", "x", 1, "", ""],
        ["", "", 1, "", ""],
        ["photos/a.png", "x", 500, "sky", "refs/gone.png"],
    ])
    page.fill("[data-testid=table-path]", str(bad))
    page.click("[data-testid=table-check]")
    text = shown_text(page, "table-output", "第 5 行")
    assert "missing.png" in text and "超出范围" in text and "重复" in text and "gone.png" in text, text
    assert_chinese(text)
    # A folder with a file that is not an image: the preview names it, and why, in Chinese.
    folder = make_sources(tmp_path / "src", 2)
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4")
    page.click("[data-testid=mode-switch] label:has([value=edit])")
    page.fill("[data-testid=path-input]", str(folder))
    page.click("#scan")
    text = shown_text(page, "scan-output", "notes.pdf")
    assert "不是图片文件" in text, text
    assert_chinese(text)
    # A path that does not exist: the refusal is Chinese too.
    page.fill("[data-testid=path-input]", str(tmp_path / "nowhere"))
    page.click("#scan")
    text = shown_text(page, "scan-output", "不存在")
    assert_chinese(text)
    page.console_errors[:] = [e for e in page.console_errors if "status of 400" not in e]  # the refusals above
