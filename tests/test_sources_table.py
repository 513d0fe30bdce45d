"""Prompt tables: CSV and XLSX, English and Chinese headers, every bad row reported, export and template."""

from __future__ import annotations

import codecs
import io
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from console.sources import RunSpec, SourceProblem, plan_table, template
from console.sources.sheets import read_rows
from console.sources.table import read_header
from tests.helpers import make_sources
from tests.hostile_files import PROMPT_S, fifo, within


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8-sig", delimiter: str = ",") -> Path:
    import csv

    with path.open("w", encoding=encoding, newline="") as file:
        csv.writer(file, delimiter=delimiter).writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list], blank_rows_on_top: int = 0) -> Path:
    book = Workbook()
    sheet = book.active
    for _ in range(blank_rows_on_top):
        sheet.append([])
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def table(path: Path, **fields):
    return plan_table(RunSpec(mode="table", table_path=str(path), **fields))


def test_a_csv_with_sources_generate_rows_counts_names_refs_and_overrides(tmp_path):
    photos = make_sources(tmp_path / "photos", 2)
    refs = make_sources(tmp_path / "refs", 2)
    path = write_csv(tmp_path / "tasks.csv", [
        ["source", "prompt", "count", "output_name", "reference_1", "reference_2", "size", "n", "negative prompt"],
        ["photos/img1.png", "make it blue ({src_stem})", "", "", "", "", "", "", "ugly"],
        [str(photos / "img2.png"), "hold the bottle", "2", "bottle.png", "refs/img1.png", str(refs / "img2.png"),
         "1024x1024", "2", ""],
        ["", "a fox", "3", "fox", "refs/img1.png", "", "", "", ""],
    ])
    plan = table(path)
    assert [t.name for t in plan.tasks] == ["img1", "bottle_1", "bottle_2", "fox_1", "fox_2", "fox_3"]
    first, bottle, fox = plan.tasks[0], plan.tasks[1], plan.tasks[3]
    assert first.path == str(photos / "img1.png") and first.prompt == "make it blue (img1)" and first.overrides is None
    assert bottle.references == (str(refs / "img1.png"), str(refs / "img2.png"))
    assert bottle.overrides == {"size": "1024x1024", "n": 2} and bottle.output_name == "bottle_1"
    assert fox.path == "" and fox.prompt == "a fox" and fox.references == (str(refs / "img1.png"),)
    assert plan.notes == {"ignored_columns": ["negative prompt"]} and plan.spec["rows"] == 3


def test_chinese_headers_in_xlsx_with_row_numbers_as_the_sheet_shows_them(tmp_path):
    photos = make_sources(tmp_path / "photos", 1)
    path = write_xlsx(tmp_path / "任务.xlsx", [
        ["源图", "提示词", "数量", "文件名", "参考图", "参考图"],
        [str(photos / "img1.png"), "把天空改成紫色", 2.0, "天空", str(photos / "img1.png"), ""],
        [None, None, None, None, None, None],
        ["", "", "abc", "", "", "/nope/x.png"],
    ], blank_rows_on_top=2)
    with pytest.raises(SourceProblem) as refused:
        table(path)
    assert refused.value.details["rows"] == [{"row": 6, "error": "reference image 1 not found: /nope/x.png; "
                                                            "empty prompt; count 'abc' is not a number"}]
    header, rows = read_header(read_rows(path)[0][1])[0], read_rows(path)
    assert rows[0][0] == 3 and header.references == [4, 5]


def test_every_bad_row_is_listed_with_its_reason_and_nothing_is_planned(tmp_path):
    photos = make_sources(tmp_path / "photos", 2)
    path = write_csv(tmp_path / "bad.csv", [
        ["image", "prompt", "count", "filename", "size", "n"],
        ["photos/img1.png", "ok", "1", "a", "", ""],            # row 2: fine
        ["photos/missing.png", "x", "1", "", "", ""],          # row 3
        ["photos/img2.png", "", "1", "", "", ""],              # row 4
        ["", "x", "0", "", "", ""],                            # row 5
        ["", "x", "101", "", "", ""],                          # row 6
        ["", "x", "1", "a", "", ""],                           # row 7: duplicate of row 2
        ["", "x", "1", "dir/name", "", ""],                    # row 8
        ["", "x", "1", "", "huge size", "11"],                 # row 9
        ["photos/readme.txt", "x", "1.5", "", "", ""],         # row 10
    ])
    with pytest.raises(SourceProblem) as refused:
        table(path)
    rows = {item["row"]: item["error"] for item in refused.value.details["rows"]}
    assert sorted(rows) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert rows[3] == f"source image not found: {photos / 'missing.png'}"
    assert rows[4] == "empty prompt"
    assert rows[5] == "count 0 is out of range (1-100)" and rows[6] == "count 101 is out of range (1-100)"
    assert rows[7] == "duplicate output name 'a' (row 2 has it too)"
    assert rows[8] == "output name 'dir/name' must be a file name, not a path"
    assert rows[9] == "size 'huge size' is not a size (like 1024x1024); n 11 is out of range (1-10)"
    assert rows[10].startswith("source image is not an image file") and "count 1.5 is not a whole number" in rows[10]
    assert str(refused.value).startswith("8 bad row(s) in bad.csv, nothing was started: row 3: source image not found")


def test_derived_names_are_made_unique_given_ones_win(tmp_path):
    make_sources(tmp_path / "photos", 1)
    path = write_csv(tmp_path / "t.csv", [
        ["source", "prompt", "output"], ["photos/img1.png", "a", ""], ["photos/img1.png", "b", ""],
        ["", "c", "img1"], ["", "d", ""],
    ])
    assert [t.name for t in table(path).tasks] == ["img1-2", "img1-3", "img1", "row5"]


def test_semicolon_csv_gb18030_and_several_references_in_one_cell(tmp_path):
    refs = make_sources(tmp_path / "refs", 3)
    cells = ";".join(str(refs / f"img{n}.png") for n in (1, 2, 3))
    path = tmp_path / "t.csv"
    path.write_bytes(f'提示词;参考图\n一只猫;"{cells}"\n'.encode("gb18030"))
    assert table(path).tasks[0].references == tuple(str(refs / f"img{n}.png") for n in (1, 2, 3))


def test_caption_in_a_row_reads_the_sources_sidecar(tmp_path):
    photos = make_sources(tmp_path / "photos", 2)
    (photos / "img1.txt").write_text("a red car", encoding="utf-8")
    path = write_csv(tmp_path / "t.csv", [["source", "prompt"], ["photos/img1.png", "{caption}, at night"],
                                          ["photos/img2.png", "{caption}"], ["", "{caption}"]])
    with pytest.raises(SourceProblem) as refused:
        table(path)
    assert refused.value.details["rows"] == [{"row": 3, "error": "{caption}: no img2.txt"},
                                             {"row": 4, "error": "{caption} needs a source image (its sidecar .txt)"}]


@pytest.mark.parametrize("rows, error", [
    ([["source", "count"], ["a.png", "1"]], "no prompt column"),
    ([["prompt", "提示词"], ["a", "b"]], "two 'prompt' columns"),
    ([["prompt", "ref1", "ref2", "ref3", "ref4", "ref5"], ["a"] * 6], "at most 4 reference columns"),
])
def test_header_problems_are_row_1(tmp_path, rows, error):
    with pytest.raises(SourceProblem) as refused:
        table(write_csv(tmp_path / "t.csv", rows))
    assert refused.value.details["rows"][0]["row"] == 1 and error in refused.value.details["rows"][0]["error"]


@pytest.mark.parametrize("name, content, message", [
    ("t.xls", b"x", "old Excel 97-2003 file"), ("t.json", b"{}", "is not a table"),
    ("t.xlsx", b"not a zip", "is not a readable .xlsx file"), ("t.csv", b"", "is empty"),
    ("t.csv", b"prompt\n", "has a header but no task rows"),
])
def test_unreadable_tables_say_why(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(SourceProblem, match=message):
        table(tmp_path / name)


def test_the_template_reads_back_once_its_example_files_exist(tmp_path):
    make_sources(tmp_path / "photos", 2)
    (tmp_path / "photos" / "001.png").write_bytes((tmp_path / "photos" / "img1.png").read_bytes())
    (tmp_path / "photos" / "002.png").write_bytes((tmp_path / "photos" / "img2.png").read_bytes())
    make_sources(tmp_path / "refs", 1)
    (tmp_path / "refs" / "bottle.png").write_bytes((tmp_path / "refs" / "img1.png").read_bytes())
    for kind in ("csv", "xlsx"):
        for lang in ("en", "zh"):
            path = tmp_path / f"template-{lang}.{kind}"
            path.write_bytes(template(kind, lang))
            assert [t.name for t in table(path).tasks] == ["001", "product_hand_1", "product_hand_2",
                                                           "fox_snow_1", "fox_snow_2", "fox_snow_3", "fox_snow_4"]
    assert template("csv", "zh").startswith(codecs.BOM_UTF8 + "原图,提示词".encode())
    sheet = load_workbook(io.BytesIO(template("xlsx"))).active
    assert sheet["A1"].value == "source" and sheet["A1"].font.bold and sheet.freeze_panes == "A2"


def test_oversized_tables_are_refused_before_they_are_read(tmp_path, monkeypatch):
    import console.sources.sheets as sheets

    path = write_csv(tmp_path / "t.csv", [["prompt"], ["a" * 100]])
    monkeypatch.setattr(sheets, "MAX_TABLE_BYTES", 50)
    with pytest.raises(SourceProblem, match="the table is 1.. bytes; at most 50 bytes"):
        table(path)
    monkeypatch.undo()
    book = write_xlsx(tmp_path / "big.xlsx", [["prompt"], ["x" * 5000]])
    monkeypatch.setattr(sheets, "MAX_UNPACKED_BYTES", 4000)
    with pytest.raises(SourceProblem, match=r"big.xlsx unpacks to [\d.]+ KiB; at most 3.9 KiB"):
        table(book)


@pytest.mark.parametrize("name", ["tasks.csv", "tasks.xlsx"])
def test_a_fifo_named_like_a_table_is_refused_without_blocking(tmp_path, name):
    pipe = fifo(tmp_path / name)
    with pytest.raises(SourceProblem, match=f"the table is not a file: {pipe} is a FIFO"):
        within(PROMPT_S, lambda: table(pipe), pipe)


def test_a_fifo_named_like_a_reference_image_in_a_row_is_named_not_read(tmp_path):
    src = make_sources(tmp_path / "src", 1)
    pipe = fifo(tmp_path / "ref.png")
    path = write_csv(tmp_path / "t.csv", [["source", "prompt", "reference"], [str(src / "img1.png"), "p", str(pipe)]])
    with pytest.raises(SourceProblem, match=r"reference image 1 is a FIFO, not an image file"):
        within(PROMPT_S, lambda: table(path), pipe)
