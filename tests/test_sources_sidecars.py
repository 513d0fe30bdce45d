"""Sidecar prompts and the prompt template: `{caption}`, `{src_stem}`, `{src_name}`, prepend/append/replace."""

from __future__ import annotations

import codecs

import pytest

from console.sources import RunSpec, SourceProblem, plan_edit, preview, scanned, source_prompt
from console.sources.prompts import needs_sidecar, placeholders
from console.sources.sidecars import SIDECAR_MAX_BYTES, decode, read_all
from tests.helpers import make_sources
from tests.hostile_files import PROMPT_S, fifo, within


def test_template_fields_and_unknown_braces_left_as_typed():
    assert source_prompt("{caption}, in {src_stem} ({src_name}) {style} {}", "sub/cat.png", "a cat", "off") == \
        "a cat, in cat (cat.png) {style} {}"
    assert placeholders("{a} {动物} {a} {b c}") == ["a", "动物"]


@pytest.mark.parametrize("mode, expected", [
    ("off", "make it blue"), ("prepend", "a cat\nmake it blue"), ("append", "make it blue\na cat"),
    ("replace", "a cat"),
])
def test_modes_place_the_caption(mode, expected):
    assert source_prompt("make it blue", "cat.png", "a cat", mode) == expected


def test_a_template_with_caption_ignores_the_mode_and_a_missing_caption_keeps_the_prompt():
    assert source_prompt("{caption}!", "cat.png", "a cat", "append") == "a cat!"
    assert source_prompt("make it blue", "cat.png", None, "append") == "make it blue"
    assert source_prompt("", "cat.png", "a cat", "append") == "a cat"
    assert needs_sidecar("x {caption}", "off") and needs_sidecar("x", "replace") and not needs_sidecar("x", "append")


def test_decoding_tolerates_a_bom_and_utf16_and_refuses_other_bytes():
    assert decode(codecs.BOM_UTF8 + "一只猫".encode()) == "一只猫"
    assert decode("a cat".encode("utf-16")) == "a cat"
    assert decode(b"\xff\xfe\x00"[:1] + b"\xe9t\xe9") is None


def test_reading_sidecars_reports_why_each_cannot_be_used(tmp_path):
    folder = make_sources(tmp_path / "src", 5)
    (folder / "img1.txt").write_bytes(codecs.BOM_UTF8 + "  a red car \n".encode())
    (folder / "img2.TXT").write_text("a blue car", encoding="utf-8")
    (folder / "img3.txt").write_text("   \n", encoding="utf-8")
    (folder / "img4.txt").write_bytes(b"caf\xe9")
    (folder / "img5.txt").write_bytes(b"x" * (SIDECAR_MAX_BYTES + 1))
    sources = sorted(folder.glob("*.png"))
    by_name = {path.name: sidecar for path, sidecar in zip(sources, read_all(sources))}
    assert by_name["img1.png"].text == "a red car" and by_name["img2.png"].text == "a blue car"
    assert by_name["img3.png"].problem == "img3.txt is empty"
    assert "not UTF-8" in by_name["img4.png"].problem and "over 64 KiB" in by_name["img5.png"].problem


def test_plan_reads_each_sources_caption(tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    for number, text in ((1, "a red car"), (2, "一辆蓝色的车"), (3, "a green car")):
        (folder / f"img{number}.txt").write_text(text, encoding="utf-8")
    plan = plan_edit(RunSpec(input_path=str(folder), prompt="{caption}, watercolor ({src_stem})"))
    assert [t.prompt for t in plan.tasks] == ["a red car, watercolor (img1)", "一辆蓝色的车, watercolor (img2)",
                                               "a green car, watercolor (img3)"]
    assert plan.spec["sidecar"] == "off" and plan.prompt == "{caption}, watercolor ({src_stem})"


def test_a_template_needing_missing_sidecars_is_refused_with_every_file_named(tmp_path):
    folder = make_sources(tmp_path / "src", 4)
    (folder / "img2.txt").write_text("ok", encoding="utf-8")
    (folder / "img4.txt").write_text("", encoding="utf-8")
    with pytest.raises(SourceProblem) as refused:
        plan_edit(RunSpec(input_path=str(folder), prompt="{caption}"))
    assert [f["name"] for f in refused.value.details["files"]] == ["img1.png", "img3.png", "img4.png"]
    assert "3 of 4 sources have no usable sidecar" in str(refused.value) and "img4.txt is empty" in str(refused.value)
    with pytest.raises(SourceProblem, match="sidecar mode 'replace' needs one"):
        plan_edit(RunSpec(input_path=str(folder), prompt="", sidecar="replace"))
    appended = plan_edit(RunSpec(input_path=str(folder), prompt="make it blue", sidecar="append"))
    assert [t.prompt for t in appended.tasks] == ["make it blue", "make it blue\nok", "make it blue", "make it blue"]


def test_an_empty_prompt_needs_a_sidecar_mode_and_bad_modes_are_refused(tmp_path):
    folder = make_sources(tmp_path / "src", 1)
    with pytest.raises(SourceProblem, match="the prompt is empty"):
        plan_edit(RunSpec(input_path=str(folder), prompt="  "))
    with pytest.raises(SourceProblem, match="'sidecar' must be one of off, prepend, append, replace"):
        plan_edit(RunSpec(input_path=str(folder), prompt="x", sidecar="before"))


def test_preview_counts_sidecars_and_lists_the_missing(tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    (folder / "img3.txt").write_text("caption", encoding="utf-8")
    found = scanned(str(folder), False)
    answer = preview(found, "{caption}", "off", [], False)
    assert answer["sidecars"] == {"count": 1, "missing_count": 2, "required": True, "used": True, "missing": [
        {"name": "img1.png", "error": "no img1.txt"}, {"name": "img2.png", "error": "no img2.txt"}]}


# -- hostile captions ----------------------------------------------------------------------------------

def test_a_fifo_named_like_a_caption_is_refused_without_blocking(tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    pipe = fifo(folder / "img1.txt")
    (folder / "img2.txt").symlink_to("/dev/zero")
    answer = within(PROMPT_S, lambda: preview(scanned(str(folder), False), "{caption}", "off", [], False), pipe)
    assert answer["sidecars"]["missing"] == [
        {"name": "img1.png", "error": "img1.txt cannot be read: not a regular file (a FIFO)"},
        {"name": "img2.png", "error": "img2.txt cannot be read: not a regular file (a device)"}]
    with pytest.raises(SourceProblem, match="not a regular file"):
        within(PROMPT_S, lambda: plan_edit(RunSpec(input_path=str(folder), prompt="{caption}")), pipe)
