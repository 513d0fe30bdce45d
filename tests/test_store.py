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
    assert [t.source_name for t in first.tasks] == ["a.png", "b.png"]
    rev = first.rev
    assert store.tasks_since(run_id, since=rev).tasks == []
    a, b = first.tasks
    assert store.start_task(a.id) and not store.start_task(a.id)  # only a pending task starts
    store.delete_task(b.id)
    changed = store.tasks_since(run_id, since=rev)
    assert [t.id for t in changed.tasks] == [a.id] and changed.tasks[0].status == "running"
    assert changed.removed == [b.id]
    assert store.recover_interrupted() == 1 and store.task(a.id).error == "interrupted"


def test_a_snapshot_reads_the_tasks_and_the_counts_of_one_moment(tmp_path):
    # A poll lists the changed tasks, then counts them: a task finished between the two reads was counted
    # before it was listed, and the page's chips led its cards by a poll.
    store = Store(tmp_path / "x.db")
    run_id = store.create_run("/in", False, "p", {}, [("a.png", "/in/a.png"), ("b.png", "/in/b.png")])
    a, b = store.tasks_since(run_id).tasks

    def finish(task_id: str) -> None:  # another thread (the engine) writes while the poll reads
        thread = threading.Thread(target=lambda: store.start_task(task_id))
        thread.start()
        thread.join()

    with store.snapshot():
        listed = store.tasks_since(run_id)
        finish(a.id)
        assert store.progress(run_id)["running"] == 0 and store.tasks_since(run_id, since=listed.rev).tasks == []
        with store.snapshot():  # nested: the same moment
            assert store.progress(run_id)["pending"] == 2
    assert store.progress(run_id)["running"] == 1 and [t.id for t in store.tasks_since(run_id, since=listed.rev).tasks] == [a.id]
    finish(b.id)  # outside a snapshot every read sees the latest
    assert store.progress(run_id)["running"] == 2
    store.close()


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
    assert store.task(task_id).attempts == 200


def test_database_and_its_wal_and_shm_are_owner_only(tmp_path, caplog):
    # The WAL holds run profiles (API keys included) before a checkpoint moves them.
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


def test_tasks_carry_their_own_prompt_references_output_name_and_overrides(tmp_path):
    from console.store import NewTask

    store = Store(tmp_path / "x.db")
    run_id = store.create_run("", False, "a {animal}", {"model": "m"}, [
        NewTask("cat_1", "", prompt="a cat", output_name="cat_1", overrides={"size": "1024x1024"}),
        NewTask("b.png", "/in/b.png", references=("/ref/b.png", "/ref2/b.png")),
    ], mode="generate", spec={"variables": {"animal": ["cat"]}})
    generated, edited = store.tasks_since(run_id).tasks
    assert (generated.prompt, generated.output_name, generated.overrides, generated.references) == (
        "a cat", "cat_1", {"size": "1024x1024"}, ())
    assert (edited.prompt, edited.output_name, edited.overrides, edited.references) == (
        "a {animal}", None, {}, ("/ref/b.png", "/ref2/b.png"))
    run = store.run(run_id)
    assert run.mode == "generate" and run.spec == {"variables": {"animal": ["cat"]}}


def test_a_version_1_database_gains_the_new_columns_and_keeps_its_runs(tmp_path):
    import sqlite3

    from console.store import MIGRATIONS

    path = tmp_path / "x.db"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0][1])
    old.execute("INSERT INTO runs VALUES ('r1', 1.0, '/in', 0, 'p', '{}', 1, NULL)")
    old.execute("INSERT INTO tasks (id, run_id, idx, source_name, source_path, prompt, rev) "
                "VALUES ('t1', 'r1', 0, 'a.png', '/in/a.png', 'p', 1)")
    old.execute("PRAGMA user_version=1")
    old.commit()
    old.close()
    store = Store(path)
    assert store.run("r1").mode == "edit"
    task = store.task("t1")
    assert task.references == () and task.output_name is None and task.overrides == {}


def test_results_keep_their_prompt_and_an_appended_continuation_keeps_its_source_bytes(tmp_path):
    from console.store import NewResult, NewTask

    store = Store(tmp_path / "x.db")
    run_id = store.create_run("/in", False, "p", {}, [("a.png", "/in/a.png")])
    (task_id,) = store.task_ids(run_id, ["pending"])
    store.finish_task(task_id, "done", results=[NewResult("a" * 64, "png", 1, 1, 1, "base64", prompt="make it blue")])
    store.set_task_prompt(task_id, "make it green")
    store.finish_task(task_id, "done", results=[NewResult("b" * 64, "png", 1, 1, 1, "base64", prompt="make it green")])
    task = store.task(task_id)
    assert task.prompt == "make it green" and [r.prompt for r in task.results] == ["make it blue", "make it green"]
    step = store.append_task(run_id, NewTask("a_step2.png", "/cache/aa.png", prompt="snow", output_name="a_step2"),
                             source_sha="a" * 64, parent={"task_id": task_id, "step": 2})
    appended = store.task(step)
    assert appended.index == 1 and appended.parent == {"task_id": task_id, "step": 2}
    assert store.run(run_id).task_count == 2 and appended.status == "pending"
    store.delete_result(task.results[0].id)
    assert store.is_referenced("a" * 64)  # the continuation still reads it
    store.delete_task(step)
    assert not store.is_referenced("a" * 64)


def test_the_rate_follows_the_clock_while_tasks_are_left_and_stops_at_a_finished_runs_last_end(tmp_path):
    """Started at t=1000, three tasks done at 1030, 1060, 1090 and one pending: 3 in 120 s at t=1120;
    once the last is done at 1120 the rate stays what it was then, however late the page asks."""
    store = Store(tmp_path / "x.db")
    run_id = store.create_run("/in", False, "p", {}, [(f"{n}.png", f"/in/{n}.png") for n in range(4)])
    ids = store.task_ids(run_id, ["pending"])
    with store._tx() as db:  # a run whose clock the test sets
        db.execute("UPDATE runs SET started_at = 1000 WHERE id = ?", (run_id,))
        for task_id, at in zip(ids, (1030, 1060, 1090)):
            db.execute("UPDATE tasks SET status = 'done', finished_at = ? WHERE id = ?", (at, task_id))
    running = store.progress(run_id, now=1120)
    assert (running["rate_per_min"], running["eta_s"]) == (1.5, 40.0)
    assert store.progress(run_id, now=1240)["rate_per_min"] == 0.75  # still going, and slower
    with store._tx() as db:
        db.execute("UPDATE tasks SET status = 'failed', finished_at = 1120 WHERE id = ?", (ids[3],))
    finished = [store.progress(run_id, now=now) for now in (1120, 1500, 90_000)]
    assert [(p["rate_per_min"], p["eta_s"]) for p in finished] == [(2.0, 0.0)] * 3
    store.close()


def test_a_version_4_database_gets_the_finish_time_index_and_the_same_progress(tmp_path):
    import sqlite3

    from console.schema import MIGRATIONS

    path = tmp_path / "x.db"
    with sqlite3.connect(path) as db:  # the schema as the previous release left it
        for number, script in MIGRATIONS:
            if number <= 4:
                db.executescript(script)
        db.execute("PRAGMA user_version = 4")
        db.execute("INSERT INTO runs (id, created_at, input_path, recursive, prompt, profile, task_count, started_at) "
                   "VALUES ('r1', 0, '/in', 0, 'p', '{}', 1, 1000)")
        db.execute("INSERT INTO tasks (id, run_id, idx, source_name, source_path, prompt, status, rev, finished_at) "
                   "VALUES ('t1', 'r1', 0, 'a.png', '/in/a.png', 'p', 'done', 1, 1060)")
    store = Store(path)
    indexes = {row[0] for row in store._db().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "tasks_by_run_status_finished" in indexes and "tasks_by_run_status" not in indexes
    assert store.progress("r1", now=5000)["rate_per_min"] == 1.0
    store.close()


def test_a_task_can_be_read_without_its_results(tmp_path):
    from console.store import NewResult

    store = Store(tmp_path / "x.db")
    run_id = store.create_run("/in", False, "p", {}, [("a.png", "/in/a.png")])
    task_id = store.task_ids(run_id, ["pending"])[0]
    store.finish_task(task_id, "done", results=[NewResult("a" * 64, "png", 1, 1, 1, "base64")])
    assert [r.sha256 for r in store.task(task_id).results] == ["a" * 64]
    bare = store.task(task_id, results=False)
    assert bare.results == () and bare.status == "done" and bare.source_path == "/in/a.png"
    store.close()


def test_a_finished_run_keeps_its_rate_after_a_single_retry_an_hour_later(tmp_path):
    """Eight tasks, four at a time, each 30 s: 8 in 60 s of work is 8/min. One task retried an hour
    later takes 30 s: the run's rate is still about 8/min, not 1 task over the retry's 30 s."""
    store = Store(tmp_path / "x.db")
    run_id = store.create_run("/in", False, "p", {}, [(f"{n}.png", f"/in/{n}.png") for n in range(8)])
    ids = store.task_ids(run_id, ["pending"])
    with store._tx() as db:  # a run whose clock the test sets
        db.execute("UPDATE runs SET started_at = 1000 WHERE id = ?", (run_id,))
        for number, task_id in enumerate(ids):
            start = 1000 + 30 * (number // 4)
            db.execute("UPDATE tasks SET status = 'done', started_at = ?, finished_at = ? WHERE id = ?",
                       (start, start + 30, task_id))
    assert store.progress(run_id, now=5000)["rate_per_min"] == 8.0
    store.mark_run_started(run_id)  # what the engine does when one task is queued again
    with store._tx() as db:
        db.execute("UPDATE runs SET started_at = 4600 WHERE id = ?", (run_id,))
        db.execute("UPDATE tasks SET started_at = 4600, finished_at = 4630 WHERE id = ?", (ids[0],))
    after = store.progress(run_id, now=5000)
    assert (after["rate_per_min"], after["eta_s"]) == (round(8 / 1.5, 2), 0.0)  # 8 tasks in 90 s of work
    store.close()
