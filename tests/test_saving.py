"""Save rules, templates, captions and aspect checks: the pure parts of console.saving."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from console.saving import RuleError, SaveRule, aspect_difference, caption_text, check_template, relative_name, render

OUT = "/tmp/out"


def rule(**fields) -> SaveRule:
    return SaveRule.from_dict({"output_dir": OUT, **fields})


# -- rule validation ----------------------------------------------------------------------------

def test_defaults_depend_on_the_layout():
    flat = rule()
    assert (flat.layout, flat.format, flat.caption, flat.template, flat.conflict) == ("flat", "keep", "none", "{stem}_{n}", "skip")
    assert flat.only_selected is True and flat.aspect_tolerance == 0.02 and flat.conform == "none"
    assert flat.output_dir == Path(OUT) and flat.dry_run is False
    edit = rule(layout="aitoolkit_edit")
    assert (edit.format, edit.caption, edit.name, edit.sequential) == ("png", "prompt", "dataset", False)
    assert rule(layout="musubi", format="keep", caption="none").caption == "none"
    blank = rule(layout="aitoolkit_edit", format="", caption="", conflict="", name="", template="", trigger="")
    assert (blank.format, blank.caption, blank.conflict, blank.name, blank.template) == ("png", "prompt", "skip", "dataset", "{stem}_{n}")


@pytest.mark.parametrize("body, message", [
    ({}, "'output_dir' is required"),
    ({"output_dir": ""}, "'output_dir' is required"),
    ({"output_dir": "relative/dir"}, "'output_dir' must be an absolute path"),
    ({"output_dir": 5}, "'output_dir' must be a string"),
    ({"output_dir": OUT, "layout": "kohya"}, "'layout' must be one of flat, aitoolkit_edit"),
    ({"output_dir": OUT, "format": "PNG"}, "'format' must be one of png, jpeg, webp, keep"),
    ({"output_dir": OUT, "caption": "yes"}, "'caption' must be one of"),
    ({"output_dir": OUT, "conflict": "merge"}, "'conflict' must be one of"),
    ({"output_dir": OUT, "conform": "fit"}, "'conform' must be one of"),
    ({"output_dir": OUT, "sequential": "yes"}, "'sequential' must be true or false"),
    ({"output_dir": OUT, "only_selected": 1}, "'only_selected' must be true or false"),
    ({"output_dir": OUT, "dry_run": "true"}, "'dry_run' must be true or false"),
    ({"output_dir": OUT, "aspect_tolerance": "2%"}, "'aspect_tolerance' must be a number"),
    ({"output_dir": OUT, "aspect_tolerance": True}, "'aspect_tolerance' must be a number"),
    ({"output_dir": OUT, "aspect_tolerance": -1}, "'aspect_tolerance' must be a number from 0 to 10"),
    ({"output_dir": OUT, "template": 3}, "'template' must be a string"),
    ({"output_dir": OUT, "name": "a/b"}, "'name' must be a plain folder name"),
    ({"output_dir": OUT, "name": ".."}, "'name' must be a plain folder name"),
    ({"output_dir": OUT, "template": "{stem}_{seed}"}, "'template': unknown variable {seed}"),
    ({"output_dir": OUT, "template": "{}"}, "'template': unknown variable {}"),
    ({"output_dir": OUT, "template": "{stem.__class__}"}, "unknown variable {stem.__class__}"),
    ({"output_dir": OUT, "template": "{stem!r}"}, "may only take a format spec"),
    ({"output_dir": OUT, "template": "{stem"}, "'template' is not a valid template"),
    ({"output_dir": OUT, "template": "{stem:04d}"}, "'template': Unknown format code 'd'"),
    ({"output_dir": OUT, "caption": "template", "caption_template": "{prompt} {n}"}, "'caption_template': unknown variable {n}"),
    ({"output_dir": OUT, "colour": "red"}, "unknown save rule field(s): colour"),
])
def test_bad_rules_name_the_field(body, message):
    with pytest.raises(RuleError) as caught:
        SaveRule.from_dict(body)
    assert message in str(caught.value)


def test_rule_must_be_an_object():
    with pytest.raises(RuleError, match="JSON object"):
        SaveRule.from_dict(["output_dir"])  # type: ignore[arg-type]


# -- templates ----------------------------------------------------------------------------------

VALUES = {"stem": "cat", "n": 2, "index": 7, "run": "r1", "task": "t1", "result": "i1", "sha8": "deadbeef",
          "date": "20250102"}


@pytest.mark.parametrize("template, expected", [
    ("{stem}_{n}", "cat_2"),
    ("{index:04d}", "0007"),
    ("{index:04d}_{n:02d}_{sha8}", "0007_02_deadbeef"),
    ("{run}/{task}/{result}", "r1/t1/i1"),
    ("{date}-{stem:>5}", "20250102-  cat"),
    ("literal {{braces}} {stem}", "literal {braces} cat"),
])
def test_templates_render_with_format_specs(template, expected):
    check_template(template, tuple(VALUES), "template")
    assert render(template, VALUES, "template") == expected


@pytest.mark.parametrize("template", ["../x", "../{stem}", "{stem}/../../x", "/abs/{stem}", "\\abs", "a//b",
                                      "./{stem}", "{stem}/", "C:/x"])
def test_templates_that_escape_output_dir_are_refused(template):
    with pytest.raises(RuleError, match="template"):
        rule(template=template)


def test_rendered_names_may_hold_subfolders_but_never_escape():
    assert relative_name("a/b/c", "template") == PurePosixPath("a", "b", "c")
    assert relative_name("a\\b", "template") == PurePosixPath("a", "b")
    for bad in ("..", "a/..", "/etc/passwd", "a/./b", "x\0y"):
        with pytest.raises(RuleError):
            relative_name(bad, "template")


# -- captions -----------------------------------------------------------------------------------

def test_caption_is_the_prompt_with_the_trigger_in_front():
    edit = rule(layout="aitoolkit_edit", trigger="ohwx")
    assert caption_text(edit, " make it blue ", "a") == "ohwx make it blue"
    assert caption_text(edit, "ohwx, make it blue", "a") == "ohwx, make it blue"  # present: not added twice
    assert caption_text(rule(layout="aitoolkit_edit"), "make it blue", "a") == "make it blue"
    assert caption_text(rule(layout="aitoolkit_edit", caption="none", trigger="t"), "p", "a") is None


def test_caption_template_replaces_the_trigger_marker():
    templated = rule(caption="template", caption_template="[trigger] style: {prompt} ({stem})", trigger="ohwx")
    assert caption_text(templated, "make it blue", "cat") == "ohwx style: make it blue (cat)"
    braces = rule(caption="template", caption_template="{trigger}: {prompt}", trigger="tok")
    assert caption_text(braces, "use {curly} text", "c") == "tok: use {curly} text"


# -- aspect -------------------------------------------------------------------------------------

def test_aspect_difference_is_relative_and_symmetric():
    assert aspect_difference((16, 12), (64, 48)) == 0
    assert aspect_difference((32, 32), (64, 48)) == pytest.approx(1 / 3)
    assert aspect_difference((64, 48), (32, 32)) == pytest.approx(1 / 3)
    assert aspect_difference((101, 100), (100, 100)) == pytest.approx(0.01)


def test_saving_leaves_pillow_to_imaging():
    """Pillow is imported only by console/imaging.py and console/cache.py (issue 9)."""
    root = Path(__file__).resolve().parents[1] / "console"
    users = {str(path.relative_to(root)) for path in root.rglob("*.py")
             if any(line.lstrip().startswith(("from PIL", "import PIL")) for line in path.read_text().splitlines())}
    assert users == {"imaging.py", "cache.py"}
