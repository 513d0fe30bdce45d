"""The store's typed records: frozen, read by attribute, and shown by the API field for field, in order."""

from __future__ import annotations

import dataclasses

import pytest

from console.records import ResultRecord, RunRecord, TaskRecord
from console.store import NewResult, NewTask, Store

# The API's fields, in the order the page and scripts have always received them.
RUN_FIELDS = ["id", "created_at", "input_path", "recursive", "prompt", "task_count", "mode", "spec", "model", "api_url",
              "concurrency", "progress", "selected", "spend", "budget", "delivery", "batches"]
TASK_FIELDS = ["id", "run_id", "source_name", "source_path", "prompt", "status", "attempts", "http_status", "error",
               "warning", "rev", "output_name", "index", "references", "overrides", "parent", "results", "batch"]
RESULT_FIELDS = ["id", "width", "height", "format", "sha256", "bytes", "origin", "prompt", "caption", "answer_text",
                 "selected", "saved", "flags", "flag_reasons", "flags_checked"]


def _run(store: Store) -> tuple[str, str, str]:
    """A run of two tasks, the first done with one selected, captioned, flagged result; return the three ids."""
    run_id = store.create_run("/in", False, "make it blue", {"model": "m", "api_url": "http://127.0.0.1:9/v1?key=s3cret"},
                              [NewTask("a.png", "/in/a.png", references=("/ref/a.png",), overrides={"size": "8x8"}),
                               NewTask("b.png", "/in/b.png")])
    task_id = store.task_ids(run_id, ["pending"])[0]
    store.start_task(task_id, first_attempt=True)
    store.finish_task(task_id, "done", results=[NewResult("a" * 64, "png", 8, 6, 10, "b64", prompt="p", answer_text="hi")])
    result_id = store.task(task_id).results[0].id
    store.record_flags([(result_id, {"blank": "one colour"}, None)])
    store.edit_result(result_id, selected=True, caption="a blue square")
    return run_id, task_id, result_id


def test_the_store_reads_typed_frozen_records(tmp_path):
    store = Store(tmp_path / "x.db")
    run_id, task_id, result_id = _run(store)
    run, task, result = store.run(run_id), store.task(task_id), store.result(result_id)
    assert isinstance(run, RunRecord) and isinstance(task, TaskRecord) and isinstance(result, ResultRecord)
    assert (run.task_count, run.selected, run.model) == (2, 1, "m")
    assert (task.index, task.status, task.attempts, task.references, task.overrides) == (0, "done", 1, ("/ref/a.png",),
                                                                                          {"size": "8x8"})
    assert task.results == (result,)
    assert (result.task_id, result.size, result.caption, result.flags, result.selected) == (
        task_id, 10, "a blue square", ("blank",), True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.status = "failed"  # type: ignore[misc]
    assert [t.source_name for t in store.iter_tasks(run_id, page=1)] == ["a.png", "b.png"]  # paged, in order
    store.close()


def test_the_api_shows_each_record_field_for_field_in_order(app, client):
    run_id, task_id, result_id = _run(app.extensions["console.store"])
    run = client.get(f"/api/runs/{run_id}").json
    assert list(run)[:len(RUN_FIELDS)] == RUN_FIELDS and "s3cret" not in run["api_url"]
    listing = client.get(f"/api/runs/{run_id}/tasks").json
    assert list(listing)[:4] == ["rev", "total", "tasks", "removed"]
    first, second = listing["tasks"]
    assert list(first) == TASK_FIELDS + ["spend"] and list(first["results"][0]) == RESULT_FIELDS
    assert first["references"] == ["/ref/a.png"] and second["results"] == [] and first["spend"]["calls"] == 1
    assert first["results"][0]["flags"] == ["blank"] and first["results"][0]["bytes"] == 10
    assert client.get(f"/api/tasks/{task_id}").json == first  # one task: the same fields, its spend too
    edited = client.patch(f"/api/results/{result_id}", json={"selected": False}).json
    assert list(edited) == RESULT_FIELDS + ["task_id"] and edited["task_id"] == task_id and edited["selected"] is False
