"""Budgets: a run pauses before a call that could spend more than its budget, its waiting tasks left
pending; raising the budget and resuming finishes it with no call repeated (a real engine and store
behind the HTTP API, the loopback fake reporting each call's cost as OpenRouter does)."""

from __future__ import annotations

import pytest

from console.engine.budget import Budget
from tests.helpers import api, make_sources, wait_idle

COST = 0.25


def _start(client, fake, folder, segment: str, budget, concurrency: int = 1, **fields):
    body = {"input_path": str(folder), "prompt": "make it blue", "budget": budget,
            "api": api(fake, f"openrouter.cost={COST}.{segment}", concurrency=concurrency, **fields)}
    answer = client.post("/api/runs", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json["run_id"]


def _calls_per_source(fake, segment: str) -> list[int]:
    """Return how many calls each distinct request body (one per source) got on this segment, sorted."""
    digests: dict[bytes, int] = {}
    for request in fake.requests:
        if request.method == "POST" and segment in request.path:
            digests[request.body] = digests.get(request.body, 0) + 1
    return sorted(digests.values())


def test_a_run_pauses_at_its_budget_then_finishes_when_it_is_raised(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 10)
    run_id = _start(client, fake, folder, "s=0.05.seg=b1", budget=1.0)
    listing = wait_idle(client, run_id)
    # 0.25 a call: four calls fit in 1.00; the fifth could pass it, so the run pauses before it.
    assert listing["progress"]["done"] == 4 and listing["progress"]["pending"] == 6 and listing["progress"]["failed"] == 0
    run = client.get(f"/api/runs/{run_id}").json
    assert run["spend"]["cost"] == pytest.approx(1.0) and run["budget"] == 1.0
    assert run["cooling"]["budget"] == {"budget": 1.0, "spent": 1.0, "currency": "USD", "per_call": COST}
    assert "the budget of 1.00 USD is reached" in run["cooling"]["reason"] and run["cooling"]["paused"]
    assert not run["running"]

    answer = client.patch(f"/api/runs/{run_id}", json={"budget": 2.5})
    assert answer.status_code == 200 and answer.json["budget"] == 2.5
    assert client.post(f"/api/runs/{run_id}/resume", json={}).json["queued"] == 6
    final = wait_idle(client, run_id)
    assert final["progress"]["done"] == 10 and client.get(f"/api/runs/{run_id}").json["cooling"] is None
    assert _calls_per_source(fake, "seg=b1") == [1] * 10  # every source called once: none repeated
    assert client.get(f"/api/runs/{run_id}").json["spend"]["cost"] == pytest.approx(2.5)


def test_calls_in_flight_count_so_a_budget_is_never_passed_by_more_than_one_round(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 24)
    run_id = _start(client, fake, folder, "s=0.2.seg=b2", budget=2.0, concurrency=4)
    wait_idle(client, run_id)
    spend = client.get(f"/api/runs/{run_id}").json["spend"]
    # No prices, no history: the first call goes alone and says what a call costs; then calls in flight
    # count, so the run stops at its budget, neither over nor a round short.
    assert spend["cost"] == pytest.approx(2.0) and spend["calls"] == 8


def test_a_budget_on_a_run_with_prices_holds_from_its_first_call(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 12)
    run_id = _start(client, fake, folder, "s=0.2.seg=b3.nocost=1", budget=1.0, concurrency=4,
                    prices={"call": 0.3})
    wait_idle(client, run_id)
    spend = client.get(f"/api/runs/{run_id}").json["spend"]
    assert spend["calls"] == 3 and spend["cost"] == pytest.approx(0.9)  # 0.3 a call, priced before the first


def test_a_budget_can_be_removed_and_bad_budgets_are_refused(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    run_id = _start(client, fake, folder, "seg=b4", budget=0.3)
    wait_idle(client, run_id)
    assert client.get(f"/api/runs/{run_id}/tasks").json["progress"]["done"] == 1
    assert client.patch(f"/api/runs/{run_id}", json={"budget": None}).json["budget"] is None
    client.post(f"/api/runs/{run_id}/resume", json={})
    assert wait_idle(client, run_id)["progress"]["done"] == 3
    for bad in (0, -1, "5", True, 1e12):
        answer = client.patch(f"/api/runs/{run_id}", json={"budget": bad})
        assert answer.status_code == 400 and "'budget' must be an amount of money above 0" in answer.json["error"]
        start = client.post("/api/runs", json={"input_path": str(folder), "prompt": "p", "budget": bad,
                                               "api": api(fake, "openrouter")})
        assert start.status_code == 400 and "'budget'" in start.json["error"]
    assert client.patch(f"/api/runs/{run_id}", json={}).status_code == 400
    assert "unknown field 'budgets'" in client.patch(f"/api/runs/{run_id}", json={"budgets": 1}).json["error"]


def test_the_budget_rule():
    budget = Budget(1.0, "USD")
    assert budget.allows(0) and budget.allows(5)  # nothing tells the cost yet: only what is spent counts
    budget.add(0.4)
    assert budget.allows(0) and not budget.allows(1)  # 0.4 spent + 1 in flight + 1 next at 0.4 each > 1.0
    budget.add(None)  # an unpriced call changes nothing
    assert budget.per_call() == pytest.approx(0.4) and budget.priced == 1
    assert Budget(1.0, "USD", hint=0.6).allows(0) and not Budget(1.0, "USD", hint=0.6).allows(1)
    assert "raise the budget and resume" in Budget(1.0, "EUR", spent=1.0, priced=4).reason()
