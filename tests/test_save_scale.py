"""A save of 10,000 results shows its progress and stops on cancel with nothing half-written.

The run is made straight in the store (10,000 tasks with one cached result each, distinct
sources), so the test spends its time saving, through the real routes and the real disk.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

from PIL import Image

from console.store import NewTask, new_id

COUNT = 10_000


def big_run(app, folder: Path) -> str:
    """Store a finished run of COUNT tasks, each with its own small source and one cached PNG result."""
    store, cache = app.extensions["console.store"], app.extensions["console.cache"]
    folder.mkdir()
    tasks = []
    for index in range(COUNT):
        buffer = io.BytesIO()
        Image.new("RGB", (4, 3), (index % 256, index // 256 % 256, 7)).save(buffer, "PNG")
        path = folder / f"img{index:05d}.png"
        path.write_bytes(buffer.getvalue())
        tasks.append(NewTask(path.name, str(path)))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 30)).save(buffer, "PNG")
    sha = cache.put(buffer.getvalue(), "png")
    run_id = store.create_run(str(folder), False, "make it blue", {"model": "m"}, tasks)
    # The rows finish_task would write, in one transaction (10,000 of them one by one take ~20 s here).
    with store._tx() as db:
        rev = store._bump(db)
        db.executemany("INSERT INTO results (id, task_id, sha256, format, width, height, bytes, origin, created_at) "
                       "VALUES (?, ?, ?, 'png', 8, 6, ?, 'base64', ?)",
                       [(new_id("i"), task_id, sha, len(buffer.getvalue()), time.time())
                        for task_id in store.task_ids(run_id, ["pending"])])
        db.execute("UPDATE tasks SET status = 'done', rev = ? WHERE run_id = ?", (rev, run_id))
    return run_id


def save_in_background(app, run_id: str, out: Path, job: str) -> tuple[threading.Thread, dict]:
    answer: dict = {}

    def run() -> None:
        reply = app.test_client().post(f"/api/runs/{run_id}/save?job={job}",
                                       json={"output_dir": str(out), "template": "{stem}", "only_selected": False})
        answer.update(reply.json, status=reply.status_code)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answer


def follow_then_cancel(client, job: str, written: int) -> list[dict]:
    """Poll the job until `written` items are on disk, cancel it, and return every snapshot seen."""
    seen: list[dict] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        reply = client.get(f"/api/save-jobs/{job}")
        if reply.status_code == 200:
            seen.append(reply.json)
            if reply.json["phase"] == "writing" and reply.json["done"] >= written:
                assert client.post(f"/api/save-jobs/{job}/cancel").json["cancelled"] is True
                return seen
            assert not reply.json["finished"], "the save ended before it could be cancelled"
        time.sleep(0.02)
    raise AssertionError(f"the save never got to {written} items: {seen[-1:]}")


def on_disk(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


def test_ten_thousand_results_show_progress_and_cancel_cleanly(app, client, tmp_path):
    run_id = big_run(app, tmp_path / "src")
    out = tmp_path / "out"
    thread, answer = save_in_background(app, run_id, out, "big")
    seen = follow_then_cancel(client, "big", 300)
    thread.join(120)
    assert answer["status"] == 200 and answer["cancelled"] is True

    # Progress: planning then writing, counting up to the 10,000 results.
    phases = [s["phase"] for s in seen]
    first_write = phases.index("writing")
    assert set(phases[:first_write]) <= {"planning"} and set(phases[first_write:]) == {"writing"}
    assert {s["total"] for s in seen if s["phase"] == "planning"} <= {0, COUNT}
    assert {s["total"] for s in seen if s["phase"] == "writing"} == {COUNT}
    writing = [s["done"] for s in seen if s["phase"] == "writing"]
    assert writing == sorted(writing)

    # Nothing half-written: each file written is whole and listed, nothing else is there.
    saved = answer["saved"]
    assert 300 <= len(saved) < COUNT
    assert answer["report"]["counts"]["not_written"] == COUNT - len(saved)
    files = on_disk(out)
    images = [p for p in files if p.suffix == ".png"]
    assert [str(p) for p in images] == sorted(path for s in saved for path in s["paths"])
    assert [p.name for p in files if p.suffix != ".png"] == ["manifest.jsonl"]  # no temp files left behind
    reference = images[0].read_bytes()
    assert all(p.read_bytes() == reference for p in images)
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text("utf-8").splitlines()]
    assert sorted(line["paths"][0] for line in lines) == [str(p) for p in images]
    job = client.get("/api/save-jobs/big").json
    assert job["finished"] and job["cancelled"] and job["saved"] == len(saved)

    # The store marks exactly what was written.
    tasks = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
    assert sum(r["saved"] for t in tasks for r in t["results"]) == len(saved)

    # Saving again goes on where the cancelled save stopped: nothing written twice.
    thread, again = save_in_background(app, run_id, out, "big-2")
    follow_then_cancel(client, "big-2", 100)
    thread.join(120)
    assert again["cancelled"] is True
    assert sum(1 for s in again["skipped"] if s["kind"] == "saved_before") == len(saved)
    first_names = {Path(s["paths"][0]).name for s in saved}
    assert first_names.isdisjoint(Path(s["paths"][0]).name for s in again["saved"])
    assert len([p for p in on_disk(out) if p.suffix == ".png"]) == len(saved) + len(again["saved"])
