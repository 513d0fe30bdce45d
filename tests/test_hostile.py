"""Hostile files and answers (issue 13): each a clear error on its task, the server unharmed, memory bounded.

Sources: a decompression bomb, a truncated image, one over MAX_SOURCE_BYTES, a link to /dev/zero,
files rewritten while the run reads them. Answers: a decompression bomb, a truncated image, a
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

import pytest
from PIL import Image

from tests.fake_scenarios import bomb_png
from tests.figures import record
from tests.helpers import CHAT
from tests.images import make
from tests.server_process import ServerProcess

MiB = 1024 * 1024
RESPONSE_CAP = 16 * MiB
SOURCE_CAP = 8 * MiB
MEMORY_BUDGET = 250 * MiB  # peak growth allowed over the idle server, whatever was thrown at it


def peak_rss(server: ServerProcess) -> int:
    """Return the server's peak resident memory in bytes (VmHWM)."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    env = {**os.environ, "MAX_RESPONSE_BYTES": str(RESPONSE_CAP), "MAX_SOURCE_BYTES": str(SOURCE_CAP)}
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
    failed_with(tasks, "400000000 pixels", "MAX_IMAGE_PIXELS")
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
    assert preview["count"] == 1 and preview["skipped"] == [{"name": "zero.png", "reason": "not a regular file"}]
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
    failed_with(tasks, "400000000 pixels")


def test_a_truncated_answer_image_is_refused(hostile_server, fake, tmp_path):
    tasks = run_once(hostile_server, fake, one_source(tmp_path, "a.png", make("PNG")), "truncated_result")
    failed_with(tasks, "truncated")


def test_a_stream_over_the_cap_is_cut_off(hostile_server, fake, tmp_path):
    started = time.monotonic()
    tasks = run_once(hostile_server, fake, one_source(tmp_path, "a.png", make("PNG")), "oversize_stream")
    failed_with(tasks, f"cap of {RESPONSE_CAP} bytes")
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


# -- hostile prompt sources (issue 10's inputs) -------------------------------------------------------


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
