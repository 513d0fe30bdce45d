"""Reference images matched by stem from other folders, in edit mode."""

from __future__ import annotations

import pytest

from console.sources import RunSpec, SourceProblem, plan_edit, preview, scanned
from tests.helpers import make_sources


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
