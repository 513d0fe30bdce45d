"""POST /api/uploads: a folder handed over from the browser lands under the data folder, safely, and leaves with its runs."""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

import httpx
import pytest

from console import datadir
from console.settings import resolve
from console.web import create_app
from tests.disks import small_disk  # noqa: F401  (fixture)
from tests.figures import record
from tests.helpers import api, wait_idle, words
from testkit.images import make
from testkit.server_process import ServerProcess

UPLOAD = {"X-Console-Upload": "1"}
PNG = make("PNG", (16, 12))


def post(client, files: list[tuple[str, bytes]], headers: dict | None = None):
    """Upload `files` as (relative name, bytes) the way the page does."""
    data = {"files": [(io.BytesIO(body), name) for name, body in files]}
    return client.post("/api/uploads", data=data, content_type="multipart/form-data",
                       headers=UPLOAD if headers is None else headers)


def uploads(app) -> Path:
    return Path(app.extensions["console.settings"].data_dir) / "uploads"


def everything(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")) if folder.exists() else []


def test_a_dropped_folder_keeps_its_sub_paths_and_a_run_uses_it(client, app, fake):
    answer = post(client, [("photos/a.png", PNG), ("photos/sub/b.jpg", make("JPEG")), ("photos/a.txt", b"a cat")])
    assert answer.status_code == 200, answer.json
    body = answer.json
    folder = Path(body["input_path"])
    assert folder.name == "photos" and folder.parent.parent == uploads(app)
    assert (body["count"], body["skipped"], body["recursive"]) == (2, [], True)
    assert (folder / "a.png").read_bytes() == PNG and (folder / "a.txt").read_text() == "a cat"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE((folder / "a.png").stat().st_mode) == 0o600
    preview = client.post("/api/scan", json={"input_path": body["input_path"], "recursive": True}).json
    assert preview["count"] == 2
    started = client.post("/api/runs", json={"input_path": body["input_path"], "recursive": True,
                                             "prompt": "make it blue", "api": api(fake, "g3_stream_dataurl")})
    assert started.status_code == 201, started.json
    listing = wait_idle(client, started.json["run_id"])
    assert listing["progress"]["done"] == 2


def test_loose_images_land_in_the_new_folder_itself(client, app):
    body = post(client, [("one.png", PNG), ("two.png", PNG)]).json
    assert Path(body["input_path"]).parent == uploads(app)
    assert (body["count"], body["recursive"]) == (2, False)


@pytest.mark.parametrize("name", ["../x.png", "a/../../x.png", ".hidden.png", "a/.git/x.png", "..\\x.png",
                                  "a\x00b.png", "a/\x1b.png", " /x.png/ "])
def test_a_path_that_leaves_the_folder_or_hides_is_refused(client, app, name):
    body = post(client, [(name, PNG), ("ok.png", PNG)]).json
    assert body["count"] == 1
    assert [item["reason"] for item in body["skipped"]] == ["unsafe path (a '..', hidden or empty part)"]
    assert not (uploads(app).parent / "x.png").exists() and not (uploads(app) / "x.png").exists()
    assert [path.name for path in Path(body["input_path"]).rglob("*")] == ["ok.png"]


def test_an_absolute_path_is_kept_inside(client):
    body = post(client, [("/etc/cron.d/x.png", PNG), ("//y.png", PNG)]).json
    assert everything(Path(body["input_path"])) == ["etc", "etc/cron.d", "etc/cron.d/x.png", "y.png"]


def test_a_file_that_is_not_an_image_is_skipped(client):
    body = post(client, [("a.png", PNG), ("notes.pdf", b"%PDF-1.4"), ("run.sh", b"#!/bin/sh")]).json
    assert body["count"] == 1
    assert words(body["skipped"]) == [{"name": "notes.pdf", "reason": "not an image"},
                               {"name": "run.sh", "reason": "not an image"}]
    assert everything(Path(body["input_path"])) == ["a.png"]


def test_the_same_path_twice_keeps_the_first(client):
    body = post(client, [("a.png", PNG), ("A.PNG", make("PNG", (8, 8)))]).json
    assert body["count"] == 1 and body["skipped"][0]["reason"] == "the same path twice in one upload"
    assert (Path(body["input_path"]) / "a.png").read_bytes() == PNG


def test_a_file_over_the_source_limit_is_refused_and_the_rest_kept(tmp_path):
    app = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / "d"), "MAX_SOURCE_BYTES": "1000"}))
    try:
        body = post(app.test_client(), [("big.png", PNG + b"\0" * 5000), ("small.png", PNG)]).json
        assert body["count"] == 1
        assert body["skipped"][0]["name"] == "big.png" and "MAX_SOURCE_BYTES" in body["skipped"][0]["reason"]
        assert everything(Path(body["input_path"])) == ["small.png"]
    finally:
        app.extensions["console.engine"].close()


def test_an_upload_over_the_total_limit_is_413_and_leaves_nothing(client, app):
    app.config["UPLOAD_MAX_BYTES"] = 20_000
    answer = post(client, [(f"{index}.png", PNG + b"\0" * 4000) for index in range(8)])
    assert answer.status_code == 413 and "over the limit" in answer.json["error"]
    assert everything(uploads(app)) == []


def test_only_the_upload_route_takes_a_larger_body(client, app):
    big = b"x" * (17 * 1024 * 1024)
    assert client.post("/api/scan", data=big, content_type="application/json").status_code == 413
    answer = post(client, [("a.png", PNG + b"\0" * len(big))])
    assert answer.status_code == 200 and answer.json["count"] == 1


def test_an_upload_without_images_is_400_and_leaves_nothing(client, app):
    answer = post(client, [("notes.pdf", b"x")])
    assert answer.status_code == 400 and "no images" in answer.json["error"]
    assert everything(uploads(app)) == []


@pytest.mark.parametrize("headers, status", [
    ({**UPLOAD, "Origin": "http://evil.example"}, 403),
    ({**UPLOAD, "Sec-Fetch-Site": "cross-site"}, 403),
    ({**UPLOAD, "Origin": "null"}, 403),
    ({}, 415),  # a plain form post: what any page may send across sites without asking
    ({"Origin": "http://localhost"}, 415),
])
def test_a_cross_site_upload_is_refused(client, app, headers, status):
    answer = post(client, [("a.png", PNG)], headers=headers)
    assert answer.status_code == status, answer.json
    assert everything(uploads(app)) == []


def test_the_page_s_own_upload_passes_the_guards(client):
    headers = {**UPLOAD, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert post(client, [("a.png", PNG)], headers=headers).status_code == 200


def test_not_multipart_or_cut_short_is_a_readable_4xx(client, app):
    answer = client.post("/api/uploads", data=b"--b\r\nContent-Disposition: form-data; name=\"files\"; "
                         b"filename=\"a.png\"\r\n\r\nabc", content_type="multipart/form-data; boundary=b",
                         headers=UPLOAD)
    assert answer.status_code == 400 and "could not be read" in answer.json["error"]
    assert everything(uploads(app)) == []
    no_boundary = client.post("/api/uploads", data=b"x", content_type="multipart/form-data", headers=UPLOAD)
    assert no_boundary.status_code == 400 and "boundary" in no_boundary.json["error"]


def test_the_folder_goes_with_its_last_run(client, app, fake):
    body = post(client, [("photos/a.png", PNG)]).json
    run = {"input_path": body["input_path"], "prompt": "p", "api": api(fake, "g3_stream_dataurl")}
    first, second = (client.post("/api/runs", json=run).json["run_id"] for _ in range(2))
    wait_idle(client, first)
    wait_idle(client, second)
    folder = Path(body["input_path"]).parent
    assert client.delete(f"/api/runs/{first}").status_code == 200
    assert folder.is_dir()  # the second run still uses it
    assert client.delete(f"/api/runs/{second}").status_code == 200
    assert not folder.exists()
    assert client.get("/api/runs").status_code == 200


def test_deleting_a_run_on_a_folder_of_the_user_s_removes_nothing(client, fake, tmp_path):
    source = tmp_path / "mine"
    source.mkdir()
    (source / "a.png").write_bytes(PNG)
    run_id = client.post("/api/runs", json={"input_path": str(source), "prompt": "p",
                                            "api": api(fake, "g3_stream_dataurl")}).json["run_id"]
    wait_idle(client, run_id)
    client.delete(f"/api/runs/{run_id}")
    assert (source / "a.png").exists()


def test_a_killed_upload_s_temporary_folder_is_swept_at_start(tmp_path):
    folder = tmp_path / "data"
    partial = folder / "uploads" / ".tmp-20260101-000000-abcd"
    (partial / "photos").mkdir(parents=True)
    (partial / "photos" / "a.png").write_bytes(PNG)
    kept = folder / "uploads" / "20260101-000000-beef"
    kept.mkdir()
    lock = datadir.prepare(folder)
    try:
        assert not partial.exists() and kept.is_dir()
    finally:
        lock.release()


def test_a_full_data_disk_answers_507_and_leaves_no_partial_folder(small_disk):  # noqa: F811
    app = create_app(settings=resolve({"APP_DATA_DIR": str(small_disk.path / "data")}))
    try:
        small_disk.fill()
        answer = post(app.test_client(), [("a.png", PNG), ("b.png", PNG + b"\0" * (3 * 1024 * 1024))])
        assert answer.status_code == 507, answer.json
        assert answer.json["storage"]["kind"] == "full"
        assert everything(uploads(app)) == []
    finally:
        app.extensions["console.engine"].close()


def _peak_mib(pid: int) -> float:
    """The process's own peak resident memory (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def test_a_large_upload_over_the_lan_streams_to_disk(tmp_path):
    """Five 40 MiB images through a real server behind its access token: the server's peak memory
    grows by far less than the upload (it is written as it arrives), and every byte lands."""
    sources = tmp_path / "big"
    sources.mkdir()
    body = PNG + os.urandom(40 * 1024 * 1024 - len(PNG))
    for number in range(5):
        (sources / f"{number}.png").write_bytes(body)
    server = ServerProcess(tmp_path / "data", host="0.0.0.0")  # noqa: S104 - reached through 127.0.0.1, token required
    try:
        before = _peak_mib(server.process.pid)
        refused = httpx.post(f"{server.url}api/uploads", headers=UPLOAD, files={"files": ("a.png", PNG)})
        assert refused.status_code == 401  # no token: the same door as every other route
        handles = [(sources / f"{number}.png").open("rb") for number in range(5)]
        started = time.perf_counter()
        answer = server.http.post("/api/uploads", headers=UPLOAD, timeout=120,
                                  files=[("files", (f"big/{number}.png", handle)) for number, handle in enumerate(handles)])
        seconds = time.perf_counter() - started
        for handle in handles:
            handle.close()
        assert answer.status_code == 200, answer.text
        assert answer.json()["count"] == 5
        growth = _peak_mib(server.process.pid) - before
        folder = Path(answer.json()["input_path"])
        assert [(folder / f"{number}.png").read_bytes() == body for number in range(5)] == [True] * 5
        assert growth < 64, f"the server's peak memory grew by {growth:.0f} MiB for a 200 MiB upload"
        record("uploads", upload_mib=200, upload_seconds=round(seconds, 2), upload_mib_per_s=round(200 / seconds, 1),
               server_peak_growth_mib=round(growth, 1))
    finally:
        server.stop()


def test_an_upload_no_run_used_for_a_week_goes_at_the_next_upload(client, app, fake):
    old = [Path(post(client, [(f"{name}/a.png", PNG)]).json["input_path"]).parent for name in ("used", "forgotten")]
    recent = Path(post(client, [("recent.png", PNG)]).json["input_path"])
    run = {"input_path": str(old[0] / "used"), "prompt": "p", "api": api(fake, "g3_stream_dataurl")}
    wait_idle(client, client.post("/api/runs", json=run).json["run_id"])
    week_ago = time.time() - 8 * 24 * 3600
    for folder in old:
        os.utime(folder, (week_ago, week_ago))
    newest = Path(post(client, [("new.png", PNG)]).json["input_path"])
    assert [folder.is_dir() for folder in (*old, recent, newest)] == [True, False, True, True]
