"""Reference images matched by stem from other folders, in edit mode."""

from __future__ import annotations

import os

import pytest

import console.scan
from console.sources import RunSpec, SourceProblem, plan_edit, preview, scanned
from tests.helpers import make_sources
from tests.hostile_files import PROMPT_S, badly_named, within


def test_each_source_gets_the_same_stem_from_every_reference_folder(tmp_path):
    src = make_sources(tmp_path / "src", 3)
    ref_a = make_sources(tmp_path / "ref_a", 3)
    ref_b = tmp_path / "ref_b"
    ref_b.mkdir()
    for number in (1, 2, 3):  # another format, same stem
        (ref_b / f"img{number}.jpg").write_bytes((ref_a / f"img{number}.png").read_bytes())
    plan = plan_edit(RunSpec(input_path=str(src), prompt="p", reference_dirs=(str(ref_a), str(ref_b))))
    assert [t.references for t in plan.tasks] == [(str(ref_a / f"img{n}.png"), str(ref_b / f"img{n}.jpg")) for n in (1, 2, 3)]
    assert plan.spec["reference_dirs"] == [str(ref_a), str(ref_b)]


def test_subfolders_match_by_relative_stem_then_by_bare_stem(tmp_path):
    src = make_sources(tmp_path / "src" / "a", 1).parent
    make_sources(src / "b", 1)
    ref = make_sources(tmp_path / "ref" / "a", 1).parent
    make_sources(ref, 1)  # ref/img1.png: for src/b/img1.png
    plan = plan_edit(RunSpec(input_path=str(src), recursive=True, prompt="p", reference_dirs=(str(ref),)))
    assert [t.references for t in plan.tasks] == [(str(ref / "a" / "img1.png"),), (str(ref / "img1.png"),)]


def test_missing_or_ambiguous_references_refuse_the_run_naming_every_source(tmp_path):
    src = make_sources(tmp_path / "src", 3)
    ref = make_sources(tmp_path / "ref", 1)
    (ref / "img1.webp").write_bytes((ref / "img1.png").read_bytes())
    with pytest.raises(SourceProblem) as refused:
        plan_edit(RunSpec(input_path=str(src), prompt="p", reference_dirs=(str(ref),)))
    files = refused.value.details["files"]
    assert [f["name"] for f in files] == ["img1.png", "img2.png", "img3.png"]
    assert "more than one image named img1" in files[0]["error"] and f"no img2.* in {ref}" == files[1]["error"]
    answer = preview(scanned(str(src), False), "p", "off", [str(ref)], False)
    assert answer["references"]["matched"] == 0 and answer["references"]["missing_count"] == 3


@pytest.mark.parametrize("dirs, message", [
    (("relative/ref",), r"reference_dirs\[1\] must be an absolute path"),
    (("/nonexistent/ref",), r"reference_dirs\[1\]: /nonexistent/ref is not a folder"),
    (("SRC",), "is the source folder itself"),
    (("REF", "REF"), "is listed twice"),
])
def test_bad_reference_folders_are_refused(tmp_path, dirs, message):
    src = make_sources(tmp_path / "src", 1)
    ref = make_sources(tmp_path / "ref", 1)
    dirs = tuple(d.replace("SRC", str(src)).replace("REF", str(ref)) for d in dirs)
    with pytest.raises(SourceProblem, match=message):
        plan_edit(RunSpec(input_path=str(src), prompt="p", reference_dirs=dirs))


def test_a_reference_folder_with_links_back_up_is_indexed_once(tmp_path):
    # Two links back to the parent in one folder: followed blindly, the paths double at each level.
    src = make_sources(tmp_path / "src", 1)
    ref = make_sources(tmp_path / "ref", 1)
    (ref / "a").mkdir()
    (ref / "a" / "up1").symlink_to(ref)
    (ref / "a" / "up2").symlink_to(ref)
    plan = within(PROMPT_S, lambda: plan_edit(RunSpec(input_path=str(src), recursive=True, prompt="p",
                                                      reference_dirs=(str(ref),))))
    assert [t.references for t in plan.tasks] == [(str(ref / "img1.png"),)]


def test_a_reference_folder_past_the_scan_cap_refuses_the_run(tmp_path, monkeypatch):
    monkeypatch.setitem(console.scan._limits, "entries", 5)
    src = make_sources(tmp_path / "src", 1)
    ref = make_sources(tmp_path / "ref", 8)
    with pytest.raises(SourceProblem, match=r"reference folder .*/ref: the scan stopped after 5 entries"):
        plan_edit(RunSpec(input_path=str(src), prompt="p", reference_dirs=(str(ref),)))


def test_reference_images_named_in_bytes_that_are_not_utf8_are_left_out(tmp_path):
    src = make_sources(tmp_path / "src", 1)
    ref = make_sources(tmp_path / "ref", 1)
    badly_named(ref, b"img1\xff.png")
    plan = plan_edit(RunSpec(input_path=str(src), prompt="p", reference_dirs=(str(ref),)))
    assert [t.references for t in plan.tasks] == [(str(ref / "img1.png"),)]
    bad_dir = os.fsdecode(os.fsencode(tmp_path) + b"/r\xff")
    with pytest.raises(SourceProblem, match=r"reference_dirs\[1\] is not valid text: .*/r\\xff"):
        plan_edit(RunSpec(input_path=str(src), prompt="p", reference_dirs=(bad_dir,)))
