"""Captions through the API: a result's own caption, find and replace, captions in saves, the answer's text."""

from __future__ import annotations

import pytest

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
    ({"caption": 12}, "'caption' must be a string or null"),
    ({"caption": ["a"]}, "'caption' must be a string or null"),
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
    assert answer.status_code == 400 and answer.json["error"] == message
    assert client.get(f"/api/tasks/{tasks[0]['id']}").json["results"][0]["caption"] == "kept"


def test_an_unknown_result_is_a_404(client):
    answer = client.patch("/api/results/nope", json={"caption": "x"})
    assert answer.status_code == 404 and "nope" in answer.json["error"]
