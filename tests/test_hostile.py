"""Hostile files and answers: each a clear error on its task, the server unharmed, memory bounded.

Sources: a decompression bomb, a truncated image, one over MAX_SOURCE_BYTES, a link to /dev/zero,
files rewritten while the run reads them. Folders: a FIFO named like a caption, a name that is not
UTF-8, a link to a private text file, a tree past SCAN_MAX_ENTRIES (and / itself). Answers: a decompression bomb, a truncated image, a
stream past MAX_RESPONSE_BYTES, 10,000 image links. The server is a real process, so its peak
memory (VmHWM) is what the kernel measured. Prompt sources: a 200 MB sidecar, a 200 MB CSV or
XLSX table (sparse files) are refused before anything runs.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from testkit.fake_scenarios import bomb_png
from tests.figures import record
from tests.helpers import CHAT, words
from tests.hostile_files import PROMPT_S, badly_named, fifo, release
from testkit.images import make
from testkit.server_process import ServerProcess


MiB = 1024 * 1024
RESPONSE_CAP = 16 * MiB
SOURCE_CAP = 8 * MiB
MEMORY_BUDGET = 250 * MiB  # peak growth allowed over the idle server, whatever was thrown at it
SCAN_CAP = 300  # entries one scan visits (SCAN_MAX_ENTRIES): every other folder here is far smaller


def peak_rss(server: ServerProcess) -> int:
    """Return the server's peak resident memory in bytes (VmHWM)."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    env = {**os.environ, "MAX_RESPONSE_BYTES": str(RESPONSE_CAP), "MAX_SOURCE_BYTES": str(SOURCE_CAP),
           "SCAN_MAX_ENTRIES": str(SCAN_CAP)}
    server = ServerProcess(tmp_path_factory.mktemp("hostile") / "data", env=env)
    server.idle_peak = peak_rss(server)
    yield server
    record("hostile", server_peak_rss_mib=round(peak_rss(server) / MiB, 1),
           idle_rss_mib=round(server.idle_peak / MiB, 1))
    assert peak_rss(server) - server.idle_peak < MEMORY_BUDGET
    server.stop()


def run_once(server: ServerProcess, fake, folder: Path, scenario: str, **fields) -> list[dict]:
    api = {"api_url": fake.url(scenario, CHAT), "model": "m", "allow_private_api": True, "max_retries": 0,
           "timeout_s": 60, **fields}
    answer = server.post("/api/runs", {"input_path": str(folder), "prompt": "hostile", "api": api})
    assert answer.status_code == 201, answer.text
    tasks = server.wait_idle(answer.json()["run_id"], timeout=90)["tasks"]
    assert server.get("/api/health").status_code == 200  # unharmed
    return tasks


def failed_with(tasks: list[dict], *words: str) -> None:
    for task in tasks:
        assert task["status"] == "failed", task
        for word in words:
            assert word in task["error"], task["error"]
        assert "bug" not in task["error"] and "Traceback" not in task["error"]
    record("hostile", refused=len(tasks))


def one_source(tmp_path: Path, name: str, data: bytes) -> Path:
    folder = tmp_path / name.replace(".", "_")
    folder.mkdir()
    (folder / name).write_bytes(data)
    return folder


# -- hostile sources ---------------------------------------------------------------------------------


def test_a_decompression_bomb_source_is_refused_before_any_call(hostile_server, fake, tmp_path):
    tasks = run_once(hostile_server, fake, one_source(tmp_path, "bomb.png", bomb_png()), "g3_stream_dataurl")
    failed_with(tasks, "400,000,000 pixels", "MAX_IMAGE_PIXELS")
    assert tasks[0]["attempts"] == 0 and not [r for r in fake.requests if r.method == "POST"]


def test_a_truncated_source_is_refused(hostile_server, fake, tmp_path):
    whole = make("PNG", (300, 200))
    tasks = run_once(hostile_server, fake, one_source(tmp_path, "cut.png", whole[: len(whole) // 2]),
                     "g3_stream_dataurl")
    failed_with(tasks, "not a usable image")


def test_a_source_over_the_size_cap_is_refused_without_reading_it(hostile_server, fake, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    with open(folder / "big.png", "wb") as file:  # sparse: 64 MiB on paper, nothing on disk
        file.write(make("PNG"))
        file.truncate(64 * MiB)
    failed_with(run_once(hostile_server, fake, folder, "g3_stream_dataurl"), "over the limit", "MAX_SOURCE_BYTES")


def test_a_link_to_an_endless_device_is_skipped_by_the_scan(hostile_server, tmp_path):
    folder = tmp_path / "dev"
    folder.mkdir()
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "ok.png").write_bytes(make("PNG"))
    preview = hostile_server.post("/api/scan", {"input_path": str(folder)}).json()
    assert preview["count"] == 1 and words(preview["skipped"]) == [{"name": "zero.png", "reason": "not a regular file"}]
    record("hostile", refused=1)


def test_sources_rewritten_while_the_run_reads_them(hostile_server, fake, tmp_path):
    # Every file is truncated and written again, small and large in turn, as fast as possible,
    # so the console reads some of them half-written: each task either sends a whole image or
    # fails saying the source is not usable; nothing else.
    folder = tmp_path / "moving"
    folder.mkdir()
    noise = Image.frombytes("RGB", (600, 600), os.urandom(600 * 600 * 3))
    large = io.BytesIO()
    noise.save(large, "PNG")  # about 1 MB: slow enough to be caught half-written
    versions = [make("PNG", (40, 30), (200, 0, 0)), large.getvalue()]
    for index in range(12):
        (folder / f"m{index:02d}.png").write_bytes(versions[0])
    stop = threading.Event()
    rewrites = [0]

    def churn(paths: list[Path]) -> None:
        while not stop.is_set():
            for path in paths:
                for version in versions:
                    with open(path, "r+b") as file:  # in place: a reader may see any mix of the two
                        file.write(version)
                        file.truncate()
                    rewrites[0] += 1

    paths = sorted(folder.iterdir())
    threads = [threading.Thread(target=churn, args=(paths[n::3],), daemon=True) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        tasks = run_once(hostile_server, fake, folder, "g3_stream_dataurl", concurrency=12)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    statuses = {task["status"] for task in tasks}
    assert statuses <= {"done", "failed"}
    for task in tasks:
        if task["status"] == "failed":
            assert "source" in task["error"] and "bug" not in task["error"], task["error"]
    for request in fake.requests:
        if request.method == "POST":  # whatever was sent is a whole image
            data = request.json["messages"][-1]["content"][-1]["image_url"]["url"].partition(",")[2]
            import base64

            with Image.open(io.BytesIO(base64.b64decode(data))) as image:
                image.load()
    record("hostile", moving_sources=len(tasks), moving_source_rewrites=rewrites[0],
           moving_sources_failed=sum(task["status"] == "failed" for task in tasks))


# -- hostile answers ---------------------------------------------------------------------------------


def test_a_decompression_bomb_answer_is_refused(hostile_server, fake, tmp_path):
    tasks = run_once(hostile_server, fake, one_source(tmp_path, "a.png", make("PNG")), "bomb_result")
    failed_with(tasks, "400,000,000 pixels")


def test_a_truncated_answer_image_is_refused(hostile_server, fake, tmp_path):
    tasks = run_once(hostile_server, fake, one_source(tmp_path, "a.png", make("PNG")), "truncated_result")
    failed_with(tasks, "truncated")


def test_a_stream_over_the_cap_is_cut_off(hostile_server, fake, tmp_path):
    started = time.monotonic()
    tasks = run_once(hostile_server, fake, one_source(tmp_path, "a.png", make("PNG")), "oversize_stream")
    failed_with(tasks, "cap of 16 MiB")
    deadline = time.monotonic() + 10
    while fake.in_flight and time.monotonic() < deadline:  # the endless stream was closed, not drained
        time.sleep(0.05)
    assert fake.in_flight == 0
    record("hostile", oversize_stream_seconds=round(time.monotonic() - started, 2))


def test_an_answer_with_10000_image_links_is_refused_without_fetching_any(hostile_server, fake, tmp_path):
    started = time.monotonic()
    tasks = run_once(hostile_server, fake, one_source(tmp_path, "a.png", make("PNG")), "many_links.n=10000")
    failed_with(tasks, "10000 image references")
    assert not [r for r in fake.requests if r.method == "GET"]
    record("hostile", many_links_seconds=round(time.monotonic() - started, 2))


# -- hostile prompt sources (sidecars and tables) -----------------------------------------------------


def sparse(path: Path, head: bytes, size: int) -> Path:
    with open(path, "wb") as file:  # 200 MB on paper, nothing on disk
        file.write(head)
        file.truncate(size)
    return path


def test_a_200_mb_sidecar_is_refused_before_the_run_starts(hostile_server, fake, tmp_path):
    folder = one_source(tmp_path, "a.png", make("PNG"))
    sparse(folder / "a.txt", b"a caption", 200 * MiB)
    api = {"api_url": fake.url("g3_stream_dataurl", CHAT), "model": "m", "allow_private_api": True}
    preview = hostile_server.post("/api/scan", {"input_path": str(folder), "prompt": "{caption}"})
    assert preview.status_code in (200, 400), preview.text
    answer = hostile_server.post("/api/runs", {"input_path": str(folder), "prompt": "edit: {caption}", "api": api})
    assert answer.status_code == 400 and ("a.txt" in answer.text or "a.png" in answer.text), answer.text
    assert "Traceback" not in answer.text and not [r for r in fake.requests if r.method == "POST"]
    assert hostile_server.get("/api/health").status_code == 200
    record("hostile", refused=1)


@pytest.mark.parametrize("name, head", [("tasks.csv", "源图,提示词\na.png,edit\n".encode()),
                                        ("tasks.xlsx", b"PK\x03\x04")])
def test_a_200_mb_table_is_refused_before_anything_runs(hostile_server, fake, tmp_path, name, head):
    folder = one_source(tmp_path, "a.png", make("PNG"))
    table = sparse(folder / name, head, 200 * MiB)
    api = {"api_url": fake.url("g3_stream_dataurl", CHAT), "model": "m", "allow_private_api": True}
    answer = hostile_server.post("/api/runs", {"mode": "table", "table_path": str(table), "prompt": "", "api": api})
    assert answer.status_code == 400 and "Traceback" not in answer.text, answer.text
    assert "MiB" in answer.text or "too large" in answer.text or "large" in answer.text, answer.text
    assert not [r for r in fake.requests if r.method == "POST"]
    assert hostile_server.get("/api/health").status_code == 200
    record("hostile", refused=1)


# -- hostile folders ---------------------------------------------------------------------------------


def api_of(fake) -> dict:
    return {"api_url": fake.url("g3_stream_dataurl", CHAT), "model": "m", "allow_private_api": True, "max_retries": 0}


def post_promptly(server: ServerProcess, path: str, body: dict, *fifos: Path) -> tuple[object, float]:
    """POST and return (answer, seconds); a request stuck on a FIFO fails the test (and is released)."""
    started = time.monotonic()
    try:
        answer = server.http.post(path, json=body, timeout=PROMPT_S)
    except httpx.TimeoutException:
        release(*fifos)
        raise AssertionError(f"{path} did not answer within {PROMPT_S} s") from None
    return answer, time.monotonic() - started


def test_a_fifo_named_like_a_caption_never_hangs_the_preview_or_the_run(hostile_server, fake, tmp_path):
    folder = one_source(tmp_path, "a.png", make("PNG"))
    pipe = fifo(folder / "a.txt")
    preview, seconds = post_promptly(hostile_server, "/api/scan", {"input_path": str(folder)}, pipe)
    assert preview.status_code == 200, preview.text
    assert words(preview.json()["sidecars"]["missing"]) == [
        {"name": "a.png", "error": "a.txt cannot be read: not a regular file (a FIFO)"}]
    refused, _ = post_promptly(hostile_server, "/api/runs", {"input_path": str(folder), "prompt": "{caption}",
                                                             "api": api_of(fake)}, pipe)
    assert refused.status_code == 400 and "a.txt cannot be read: not a regular file" in refused.text, refused.text
    started, _ = post_promptly(hostile_server, "/api/runs", {"input_path": str(folder), "prompt": "p",
                                                             "sidecar": "append", "api": api_of(fake)}, pipe)
    assert started.status_code == 201, started.text
    tasks = hostile_server.wait_idle(started.json()["run_id"])["tasks"]
    assert [task["status"] for task in tasks] == ["done"]
    record("hostile", fifo_caption_preview_seconds=round(seconds, 3))


def test_a_file_named_in_bytes_that_are_not_utf8_is_skipped_and_the_rest_runs(hostile_server, fake, tmp_path):
    folder = one_source(tmp_path, "ok.png", make("PNG"))
    badly_named(folder, b"caf\xe9.png", make("PNG"))
    preview = hostile_server.post("/api/scan", {"input_path": str(folder)})
    assert preview.status_code == 200, preview.text
    assert preview.json()["count"] == 1 and words(preview.json()["skipped"]) == [
        {"name": "caf\\xe9.png", "reason": "name is not valid UTF-8: rename it to include it"}]
    answer = hostile_server.post("/api/runs", {"input_path": str(folder), "prompt": "p", "api": api_of(fake)})
    assert answer.status_code == 201 and answer.json()["task_count"] == 1, answer.text
    tasks = hostile_server.wait_idle(answer.json()["run_id"])["tasks"]
    assert [(task["source_name"], task["status"]) for task in tasks] == [("ok.png", "done")]
    record("hostile", refused=1)


def test_a_link_to_a_private_text_file_is_refused_without_quoting_it(hostile_server, fake, tmp_path):
    secret = "s3cret-line-that-must-never-leave-its-file"
    private = tmp_path / "private" / "passwd"
    private.parent.mkdir()
    private.write_text(f"root:x:0:0:{secret}:/root:/bin/sh\n")
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "passwd.png").symlink_to(private)
    tasks = run_once(hostile_server, fake, folder, "g3_stream_dataurl")
    failed_with(tasks, "not an image (text, 68 bytes)")
    debug = hostile_server.get(f"/api/tasks/{tasks[0]['id']}/debug").json()["log"]
    export = hostile_server.get(f"/api/runs/{tasks[0]['run_id']}/export.csv").content
    seen = [tasks[0]["error"], debug, export.decode("utf-8-sig")]
    seen += [path.read_bytes().decode("latin-1") for path in hostile_server.data_dir.rglob("*") if path.is_file()]
    for text in seen:  # the answers, and every byte the console stored (database, its journal, logs)
        assert secret not in text and "root:x" not in text


def test_a_scan_past_the_entry_cap_stops_and_says_so_and_a_run_of_it_is_refused(hostile_server, fake, tmp_path):
    for number in range(SCAN_CAP // 10 + 5):
        sub = tmp_path / "tree" / f"f{number:03d}"
        sub.mkdir(parents=True)
        for index in range(10):
            (sub / f"{index}.png").write_bytes(b"")
    body = {"input_path": str(tmp_path / "tree"), "recursive": True}
    preview, _ = post_promptly(hostile_server, "/api/scan", body)
    assert preview.status_code == 200, preview.text
    cut = preview.json()["truncated"]
    assert cut["reason"] == "entries" and cut["visited"] == SCAN_CAP and preview.json()["count"] < SCAN_CAP
    assert f"SCAN_MAX_ENTRIES={SCAN_CAP}" in cut["message"]
    refused, _ = post_promptly(hostile_server, "/api/runs", {**body, "prompt": "p", "api": api_of(fake)})
    assert refused.status_code == 400 and "a run takes every image" in refused.text, refused.text
    whole, seconds = post_promptly(hostile_server, "/api/scan", {"input_path": "/", "recursive": True})
    assert whole.status_code in (200, 400) and "stopped after" in whole.text, whole.text
    record("hostile", scan_root_capped_seconds=round(seconds, 3))


def test_a_source_swapped_for_a_fifo_after_its_run_is_refused_promptly_when_shown(hostile_server, fake, tmp_path):
    folder = one_source(tmp_path, "a.png", make("PNG"))
    answer = hostile_server.post("/api/runs", {"input_path": str(folder), "prompt": "p", "api": api_of(fake)})
    task = hostile_server.wait_idle(answer.json()["run_id"])["tasks"][0]
    assert hostile_server.get(f"/api/tasks/{task['id']}/source").content == (folder / "a.png").read_bytes()
    (folder / "a.png").unlink()
    pipe = fifo(folder / "a.png")
    for query in ("", "?thumb=1"):
        started = time.monotonic()
        try:
            shown = hostile_server.http.get(f"/api/tasks/{task['id']}/source{query}", timeout=PROMPT_S)
        except httpx.TimeoutException:
            release(pipe)
            raise AssertionError("the source route blocked on a FIFO") from None
        assert shown.status_code == 422 and "not a regular file (a FIFO)" in shown.json()["error"], shown.text
        assert time.monotonic() - started < PROMPT_S
