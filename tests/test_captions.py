"""Captions through the API: a result's own caption, find and replace, captions in saves, the answer's text."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import make_sources, start, wait_idle


def _run(client, fake, tmp_path, count: int = 3, scenario: str = "g3_stream_dataurl") -> tuple[str, list[dict]]:
    """Run `count` sources through the fake; return the run id and its tasks."""
    run_id = start(client, fake, make_sources(tmp_path / "src", count), scenario=scenario)
    return run_id, wait_idle(client, run_id)["tasks"]


def _caption(client, result_id: str, caption) -> dict:
    answer = client.patch(f"/api/results/{result_id}", json={"caption": caption})
    assert answer.status_code == 200, answer.json
    return answer.json


# -- a result's own caption ---------------------------------------------------------------------

def test_a_caption_is_trimmed_kept_and_sent_again_to_an_incremental_listing(client, fake, tmp_path):
    run_id, tasks = _run(client, fake, tmp_path, count=2)
    result = tasks[1]["results"][0]
    assert result["caption"] is None and "answer_text" in result
    rev = client.get(f"/api/runs/{run_id}/tasks").json["rev"]
    answer = _caption(client, result["id"], "  a red car, studio light \n")
    assert answer["caption"] == "a red car, studio light" and answer["id"] == result["id"]
    changed = client.get(f"/api/runs/{run_id}/tasks?since={rev}").json["tasks"]
    assert [task["id"] for task in changed] == [tasks[1]["id"]]
    assert changed[0]["results"][0]["caption"] == "a red car, studio light"
    assert client.get(f"/api/tasks/{tasks[1]['id']}").json["results"][0]["caption"] == "a red car, studio light"


def test_an_empty_caption_goes_back_to_the_rules_and_selection_can_change_with_it(client, fake, tmp_path):
    _, tasks = _run(client, fake, tmp_path, count=1)
    result_id = tasks[0]["results"][0]["id"]
    _caption(client, result_id, "mine")
    assert _caption(client, result_id, "   ")["caption"] is None
    _caption(client, result_id, "mine")
    assert _caption(client, result_id, None)["caption"] is None
    both = client.patch(f"/api/results/{result_id}", json={"selected": True, "caption": "ü" * 4096}).json
    assert both["selected"] is True and both["caption"] == "ü" * 4096  # 8,192 bytes: at the limit
    assert client.patch(f"/api/results/{result_id}", json={"selected": False}).json["caption"] == "ü" * 4096


@pytest.mark.parametrize(("body", "message"), [
    ({"caption": 12}, "'caption' must be a string"),
    ({"caption": ["a"]}, "'caption' must be a string"),
    ({"caption": "a\ud800b"}, "'caption' is not valid text: it holds a lone surrogate"),
    ({"caption": "é" * 4607}, "'caption' must be at most 8 KiB of text; got 9,214 bytes"),
    ({"caption": "a", "tags": "x"}, "unknown field 'tags': a result's update takes selected, caption"),
    ({}, "nothing to change: a result's update takes selected, caption"),
    ({"selected": None}, "'selected' is required"),
    ({"selected": "yes"}, "'selected' must be true or false"),
])
def test_bad_updates_name_the_field_and_change_nothing(client, fake, tmp_path, body, message):
    _, tasks = _run(client, fake, tmp_path, count=1)
    result_id = tasks[0]["results"][0]["id"]
    _caption(client, result_id, "kept")
    answer = client.patch(f"/api/results/{result_id}", json=body)
    assert answer.status_code == 400 and answer.json["error"].startswith(message)
    assert client.get(f"/api/tasks/{tasks[0]['id']}").json["results"][0]["caption"] == "kept"


def test_an_unknown_result_is_a_404(client):
    answer = client.patch("/api/results/nope", json={"caption": "x"})
    assert answer.status_code == 404 and "nope" in answer.json["error"]


# -- find and replace ---------------------------------------------------------------------------

def _captioned(client, fake, tmp_path, captions: list[str | None]) -> tuple[str, list[dict]]:
    """A run with one result per caption given (None: no caption of its own); return it and its results."""
    run_id, tasks = _run(client, fake, tmp_path, count=len(captions), scenario="g16_stream_dataurl")
    results = [task["results"][0] for task in tasks]
    for result, caption in zip(results, captions):
        if caption is not None:
            _caption(client, result["id"], caption)
    return run_id, results


def _replace(client, run_id: str, **body) -> dict:
    answer = client.post(f"/api/runs/{run_id}/captions/replace", json=body)
    assert answer.status_code == 200, answer.json
    return answer.json


def _captions(client, run_id: str) -> list[str | None]:
    return [task["results"][0]["caption"] for task in client.get(f"/api/runs/{run_id}/tasks").json["tasks"]]


def test_a_literal_replace_changes_own_captions_and_counts_the_others(client, fake, tmp_path):
    run_id, results = _captioned(client, fake, tmp_path, ["a Red car", "red \\1 red", None, "blue sky"])
    rev = client.get(f"/api/runs/{run_id}/tasks").json["rev"]
    answer = _replace(client, run_id, find="red", replace="gr\\1een")
    assert answer == {"changed": 1, "matched": 1, "too_long": 0, "without_caption": 1, "changes": [
        {"result_id": results[1]["id"], "task_id": answer["changes"][0]["task_id"], "source_name": "img2.png",
         "before": "red \\1 red", "after": "gr\\1een \\1 gr\\1een"}]}
    assert _captions(client, run_id) == ["a Red car", "gr\\1een \\1 gr\\1een", None, "blue sky"]
    changed = client.get(f"/api/runs/{run_id}/tasks?since={rev}").json["tasks"]
    assert [task["source_name"] for task in changed] == ["img2.png"]
    assert _replace(client, run_id, find="RED", replace="green", ignore_case=True)["changed"] == 1
    assert _captions(client, run_id)[0] == "a green car"


def test_a_regex_replace_uses_groups_and_a_preview_writes_nothing(client, fake, tmp_path):
    run_id, _ = _captioned(client, fake, tmp_path, ["photo of a cat, 4k", "photo of a dog, 8k", "drawing"])
    body = {"find": r"photo of a (?P<animal>\w+), (\d)k", "replace": r"\g<animal> photo (\2K)", "regex": True}
    rev = client.get(f"/api/runs/{run_id}/tasks").json["rev"]
    preview = _replace(client, run_id, preview=True, **body)
    assert (preview["changed"], preview["matched"], preview["without_caption"]) == (2, 2, 0)
    assert [change["after"] for change in preview["changes"]] == ["cat photo (4K)", "dog photo (8K)"]
    assert _captions(client, run_id) == ["photo of a cat, 4k", "photo of a dog, 8k", "drawing"]
    assert client.get(f"/api/runs/{run_id}/tasks?since={rev}").json["tasks"] == []
    assert _replace(client, run_id, **body) == preview
    assert _captions(client, run_id) == ["cat photo (4K)", "dog photo (8K)", "drawing"]


def test_only_selected_too_long_and_emptied_captions(client, fake, tmp_path):
    run_id, results = _captioned(client, fake, tmp_path, ["x" * 4000, "tag, x", "x", None])
    for result in results[:3]:
        client.patch(f"/api/results/{result['id']}", json={"selected": True})
    answer = _replace(client, run_id, find="x", replace="yyy", only_selected=True)
    assert (answer["changed"], answer["matched"], answer["too_long"], answer["without_caption"]) == (2, 3, 1, 0)
    assert _captions(client, run_id) == ["x" * 4000, "tag, yyy", "yyy", None]
    emptied = _replace(client, run_id, find=r"^y+$", replace="", regex=True)
    assert emptied["changes"][0]["after"] is None and emptied["without_caption"] == 1
    assert _captions(client, run_id) == ["x" * 4000, "tag, yyy", None, None]
    assert _replace(client, run_id, find=", ", replace="   ")["changes"][0]["after"] == "tag   yyy"


def test_a_replace_lists_the_first_twenty_changes_in_source_order(client, fake, tmp_path):
    run_id, _ = _captioned(client, fake, tmp_path, [f"caption {n}" for n in range(25)])
    answer = _replace(client, run_id, find="caption", replace="text", preview=True)
    assert answer["changed"] == 25 and len(answer["changes"]) == 20
    assert [change["before"] for change in answer["changes"][:3]] == ["caption 0", "caption 1", "caption 2"]


@pytest.mark.parametrize(("body", "message"), [
    ({"find": "(", "regex": True}, "'find' is not a valid regular expression: missing ), unterminated subpattern"),
    ({"find": "a", "replace": r"\2", "regex": True}, "'replace' is not a valid replacement: invalid group reference 2"),
    ({}, "'find' is required"),
    ({"find": ""}, "'find' is required"),
    ({"find": 3}, "'find' must be a string"),
    ({"find": "a" * 1001}, "'find' must be at most 1,000 characters; got 1,001"),
    ({"find": "a", "replace": "b" * 8193}, "'replace' must be at most 8 KiB of text; got 8,193 bytes"),
    ({"find": "a", "regex": "yes"}, "'regex' must be true or false"),
    ({"find": "a", "whole_word": True}, "unknown field 'whole_word': a find and replace takes find, replace"),
])
def test_bad_replaces_name_the_field_and_change_nothing(client, fake, tmp_path, body, message):
    run_id, _ = _captioned(client, fake, tmp_path, ["a cat"])
    answer = client.post(f"/api/runs/{run_id}/captions/replace", json=body)
    assert answer.status_code == 400 and answer.json["error"].startswith(message), answer.json
    assert _captions(client, run_id) == ["a cat"]


def test_a_replace_on_an_unknown_run_is_a_404(client):
    answer = client.post("/api/runs/nope/captions/replace", json={"find": "a"})
    assert answer.status_code == 404 and "nope" in answer.json["error"]


# -- captions in saves --------------------------------------------------------------------------

CAPTION_LAYOUTS = ("flat", "flat_pairs", "aitoolkit_edit", "aitoolkit_multi", "musubi", "fal_start_end", "civitai_edit")


def _save(client, run_id: str, out, **rule) -> dict:
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(out), **rule})
    assert answer.status_code == 200, answer.json
    assert answer.json["errors"] == [], answer.json["errors"]
    return answer.json


def _texts(out) -> dict[str, str]:
    """Return every caption file under `out` by the source it belongs to (img1, img2)."""
    found = {}
    for path in out.rglob("*.txt"):
        found["img1" if "img1" in path.name else "img2"] = path.read_text("utf-8")
    return found


def _manifest(out) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text("utf-8").splitlines()]


@pytest.fixture
def captioned_run(client, fake, tmp_path):
    """Two tasks (two results each) with their first result selected; img1's has a caption of its own."""
    run_id, tasks = _run(client, fake, tmp_path, count=2)
    for task in tasks:
        client.patch(f"/api/results/{task['results'][0]['id']}", json={"selected": True})
    _caption(client, tasks[0]["results"][0]["id"], "a red car, [trigger] style")
    return run_id, tasks


@pytest.mark.parametrize("layout", CAPTION_LAYOUTS)
def test_every_layout_writes_a_results_own_caption_with_the_trigger(client, captioned_run, tmp_path, layout):
    run_id, _ = captioned_run
    out = tmp_path / "out"
    answer = _save(client, run_id, out, layout=layout, caption="prompt", trigger="ohwx")
    assert _texts(out) == {"img1": "a red car, ohwx style", "img2": "ohwx make it blue"}
    assert answer["captions"] == {"from_results": 1, "from_rule": 1} == answer["report"]["captions"]
    lines = _manifest(out)
    assert [(line["caption"], line["caption_from"]) for line in lines] == [
        ("a red car, ohwx style", "result"), ("ohwx make it blue", "rule")]
    if layout == "musubi":
        records = (out / "dataset/dataset.jsonl").read_text("utf-8").splitlines()
        assert [json.loads(record)["caption"] for record in records] == ["a red car, ohwx style", "ohwx make it blue"]


def test_an_own_caption_stands_in_for_the_template_and_the_trigger_is_injected(client, captioned_run, tmp_path):
    run_id, tasks = captioned_run
    _caption(client, tasks[0]["results"][0]["id"], "a red car")
    out = tmp_path / "out"
    answer = _save(client, run_id, out, layout="aitoolkit_edit", caption="template",
                   caption_template="{trigger}, {prompt}, {stem}", trigger="ohwx")
    assert _texts(out) == {"img1": "ohwx a red car", "img2": "ohwx, make it blue, img2"}
    assert answer["captions"] == {"from_results": 1, "from_rule": 1}


def test_no_captions_are_written_when_the_rule_has_none(client, captioned_run, tmp_path):
    run_id, _ = captioned_run
    out = tmp_path / "out"
    answer = _save(client, run_id, out, layout="aitoolkit_edit", caption="none")
    assert _texts(out) == {} and answer["captions"] == {"from_results": 0, "from_rule": 0}
    assert [line["caption_from"] for line in _manifest(out)] == [None, None]


def test_a_dry_run_counts_the_captions_it_would_write(client, captioned_run, tmp_path):
    run_id, _ = captioned_run
    answer = _save(client, run_id, tmp_path / "out", layout="musubi", dry_run=True, only_selected=False)
    assert answer["captions"] == {"from_results": 1, "from_rule": 3} and not (tmp_path / "out").exists()


def test_a_single_result_save_writes_its_own_caption(client, captioned_run, tmp_path):
    _, tasks = captioned_run
    out = tmp_path / "out"
    answer = client.post(f"/api/results/{tasks[0]['results'][0]['id']}/save",
                         json={"output_dir": str(out), "layout": "fal_start_end", "trigger": "ohwx"}).json
    assert answer["captions"] == {"from_results": 1, "from_rule": 0}
    assert (out / "dataset/img1.txt").read_text("utf-8") == "a red car, ohwx style"


def test_a_caption_template_may_use_the_answer_text(client, captioned_run, tmp_path):
    run_id, _ = captioned_run
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(tmp_path / "out"), "caption": "template",
                                                            "caption_template": "{prompt} / {answer_text}"})
    assert answer.status_code == 200, answer.json
    assert _texts(tmp_path / "out")["img2"] == "make it blue /"  # this answer sent no text
    bad = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(tmp_path / "out"), "caption": "template",
                                                         "caption_template": "{answer}"})
    assert bad.status_code == 400 and "answer_text" in bad.json["error"]


# -- the answer's text --------------------------------------------------------------------------

@pytest.mark.parametrize(("scenario", "expected"), [
    ("g1_nonstream", "Here is your image."),  # text, then a relative markdown image
    ("g16_chat_think", None),  # progress in <think>, then the image: nothing else said
    ("g3_stream_dataurl", None),  # two data URLs
    ("g16_nonstream_b64", None),  # bare base64
    ("g2_stream_bare_url", None),  # a bare URL
])
def test_a_result_keeps_the_text_its_answer_sent_with_it(client, fake, tmp_path, scenario, expected):
    _, tasks = _run(client, fake, tmp_path, count=1, scenario=scenario)
    assert tasks[0]["status"] == "done", tasks[0]["error"]
    assert [result["answer_text"] for result in tasks[0]["results"]] == [expected] * len(tasks[0]["results"])


def test_a_caption_template_writes_the_answer_text_and_a_caption_can_be_set_from_it(client, fake, tmp_path):
    run_id, tasks = _run(client, fake, tmp_path, count=2, scenario="g1_nonstream")
    result = tasks[0]["results"][0]
    assert _caption(client, result["id"], result["answer_text"])["caption"] == "Here is your image."
    _caption(client, result["id"], "a cat")
    out = tmp_path / "out"
    answer = _save(client, run_id, out, caption="template", caption_template="{answer_text} ({prompt})",
                   only_selected=False)
    texts = sorted(path.read_text("utf-8") for path in out.rglob("*.txt"))
    assert texts == ["Here is your image. (make it blue)", "a cat"]
    assert answer["captions"] == {"from_results": 1, "from_rule": 1}


# -- any input ----------------------------------------------------------------------------------

ODD = ["", " ", "\u0000", "a" * 9000, "💥" * 3000, "\ud800", "(", "(?P<x>a)", r"\1", r"\g<x>", "(a+)+$", "[", "*",
       "(?i)", "a(?i)b", "\\", "null"]
VALUES = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20)
          | st.sampled_from(ODD) | st.lists(st.text(max_size=3), max_size=2))
FIELDS = ["caption", "selected", "find", "replace", "regex", "ignore_case", "only_selected", "preview", "x"]


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory, fake_upstream_server):
    from console.settings import resolve
    from console.web import create_app

    root = tmp_path_factory.mktemp("captions")
    app = create_app(settings=resolve({"APP_DATA_DIR": str(root / "data")}))
    client = app.test_client()
    run_id = start(client, fake_upstream_server, make_sources(root / "src", 2))
    tasks = wait_idle(client, run_id)["tasks"]
    _caption(client, tasks[0]["results"][0]["id"], "a red car")
    yield client, run_id, tasks[0]["results"][0]["id"]
    app.extensions["console.engine"].close()


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=5), replace=st.booleans())
def test_any_caption_body_is_answered_with_a_readable_4xx_at_worst(fuzz_run, body, replace):
    client, run_id, result_id = fuzz_run
    if replace:
        answer = client.post(f"/api/runs/{run_id}/captions/replace", json=body)
    else:
        answer = client.patch(f"/api/results/{result_id}", json=body)
    assert answer.status_code in (200, 400), (body, answer.json)
    assert answer.json.get("ok") is not False or answer.json["error"].strip()


def test_a_caption_edited_while_the_pattern_runs_is_left_as_the_user_wrote_it(app, fake, tmp_path):
    import re

    from console.store_captions import Replacement

    client = app.test_client()
    run_id, results = _captioned(client, fake, tmp_path, ["red one", "red two"])
    store = app.extensions["console.store"]

    def edit_the_second(match: re.Match[str]) -> str:  # runs before the write transaction, as a user's PATCH could
        store.edit_result(results[1]["id"], caption="typed meanwhile")
        return "blue"

    answer = store.replace_captions(run_id, Replacement(re.compile("red"), edit_the_second))
    assert answer["changed"] == 1 and [change["before"] for change in answer["changes"]] == ["red one"]
    assert _captions(client, run_id) == ["blue one", "typed meanwhile"]


def test_the_zip_export_lists_each_results_caption_and_answer_text(client, fake, tmp_path):
    import io
    import zipfile

    run_id, tasks = _run(client, fake, tmp_path, count=1, scenario="g1_nonstream")
    _caption(client, tasks[0]["results"][0]["id"], "a cat")
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{run_id}/export.zip").data))
    rows = [json.loads(line) for line in archive.read("manifest.jsonl").decode("utf-8").splitlines()]
    assert [(row["caption"], row["answer_text"]) for row in rows] == [("a cat", "Here is your image.")]


def test_a_replace_over_10000_captions_is_one_quick_write(tmp_path):
    """10,000 results with captions of their own: a regex preview and the replace itself, and the listing after."""
    import re
    import time

    from console.store import Store
    from console.store_captions import Replacement
    from tests.figures import record

    store = Store(tmp_path / "console.db")
    run_id = store.create_run("/in", False, "p", {"model": "m", "api_url": "http://gw/v1"},
                              [(f"img{n}.png", f"/in/img{n}.png") for n in range(10_000)])
    with store._tx() as db:
        db.executemany("INSERT INTO results (id, task_id, sha256, format, width, height, bytes, origin, created_at, "
                       "caption) VALUES (?, ?, ?, 'png', 64, 48, 100, 'data_url', 0, ?)",
                       ((f"i{n}", task_id, f"{n:064x}", f"photo of a red car number {n}, studio light")
                        for n, task_id in enumerate(store.task_ids(run_id, ["pending"]))))
    rev = store.rev()
    replacement = Replacement(re.compile(r"red (\w+)"), r"blue \1")
    began = time.perf_counter()
    preview = store.replace_captions(run_id, replacement, preview=True)
    preview_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    answer = store.replace_captions(run_id, replacement)
    apply_ms = (time.perf_counter() - began) * 1000
    assert preview["changed"] == answer["changed"] == 10_000 and store.rev() == rev + 1
    assert store.tasks_since(run_id, since=rev).total == 10_000
    first = store.tasks_since(run_id, limit=1).tasks[0].results[0]
    assert first.caption == "photo of a blue car number 0, studio light"
    record("caption_replace", captions=10_000, preview_ms=round(preview_ms, 1), apply_ms=round(apply_ms, 1))
    store.close()
