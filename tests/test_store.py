"""The SQLite store: revisions, tombstones, and connections that do not outlive their threads."""

from __future__ import annotations

import os
import threading

from console.store import Store


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_thread_connections_close_when_their_threads_end(tmp_path):
    store = Store(tmp_path / "x.db")
    store.runs()
    before = open_fds()
    for _ in range(200):  # like werkzeug: one thread per request
        thread = threading.Thread(target=store.runs)
        thread.start()
        thread.join()
    assert open_fds() <= before + 2
    store.close()


def test_revisions_and_tombstones(tmp_path):
    store = Store(tmp_path / "x.db")
    run_id = store.create_run("/in", False, "p", {"model": "m"}, [("a.png", "/in/a.png"), ("b.png", "/in/b.png")])
    first = store.tasks_since(run_id)
    assert [t["source_name"] for t in first["tasks"]] == ["a.png", "b.png"]
    rev = first["rev"]
    assert store.tasks_since(run_id, since=rev)["tasks"] == []
    a, b = first["tasks"]
    assert store.start_task(a["id"]) and not store.start_task(a["id"])  # only a pending task starts
    store.delete_task(b["id"])
    changed = store.tasks_since(run_id, since=rev)
    assert [t["id"] for t in changed["tasks"]] == [a["id"]] and changed["tasks"][0]["status"] == "running"
    assert changed["removed"] == [b["id"]]
    assert store.recover_interrupted() == 1 and store.task(a["id"])["error"] == "interrupted"


def test_concurrent_writers_do_not_lose_updates(tmp_path):
    store = Store(tmp_path / "x.db")
    run_id = store.create_run("/in", False, "p", {}, [("a.png", "/in/a.png")])
    task_id = store.task_ids(run_id, ["pending"])[0]

    def bump() -> None:
        for number in range(50):
            store.add_attempt(task_id, number)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.task(task_id)["attempts"] == 200


def test_database_and_its_wal_and_shm_are_owner_only(tmp_path, caplog):
    # Issue 13: the WAL holds run profiles (API keys included) before a checkpoint moves them.
    import os
    import stat

    from console.store import Store

    def modes() -> dict[str, int]:
        return {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir() if p.name.startswith("c.db")}

    previous = os.umask(0o022)
    try:
        store = Store(tmp_path / "c.db")
        store.create_run("/in", False, "p", {"api_key": "sk-secret"}, [("a.png", "/in/a.png")])
        assert set(modes()) == {"c.db", "c.db-wal", "c.db-shm"} and set(modes().values()) == {0o600}
        store.close()
        for name in modes():
            (tmp_path / name).chmod(0o644)  # as an older version left them
        Store(tmp_path / "c.db").close()
    finally:
        os.umask(previous)
    assert set(modes().values()) == {0o600}
    assert "readable by others" in caplog.text
