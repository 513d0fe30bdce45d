"""Runs, tasks and results through the HTTP API: a real engine, store, cache and fake gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import api, make_sources, start, wait_for, wait_idle


# -- a run end to end ------------------------------------------------------------------------

def test_run_produces_results_served_by_id(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    run_id = start(client, fake, folder)
    listing = wait_idle(client, run_id)
    assert listing["progress"]["done"] == 3 and listing["progress"]["percent"] == 100.0
    tasks = listing["tasks"]
    assert [t["source_name"] for t in tasks] == ["img1.png", "img2.png", "img3.png"]
    expected = fake.expected("g3_stream_dataurl")
    for task in tasks:
        assert task["status"] == "done" and task["attempts"] == 1 and task["http_status"] == 200
        images = [client.get(f"/api/results/{r['id']}/image") for r in task["results"]]
        assert [i.data for i in images] == expected
        assert "immutable" in images[0].headers["Cache-Control"]
        thumb = client.get(f"/api/results/{task['results'][0]['id']}/image?thumb=1")
        assert thumb.status_code == 200 and thumb.mimetype.startswith("image/")
    source = client.get(f"/api/tasks/{tasks[0]['id']}/source")
    assert source.data == (folder / "img1.png").read_bytes()


def test_since_returns_only_changes_and_removed(client, fake, tmp_path):
    run_id = start(client, fake, make_sources(tmp_path / "src", 2))
    listing = wait_idle(client, run_id)
    rev = listing["rev"]
    quiet = client.get(f"/api/runs/{run_id}/tasks?since={rev}").json
    assert quiet["tasks"] == [] and quiet["removed"] == [] and quiet["rev"] == rev
    first = listing["tasks"][0]
    client.patch(f"/api/results/{first['results'][0]['id']}", json={"selected": True})
    client.delete(f"/api/tasks/{listing['tasks'][1]['id']}")
    changed = client.get(f"/api/runs/{run_id}/tasks?since={rev}").json
    assert [t["id"] for t in changed["tasks"]] == [first["id"]]
    assert changed["tasks"][0]["results"][0]["selected"] is True
    assert changed["removed"] == [listing["tasks"][1]["id"]]


def test_filters_and_paging(client, fake, tmp_path):
    run_id = start(client, fake, make_sources(tmp_path / "src", 12))
    wait_idle(client, run_id)
    page = client.get(f"/api/runs/{run_id}/tasks?offset=2&limit=3").json
    assert [t["source_name"] for t in page["tasks"]] == ["img3.png", "img4.png", "img5.png"] and page["total"] == 12
    found = client.get(f"/api/runs/{run_id}/tasks?q=img1").json
    assert sorted(t["source_name"] for t in found["tasks"]) == ["img1.png", "img10.png", "img11.png", "img12.png"]
    assert client.get(f"/api/runs/{run_id}/tasks?status=failed").json["tasks"] == []


def test_failed_tasks_show_the_upstream_error_and_retry_failed(client, fake, tmp_path):
    run_id = start(client, fake, make_sources(tmp_path / "src", 2), scenario="err_401_g16")
    listing = wait_idle(client, run_id)
    task = listing["tasks"][0]
    assert task["status"] == "failed" and task["http_status"] == 401
    assert task["error"] == "HTTP 401: Invalid authentication token (authentication_error, invalid_api_key)"
    debug = client.get(f"/api/tasks/{task['id']}/debug").json["log"]
    assert "← HTTP 401" in debug
    assert client.post(f"/api/runs/{run_id}/retry-failed").json == {"ok": True, "queued": 2}
    assert wait_idle(client, run_id)["progress"]["failed"] == 2
    assert client.get(f"/api/tasks/{task['id']}").json["attempts"] == 2


def test_retry_keeps_or_clears_results(client, fake, tmp_path):
    run_id = start(client, fake, make_sources(tmp_path / "src", 1))
    task = wait_idle(client, run_id)["tasks"][0]
    assert client.post(f"/api/tasks/{task['id']}/retry", json={"keep_results": True}).json == {"ok": True}
    kept = wait_idle(client, run_id)["tasks"][0]
    assert [r["id"] for r in kept["results"]] == [r["id"] for r in task["results"]]  # same bytes: no duplicates
    assert kept["attempts"] == 2
    client.post(f"/api/tasks/{task['id']}/retry", json={"keep_results": False})
    cleared = wait_idle(client, run_id)["tasks"][0]
    assert len(cleared["results"]) == 2 and not {r["id"] for r in cleared["results"]} & {r["id"] for r in task["results"]}


def test_stop_and_resume(client, fake, tmp_path):
    # The fake is shared by the session: a call an earlier test left stalled is not this run's.
    before, stalled = fake.open_connections, fake.in_flight
    run_id = start(client, fake, make_sources(tmp_path / "src", 6), scenario="stall", concurrency=2)
    wait_for(lambda: fake.in_flight == stalled + 2)
    answer = client.post(f"/api/runs/{run_id}/stop").json
    assert answer["ok"] and answer["stopped"] == 6
    listing = client.get(f"/api/runs/{run_id}/tasks").json
    assert {t["status"] for t in listing["tasks"]} == {"stopped"} and listing["running"] is False
    assert fake.wait_for_connections(before, 5), f"{fake.open_connections} connections open, {before} before the run"
    resumed = client.post(f"/api/runs/{run_id}/resume").json
    assert resumed["queued"] == 6
    client.post("/api/stop")
    assert {t["status"] for t in client.get(f"/api/runs/{run_id}/tasks").json["tasks"]} == {"stopped"}


def test_retry_of_a_running_task_is_409_and_delete_stops_it(client, fake, tmp_path):
    run_id = start(client, fake, make_sources(tmp_path / "src", 1), scenario="stall")
    wait_for(lambda: client.get(f"/api/runs/{run_id}/tasks").json["tasks"][0]["status"] == "running")
    task_id = client.get(f"/api/runs/{run_id}/tasks").json["tasks"][0]["id"]
    conflict = client.post(f"/api/tasks/{task_id}/retry", json={})
    assert conflict.status_code == 409 and "running" in conflict.json["error"]
    assert client.delete(f"/api/tasks/{task_id}").json == {"ok": True}
    assert client.get(f"/api/tasks/{task_id}").status_code == 404
    assert wait_idle(client, run_id)["tasks"] == []


def test_concurrency_change_applies_to_the_running_run(client, fake, tmp_path):
    before = fake.in_flight  # calls an earlier test left stalled on the shared fake
    run_id = start(client, fake, make_sources(tmp_path / "src", 8), scenario="stall", concurrency=2)
    wait_for(lambda: fake.in_flight == before + 2)
    assert client.patch(f"/api/runs/{run_id}", json={"concurrency": 5}).json["concurrency"] == 5
    wait_for(lambda: fake.in_flight == before + 5)
    client.post(f"/api/runs/{run_id}/stop")


def test_delete_run_frees_its_files(client, app, fake, tmp_path):
    run_id = start(client, fake, make_sources(tmp_path / "src", 2))
    wait_idle(client, run_id)
    cache_dir = Path(app.extensions["console.settings"].data_dir) / "cache"
    assert any(cache_dir.rglob("*.*"))
    assert client.delete(f"/api/runs/{run_id}").json == {"ok": True}
    assert client.get(f"/api/runs/{run_id}").status_code == 404
    assert not [p for p in cache_dir.rglob("*") if p.is_file()]


def test_run_list_and_run(client, fake, tmp_path):
    run_id = start(client, fake, make_sources(tmp_path / "src", 1))
    wait_idle(client, run_id)
    runs = client.get("/api/runs").json
    assert runs[0]["id"] == run_id and runs[0]["task_count"] == 1 and runs[0]["progress"]["done"] == 1
    assert "api_key" not in str(runs)
    one = client.get(f"/api/runs/{run_id}").json
    assert one["running"] is False and one["prompt"] == "make it blue"


def test_source_that_is_not_an_image_fails_its_task(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 1)
    (folder / "fake.png").write_bytes(b"not an image at all")
    run_id = start(client, fake, folder)
    tasks = {t["source_name"]: t for t in wait_idle(client, run_id)["tasks"]}
    assert tasks["fake.png"]["status"] == "failed" and "not a usable image" in tasks["fake.png"]["error"]
    assert tasks["img1.png"]["status"] == "done"


# -- bad input: 4xx with a readable message, never a 500 ---------------------------------------

@pytest.mark.parametrize("body, message", [
    ({"prompt": "p"}, "'input_path' is required"),
    ({"input_path": "relative/dir", "prompt": "p"}, "absolute"),
    ({"input_path": "/no/such/folder", "prompt": "p"}, "/no/such/folder"),
    ({"input_path": 5, "prompt": "p"}, "'input_path' must be a string"),
    ({"input_path": "/tmp", "prompt": ""}, "prompt is empty"),
    ({"input_path": "/tmp", "prompt": "p", "recursive": "yes"}, "'recursive' must be true or false"),
    ({"input_path": "/tmp", "prompt": "p", "api": {"concurrency": 0}}, "concurrency must be between"),
    ({"input_path": "/tmp", "prompt": "p", "api": []}, "'api' must be an object"),
])
def test_bad_run_requests(client, fake, body, message):
    if "api" not in body or isinstance(body["api"], dict):
        body = {**body, "api": {**api(fake, "g3_stream_dataurl"), **body.get("api", {})}}
    answer = client.post("/api/runs", json=body)
    assert 400 <= answer.status_code < 500 and message in answer.json["error"], answer.json
    assert answer.json["ok"] is False


def test_empty_folder_and_non_image_file(client, fake, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    for path in (empty, tmp_path / "notes.txt"):
        answer = client.post("/api/runs", json={"input_path": str(path), "prompt": "p", "api": api(fake, "x")})
        assert answer.status_code == 400 and str(path.name) in answer.json["error"]


def test_private_api_url_refused_before_the_run_starts(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 1)
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "p",
                                            "api": api(fake, "g3_stream_dataurl", allow_private_api=False)})
    assert answer.status_code == 400 and "private" in answer.json["error"]
    assert client.get("/api/runs").json == []


def test_missing_model_refused(client, fake, tmp_path):
    answer = client.post("/api/runs", json={"input_path": str(make_sources(tmp_path / "s", 1)), "prompt": "p",
                                            "api": api(fake, "g3_stream_dataurl", model="")})
    assert answer.status_code == 400 and "model" in answer.json["error"]


@pytest.mark.parametrize("method, path", [
    ("get", "/api/runs/nope"), ("get", "/api/runs/nope/tasks"), ("post", "/api/runs/nope/stop"),
    ("post", "/api/runs/nope/resume"), ("post", "/api/runs/nope/retry-failed"), ("delete", "/api/runs/nope"),
    ("get", "/api/tasks/nope"), ("delete", "/api/tasks/nope"), ("post", "/api/tasks/nope/retry"),
    ("get", "/api/tasks/nope/source"), ("get", "/api/tasks/nope/debug"), ("delete", "/api/results/nope"),
    ("get", "/api/results/nope/image"),
])
def test_unknown_ids_are_404(client, method, path):
    answer = getattr(client, method)(path)
    assert answer.status_code == 404 and answer.json["ok"] is False and "nope" in answer.json["error"]


def test_patch_unknown_result_and_bad_values(client):
    assert client.patch("/api/results/nope", json={"selected": True}).status_code == 404
    assert client.patch("/api/runs/nope", json={"concurrency": 3}).status_code == 404


@pytest.mark.parametrize("query, message", [("since=abc", "since"), ("limit=0", "limit"), ("status=weird", "status"),
                                           ("offset=-1", "offset")])
def test_bad_task_queries(client, fake, tmp_path, query, message):
    run_id = start(client, fake, make_sources(tmp_path / "src", 1))
    answer = client.get(f"/api/runs/{run_id}/tasks?{query}")
    assert answer.status_code == 400 and message in answer.json["error"]


def test_invalid_json_and_wrong_content_type(client):
    bad = client.post("/api/runs", data="{nope", content_type="application/json")
    assert bad.status_code == 400 and "JSON" in bad.json["error"]
    plain = client.post("/api/runs", data="x", content_type="text/plain")
    assert plain.status_code == 415


def test_scan_preview(client, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    (folder / "readme.md").write_text("x")
    answer = client.post("/api/scan", json={"input_path": str(folder)}).json
    assert answer["count"] == 3 and answer["sample"] == ["img1.png", "img2.png", "img3.png"]
    assert [(skip["name"], skip["reason"]) for skip in answer["skipped"]] == [("readme.md", "not an image file")]


# -- no sequence of actions leaves a task running or pending forever ---------------------------

def statuses(client, run_id: str) -> list[str]:
    return [t["status"] for t in client.get(f"/api/runs/{run_id}/tasks").json["tasks"]]


def settle(client, run_id: str) -> list[str]:
    """Wait until the run is idle and nothing is left running or pending."""
    listing = wait_idle(client, run_id)
    found = [t["status"] for t in listing["tasks"]]
    assert "running" not in found and "pending" not in found, found
    return found


def test_stop_during_a_retry(client, fake, tmp_path):
    stalled = fake.in_flight  # calls an earlier test left stalled on the shared fake
    run_id = start(client, fake, make_sources(tmp_path / "src", 2), scenario="stall")
    wait_for(lambda: fake.in_flight == stalled + 2)
    client.post(f"/api/runs/{run_id}/stop")
    task_id = client.get(f"/api/runs/{run_id}/tasks").json["tasks"][0]["id"]
    client.post(f"/api/tasks/{task_id}/retry", json={"keep_results": True})
    wait_for(lambda: client.get(f"/api/tasks/{task_id}").json["status"] == "running")
    assert client.get(f"/api/runs/{run_id}").json["running"] is True
    client.post(f"/api/runs/{run_id}/stop")
    assert settle(client, run_id) == ["stopped", "stopped"]


def test_retry_during_a_run(client, fake, tmp_path):
    stalled = fake.in_flight  # calls an earlier test left stalled on the shared fake
    run_id = start(client, fake, make_sources(tmp_path / "src", 4), scenario="stall", concurrency=1)
    wait_for(lambda: fake.in_flight == stalled + 1)
    wait_for(lambda: statuses(client, run_id).count("running") == 1)  # the start lands just after the call goes out
    tasks = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
    pending = [t for t in tasks if t["status"] == "pending"]
    assert len(pending) == 3
    assert client.post(f"/api/tasks/{pending[-1]['id']}/retry", json={"keep_results": False}).status_code == 200
    assert statuses(client, run_id).count("pending") == 3  # queued once, not twice
    client.post("/api/stop")
    assert settle(client, run_id) == ["stopped"] * 4


def test_start_during_a_retry(client, fake, tmp_path):
    stalled = fake.in_flight  # calls an earlier test left stalled on the shared fake
    first = start(client, fake, make_sources(tmp_path / "a", 1), scenario="stall")
    wait_for(lambda: fake.in_flight == stalled + 1)
    client.post(f"/api/runs/{first}/stop")
    task_id = client.get(f"/api/runs/{first}/tasks").json["tasks"][0]["id"]
    client.post(f"/api/tasks/{task_id}/retry", json={})
    wait_for(lambda: fake.in_flight == stalled + 1)
    second = start(client, fake, make_sources(tmp_path / "b", 3))
    assert settle(client, second) == ["done"] * 3
    assert client.get(f"/api/tasks/{task_id}").json["status"] == "running"
    client.post("/api/stop")
    assert settle(client, first) == ["stopped"]


def test_resume_after_stop_completes_everything(client, fake, tmp_path):
    run_id = start(client, fake, make_sources(tmp_path / "src", 6), scenario="latency.s=0.2", concurrency=2)
    wait_for(lambda: "done" in statuses(client, run_id))
    client.post(f"/api/runs/{run_id}/stop")
    stopped = statuses(client, run_id)
    assert "stopped" in stopped and "running" not in stopped and "pending" not in stopped
    client.post(f"/api/runs/{run_id}/resume")
    assert settle(client, run_id) == ["done"] * 6


def test_delete_run_while_running(client, fake, tmp_path):
    stalled, connections = fake.in_flight, fake.open_connections  # what earlier tests left on the shared fake
    run_id = start(client, fake, make_sources(tmp_path / "src", 3), scenario="stall")
    wait_for(lambda: fake.in_flight == stalled + 3)
    assert client.delete(f"/api/runs/{run_id}").json == {"ok": True}
    assert fake.wait_for_connections(connections, 5)
    assert client.get("/api/runs").json == []


def test_export_zip_all_and_selected(client, fake, tmp_path):
    import io
    import json
    import zipfile

    run_id = start(client, fake, make_sources(tmp_path / "src", 2))
    tasks = wait_idle(client, run_id)["tasks"]
    client.patch(f"/api/results/{tasks[1]['results'][0]['id']}", json={"selected": True})
    everything = zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{run_id}/export.zip").data))
    assert sorted(everything.namelist()) == ["img1_1.jpg", "img1_2.png", "img2_1.jpg", "img2_2.png", "manifest.jsonl"]
    assert everything.read("img2_1.jpg") == fake.expected("g3_stream_dataurl")[0]
    answer = client.get(f"/api/runs/{run_id}/export.zip?only_selected=1")
    assert answer.headers["Content-Disposition"].startswith("attachment")
    selected = zipfile.ZipFile(io.BytesIO(answer.data))
    assert sorted(selected.namelist()) == ["img2_1.jpg", "manifest.jsonl"]
    row = json.loads(selected.read("manifest.jsonl"))
    assert row["source_name"] == "img2.png" and row["prompt"] == "make it blue" and row["selected"] is True
    assert client.get("/api/runs/nope/export.zip").status_code == 404
