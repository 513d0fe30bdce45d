"""Estimates before a run: calls and images from the plan, the cost from the profile's prices or from
what this API URL and model cost so far (a real engine and store behind the HTTP API, the loopback fake
reporting cost the way OpenRouter does)."""

from __future__ import annotations

import pytest

from console.estimate import History, estimate, images_of
from tests.helpers import api, make_sources, wait_idle

SEGMENT = "openrouter.cost=0.25.prompt=1000.completion=2000"


def _estimate(client, fake, folder, segment: str = SEGMENT, **fields):
    body = {"input_path": str(folder), "prompt": "make it blue", "api": api(fake, segment, **fields)}
    for key in ("pilot", "mode", "count"):
        if key in fields:
            body[key] = body["api"].pop(key)
    return client.post("/api/runs/estimate", json=body)


def test_prices_make_the_estimate_of_calls_and_images(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 5)
    answer = _estimate(client, fake, folder, prices={"call": 0.04, "image": 0.01, "currency": "EUR"}, n=2)
    assert answer.status_code == 200, answer.json
    assert answer.json == {"tasks": 5, "calls": 5, "images": 10, "cost": pytest.approx(5 * (0.04 + 2 * 0.01)),
                           "currency": "EUR", "basis": "prices", "history_calls": 0}
    assert client.get("/api/runs").json == []  # nothing was stored or sent
    assert not [r for r in fake.requests if r.method == "POST"]


def test_without_prices_the_history_of_this_api_and_model_gives_the_cost(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 4)
    assert _estimate(client, fake, folder).json["basis"] == "unknown"
    answer = client.post("/api/runs", json={"input_path": str(folder), "prompt": "p", "api": api(fake, SEGMENT)})
    wait_idle(client, answer.json["run_id"])
    later = _estimate(client, fake, make_sources(tmp_path / "more", 10), pilot=3).json
    assert later["basis"] == "history" and later["history_calls"] == 4
    assert later["cost"] == pytest.approx(10 * 0.25) and later["currency"] == "USD"
    assert later["pilot"] == {"tasks": 3, "calls": 3, "cost": pytest.approx(3 * 0.25)}
    other_model = _estimate(client, fake, folder, model="another-model").json
    assert other_model["basis"] == "unknown" and other_model["cost"] is None


def test_token_prices_use_the_tokens_earlier_calls_used(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    prices = {"input_mtok": 2.0, "output_mtok": 30.0}
    assert _estimate(client, fake, folder, prices=prices).json["basis"] == "unknown"  # no token counts yet
    client.post("/api/runs", json={"input_path": str(folder), "prompt": "p", "api": api(fake, SEGMENT)})
    wait_idle(client, client.get("/api/runs").json[0]["id"])
    answer = _estimate(client, fake, folder, prices=prices).json
    assert answer["basis"] == "prices"
    assert answer["cost"] == pytest.approx(2 * (1000 * 2.0 + 2000 * 30.0) / 1e6)


@pytest.mark.parametrize("body, words", [
    ({"input_path": "/nowhere/at/all", "prompt": "p"}, "/nowhere/at/all"),
    ({"prompt": "p"}, "'input_path' is required"),
    ({"input_path": "/tmp", "prompt": "p", "pilot": 0}, "'pilot' must be a whole number"),
    ({"input_path": "/tmp", "prompt": "p", "budgett": 5}, "budgett"),
])
def test_a_bad_estimate_request_is_a_400_naming_what_is_wrong(client, body, words):
    answer = client.post("/api/runs/estimate", json=body)
    assert answer.status_code == 400 and words in answer.json["error"], answer.json


def test_the_estimate_rules():
    assert images_of([{}, {"n": 3}, {}], 2) == [2, 3, 2] and images_of([{}], None) == [1]
    history = History(calls=10, priced_calls=8, cost=0.5, currency="EUR", input_tokens=100.0, output_tokens=50.0)
    assert estimate([1, 1], {}, history)["cost"] == pytest.approx(1.0)
    assert estimate([1, 1], {}, history)["currency"] == "EUR"
    assert estimate([1], {"output_mtok": 10.0}, history)["cost"] == pytest.approx(50 * 10.0 / 1e6)
    assert estimate([1], {"input_image_mtok": 1.0}, history)["basis"] == "prices"  # no image tokens: none to pay
    unknown = estimate([1, 2], {}, History())
    assert unknown["cost"] is None and unknown["basis"] == "unknown" and unknown["images"] == 3
    assert "pilot" not in estimate([1, 1], {}, History(), pilot=5)


def test_an_estimate_needs_no_prompt_yet(client, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    answer = client.post("/api/runs/estimate", json={"input_path": str(folder), "prompt": "", "api": {}})
    assert answer.status_code == 200 and answer.json["tasks"] == 3, answer.json  # Preview before the prompt
