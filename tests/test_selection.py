"""Bulk selection: the store's one-transaction method and POST /api/runs/<id>/selection on a real run."""

from __future__ import annotations

import time

import pytest

from console.store import NewResult, Store
from tests.helpers import api, make_sources, start, wait_idle


# -- the store ---------------------------------------------------------------------------------

def _store_run(store: Store) -> tuple[str, list[str], dict[str, list[str]]]:
    """A run of four tasks: a.png done (3 results), b.png failed (1), c.png done (none), ab.png done (2)."""
    run_id = store.create_run("/in", False, "p", {"model": "m"},
                              [(name, f"/in/{name}") for name in ("a.png", "b.png", "c.png", "ab.png")])
    tasks = [task.id for task in store.tasks_since(run_id).tasks]
    results: dict[str, list[str]] = {}
    for task_id, count, status in zip(tasks, (3, 1, 0, 2), ("done", "failed", "done", "done")):
        store.finish_task(task_id, status, results=[NewResult(f"{task_id}-{n}", "png", 8, 8, 10, "b64") for n in range(count)])
        results[task_id] = [result.id for result in store.task(task_id).results]
        time.sleep(0.002)  # results of later tasks are stored later, as in a real run
    return run_id, tasks, results


def _marks(store: Store, run_id: str) -> dict[str, list[bool]]:
    return {task.source_name: [r.selected for r in task.results]
            for task in store.tasks_since(run_id).tasks}


def test_store_bulk_selection_acts_on_the_filtered_tasks_and_bumps_their_revision(tmp_path):
    store = Store(tmp_path / "x.db")
    run_id, tasks, results = _store_run(store)
    store.edit_result(results[tasks[0]][1], selected=True)
    rev = store.rev()
    assert store.bulk_select(run_id, "all", status="done") == 5
    assert _marks(store, run_id) == {"a.png": [True] * 3, "b.png": [False], "c.png": [], "ab.png": [True] * 2}
    changed = store.tasks_since(run_id, since=rev).tasks
    assert [task.source_name for task in changed] == ["a.png", "ab.png"]  # b.png not matched, c.png has none
    rev = store.rev()
    assert store.bulk_select(run_id, "invert", q="a") == 0  # a.png and ab.png
    assert store.bulk_select(run_id, "invert") == 6
    assert store.bulk_select(run_id, "none", status="failed") == 5
    assert store.bulk_select(run_id, "first") == 3
    assert _marks(store, run_id) == {"a.png": [True, False, False], "b.png": [True], "c.png": [], "ab.png": [True, False]}
    rev = store.rev()
    assert store.bulk_select(run_id, "first") == 3
    assert store.tasks_since(run_id, since=rev).tasks == []  # nothing changed: nothing to send again
    assert store.run(run_id).selected == 3 and store.selected_count(run_id) == 3


def test_store_bulk_selection_leaves_other_runs_alone(tmp_path):
    store = Store(tmp_path / "x.db")
    first, _, _ = _store_run(store)
    other, _, _ = _store_run(store)
    assert store.bulk_select(first, "all") == 6
    assert store.selected_count(other) == 0
    with pytest.raises(ValueError):
        store.bulk_select(first, "some")


def test_store_bulk_selection_narrowed_to_listed_tasks(tmp_path):
    store = Store(tmp_path / "x.db")
    run_id, tasks, _ = _store_run(store)
    other, other_tasks, _ = _store_run(store)
    assert store.bulk_select(run_id, "all", task_ids=[tasks[0], tasks[3], other_tasks[1]]) == 5
    assert _marks(store, run_id) == {"a.png": [True] * 3, "b.png": [False], "c.png": [], "ab.png": [True] * 2}
    assert store.selected_count(other) == 0  # another run's task id is not this run's
    assert store.bulk_select(run_id, "none", status="done", task_ids=[tasks[0], tasks[1]]) == 2
    assert store.bulk_select(run_id, "invert", task_ids=[]) == 2


def test_a_search_with_like_wildcards_matches_them_literally(tmp_path):
    store = Store(tmp_path / "x.db")
    run_id, _, _ = _store_run(store)
    assert store.bulk_select(run_id, "all", q="%") == 0 and store.bulk_select(run_id, "all", q="_") == 0


# -- the API -----------------------------------------------------------------------------------

def _mixed_run(client, fake, tmp_path) -> tuple[str, list[dict]]:
    """Six tasks with two results each; the first then fails a retry that keeps its results."""
    run_id = start(client, fake, make_sources(tmp_path / "src", 6))
    tasks = wait_idle(client, run_id)["tasks"]
    answer = client.post(f"/api/tasks/{tasks[0]['id']}/retry",
                         json={"keep_results": True, "api": api(fake, "err_401_g16")})
    assert answer.status_code == 200, answer.json
    tasks = wait_idle(client, run_id)["tasks"]
    assert [t["status"] for t in tasks] == ["failed"] + ["done"] * 5 and all(len(t["results"]) == 2 for t in tasks)
    return run_id, tasks


def _selection(client, run_id: str, **body):
    return client.post(f"/api/runs/{run_id}/selection", json=body)


def test_selection_actions_follow_the_filters_and_show_in_run_answers(client, fake, tmp_path):
    run_id, tasks = _mixed_run(client, fake, tmp_path)
    rev = client.get(f"/api/runs/{run_id}/tasks").json["rev"]
    assert _selection(client, run_id, action="all", status="done").json == {"selected": 10}
    changed = client.get(f"/api/runs/{run_id}/tasks?since={rev}").json["tasks"]
    assert sorted(t["id"] for t in changed) == sorted(t["id"] for t in tasks[1:])  # the page's poll sees them
    assert all(r["selected"] for t in changed for r in t["results"])
    assert _selection(client, run_id, action="invert", q="img1").json == {"selected": 12}  # the failed img1 only
    assert _selection(client, run_id, action="none", status="done", q="img").json == {"selected": 2}
    assert _selection(client, run_id, action="first").json == {"selected": 6}
    listing = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
    assert [[r["selected"] for r in t["results"]] for t in listing] == [[True, False]] * 6
    assert client.get(f"/api/runs/{run_id}").json["selected"] == 6
    assert [run["selected"] for run in client.get("/api/runs").json if run["id"] == run_id] == [6]
    assert _selection(client, run_id, action="none", status="", q="", flag="").json == {"selected": 0}
    range_ids = [t["id"] for t in tasks[2:5]]
    assert _selection(client, run_id, action="all", tasks=range_ids).json == {"selected": 6}  # a shift-click range
    assert _selection(client, run_id, action="all", tasks=[]).json == {"selected": 6}


@pytest.mark.parametrize("body, status, message", [
    ({"action": "some"}, 400, "'action' must be one of all, none, invert, first, got 'some'"),
    ({}, 400, "'action' is required"),
    ({"action": 1}, 400, "'action' must be a string"),
    ({"action": "all", "status": "lost"}, 400, "'status' must be one of pending, running, done, failed, stopped"),
    ({"action": "all", "colour": "red"}, 400, "unknown field 'colour'"),
    ({"action": "all", "q": 5}, 400, "'q' must be a string"),
    ({"action": "all", "flag": "odd"}, 400, "'flag' must be one of unchanged, unrelated, blank, off_size, near_duplicate, any, got 'odd'"),
    ({"action": "all", "tasks": "t1"}, 400, "'tasks' must be a list of task ids"),
    ({"action": "all", "tasks": [1]}, 400, "'tasks' must be a list of task ids"),
])
def test_bad_selection_requests_name_the_field(client, fake, tmp_path, body, status, message):
    run_id = start(client, fake, make_sources(tmp_path / "src", 1))
    wait_idle(client, run_id)
    answer = _selection(client, run_id, **body)
    assert answer.status_code == status and message in answer.json["error"], answer.json
    assert client.get(f"/api/runs/{run_id}").json["selected"] == 0


def test_selection_of_an_unknown_run_is_404(client):
    answer = client.post("/api/runs/rnope/selection", json={"action": "all"})
    assert answer.status_code == 404 and "rnope" in answer.json["error"]
