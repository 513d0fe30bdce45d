"""Saves, captions, comparisons and review flags speak in codes: each refusal, report entry and flag reason
comes with its `*_msg` code and parameters beside the unchanged English, and a page in Chinese says them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from console.messages import CATALOG, Message, say
from console.review.judge import judge
from console.review.look import look_at
from console.store import NewResult, NewTask, Store
from testkit.images import make
from tests.helpers import api, make_sources, start, wait_idle


def finished_run(client, fake, folder: Path, **fields) -> tuple[str, list[dict]]:
    run_id = start(client, fake, folder, **fields)
    return run_id, wait_idle(client, run_id)["tasks"]


def save(client, run_id: str, out: Path, status: int = 200, **rule) -> dict:
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(out), **rule})
    assert answer.status_code == status, answer.json
    return answer.json


def coded(entry: dict, field: str, code: str) -> dict:
    """Assert that `entry[field]` comes with its code (and the code has its English); return its params."""
    found = entry.get(f"{field}_msg")
    assert found and found["code"] == code, (field, entry)
    assert code in CATALOG
    return found["params"]


@pytest.fixture
def square_run(client, fake, tmp_path):
    """A finished run of one 32x32 source whose results are 64x48, both results selected."""
    folder = tmp_path / "square"
    folder.mkdir()
    (folder / "sq.png").write_bytes(make("PNG", (32, 32), (255, 255, 255)))
    return finished_run(client, fake, folder)


# -- the save report --------------------------------------------------------------------------------

def test_a_save_with_refusals_answers_each_entry_with_its_code(client, fake, square_run, tmp_path):
    run_id, tasks = square_run
    answer = save(client, run_id, tmp_path / "out", layout="aitoolkit_edit", conform="none", only_selected=False)
    aspect = answer["skipped"][0]
    params = coded(aspect, "reason", "saving.aspect_differs")
    assert params == {"control": "32x32", "target": "64x48", "difference": 33.3, "tolerance": 2.0}
    assert aspect["reason"] == ("aspect ratio differs: control 32x32, target 64x48 (33.3% > 2.0%); "
                                "set conform to pad, crop or resize")
    assert coded(aspect, "fix", "saving.fix_aspect") == {"tolerance": 0.34}
    assert aspect["fix"].endswith("raise the aspect tolerance to 0.34")

    # A folder holding a file of the same name: that result is skipped; saved again, the other is saved before.
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "sq.jpg").write_bytes(b"someone's own file")
    first = save(client, run_id, tmp_path / "again", only_selected=False, template="{stem}")
    assert len(first["saved"]) == 1 and first["errors"] == [] and first["skipped"][0]["kind"] == "exists"
    again = save(client, run_id, tmp_path / "again", only_selected=False, template="{stem}")
    kinds = {entry["kind"]: entry for entry in again["skipped"]}
    assert set(kinds) == {"saved_before", "exists"}, again["skipped"]
    coded(kinds["saved_before"], "reason", "saving.saved_before")
    assert kinds["saved_before"]["reason"].startswith("saved here before (")
    coded(kinds["saved_before"], "fix", "saving.fix_resave")
    assert coded(kinds["exists"], "reason", "saving.exists")["path"].endswith("sq.jpg")
    coded(kinds["exists"], "fix", "saving.fix_exists")


def test_a_source_image_in_the_way_and_an_unselected_task_are_coded(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    run_id, tasks = finished_run(client, fake, folder)
    client.patch(f"/api/results/{tasks[0]['results'][1]['id']}", json={"selected": True})  # img1's PNG only
    answer = save(client, run_id, folder, template="{src_stem}", dry_run=True)
    refused = answer["errors"][0]
    assert refused["kind"] == "source" and refused["error"] == f"refused: {folder / 'img1.png'} is a source image of this run"
    reason = coded(refused, "error", "saving.refused")["reason"]
    assert reason == {"code": "saving.source_image", "params": {"path": str(folder / "img1.png")},
                      "text": f"{folder / 'img1.png'} is a source image of this run"}
    unselected = answer["skipped"][0]
    assert unselected["reason"] == "no selected result"
    coded(unselected, "reason", "saving.no_selected")
    coded(unselected, "fix", "saving.fix_unselected")


def test_a_task_without_results_is_skipped_saying_its_status_in_words(client, fake, tmp_path):
    run_id, tasks = finished_run(client, fake, make_sources(tmp_path / "src", 1), scenario="err_text_plain_500")
    assert tasks[0]["status"] == "failed"
    skipped = save(client, run_id, tmp_path / "out", only_selected=False)["skipped"][0]
    assert skipped["reason"] == "no results (task failed)"
    assert coded(skipped, "reason", "saving.no_results")["status"]["code"] == "saving.status_failed"


def test_a_refused_pair_and_a_missing_cache_file_are_coded(client, fake, app, tmp_path):
    body = {"mode": "generate", "prompt": "a red ball", "count": 1,
            "api": api(fake, "g3_stream_dataurl")}
    made = client.post("/api/runs", json=body)
    assert made.status_code == 201, made.json
    run_id = made.json["run_id"]
    tasks = wait_idle(client, run_id)["tasks"]
    answer = save(client, run_id, tmp_path / "pairs", layout="aitoolkit_edit", only_selected=False)
    errors = answer["errors"]
    assert errors and all(e["kind"] == "no_source" for e in errors)
    assert coded(errors[0], "error", "saving.refused")["reason"]["code"] == "saving.no_input"
    coded(errors[0], "fix", "saving.fix_no_input")
    gone = tasks[0]["results"][0]
    app.extensions["console.cache"].path(gone["sha256"], gone["format"]).unlink()
    missing = save(client, run_id, tmp_path / "flat", only_selected=False)["errors"][0]
    assert missing["error"] == "the result image is missing from the cache"
    coded(missing, "error", "saving.result_missing")
    coded(missing, "fix", "saving.fix_retry_fetch")


def test_a_folder_holding_another_runs_dataset_answers_its_code(client, fake, tmp_path):
    first, _ = finished_run(client, fake, make_sources(tmp_path / "a", 1))
    second, _ = finished_run(client, fake, make_sources(tmp_path / "b", 1))
    out = tmp_path / "out"
    save(client, first, out, only_selected=False)
    asked = save(client, second, out, status=409, only_selected=False)
    params = coded(asked, "error", "saving.other_runs")
    assert params == {"root": str(out.resolve()), "runs": first}
    assert asked["error"].startswith(f"'output_dir' {out.resolve()} holds the dataset of another run ({first})")


# -- the save rule and the save routes -------------------------------------------------------------

@pytest.mark.parametrize("rule, code, english", [
    ({}, "saving.output_dir_required", "'output_dir' is required"),
    ({"output_dir": 7}, "saving.output_dir_not_string", "'output_dir' must be a string"),
    ({"output_dir": "out"}, "saving.output_dir_not_absolute", "'output_dir' must be an absolute path, not 'out' ("),
    ({"shape": 1}, "saving.unknown_rule_fields", "unknown save rule field(s): shape"),
    ({"name": ".hidden"}, "saving.name_not_plain", "'name' must be a plain folder name"),
    ({"name": "x" * 201}, "saving.name_too_long", "'name' is longer than 200 bytes"),
    ({"replace_from": "a/b"}, "saving.stem_text_bad_chars", "'replace_from' must not hold slashes"),
    ({"template": "{seed}"}, "saving.template_unknown_variable", "'template': unknown variable {seed} (known: stem, n,"),
    ({"template": "{n!r}"}, "saving.template_conversion", "'template': {n} may only take a format spec like {n:04d}"),
    ({"template": "{n"}, "saving.template_invalid", "'template' is not a valid template: "),
    ({"template": "{stem:d}"}, "saving.template_fill", "'template': "),
    ({"template": "/abs/{stem}"}, "saving.name_absolute", "'template' gives an absolute path '/abs/image'"),
    ({"template": "a/../{stem}"}, "saving.name_bad_parts", "'template' gives 'a/../image': empty, '.' and '..'"),
    ({"layout": "civitai_edit", "format": "webp"}, "saving.format_unsuited",
     "'format' webp does not suit the civitai_edit layout: it takes png, jpeg"),
    ({"layout": "aitoolkit_edit", "template": "a/{stem}"}, "saving.template_has_folders", "'template' gives 'a/image'"),
    ({"aspect_tolerance": 11}, "fields.bad_meaning",
     "'aspect_tolerance' must be a number from 0 to 10 (0.02 = 2 %); got 11"),
    ({"aspect_tolerance": "x"}, "fields.not_number", "'aspect_tolerance' must be a number"),
    ({"sequential": "yes"}, "fields.not_flag", "'sequential' must be true or false"),
])
def test_a_bad_save_rule_answers_its_code(client, fake, tmp_path, rule, code, english):
    run_id, _ = finished_run(client, fake, make_sources(tmp_path / "src", 1))
    body = {"output_dir": str(tmp_path / "out"), **rule}
    if "output_dir" in rule or rule == {}:
        body = dict(rule)
    answer = client.post(f"/api/runs/{run_id}/save", json=body)
    assert answer.status_code == 400, answer.json
    assert answer.json["error"].startswith(english), answer.json["error"]
    assert answer.json["error_msg"]["code"] == code, answer.json
    if code == "fields.bad_meaning":
        assert answer.json["error_msg"]["params"]["meaning"]["code"] == "saving.tolerance_meaning"


def test_the_output_folder_checks_are_coded(client, fake, tmp_path):
    run_id, _ = finished_run(client, fake, make_sources(tmp_path / "src", 1))
    inside = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(tmp_path / "data" / "x")})
    assert inside.status_code == 400 and inside.json["error_msg"]["code"] == "saving.output_dir_in_data"
    (tmp_path / "file").write_text("x")
    blocked = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(tmp_path / "file" / "x")})
    assert blocked.status_code == 400 and blocked.json["error_msg"]["code"] == "saving.output_dir_not_created"
    assert blocked.json["error"].startswith(f"'output_dir' {tmp_path / 'file' / 'x'} cannot be created: ")


def test_the_save_routes_refusals_are_coded(client, tmp_path):
    rule = {"output_dir": str(tmp_path / "out")}
    cases = [
        (client.post("/api/runs/nope/save", json=rule), 404, "saving.no_run", "no run nope"),
        (client.post("/api/results/nope/save", json=rule), 404, "saving.no_result", "no result nope"),
        (client.get("/api/results/nope/saves"), 404, "saving.no_result", "no result nope"),
        (client.get("/api/save-jobs/nope"), 404, "saving.no_save_job", "no save job nope"),
        (client.post("/api/save-jobs/nope/cancel"), 404, "saving.no_save_job", "no save job nope"),
    ]
    for answer, status, code, english in cases:
        assert answer.status_code == status and answer.json["error"] == english
        assert answer.json["error_msg"]["code"] == code


def test_a_bad_job_id_is_coded(client, fake, tmp_path):
    run_id, _ = finished_run(client, fake, make_sources(tmp_path / "src", 1))
    answer = client.post(f"/api/runs/{run_id}/save?job=a b", json={"output_dir": str(tmp_path / "out")})
    assert answer.status_code == 400 and answer.json["error_msg"]["code"] == "saving.bad_job_id"


# -- captions and comparisons ---------------------------------------------------------------------

@pytest.mark.parametrize("body, code", [
    ({"replace": "x"}, "fields.missing"),
    ({"find": "", "replace": "x"}, "saving.find_required"),
    ({"find": "(", "regex": True, "replace": "x"}, "saving.find_bad_regex"),
    ({"find": "a", "regex": True, "replace": "\\9"}, "saving.replace_bad"),
])
def test_find_and_replace_refusals_are_coded(client, fake, tmp_path, body, code):
    run_id, _ = finished_run(client, fake, make_sources(tmp_path / "src", 1))
    answer = client.post(f"/api/runs/{run_id}/captions/replace", json=body)
    assert answer.status_code == 400, answer.json
    if code == "fields.missing":  # 'find' missing: the text check says it is not a string, or the route requires it
        assert answer.json["error_msg"]["code"] in ("saving.find_required", "fields.not_string")
        return
    assert answer.json["error_msg"]["code"] == code
    assert client.post("/api/runs/nope/captions/replace", json={"find": "a"}).json["error_msg"]["code"] == "saving.no_run"


def test_a_caption_too_long_is_coded():
    from console.store_captions import CaptionTooLong, clean_caption

    with pytest.raises(CaptionTooLong) as raised:
        clean_caption("x" * 9000)
    message = raised.value.args[0]
    assert message == "a caption must be at most 8 KiB of text; got 9,000 bytes"
    assert isinstance(message, Message) and message.code == "saving.caption_too_long"


@pytest.mark.parametrize("variants, code", [
    (None, "saving.variants_none"),
    ([{"name": "a", "prompt": "p"}], "saving.variants_count"),
    (["x", "y"], "saving.variant_not_object"),
    ([{"name": "", "prompt": "p"}, {"name": "b", "prompt": "q"}], "saving.variant_text_required"),
    ([{"name": "a" * 41, "prompt": "p"}, {"name": "b", "prompt": "q"}], "saving.variant_text_too_long"),
    ([{"name": "a", "prompt": "p", "api": 3}, {"name": "b", "prompt": "q"}], "saving.variant_api_not_object"),
    ([{"name": "a", "prompt": "p"}, {"name": "A", "prompt": "q"}], "saving.variant_same_name"),
    ([{"name": "a", "prompt": "p"}, {"name": "b", "prompt": "p"}], "saving.variant_same"),
])
def test_comparison_refusals_are_coded(client, tmp_path, variants, code):
    body = {"input_path": str(tmp_path), "sample": 2, **({"variants": variants} if variants is not None else {})}
    answer = client.post("/api/comparisons", json=body)
    assert answer.status_code == 400, answer.json
    assert answer.json["error_msg"]["code"] == code, answer.json


def test_comparison_lookups_are_coded(client):
    answer = client.get("/api/comparisons/nope")
    assert answer.status_code == 404 and answer.json["error"] == "no comparison nope"
    assert answer.json["error_msg"] == {"code": "saving.no_comparison", "params": {"comparison_id": "nope"}}
    bad = client.post("/api/comparisons", json={"sample": 0, "variants": []})
    assert bad.status_code == 400 and bad.json["error_msg"]["params"]["meaning"]["code"] == "saving.sample_meaning"


# -- review flags -----------------------------------------------------------------------------------

def test_the_judge_gives_its_reasons_as_messages_in_the_same_english(tmp_path):
    source_path = tmp_path / "source.png"
    Image.new("RGB", (64, 48), (250, 250, 250)).save(source_path)
    blank = judge(look_at(source_path), None, 1.0)
    assert blank["blank"] == "nearly one colour (its tones span 0 of 255 levels)"
    assert blank["blank"].code == "review.blank"
    assert blank["off_size"] == "64×48 is 33% off the aspect of the requested size"
    assert blank["off_size"].as_json() == {"code": "review.off_size_requested", "params": {"size": "64×48", "off": 33}}


def test_flag_reasons_keep_their_codes_in_the_store_and_after_a_restart(tmp_path):
    path = tmp_path / "x.db"
    store = Store(path)
    run_id = store.create_run("/in", False, "p", {"model": "m", "api_url": "http://127.0.0.1:9/v1"},
                              [NewTask("a.png", "/in/a.png"), NewTask("b.png", "/in/b.png")])
    ids = []
    for task_id in store.task_ids(run_id, ["pending"]):
        store.start_task(task_id, first_attempt=True)
        store.finish_task(task_id, "done", results=[NewResult(task_id[-1] * 64, "png", 8, 6, 10, "b64")])
        ids.append(store.task(task_id).results[0].id)
    unchanged = say("review.unchanged", mean=0.4)
    store.record_flags([(ids[0], {"unchanged": unchanged}, None), (ids[1], {}, None)])
    twin = say("review.near_duplicate", number=1, name="a.png")
    store.record_flags([], duplicates=[(ids[0], twin)])
    del store

    again = Store(path)  # a restart: the reasons come back from the columns
    reasons = again.result(ids[0]).flag_reasons
    assert reasons == {"unchanged": "the source again (cells differ by 0.4 levels on average)",
                       "near_duplicate": "the same picture as the result of task #1 (a.png)"}
    assert all(isinstance(reason, Message) for reason in reasons.values())
    assert reasons["unchanged"].as_json() == unchanged.as_json() and reasons["near_duplicate"].as_json() == twin.as_json()
    assert again.result(ids[1]).flag_reasons == {}


def test_a_runs_listing_says_each_flag_reason_with_its_code(app, client, fake, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    Image.new("RGB", (64, 48), (250, 250, 250)).save(folder / "white.png")
    run_id = start(client, fake, folder, "review_mix.plan=blank")  # answered with a grey frame: blank
    wait_idle(client, run_id)
    assert app.extensions["console.engine"].flagger.wait_idle(20)
    results = [r for task in client.get(f"/api/runs/{run_id}/tasks").json["tasks"] for r in task["results"]]
    flagged = [r for r in results if r["flags"]]
    assert flagged, results
    for result in flagged:
        for flag in result["flags"]:
            found = result["flag_reasons_msg"][flag]
            assert found["code"].startswith("review.") and found["code"] in CATALOG
        assert sorted(result["flag_reasons"]) == sorted(result["flags"])  # one reason per flag, nothing else


# -- the page in Chinese ----------------------------------------------------------------------------

ENGLISH_SENTENCE = re.compile(r"\b[A-Za-z]{2,}(?: [A-Za-z']{2,}){2,}")  # three English words in a row


@pytest.mark.browser
def test_a_save_report_and_a_refused_rule_read_in_chinese(browser, server, fake, tmp_path):
    pytest.importorskip("playwright.sync_api")
    from tests.browser import open_tab, start_run, wait_count

    folder = make_sources(tmp_path / "src", 2)
    tab = open_tab(browser, server.url, locale="zh-CN")
    try:
        start_run(tab, fake, folder)
        wait_count(tab, "done", 2)
        tab.click("#open-save")
        form = tab.locator("#save-form")
        form.locator("[name=output_dir]").fill(str(folder))
        form.locator("[name=template]").fill("{src_stem}")  # the first result, as PNG, is named as its source
        form.locator("[name=format]").select_option("png")
        form.locator("[name=only_selected]").uncheck()
        tab.click("#save-preview")
        report = tab.locator("[data-testid=save-report]")
        report.locator("[data-reason=source]").wait_for()
        text = report.inner_text()
        assert "是本批次的原图" in text, text
        assert "is a source image" not in text and "refused" not in text
        assert not ENGLISH_SENTENCE.search(text), ENGLISH_SENTENCE.search(text)

        form.locator("[name=output_dir]").fill(str(tmp_path / "out"))
        form.locator("[name=layout]").select_option("aitoolkit_edit")
        form.locator("[name=name]").fill(".hidden")
        tab.click("#save-preview")
        toast = tab.locator(".toast", has_text="'name'")
        toast.first.wait_for()
        said = toast.first.inner_text()
        assert "必须是普通的文件夹名" in said and "must be" not in said, said
    finally:
        tab.context.close()
    assert [e for e in tab.console_errors if "400" not in e] == [], tab.console_errors


@pytest.mark.browser
def test_a_flagged_results_reason_reads_in_chinese(browser, server, fake, tmp_path):
    pytest.importorskip("playwright.sync_api")
    from tests.browser import open_tab, start_run, wait_count

    folder = tmp_path / "src"
    folder.mkdir()
    Image.new("RGB", (64, 48), (250, 250, 250)).save(folder / "white.png")
    tab = open_tab(browser, server.url, locale="zh-CN")
    try:
        start_run(tab, fake, folder, "review_mix.plan=blank")
        wait_count(tab, "done", 1)
        chip = tab.locator("[data-testid=result-flags] .flag").first
        chip.wait_for(timeout=30_000)
        title = chip.get_attribute("title")
        assert title and re.search(r"[\u4e00-\u9fff]", title), title
        assert not ENGLISH_SENTENCE.search(title), title
    finally:
        tab.context.close()
    assert tab.console_errors == [], tab.console_errors
