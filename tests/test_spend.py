"""Spend: every call's usage and cost stored per attempt, summed per task, run and day, priced from the profile.

A real engine, store and cache behind the HTTP API, against the loopback fake gateway reporting usage
the way OpenRouter, LiteLLM and OpenAI do; the restart is a second app on the same data dir.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import date

import pytest

from console.settings import resolve
from console.web import create_app
from tests.helpers import api, make_sources, wait_idle

PRICES = {"call": 0.01, "image": 0.03, "input_mtok": 2.0, "output_mtok": 30.0, "currency": "EUR"}


def run(client, fake, folder, segment: str, **fields) -> tuple[str, dict]:
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "make it blue",
                                            "api": api(fake, segment, **fields)})
    assert answer.status_code == 201, answer.json
    return answer.json["run_id"], wait_idle(client, answer.json["run_id"])


def test_a_runs_spend_adds_up_every_attempt_paid_failures_included(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    run_id, listing = run(client, fake, folder, "openrouter.fail=1.cost=0.25", max_retries=1)
    assert listing["progress"]["done"] == 3
    spend = client.get(f"/api/runs/{run_id}").json["spend"]
    # each source: a failed first call that reported usage (paid), then a good one
    assert spend == {"calls": 6, "images": 3, "input_tokens": 6 * 1300, "input_image_tokens": 0,
                     "output_tokens": 6 * 1290, "cost": pytest.approx(1.5), "cost_known": 6, "currency": "USD"}
    for task in listing["tasks"]:
        assert task["attempts"] == 2
        assert task["spend"]["calls"] == 2 and task["spend"]["cost"] == pytest.approx(0.5)
    assert [r["spend"]["calls"] for r in client.get("/api/runs").json if r["id"] == run_id] == [6]
    one = listing["tasks"][0]["id"]
    assert client.get(f"/api/tasks/{one}").json["spend"]["cost"] == pytest.approx(0.5)


def test_prices_price_calls_the_gateway_does_not(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    run_id, _ = run(client, fake, folder, "openrouter.nocost=1.prompt=1000.completion=2000", prices=PRICES)
    spend = client.get(f"/api/runs/{run_id}").json["spend"]
    each = 0.01 + 0.03 + 1000 * 2.0 / 1e6 + 2000 * 30.0 / 1e6
    assert spend["cost"] == pytest.approx(2 * each) and spend["cost_known"] == 2 and spend["currency"] == "EUR"


def test_a_reported_cost_wins_over_prices(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    run_id, _ = run(client, fake, folder, "litellm_cost.cost=0.5", prices=PRICES)
    assert client.get(f"/api/runs/{run_id}").json["spend"]["cost"] == pytest.approx(1.0)


def test_no_cost_and_no_prices_is_unknown_not_zero(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    run_id, listing = run(client, fake, folder, "g3_stream_dataurl")
    spend = client.get(f"/api/runs/{run_id}").json["spend"]
    assert spend["calls"] == 2 and spend["images"] == 4 and spend["cost"] is None and spend["cost_known"] == 0
    assert spend["input_tokens"] == 2 * 3 and spend["output_tokens"] == 2 * 180000  # G3's stream usage
    assert all(task["spend"]["cost"] is None for task in listing["tasks"])


def test_spend_survives_a_restart(fake, tmp_path):
    settings = resolve({"APP_DATA_DIR": str(tmp_path / "data")})
    folder = make_sources(tmp_path / "src", 2)
    first = create_app(settings=settings)
    try:
        run_id, _ = run(first.test_client(), fake, folder, "openrouter.cost=0.125")
        before = first.test_client().get(f"/api/runs/{run_id}").json["spend"]
    finally:
        first.extensions["console.engine"].close()
    second = create_app(settings=settings)
    try:
        after = second.test_client().get(f"/api/runs/{run_id}").json["spend"]
        day = second.test_client().get("/api/spend?days=1").json
    finally:
        second.extensions["console.engine"].close()
    assert before["cost"] == pytest.approx(0.25) and after == before
    assert day["days"][0]["day"] == date.today().isoformat()
    assert day["days"][0]["profiles"] == [{"api_host": "127.0.0.1", "model": "grok-imagine-1.0-edit", **before}]


def test_a_days_spend_groups_by_day_and_profile(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    run(client, fake, folder, "openrouter.cost=0.5")
    run(client, fake, folder, "openrouter.cost=0.25", model="other-model")
    third, _ = run(client, fake, folder, "openrouter.cost=1")
    with sqlite3.connect(tmp_path / "data" / "console.db") as db:  # the third run's calls were made two days ago
        db.execute("UPDATE attempts SET started_at = ? WHERE task_id IN (SELECT id FROM tasks WHERE run_id = ?)",
                   (time.time() - 2 * 86400, third))
    days = client.get("/api/spend?days=7").json["days"]
    assert [d["day"] for d in days] == sorted({d["day"] for d in days}, reverse=True) and len(days) == 2
    today = {p["model"]: (p["calls"], p["cost"]) for p in days[0]["profiles"]}
    assert today == {"grok-imagine-1.0-edit": (2, pytest.approx(1.0)), "other-model": (2, pytest.approx(0.5))}
    assert [(p["calls"], p["cost"]) for p in days[1]["profiles"]] == [(2, pytest.approx(2.0))]
    assert len(client.get("/api/spend?days=1").json["days"]) == 1


@pytest.mark.parametrize("query", ["days=0", "days=x", "days=400"])
def test_a_bad_days_query_is_a_400(client, query):
    answer = client.get(f"/api/spend?{query}")
    assert answer.status_code == 400 and "days" in answer.json["error"]


# -- prices in the profile -----------------------------------------------------------------------

@pytest.mark.parametrize("prices, words", [
    ({"image": -0.01}, "prices.image must be between 0"),
    ({"call": "cheap"}, "prices.call must be a number"),
    ({"output_mtok": True}, "prices.output_mtok must be a number"),
    ({"per_image": 1}, "unknown field(s) per_image"),
    ({"currency": "dollars!"}, "prices.currency must be a currency code"),
    ("0.04", "prices must be an object"),
])
def test_bad_prices_are_a_400_naming_the_field(client, prices, words):
    answer = client.put("/api/settings", json={"api": {"prices": prices}})
    assert answer.status_code == 400 and words in answer.json["error"], answer.json
    answer = client.put("/api/presets/api/cheap", json={"api_url": "http://gw/v1", "prices": prices})
    assert answer.status_code == 400 and words in answer.json["error"], answer.json


def test_prices_are_kept_in_the_settings_and_in_presets(client):
    answer = client.put("/api/settings", json={"api": {"prices": {"image": 0.04, "input_mtok": 5, "currency": "cny",
                                                                  "output_mtok": ""}}})
    assert answer.status_code == 200, answer.json
    assert answer.json["api"]["prices"] == {"image": 0.04, "input_mtok": 5.0, "currency": "CNY"}
    assert client.put("/api/presets/api/cheap", json={"api_url": "http://gw/v1", "prices": {"call": 0.5}}).status_code == 200
    assert client.get("/api/presets").json["api"]["cheap"]["prices"] == {"call": 0.5}


def test_the_run_table_export_has_each_tasks_calls_and_cost(client, fake, tmp_path):
    import csv
    import io

    from openpyxl import load_workbook

    folder = make_sources(tmp_path / "src", 2)
    run_id, _ = run(client, fake, folder, "openrouter.fail=1.cost=0.25", max_retries=1)
    rows = list(csv.reader(io.StringIO(client.get(f"/api/runs/{run_id}/export.csv").data.decode("utf-8-sig"))))
    assert rows[0][-3:] == ["calls", "cost", "currency"]
    assert [row[-3:] for row in rows[1:]] == [["2", "0.5", "USD"], ["2", "0.5", "USD"]]
    book = load_workbook(io.BytesIO(client.get(f"/api/runs/{run_id}/export.xlsx?lang=zh").data)).active
    assert [c.value for c in book[1]][-3:] == ["调用次数", "费用", "币种"]
    assert [c.value for c in book[2]][-3:] == [2, 0.5, "USD"]
    unpriced, _ = run(client, fake, folder, "g3_stream_dataurl")
    rows = list(csv.reader(io.StringIO(client.get(f"/api/runs/{unpriced}/export.csv").data.decode("utf-8-sig"))))
    assert rows[1][-3:] == ["1", "", "USD"]  # no cost known: empty, not 0
    table = tmp_path / "exported.csv"
    table.write_bytes(client.get(f"/api/runs/{run_id}/export.csv").data)
    check = client.post("/api/tables/check", json={"table_path": str(table)}).json
    assert not check.get("ignored_columns") and not check.get("notes", {}).get("ignored_columns"), check


def test_spend_of_a_large_run_is_quick_to_read(tmp_path):
    """10,000 tasks and 25,000 attempts: the run's spend (read on every changed poll), a page of task spends and
    a month's daily spend stay well under a poll's interval."""
    from console.store import Store
    from tests.figures import record

    store = Store(tmp_path / "console.db")
    run_id = store.create_run("/in", False, "p", {"model": "m", "api_url": "http://gw/v1"},
                              [(f"img{n}.png", f"/in/img{n}.png") for n in range(10_000)])
    ids = store.task_ids(run_id, ["pending"])
    with store._tx() as db:
        db.executemany("INSERT INTO attempts (task_id, number, started_at, input_tokens, output_tokens, images, cost) "
                       "VALUES (?, ?, ?, 1000, 1290, 1, 0.04)",
                       ((task_id, number, time.time()) for task_id in ids for number in range(1, 3 if int(task_id[-1], 16) % 2 else 4)))
    calls = store._db().execute("SELECT COUNT(*) FROM attempts").fetchone()[0]

    def best_ms(read) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            read()
            times.append((time.perf_counter() - start) * 1000)
        return min(times)

    run_ms = best_ms(lambda: store.run_spend(run_id))
    page_ms = best_ms(lambda: store.tasks_since(run_id, limit=200))
    days_ms = best_ms(lambda: store.daily_spend(30))
    assert store.run_spend(run_id)["calls"] == calls and store.run_spend(run_id)["cost"] == pytest.approx(0.04 * calls)
    record("spend", tasks=10_000, attempts=calls, run_spend_ms=round(run_ms, 1), task_page_200_ms=round(page_ms, 1),
           daily_spend_30_days_ms=round(days_ms, 1))
    assert run_ms < 250 and days_ms < 500, (run_ms, page_ms, days_ms)
    store.close()
