"""Pilot runs: a sample of the folder first, the rest held until released (maybe with an edited prompt).

A real engine, store and cache behind the HTTP API, against the loopback fake gateway; the restart
is a real server process killed with SIGKILL.
"""

from __future__ import annotations

import pytest

from console.store_pilot import pilot_sample
from testkit.fake_upstream import source_digest
from tests.helpers import api, make_sources, wait_idle
from tests.run_checks import digest_of
from testkit.server_process import ServerProcess


def calls(fake, folder) -> list[tuple[str, str]]:
    """(source name, prompt) of every chat call the fake received, in arrival order."""
    names = {digest_of(path): path.name for path in folder.iterdir()}
    return [(names[source_digest(r)], r.json["messages"][-1]["content"][0]["text"])
            for r in fake.requests if r.method == "POST" and r.path.endswith("/chat/completions")]


def pilot_run(client, fake, folder, pilot, prompt="make it blue", **fields) -> str:
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": prompt, "pilot": pilot,
                                            "api": api(fake, "g3_stream_dataurl", **fields)})
    assert answer.status_code == 201, answer.json
    return answer.json["run_id"]


def by_name(listing) -> dict[str, dict]:
    return {task["source_name"]: task for task in listing["tasks"]}


# -- the sample ------------------------------------------------------------------------------

@pytest.mark.parametrize("count, pilot, expected", [
    (9, 3, [0, 3, 6]), (10, 3, [0, 3, 7]), (100, 4, [0, 25, 50, 75]), (5, 1, [0]), (3, 3, [0, 1, 2]),
    (3, 10, [0, 1, 2]), (7, 6, [0, 1, 2, 4, 5, 6])])
def test_the_sample_is_spread_evenly_over_the_folder(count, pilot, expected):
    assert pilot_sample(count, pilot) == expected


def test_a_pilot_calls_only_its_sample_and_holds_the_rest(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 9)
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "p", "pilot": 3,
                                            "api": api(fake, "g3_stream_dataurl")})
    assert answer.status_code == 201 and (answer.json["task_count"], answer.json["held"]) == (9, 6)
    run_id = answer.json["run_id"]
    listing = wait_idle(client, run_id)
    tasks = by_name(listing)
    called = {name for name, _ in calls(fake, folder)}
    assert called == {"img1.png", "img4.png", "img7.png"}
    assert {name for name, task in tasks.items() if task["status"] == "done"} == called
    assert {task["status"] for name, task in tasks.items() if name not in called} == {"held"}
    progress = listing["progress"]
    assert (progress["total"], progress["done"], progress["held"], progress["pending"]) == (9, 3, 6, 0)
    assert listing["running"] is False
    held = client.get(f"/api/runs/{run_id}/tasks?status=held").json
    assert held["total"] == 6 and {t["status"] for t in held["tasks"]} == {"held"}
    assert client.get(f"/api/runs/{run_id}").json["progress"]["held"] == 6


def test_a_pilot_as_large_as_the_folder_is_an_ordinary_run(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "p", "pilot": 5,
                                            "api": api(fake, "g3_stream_dataurl")})
    assert answer.status_code == 201 and answer.json["held"] == 0
    listing = wait_idle(client, answer.json["run_id"])
    assert listing["progress"]["done"] == 3 and listing["progress"]["held"] == 0


# -- releasing the rest ----------------------------------------------------------------------

def test_release_with_an_edited_prompt_runs_the_rest_with_it(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 9)
    run_id = pilot_run(client, fake, folder, 3, prompt="old prompt")
    wait_idle(client, run_id)
    answer = client.post(f"/api/runs/{run_id}/release", json={"prompt": "new prompt"})
    assert answer.status_code == 200, answer.json
    assert answer.json["queued"] == 6 and answer.json["prompted"] == 6
    listing = wait_idle(client, run_id)
    assert listing["progress"]["done"] == 9 and listing["progress"]["held"] == 0
    sent = calls(fake, folder)
    assert len(sent) == 9  # the pilot's tasks were not called again
    assert sorted(name for name, prompt in sent if prompt == "old prompt") == ["img1.png", "img4.png", "img7.png"]
    assert len({name for name, prompt in sent if prompt == "new prompt"}) == 6
    tasks = by_name(listing)
    assert tasks["img1.png"]["results"][0]["prompt"] == "old prompt" and tasks["img1.png"]["prompt"] == "old prompt"
    assert tasks["img2.png"]["results"][0]["prompt"] == "new prompt"
    assert client.get(f"/api/runs/{run_id}").json["prompt"] == "new prompt"


def test_release_without_a_prompt_keeps_the_prompt_and_takes_a_new_profile(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 4)
    run_id = pilot_run(client, fake, folder, 1, prompt="same prompt")
    wait_idle(client, run_id)
    answer = client.post(f"/api/runs/{run_id}/release", json={"api": api(fake, "g3_stream_dataurl", model="other-model")})
    assert answer.status_code == 200 and answer.json["queued"] == 3 and answer.json["prompted"] == 0
    wait_idle(client, run_id)
    posts = [r for r in fake.requests if r.method == "POST"]
    assert [r.json["model"] for r in posts] == ["grok-imagine-1.0-edit"] + ["other-model"] * 3
    assert {prompt for _, prompt in calls(fake, folder)} == {"same prompt"}


def test_release_while_the_pilot_runs_queues_only_the_held_tasks(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 6)
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "first", "pilot": 2,
                                            "api": api(fake, "latency.s=0.5", concurrency=1)})
    run_id = answer.json["run_id"]
    released = client.post(f"/api/runs/{run_id}/release", json={"prompt": "second"})
    assert released.status_code == 200 and released.json["queued"] == 4
    listing = wait_idle(client, run_id)
    assert listing["progress"]["done"] == 6
    sent = calls(fake, folder)
    assert sorted(name for name, _ in sent) == sorted(path.name for path in folder.iterdir())  # each called once
    assert {name: prompt for name, prompt in sent}["img1.png"] == "first"
    assert sorted(name for name, prompt in sent if prompt == "second") == ["img2.png", "img3.png", "img5.png", "img6.png"]


def test_release_with_no_body_and_then_again_is_409(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    run_id = pilot_run(client, fake, folder, 1)
    wait_idle(client, run_id)
    assert client.post(f"/api/runs/{run_id}/release").json["queued"] == 2
    wait_idle(client, run_id)
    again = client.post(f"/api/runs/{run_id}/release")
    assert again.status_code == 409 and "no held tasks" in again.json["error"]
    assert len(calls(fake, folder)) == 3


def test_release_refuses_bad_bodies_and_unknown_runs(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    run_id = pilot_run(client, fake, folder, 1)
    wait_idle(client, run_id)
    for body, words in (({"prompt": 3}, "'prompt' must be a string"), ({"prompt": "  "}, "'prompt' is empty"),
                        ({"api": "x"}, "'api' must be an object"), ({"promt": "x"}, "unknown field 'promt'")):
        answer = client.post(f"/api/runs/{run_id}/release", json=body)
        assert answer.status_code == 400 and words in answer.json["error"], (body, answer.json)
    assert client.post("/api/runs/rnope/release").status_code == 404
    assert client.get(f"/api/runs/{run_id}/tasks").json["progress"]["held"] == 2  # nothing was released


def test_an_edited_prompt_cannot_change_tasks_with_prompts_of_their_own(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    for path in folder.iterdir():
        path.with_suffix(".txt").write_text(f"caption of {path.stem}")
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "{caption}", "sidecar": "replace",
                                            "pilot": 1, "api": api(fake, "g3_stream_dataurl")})
    assert answer.status_code == 201, answer.json
    run_id = answer.json["run_id"]
    wait_idle(client, run_id)
    refused = client.post(f"/api/runs/{run_id}/release", json={"prompt": "one prompt for all"})
    assert refused.status_code == 400 and "a prompt of its own" in refused.json["error"]
    assert client.post(f"/api/runs/{run_id}/release", json={}).json["queued"] == 2
    wait_idle(client, run_id)
    assert sorted(prompt for _, prompt in calls(fake, folder)) == [f"caption of img{n}" for n in (1, 2, 3)]


# -- held tasks are left alone ------------------------------------------------------------------

def test_stop_resume_and_retry_failed_leave_held_tasks_alone(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 6)
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "p", "pilot": 2,
                                            "api": api(fake, "err_401_g16")})
    run_id = answer.json["run_id"]
    listing = wait_idle(client, run_id)
    assert (listing["progress"]["failed"], listing["progress"]["held"]) == (2, 4)
    assert client.post(f"/api/runs/{run_id}/retry-failed").json["queued"] == 2
    wait_idle(client, run_id)
    client.post(f"/api/runs/{run_id}/stop")
    assert client.post(f"/api/runs/{run_id}/resume").json["queued"] == 0
    listing = wait_idle(client, run_id)
    assert listing["progress"]["held"] == 4 and len(fake.requests) == 4


def test_held_tasks_stay_held_across_a_kill_9(tmp_path, fake):
    folder, data = make_sources(tmp_path / "src", 8), tmp_path / "data"
    server = ServerProcess(data)
    try:
        answer = server.post("/api/runs", {"input_path": str(folder), "prompt": "p", "pilot": 2,
                                           "api": api(fake, "latency.s=30", concurrency=2)})
        assert answer.status_code == 201, answer.text
        run_id = answer.json()["run_id"]
        before = server.get(f"/api/runs/{run_id}/tasks").json()["progress"]
        assert (before["held"], before["running"] + before["pending"]) == (6, 2)
        server.kill()
        server = ServerProcess(data)
        after = server.get(f"/api/runs/{run_id}/tasks").json()
        statuses = sorted(task["status"] for task in after["tasks"])
        assert statuses == ["held"] * 6 + ["stopped"] * 2  # the pilot's calls were interrupted, the rest wait
        assert server.post(f"/api/runs/{run_id}/resume").json()["queued"] == 2
        assert server.get(f"/api/runs/{run_id}/tasks").json()["progress"]["held"] == 6
        server.post(f"/api/runs/{run_id}/stop")
    finally:
        server.stop()


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("pilot", [0, -2, 1.5, "3", True, [3], {"n": 3}])
def test_a_bad_pilot_is_refused_naming_the_field(client, fake, tmp_path, pilot):
    folder = make_sources(tmp_path / "src", 2)
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "p", "pilot": pilot,
                                            "api": api(fake, "g3_stream_dataurl")})
    assert answer.status_code == 400 and "'pilot' must be a whole number" in answer.json["error"]
    assert client.get("/api/runs").json == [] and fake.requests == []


def test_unknown_run_fields_are_refused_naming_them_and_the_accepted_ones(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    body = {"input_path": str(folder), "prompt": "p", "api": api(fake, "g3_stream_dataurl")}
    answer = client.post("/api/runs", json={**body, "piolt": 3, "recursiv": True})
    assert answer.status_code == 400
    assert answer.json["error"].startswith("unknown fields 'piolt', 'recursiv': a run takes mode, input_path")
    assert "pilot" in answer.json["error"]
    budget = client.post("/api/runs", json={**body, "budgett": 5})
    assert budget.status_code == 400 and "unknown field 'budgett'" in budget.json["error"] and "budget" in budget.json["error"]
    scan = client.post("/api/scan", json={"input_path": str(folder), "recusive": True})
    assert scan.status_code == 400 and "unknown field 'recusive': a scan preview takes" in scan.json["error"]
    assert client.get("/api/runs").json == [] and fake.requests == []


def test_every_field_the_page_sends_is_accepted(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    page = {"mode": "edit", "prompt": "p", "input_path": str(folder), "recursive": False, "sidecar": "off",
            "reference_dirs": [], "pilot": None, "api": api(fake, "g3_stream_dataurl")}
    assert client.post("/api/scan", json=page).status_code == 200
    answer = client.post("/api/runs", json=page)
    assert answer.status_code == 201, answer.json
    wait_idle(client, answer.json["run_id"])
    generate = {"mode": "generate", "prompt": "a {x}", "variables": {"x": ["cat"]}, "count": 1, "reference_paths": [],
                "api": api(fake, "g3_stream_dataurl")}
    answer = client.post("/api/runs", json=generate)
    assert answer.status_code == 201, answer.json
    wait_idle(client, answer.json["run_id"])
