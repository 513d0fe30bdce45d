"""A save killed with `kill -9` is completed by the next save with the same rule (real server process, real files).

The run (120 tasks, one cached JPEG result each, noisy PNG sources) is made straight in the
store, so the test spends its time saving: into the ai-toolkit layout, converting every target to
PNG. The server is killed once 26 items are written; a new server then saves again with the same
rule, and the dataset must be whole: every pair complete, no temp file, the manifest and the
saved marks naming exactly what is on disk.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from PIL import Image

from console.cache import ImageCache
from console.store import NewResult, NewTask, Store
from tests.disks import SmallDisk, can_mount
from tests.figures import record
from testkit.server_process import ServerProcess

PAIRS = 120
KILL_AFTER = 26
NAME = "blue"
SIZE = (512, 384)


def noise(fmt: str) -> bytes:
    """Return an image of random pixels: slow to convert, like a photo, and never the same twice."""
    image = Image.frombytes("RGB", SIZE, os.urandom(SIZE[0] * SIZE[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 1}))
    return buffer.getvalue()


def finished_run(data: Path, folder: Path, count: int = PAIRS) -> tuple[str, dict[str, str]]:
    """Store a finished run of `count` tasks, each with a PNG source and one cached JPEG result; return it and
    the result id of each source name."""
    folder.mkdir(parents=True)
    data.mkdir(parents=True)
    store, cache = Store(data / "console.db"), ImageCache(data)
    tasks = []
    for index in range(count):
        path = folder / f"pair{index:03d}.png"
        path.write_bytes(noise("PNG"))
        tasks.append(NewTask(path.name, str(path)))
    run_id = store.create_run(str(folder), False, "make it blue", {"model": "m"}, tasks)
    for task_id in store.task_ids(run_id, ["pending"]):
        result = noise("JPEG")
        sha = cache.put(result, "jpeg")
        store.finish_task(task_id, "done", results=[NewResult(sha, "jpeg", *SIZE, len(result), "base64")])
    results = {t.source_name: t.results[0].id for t in store.tasks_since(run_id, limit=count).tasks}
    store.close()
    return run_id, results


def rule(out: Path) -> dict:
    return {"output_dir": str(out), "layout": "aitoolkit_edit", "name": NAME, "only_selected": False}


def save_in_background(server: ServerProcess, run_id: str, out: Path, job: str) -> threading.Thread:
    def run() -> None:
        try:
            server.http.post(f"/api/runs/{run_id}/save?job={job}", json=rule(out), timeout=120)
        except httpx.HTTPError:
            pass  # the server is killed under it

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_written(server: ServerProcess, job: str, count: int) -> int:
    """Poll the save job until `count` items are written; return how many were."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        reply = server.get(f"/api/save-jobs/{job}")
        if reply.status_code == 200:
            state = reply.json()
            assert not state["finished"], "the save ended before the kill"
            if state["phase"] == "writing" and state["done"] >= count:
                return state["done"]
        time.sleep(0.005)
    raise AssertionError("the save never got far enough")


def stems(folder: Path, suffix: str) -> set[str]:
    return {p.stem for p in folder.glob(f"*{suffix}")} if folder.is_dir() else set()


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if p.is_file() and (p.name.startswith(".tmp-") or "journal" in p.name)]


def manifest(out: Path) -> list[dict]:
    path = out / "manifest.jsonl"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text("utf-8").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return lines


def pairs_state(out: Path) -> dict[str, set[str]]:
    """Return the stems of whole pairs (target, control, caption and a manifest line) and of half-written ones:
    some files missing (partial), or all there but without a manifest line (unlisted)."""
    targets = stems(out / f"{NAME}_target", ".png")
    controls = stems(out / f"{NAME}_control", ".png")
    captions = stems(out / f"{NAME}_target", ".txt")
    listed = {Path(line["paths"][-1]).stem for line in manifest(out)}
    on_disk = targets & controls & captions
    whole = on_disk & listed
    return {"whole": whole, "half": (targets | controls | captions | listed) - whole, "listed": listed,
            "partial": (targets | controls | captions) - on_disk, "unlisted": on_disk - listed}


@pytest.mark.timeout(240)
def test_a_save_killed_mid_way_is_completed_by_the_next_save_with_the_same_rule(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    run_id, results = finished_run(data, tmp_path / "src")
    server = ServerProcess(data)
    thread = save_in_background(server, run_id, out, "crash")
    written_at_kill = wait_written(server, "crash", KILL_AFTER)
    server.kill()
    thread.join(30)

    crashed = pairs_state(out)
    left_temps = temp_files(out)
    assert written_at_kill >= KILL_AFTER and len(crashed["whole"]) < PAIRS  # killed mid-way
    assert crashed["listed"] <= crashed["whole"]  # a manifest line only for a whole pair

    server = ServerProcess(data)
    try:
        answer = server.post(f"/api/runs/{run_id}/save", rule(out))
        assert answer.status_code == 200, answer.text
        answer = answer.json()
        tasks = server.get(f"/api/runs/{run_id}/tasks").json()["tasks"]
        again = server.post(f"/api/runs/{run_id}/save", rule(out)).json()
    finally:
        server.stop()

    # Every pair whole, each once, nothing else in the folders.
    after = pairs_state(out)
    names = {Path(name).stem for name in results}
    assert after["whole"] == names and after["half"] == set()
    assert sorted(p.name for p in (out / f"{NAME}_target").iterdir()) == sorted(
        [f"{n}.png" for n in names] + [f"{n}.txt" for n in names])
    assert sorted(p.name for p in (out / f"{NAME}_control").iterdir()) == sorted(f"{n}.png" for n in names)
    assert temp_files(out) == [] and sorted(p.name for p in out.iterdir() if p.is_file()) == ["manifest.jsonl"]
    for name in names:
        with Image.open(out / f"{NAME}_target" / f"{name}.png") as image:
            image.load()
            assert image.format == "PNG" and image.size == SIZE
        assert (out / f"{NAME}_control" / f"{name}.png").read_bytes() == (tmp_path / "src" / f"{name}.png").read_bytes()
    assert answer["report"]["validation"]["ok"] is True and answer["errors"] == []

    # The manifest lists each result once, and the saved marks are exactly the listed results.
    lines = manifest(out)
    assert Counter(line["result_id"] for line in lines) == Counter(set(results.values()))
    assert all(Path(p).is_file() for line in lines for p in line["paths"])
    marked = {r["id"] for t in tasks for r in t["results"] if r["saved"]}
    assert marked == set(results.values())

    # What the crash left was repaired; what it finished was not written again; a third save writes nothing.
    repaired = answer["report"]["repaired"]
    assert repaired["temp_files"] == len([p for p in left_temps if p.name.startswith(".tmp-")])
    assert repaired["items"] == len(crashed["half"])
    remembered = [s for s in answer["skipped"] if s["kind"] == "saved_before"]
    assert len(remembered) == len(crashed["listed"]) and len(answer["saved"]) == PAIRS - len(crashed["listed"])
    assert again["saved"] == [] and len(again["skipped"]) == PAIRS and again["report"]["repaired"]["items"] == 0

    record("save_crash", pairs=PAIRS, written_when_killed=written_at_kill,
           pairs_whole_after_crash=len(crashed["whole"]), listed_after_crash=len(crashed["listed"]),
           half_written_after_crash=len(crashed["half"]), partial_items_after_crash=len(crashed["partial"]),
           whole_but_unlisted_after_crash=len(crashed["unlisted"]), temp_files_after_crash=len(left_temps),
           half_written_repaired=repaired["items"], files_removed_by_repair=repaired["files"],
           temp_files_removed=repaired["temp_files"], written_by_resumed_save=len(answer["saved"]),
           kept_from_crashed_save=len(remembered), pairs_whole_after_resume=len(after["whole"]),
           temp_files_after_resume=len(temp_files(out)), manifest_lines=len(lines), saved_marks=len(marked))


@pytest.mark.timeout(180)
def test_a_manifest_on_a_full_disk_leaves_nothing_unlisted_and_the_next_save_writes_the_rest_once(tmp_path):
    if not can_mount():
        pytest.skip("mounting a tmpfs needs root")
    data, out, count = tmp_path / "data", tmp_path / "out", 60
    run_id, results = finished_run(data, tmp_path / "src", count)
    disks = [SmallDisk(out, 1)]  # output_dir, where the manifest is: 1 MiB, filled during the save
    try:
        disks += [SmallDisk(out / f"{NAME}_{role}", 128) for role in ("target", "control")]  # the images' disks
        server = ServerProcess(data)
        try:
            first: dict = {}
            thread = threading.Thread(target=lambda: first.update(server.post(f"/api/runs/{run_id}/save?job=full",
                                                                               rule(out)).json()))
            thread.start()
            wait_written(server, "full", 5)
            disks[0].fill()
            thread.join(60)
            on_disk = sorted(str(p) for p in out.rglob("*") if p.is_file() and p.parent != out)
            lines = manifest(out)
            marked = {r["id"] for t in server.get(f"/api/runs/{run_id}/tasks").json()["tasks"] for r in t["results"]
                      if r["saved"]}
            disks[0].free()
            second = server.post(f"/api/runs/{run_id}/save", rule(out)).json()
            tasks = server.get(f"/api/runs/{run_id}/tasks").json()["tasks"]
        finally:
            server.stop()

        # While the disk was full: what is on disk is exactly what the manifest lists and what is marked.
        undone = [e for e in first["errors"] if e["error"].startswith("not kept: manifest.jsonl cannot be written")]
        assert undone and all("No space left on device" in e["error"] for e in undone)
        assert on_disk == sorted(p for line in lines for p in line["paths"])
        assert marked == {line["result_id"] for line in lines} and len(first["saved"]) == len(lines)
        assert temp_files(out) == []

        # Once there is room again, the next save writes the rest, each result once and under its own name.
        after = pairs_state(out)
        assert after["whole"] == {Path(name).stem for name in results} and after["half"] == set()
        assert Counter(line["result_id"] for line in manifest(out)) == Counter(set(results.values()))
        assert len(second["saved"]) == count - len(lines) and second["errors"] == []
        assert {r["id"] for t in tasks for r in t["results"] if r["saved"]} == set(results.values())
        record("save_manifest_full", pairs=count, listed_when_full=len(lines), removed_unlisted=len(undone),
               files_unlisted_when_full=len(set(on_disk) - {p for line in lines for p in line["paths"]}),
               written_by_next_save=len(second["saved"]), written_twice=sum(
                   n - 1 for n in Counter(line["result_id"] for line in manifest(out)).values()),
               pairs_whole_at_end=len(after["whole"]))
    finally:
        for disk in reversed(disks):
            disk.unmount()
