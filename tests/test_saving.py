"""Save rules, templates, captions and aspect checks: the pure parts of console.saving."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from console.records import ResultRecord, TaskRecord
from console.saving import (
    LEGACY_PRESETS, Memory, RuleError, SaveJob, SaveJobs, SaveRule, aspect_difference, base_stem, builtin_presets,
    caption_text, caption_values, check_template, destination, name_values, relative_name, render,
)

OUT = "/tmp/out"


def rule(**fields) -> SaveRule:
    return SaveRule.from_dict({"output_dir": OUT, **fields})


# -- rule validation ----------------------------------------------------------------------------

def test_defaults_depend_on_the_layout():
    flat = rule()
    assert (flat.layout, flat.format, flat.caption, flat.template, flat.conflict) == ("flat", "keep", "none", "{stem}_{n}", "skip")
    assert (flat.replace_from, flat.replace_to, flat.first_only, flat.role_swap, flat.resave) == ("", "", False, False, False)
    for layout in ("fal_start_end", "civitai_edit"):
        assert (rule(layout=layout).format, rule(layout=layout).caption) == ("png", "prompt")
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
    ({"output_dir": OUT, "name": "n" * 201}, "'name' is longer than 200 bytes"),
    ({"output_dir": OUT, "template": "{stem}_{seed}"}, "'template': unknown variable {seed}"),
    ({"output_dir": OUT, "template": "{}"}, "'template': unknown variable {}"),
    ({"output_dir": OUT, "template": "{stem.__class__}"}, "unknown variable {stem.__class__}"),
    ({"output_dir": OUT, "template": "{stem!r}"}, "may only take a format spec"),
    ({"output_dir": OUT, "template": "{stem"}, "'template' is not a valid template"),
    ({"output_dir": OUT, "template": "{stem:04d}"}, "'template': Unknown format code 'd'"),
    ({"output_dir": OUT, "caption": "template", "caption_template": "{prompt} {seed}"}, "'caption_template': unknown variable {seed}"),
    ({"output_dir": OUT, "template": "{image_name}"}, "'template': unknown variable {image_name}"),
    ({"output_dir": OUT, "template": "{global_index:04x}{src_stem:d}"}, "'template': Unknown format code 'd'"),
    ({"output_dir": OUT, "replace_from": 3}, "'replace_from' must be a string"),
    ({"output_dir": OUT, "replace_to": "a/b"}, "'replace_to' must not hold slashes"),
    ({"output_dir": OUT, "replace_from": "x" * 201}, "'replace_from' is longer than 200"),
    ({"output_dir": OUT, "first_only": "yes"}, "'first_only' must be true or false"),
    ({"output_dir": OUT, "role_swap": 1}, "'role_swap' must be true or false"),
    ({"output_dir": OUT, "resave": "no"}, "'resave' must be true or false"),
    ({"output_dir": OUT, "layout": "civitai_edit", "format": "webp"}, "'format' webp does not suit the civitai_edit"),
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
    assert caption_text(edit, " make it blue ", {"stem": "a"}) == "ohwx make it blue"
    assert caption_text(edit, "ohwx, make it blue", {"stem": "a"}) == "ohwx, make it blue"  # present: not added twice
    assert caption_text(rule(layout="aitoolkit_edit"), "make it blue", {"stem": "a"}) == "make it blue"
    assert caption_text(rule(layout="aitoolkit_edit", caption="none", trigger="t"), "p", {"stem": "a"}) is None


def test_caption_template_replaces_the_trigger_marker():
    templated = rule(caption="template", caption_template="[trigger] style: {prompt} ({stem})", trigger="ohwx")
    assert caption_text(templated, "make it blue", {"stem": "cat"}) == "ohwx style: make it blue (cat)"
    braces = rule(caption="template", caption_template="{trigger}: {prompt}", trigger="tok")
    assert caption_text(braces, "use {curly} text", {}) == "tok: use {curly} text"


# -- the older console's vocabulary --------------------------------------------------------------------

TASK = TaskRecord(id="t1", run_id="r1", index=6, source_name="sub/001_start.PNG", source_path="/in/sub/001_start.PNG",
                  prompt="make it blue", status="done", attempts=1, http_status=None, error=None, warning=None, rev=1,
                  output_name=None, references=(), overrides={}, parent=None)
RESULT = ResultRecord(id="i9", task_id="t1", width=8, height=8, format="png", sha256="deadbeef" + "0" * 56, size=10,
                      origin="b64", prompt=None, caption=None, answer_text=None, selected=False, saved=False, flags=(),
                      flag_reasons={}, flags_checked=False)


def test_old_and_new_variables_name_the_same_things():
    values = name_values(TASK, RESULT, 2, 31, rule(), "20250102")
    assert values == {"stem": "001_start", "src_stem": "001_start", "src_name": "001_start.PNG", "src_ext": "PNG",
                      "n": 2, "result_index": 2, "index": 7, "global_index": 31, "run": "r1", "task": "t1",
                      "task_id": "t1", "result": "i9", "result_id": "i9", "sha8": "deadbeef", "date": "20250102"}
    assert render("{src_stem}_{global_index:04d}_{result_index}", values, "template") == "001_start_0031_2"
    assert render("{task_id}/{result_id}.{src_ext}", values, "template") == "t1/i9.PNG"


def test_replace_applies_to_the_stem_everywhere_but_not_to_the_source_name():
    swap = rule(replace_from="start", replace_to="end", caption="template",
                caption_template="{src_name} -> {image_name} ({stem}, {src_stem})")
    values = name_values(TASK, RESULT, 1, 1, swap, "20250102")
    assert values["stem"] == values["src_stem"] == "001_end" and values["src_name"] == "001_start.PNG"
    caption = caption_text(swap, "p", caption_values(values, "p", swap, Path("/out/001_end.png")))
    assert caption == "001_start.PNG -> 001_end.png (001_end, 001_end)"
    assert base_stem(replace(TASK, source_name="start_start.png"), swap) == "end_end"  # every occurrence, like str.replace
    assert base_stem(replace(TASK, source_name="photo.png"), swap) == "photo"  # nothing to replace
    assert base_stem(replace(TASK, source_name="start.png"), rule(replace_from="start")) == "image"  # never empty


def test_a_tasks_output_name_stands_in_for_the_source_stem():
    named = replace(TASK, source_name="cat_snow_2", source_path="", output_name="cat/snow 2")
    assert base_stem(named, rule()) == "cat_snow 2"  # one plain file name
    values = name_values(named, RESULT, 1, 1, rule(), "d")
    assert values["src_name"] == "cat_snow_2" and values["src_ext"] == ""


def test_caption_templates_see_the_image_written():
    templated = rule(caption="template", caption_template="{image_name}|{image_path}|{src_name}|{n}|{prompt}")
    values = caption_values(name_values(TASK, RESULT, 1, 1, templated, "d"), "go", templated, Path("/o/a.png"))
    assert caption_text(templated, "go", values) == "a.png|/o/a.png|001_start.PNG|1|go"


# -- memory, progress, presets ------------------------------------------------------------------------

def test_destination_is_layout_name_and_role_swap():
    assert destination(rule()) == "flat"
    assert destination(rule(name="x", role_swap=True)) == "flat"  # the flat layout has no roles to swap
    assert destination(rule(layout="musubi", name="set")) == "musubi/set"
    assert destination(rule(layout="fal_start_end", name="z", role_swap=True)) == "fal_start_end/z+swap"


def test_memory_reads_the_manifest_and_older_lines_without_a_destination(tmp_path):
    lines = [
        {"destination": "aitoolkit_edit/blue", "source_sha256": "s1", "result_sha256": "r1", "paths": ["/a"],
         "timestamp": "T1"},
        {"layout": "aitoolkit_edit", "source_sha256": "s2", "result_sha256": "r2",
         "paths": [f"{tmp_path}/blue_control/x.png", f"{tmp_path}/blue_target/x.png"], "timestamp": "T2"},
        {"layout": "musubi", "source_sha256": None, "result_sha256": "r3", "paths": [f"{tmp_path}/set/image/y.png"]},
        {"destination": "aitoolkit_edit/other", "source_sha256": "s1", "result_sha256": "r9", "paths": []},
    ]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{cut line\n", "utf-8")
    memory = Memory(tmp_path, rule(layout="aitoolkit_edit", name="blue"))
    assert memory.find("s1", "r1").paths == ["/a"] and memory.find("s2", "r2").timestamp == "T2"
    assert memory.find("s1", "r9") is None and memory.knows("r2") and not memory.knows("r9")
    assert memory.find("other", "r1") is None  # another source with the same result bytes
    assert Memory(tmp_path, rule(layout="musubi", name="set")).find(None, "r3") is not None
    assert Memory(tmp_path / "nowhere", rule()).saved == {}


def test_save_jobs_keep_progress_and_refuse_a_running_id():
    jobs = SaveJobs()
    job = jobs.start("a")
    assert jobs.start("a") is None  # still running
    job.step("writing", 3, 10, saved=2)
    assert {k: v for k, v in job.snapshot().items() if k != "elapsed_s"} == {
        "job": "a", "phase": "writing", "done": 3, "total": 10, "saved": 2, "cancelled": False, "finished": False}
    job.cancel()
    assert jobs.get("a").cancelled is True
    job.step("done", 3, 10)
    assert jobs.start("a") is not None and jobs.get("a") is not job  # a finished id can be used again
    assert jobs.get("b") is None
    for number in range(200):
        jobs.start(f"j{number}").step("done", 0, 0)
    assert len(jobs._jobs) <= 60  # finished jobs are forgotten after a while
    assert isinstance(SaveJob().snapshot()["elapsed_s"], float)


def test_builtin_presets_are_valid_rules_with_honest_labels():
    presets = builtin_presets()
    assert [p["label"] for p in presets] == ["AI-Toolkit edit (start→end, no txt)", "keep source name", "source with txt",
                                             "first only, clean", "indexed archive"]
    for preset in presets:
        parsed = SaveRule.from_dict({"output_dir": OUT, **preset["rule"]})
        assert parsed.layout == "flat" and parsed.template.startswith("{src_stem}")
    presets[0]["rule"]["template"] = "changed"
    assert LEGACY_PRESETS["aitoolkit_start_end"]["rule"]["template"] == "{src_stem}"  # handed out as copies


# -- aspect -------------------------------------------------------------------------------------

def test_aspect_difference_is_relative_and_symmetric():
    assert aspect_difference((16, 12), (64, 48)) == 0
    assert aspect_difference((32, 32), (64, 48)) == pytest.approx(1 / 3)
    assert aspect_difference((64, 48), (32, 32)) == pytest.approx(1 / 3)
    assert aspect_difference((101, 100), (100, 100)) == pytest.approx(0.01)


def test_saving_leaves_pillow_to_imaging():
    """Pillow is imported only by console/imaging.py, console/cache.py, the review flags' image analysis
    (console/review/look.py and judge.py) and the image a captioning call sends (console/captioning/image.py),
    whose whole job is pixels: saving never decodes by itself."""
    root = Path(__file__).resolve().parents[1] / "console"
    users = {str(path.relative_to(root)) for path in root.rglob("*.py")
             if any(line.lstrip().startswith(("from PIL", "import PIL")) for line in path.read_text().splitlines())}
    assert users == {"imaging.py", "cache.py", "review/look.py", "review/judge.py", "captioning/image.py"}


def test_pair_layouts_conform_by_default_and_flat_does_not():
    assert rule(layout="aitoolkit_edit").conform == "auto" and rule(layout="aitoolkit_edit", conform="").conform == "auto"
    assert rule(layout="aitoolkit_edit", conform="none").conform == "none" and rule().conform == "none"


def test_a_template_is_given_only_when_the_body_names_one_and_append_is_a_flag():
    assert rule(layout="musubi").template_given is False and rule(layout="musubi", template="").template_given is False
    assert rule(layout="musubi", template="wc_{n}").template_given is True
    assert rule(append=True).append is True and rule().append is False
    with pytest.raises(RuleError, match="unknown save rule field"):
        rule(template_given=True)
    with pytest.raises(RuleError, match="'append' must be true or false"):
        rule(append="yes")


def test_refuse_is_the_drawers_name_for_conform_none():
    assert rule(layout="aitoolkit_edit", conform="refuse").conform == "none"
