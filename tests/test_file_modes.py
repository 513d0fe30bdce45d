"""Files that can hold a key are the owner's alone: the data folder 0700, its files 0600 from their
first byte, looser ones tightened at start with a note; one server per folder; no partial files after a crash."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from console import datadir
from tests.figures import record
from tests.helpers import CHAT, make_sources
from testkit.server_process import ROOT, ServerProcess

KEY = "sk-modes-0123456789abcdef"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


class ModeWatch:
    """Poll the data folder while the server works and remember every file seen readable by others."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.loose, self.polls, self.seen = folder, set(), 0, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for root, _, files in os.walk(self.folder):
                for name in files:
                    path = Path(root, name)
                    try:
                        if mode(path) & 0o077:
                            self.loose.add(str(path.relative_to(self.folder)))
                        self.seen.add(str(path.relative_to(self.folder)))
                    except (FileNotFoundError, ValueError):
                        pass
            self.polls += 1
            time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_every_file_is_owner_only_from_its_first_byte(tmp_path, fake):
    folder = tmp_path / "data"
    previous = os.umask(0o022)  # a usual desktop umask: what is not made private on purpose is 0644
    try:
        watch = ModeWatch(folder)  # from before the folder exists
        server = ServerProcess(folder)
        try:
            api = {"api_url": fake.url("g3_stream_dataurl", CHAT), "model": "m", "allow_private_api": True,
                   "api_key": KEY}
            assert server.http.put("/api/settings", json={"api": api}).status_code == 200
            assert server.http.put("/api/presets/api/mine", json=api).status_code == 200
            run = server.post("/api/runs", {"input_path": str(make_sources(tmp_path / "src", 3)), "prompt": "p"})
            listing = server.wait_idle(run.json()["run_id"])
            result = listing["tasks"][0]["results"][0]["id"]
            assert server.get(f"/api/results/{result}/image?thumb=1").status_code == 200
        finally:
            server.stop()
            watch.stop()
    finally:
        os.umask(previous)
    assert mode(folder) == 0o700
    for path in datadir.secret_files(folder):
        assert mode(path) == 0o600, path
    files = [Path(root, name) for root, _, names in os.walk(folder) for name in names]
    assert {str(p.relative_to(folder)) for p in files} >= {"settings.json", "presets.json", "console.db",
                                                           "logs/console.log"}
    assert [str(p) for p in files if mode(p) != 0o600] == []  # images and thumbnails too
    assert watch.loose == set() and watch.polls > 50, (watch.loose, watch.polls)
    record("files", files_checked=len(files), mode_polls=watch.polls, loose_files_seen=len(watch.loose))


def test_looser_files_and_folders_are_tightened_at_start_with_a_note(tmp_path):
    folder = tmp_path / "data"
    (folder / "logs").mkdir(parents=True)
    loose = {"settings.json": '{"api": {"api_key": "sk-old"}}', "presets.json": "{}", "logs/console.log": "",
             "settings.json.corrupt-20250101-000000": "{"}
    for name, text in loose.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o644)
    folder.chmod(0o755)
    (folder / "logs").chmod(0o755)
    ServerProcess(folder).stop()
    assert mode(folder) == 0o700 and mode(folder / "logs") == 0o700
    assert {name: mode(folder / name) for name in loose} == dict.fromkeys(loose, 0o600)
    log = (folder / "logs" / "console.log").read_text(encoding="utf-8")
    assert f"{folder} was readable by others (mode 755); now 700" in log
    assert f"{folder / 'settings.json'} was readable by others (mode 644); now 600" in log
    record("files", loose_files_tightened=len(loose) + 2)


def test_a_symlink_in_the_data_folder_is_not_followed_when_tightening(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "presets.json").symlink_to(outside)
    lock = datadir.prepare(folder)
    lock.release()
    assert mode(outside) == 0o644


def test_a_second_server_on_the_same_folder_is_refused_and_names_the_first(tmp_path):
    first = ServerProcess(tmp_path / "data")
    try:
        second = subprocess.run([sys.executable, "app.py", "--port", "0", "--data-dir", str(tmp_path / "data"),
                                 "--no-browser", "--status-ui", "none"], cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 2
        assert f"another console (pid {first.process.pid}) is using the data folder" in second.stderr
        assert first.get("/api/health").status_code == 200  # untouched
    finally:
        first.stop()
    ServerProcess(tmp_path / "data").stop()  # once the first is gone the folder is free again


def test_partial_files_a_killed_server_left_are_removed_at_start(tmp_path):
    folder = tmp_path / "data"
    ServerProcess(folder).kill()
    leftovers = [folder / ".tmp-settings", folder / "cache" / "ab" / ".tmp-x1y2", folder / "thumbs" / "cd" / ".tmp-z"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half an image")
    server = ServerProcess(folder)
    server.stop()
    assert [path for path in leftovers if path.exists()] == []
    assert "removed 3 partial file(s)" in (folder / "logs" / "console.log").read_text(encoding="utf-8")
