"""Never twice: a save skips what an earlier one wrote to the same place, marks results saved, and can be followed.

Real runs against the fake gateway, real files, the real store; the manifest is the memory.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.helpers import make_sources, start, wait_idle


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Return every file under `folder` with its size and modification time (to prove nothing was touched)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def save(client, run_id: str, out: Path, job: str | None = None, **rule) -> dict:
    answer = client.post(f"/api/runs/{run_id}/save" + (f"?job={job}" if job else ""), json={"output_dir": str(out), **rule})
    assert answer.status_code == 200, answer.json
    return answer.json


@pytest.fixture
def run(client, fake, tmp_path):
    """A finished run over img1.png … img3.png (two results each), the first result of img1 and img2 selected."""
    run_id = start(client, fake, make_sources(tmp_path / "src", 3))
    tasks = sorted(wait_idle(client, run_id)["tasks"], key=lambda t: t["index"])
    for task in tasks[:2]:
        client.patch(f"/api/results/{task['results'][0]['id']}", json={"selected": True})
    return run_id, tasks


@pytest.mark.parametrize("layout", ["flat", "aitoolkit_edit", "musubi", "fal_start_end", "civitai_edit", "flat_pairs"])
def test_saving_twice_writes_nothing_the_second_time(client, run, tmp_path, layout):
    run_id, tasks = run
    out = tmp_path / "out"
    first = save(client, run_id, out, layout=layout, conflict="rename")
    assert len(first["saved"]) == 2
    before = tree(out)
    again = save(client, run_id, out, layout=layout, conflict="rename")  # rename would have made copies
    assert again["saved"] == [] and again["errors"] == [] and tree(out) == before
    remembered = [s for s in again["skipped"] if s["kind"] == "saved_before"]
    assert [s["source_name"] for s in remembered] == ["img1.png", "img2.png"]
    assert [s["paths"] for s in remembered] == [s["paths"] for s in first["saved"]]  # names the files written
    assert all("resave" in s["fix"] and "saved here before" in s["reason"] for s in remembered)
    assert again["report"]["counts"]["saved_before"] == 2
    preview = save(client, run_id, out, layout=layout, dry_run=True)
    assert preview["saved"] == [] and len([s for s in preview["skipped"] if s["kind"] == "saved_before"]) == 2


def test_only_what_is_new_is_saved_and_deleted_files_stay_deleted(client, run, tmp_path):
    run_id, tasks = run
    out = tmp_path / "out"
    save(client, run_id, out, layout="aitoolkit_edit")
    (out / "dataset_target/img1.png").unlink()  # curated away by hand: a save must not bring it back
    (out / "dataset_target/img1.txt").unlink()
    (out / "dataset_control/img1.png").unlink()
    client.patch(f"/api/results/{tasks[2]['results'][1]['id']}", json={"selected": True})  # a new choice
    answer = save(client, run_id, out, layout="aitoolkit_edit")
    assert [s["source_name"] for s in answer["saved"]] == ["img3.png"]
    assert sorted(p.name for p in (out / "dataset_target").iterdir()) == ["img2.png", "img2.txt", "img3.png", "img3.txt"]


def test_another_place_or_role_swap_is_a_new_save_and_resave_asks_again(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    save(client, run_id, out, layout="aitoolkit_edit", name="a")
    assert len(save(client, run_id, out, layout="aitoolkit_edit", name="b")["saved"]) == 2  # another dataset
    assert len(save(client, run_id, out, layout="musubi", name="a")["saved"]) == 2  # another layout
    assert len(save(client, run_id, out, layout="aitoolkit_edit", name="a", role_swap=True, conform="resize",
                    conflict="rename")["saved"]) == 2  # swapped pairs are other samples
    resave = save(client, run_id, out, layout="aitoolkit_edit", name="a", resave=True)  # then the conflict rule decides
    assert resave["saved"] == [] and [s["kind"] for s in resave["skipped"]][-2:] == ["exists", "exists"]
    renamed = save(client, run_id, out, layout="aitoolkit_edit", name="a", resave=True, conflict="rename")
    assert [Path(s["paths"][-1]).name for s in renamed["saved"]] == ["img1-3.png", "img2-3.png"]
    lines = (out / "manifest.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 10 and json.loads(lines[-1])["destination"] == "aitoolkit_edit/a"


def test_a_folder_without_its_manifest_forgets(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    save(client, run_id, out)
    (out / "manifest.jsonl").unlink()
    answer = save(client, run_id, out)
    assert [s["kind"] for s in answer["skipped"]] == ["unselected", "exists", "exists"]


def test_saved_results_carry_a_mark_and_their_tasks_come_back_in_the_listing(client, run, tmp_path):
    run_id, tasks = run
    rev = client.get(f"/api/runs/{run_id}/tasks").json["rev"]
    assert not any(r["saved"] for t in tasks for r in t["results"])
    save(client, run_id, tmp_path / "out", layout="musubi")
    changed = client.get(f"/api/runs/{run_id}/tasks?since={rev}").json["tasks"]
    assert sorted(t["source_name"] for t in changed) == ["img1.png", "img2.png"]  # the page sees the mark at once
    marks = {t["source_name"]: [r["saved"] for r in t["results"]] for t in changed}
    assert marks == {"img1.png": [True, False], "img2.png": [True, False]}
    where = client.get(f"/api/results/{tasks[0]['results'][0]['id']}/saves").json["saves"]
    assert [(w["output_dir"], w["layout"]) for w in where] == [(str(tmp_path / "out"), "musubi")]
    save(client, run_id, tmp_path / "dry", dry_run=True, only_selected=False)
    assert not any(r["saved"] for r in client.get(f"/api/tasks/{tasks[2]['id']}").json["results"])  # a preview marks nothing
    assert client.get("/api/results/nope/saves").status_code == 404


def test_results_saved_by_an_earlier_console_are_marked_when_skipped(client, run, tmp_path, app):
    run_id, tasks = run
    out = tmp_path / "out"
    save(client, run_id, out)
    store = app.extensions["console.store"]
    with store._tx() as db:  # as if the marks were lost (another data dir saved into this folder)
        db.execute("DELETE FROM saves")
    assert not client.get(f"/api/tasks/{tasks[0]['id']}").json["results"][0]["saved"]
    save(client, run_id, out)
    assert client.get(f"/api/tasks/{tasks[0]['id']}").json["results"][0]["saved"]


def test_two_saves_into_one_folder_at_once_write_each_file_once(app, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    answers: list[dict] = []

    def one_save() -> None:
        answers.append(save(app.test_client(), run_id, out, layout="fal_start_end", conflict="rename"))

    threads = [threading.Thread(target=one_save) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(a["saved"]) for a in answers) == [0, 0, 2]
    assert len((out / "manifest.jsonl").read_text("utf-8").splitlines()) == 2
    assert sorted(p.name for p in (out / "dataset").iterdir()) == [
        "img1.txt", "img1_end.png", "img1_start.png", "img2.txt", "img2_end.png", "img2_start.png"]


# -- following a save ---------------------------------------------------------------------------------

def test_a_named_save_can_be_followed_after_it_ends(client, run, tmp_path):
    run_id, _ = run
    answer = save(client, run_id, tmp_path / "out", job="first-save_1")
    assert answer["cancelled"] is False
    job = client.get("/api/save-jobs/first-save_1").json
    assert job["finished"] is True and job["phase"] == "done" and job["saved"] == 2 and job["total"] == 2
    assert client.post("/api/save-jobs/first-save_1/cancel").json["finished"] is True  # too late: harmless


def test_a_reserved_job_can_be_followed_before_its_save_starts(client, run, tmp_path):
    reserved = client.post("/api/save-jobs", json={})
    assert reserved.status_code == 201 and reserved.json["phase"] == "waiting" and not reserved.json["finished"]
    job = reserved.json["job"]
    assert client.get(f"/api/save-jobs/{job}").json["phase"] == "waiting"
    run_id, _ = run
    save(client, run_id, tmp_path / "out", job=job)
    assert client.get(f"/api/save-jobs/{job}").json == {**client.get(f"/api/save-jobs/{job}").json,
                                                         "phase": "done", "finished": True, "saved": 2}
    assert client.post("/api/save-jobs", json={}).json["job"] != job


@pytest.mark.parametrize("path, status, message", [
    ("/api/save-jobs/unknown", 404, "no save job unknown"),
])
def test_unknown_jobs_are_404(client, path, status, message):
    answer = client.get(path)
    assert answer.status_code == status and answer.json["error"] == message
    assert client.post("/api/save-jobs/unknown/cancel").status_code == 404


@pytest.mark.parametrize("job", ["a b", "x" * 65, "../x", "ü"])
def test_bad_job_ids_are_400(client, run, tmp_path, job):
    run_id, _ = run
    answer = client.post(f"/api/runs/{run_id}/save", query_string={"job": job}, json={"output_dir": str(tmp_path)})
    assert answer.status_code == 400 and "query 'job'" in answer.json["error"]


def test_a_refused_save_still_ends_its_job(client, run, tmp_path):
    run_id, _ = run
    blocker = tmp_path / "file"
    blocker.write_text("x")
    answer = client.post(f"/api/runs/{run_id}/save?job=bad", json={"output_dir": str(blocker / "out")})
    assert answer.status_code == 400
    assert client.get("/api/save-jobs/bad").json["finished"] is True


def test_a_finished_jobs_clock_stops(monkeypatch):
    from console.saving import progress
    clock = iter([100.0, 101.5, 500.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    job = progress.SaveJob("j")
    job.step("done", 1, 1, saved=1)
    assert job.snapshot()["elapsed_s"] == 1.5
