"""Comparisons: the same sample of a folder through 2 to 4 variants, side by side, then one runs the rest.

A real engine, store and cache behind the HTTP API, against the loopback fake gateway.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import api, make_sources, wait_idle
from tests.test_pilot import calls


def compare(client, fake, folder, sample=2, prompts=("make it blue", "make it red"), **extra):
    variants = [{"name": f"v{number}", "prompt": prompt, "api": api(fake, "g3_stream_dataurl")}
                for number, prompt in enumerate(prompts, start=1)]
    answer = client.post("/api/comparisons", json={"input_path": str(folder), "sample": sample,
                                                   "variants": variants, **extra})
    assert answer.status_code == 201, answer.json
    return answer.json


def wait_all(client, started) -> None:
    for run in started["runs"]:
        wait_idle(client, run["run_id"])


def test_a_comparison_starts_one_pilot_per_variant_on_the_same_sample(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 6)
    started = compare(client, fake, folder)
    assert set(started) >= {"comparison_id", "runs"}
    assert [run["name"] for run in started["runs"]] == ["v1", "v2"]
    assert len({run["run_id"] for run in started["runs"]}) == 2
    wait_all(client, started)
    sent = calls(fake, folder)
    by_prompt = {prompt: sorted(name for name, p in sent if p == prompt) for prompt in ("make it blue", "make it red")}
    assert by_prompt == {"make it blue": ["img1.png", "img4.png"], "make it red": ["img1.png", "img4.png"]}
    for run in started["runs"]:
        progress = client.get(f"/api/runs/{run['run_id']}").json["progress"]
        assert (progress["done"], progress["held"]) == (2, 4)


def test_the_comparison_lists_the_sample_side_by_side(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 6)
    started = compare(client, fake, folder)
    wait_all(client, started)
    answer = client.get(f"/api/comparisons/{started['comparison_id']}")
    assert answer.status_code == 200, answer.json
    shown = answer.json
    assert (shown["id"], shown["sample"], shown["input_path"]) == (started["comparison_id"], 2, str(folder))
    assert [(v["name"], v["run_id"], v["prompt"], v["model"]) for v in shown["variants"]] == [
        ("v1", started["runs"][0]["run_id"], "make it blue", "grok-imagine-1.0-edit"),
        ("v2", started["runs"][1]["run_id"], "make it red", "grok-imagine-1.0-edit")]
    assert all(v["spend"]["calls"] == 2 for v in shown["variants"])
    assert [row["source_name"] for row in shown["rows"]] == ["img1.png", "img4.png"]
    for row in shown["rows"]:
        assert list(row["results"]) == ["v1", "v2"]
        for name, ids in row["results"].items():
            run_id = next(v["run_id"] for v in shown["variants"] if v["name"] == name)
            tasks = {t["source_name"]: t for t in client.get(f"/api/runs/{run_id}/tasks").json["tasks"]}
            assert ids and ids == [result["id"] for result in tasks[row["source_name"]]["results"]]


def test_a_failed_variant_shows_no_results(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 4)
    variants = [{"name": "good", "prompt": "p", "api": api(fake, "g3_stream_dataurl")},
                {"name": "broken", "prompt": "p", "api": api(fake, "error.status=400")}]
    started = client.post("/api/comparisons", json={"input_path": str(folder), "sample": 2, "variants": variants}).json
    wait_all(client, started)
    rows = client.get(f"/api/comparisons/{started['comparison_id']}").json["rows"]
    assert all(row["results"]["good"] for row in rows)
    assert [row["results"]["broken"] for row in rows] == [[], []]
    assert [row["status"]["broken"] for row in rows] == ["failed", "failed"]


def test_choose_runs_the_rest_with_that_variant_and_calls_no_sample_again(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 6)
    started = compare(client, fake, folder)
    wait_all(client, started)
    chosen = client.post(f"/api/comparisons/{started['comparison_id']}/choose", json={"variant": "v2"})
    assert chosen.status_code == 200, chosen.json
    assert chosen.json["run_id"] == started["runs"][1]["run_id"] and chosen.json["queued"] == 4
    listing = wait_idle(client, chosen.json["run_id"])
    assert (listing["progress"]["done"], listing["progress"]["held"]) == (6, 0)
    sent = calls(fake, folder)
    per_source = Counter(name for name, prompt in sent if prompt == "make it red")
    assert per_source == Counter({f"img{n}.png": 1 for n in range(1, 7)})  # each source once: the sample not again
    assert sorted(name for name, prompt in sent if prompt == "make it blue") == ["img1.png", "img4.png"]
    other = client.get(f"/api/runs/{started['runs'][0]['run_id']}").json["progress"]
    assert other["held"] == 4  # the variant not chosen stays as it was
    again = client.post(f"/api/comparisons/{started['comparison_id']}/choose", json={"variant": "v1"})
    assert again.status_code == 409 and "'v2' was already chosen" in again.json["error"]
    assert client.get(f"/api/comparisons/{started['comparison_id']}").json["chosen"] == "v2"


def test_a_deleted_variant_run_shows_as_gone(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 4)
    started = compare(client, fake, folder)
    wait_all(client, started)
    assert client.delete(f"/api/runs/{started['runs'][0]['run_id']}").status_code == 200
    answer = client.get(f"/api/comparisons/{started['comparison_id']}")
    assert answer.status_code == 200, answer.json
    first, second = answer.json["variants"]
    assert (first["gone"], first["spend"], first["prompt"]) == (True, None, "make it blue")
    assert second["gone"] is False
    assert [row["results"]["v1"] for row in answer.json["rows"]] == [[], []]
    assert all(row["results"]["v2"] for row in answer.json["rows"])
    refused = client.post(f"/api/comparisons/{started['comparison_id']}/choose", json={"variant": "v1"})
    assert refused.status_code == 409 and "deleted" in refused.json["error"]
    assert client.post(f"/api/comparisons/{started['comparison_id']}/choose", json={"variant": "v2"}).status_code == 200
    client.delete(f"/api/runs/{started['runs'][1]['run_id']}")
    emptied = client.get(f"/api/comparisons/{started['comparison_id']}").json
    assert emptied["rows"] == [] and [v["gone"] for v in emptied["variants"]] == [True, True]


def _variant(fake, name="a", prompt="p", **fields):
    return {"name": name, "prompt": prompt, "api": api(fake, "g3_stream_dataurl", **fields)}


@pytest.mark.parametrize("change, words", [
    (lambda body, fake: body.update(smaple=2), "unknown field 'smaple'"),
    (lambda body, fake: body.pop("sample"), "'sample' must be a whole number"),
    (lambda body, fake: body.update(sample=0), "'sample' must be a whole number"),
    (lambda body, fake: body.update(sample=True), "'sample' must be a whole number"),
    (lambda body, fake: body.update(variants=body["variants"][:1]),
     "'variants' must be a list of 2 to 4 variants; got 1"),
    (lambda body, fake: body.update(variants=[_variant(fake, str(n), str(n)) for n in range(5)]), "got 5"),
    (lambda body, fake: body["variants"].__setitem__(1, "x"), "'variants[1]' must be an object"),
    (lambda body, fake: body["variants"][1].update(nmae="b"), "unknown field 'nmae': 'variants[1]' takes"),
    (lambda body, fake: body["variants"][1].update(name=" "), "'variants[1].name' is required"),
    (lambda body, fake: body["variants"][1].update(name="x" * 41), "'variants[1].name' is 41 characters"),
    (lambda body, fake: body["variants"][1].update(name="A"), "'variants[1].name' is 'A', as variants[0] is"),
    (lambda body, fake: body["variants"][0].pop("prompt"), "'variants[0].prompt' is required"),
    (lambda body, fake: body["variants"][1].update(prompt="p"), "'variants[1]' is the same as variants[0]"),
    (lambda body, fake: body["variants"][1].update(api="x"), "'variants[1].api' must be an object"),
    (lambda body, fake: body["variants"][1]["api"].update(concurrency="many"), "'variants[1].api'"),
    (lambda body, fake: body["variants"][1]["api"].update(api_url=""), "'variants[1].api'"),
    (lambda body, fake: body.pop("input_path"), "'input_path' is required"),
    (lambda body, fake: body.update(recursive="yes"), "'recursive' must be true or false"),
])
def test_bad_comparisons_are_refused_naming_the_field(client, fake, tmp_path, change, words):
    folder = make_sources(tmp_path / "src", 3)
    body = {"input_path": str(folder), "sample": 2, "variants": [_variant(fake, "a", "p"), _variant(fake, "b", "q")]}
    change(body, fake)
    answer = client.post("/api/comparisons", json=body)
    assert answer.status_code == 400 and words in answer.json["error"], answer.json
    assert client.get("/api/runs").json == []  # nothing started, nothing paid
    assert not [r for r in fake.requests if r.method == "POST"]


def test_bad_choices_and_unknown_comparisons(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    started = compare(client, fake, folder, sample=1)
    url = f"/api/comparisons/{started['comparison_id']}/choose"
    for body, words in (({"variant": "v9"}, "'variant' must be one of 'v1', 'v2'"), ({}, "'variant' must be one of"),
                        ({"variant": "v1", "run": 1}, "unknown field 'run'")):
        answer = client.post(url, json=body)
        assert answer.status_code == 400 and words in answer.json["error"], (body, answer.json)
    assert client.get("/api/comparisons/cnope").status_code == 404
    assert client.post("/api/comparisons/cnope/choose", json={"variant": "v1"}).status_code == 404
    wait_all(client, started)


def test_variants_may_differ_by_model_only(client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 3)
    variants = [_variant(fake, "one", "same"), _variant(fake, "two", "same", model="other-model")]
    answer = client.post("/api/comparisons", json={"input_path": str(folder), "sample": 1, "variants": variants})
    assert answer.status_code == 201, answer.json
    wait_all(client, answer.json)
    shown = client.get(f"/api/comparisons/{answer.json['comparison_id']}").json
    assert [v["model"] for v in shown["variants"]] == ["grok-imagine-1.0-edit", "other-model"]
    models = sorted(r.json["model"] for r in fake.requests if r.method == "POST")
    assert models == ["grok-imagine-1.0-edit", "other-model"]


ODD = st.none() | st.booleans() | st.integers(-5, 10**20) | st.floats() | st.text(max_size=12) | st.sampled_from(
    ["", " ", "\ud800", "a" * 50, "x"])
PROFILE_FIELDS = st.dictionaries(st.sampled_from(["model", "api_url", "concurrency", "n", "stream", "prices", "zz"]),
                                 ODD | st.lists(ODD, max_size=2), max_size=3)
VARIANT = st.dictionaries(st.sampled_from(["name", "prompt", "api", "nmae"]), ODD | PROFILE_FIELDS, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=ODD, variants=st.lists(VARIANT | ODD, max_size=5) | ODD)
def test_any_comparison_body_is_answered_with_a_readable_4xx_at_worst(client, fake, tmp_path, sample, variants):
    folder = tmp_path / "src"
    if not folder.exists():
        make_sources(folder, 2)
    before = len(client.get("/api/runs").json)
    answer = client.post("/api/comparisons", json={"input_path": str(folder), "sample": sample, "variants": variants})
    assert answer.status_code in (201, 400), (answer.status_code, answer.json)
    if answer.status_code == 400:
        assert answer.json["error"].strip() and "Traceback" not in answer.json["error"]
        assert len(client.get("/api/runs").json) == before  # a refused comparison leaves no run behind


def test_two_choices_at_once_release_one_run_only(app, fake, tmp_path):
    import threading

    folder = make_sources(tmp_path / "src", 6)
    started = compare(app.test_client(), fake, folder)
    wait_all(app.test_client(), started)
    url = f"/api/comparisons/{started['comparison_id']}/choose"
    answers: dict[str, int] = {}
    gate = threading.Barrier(2)

    def choose(name: str) -> None:
        client = app.test_client()
        gate.wait()
        answers[name] = client.post(url, json={"variant": name}).status_code

    threads = [threading.Thread(target=choose, args=(name,)) for name in ("v1", "v2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers.values()) == [200, 409], answers
    winner = next(name for name, status in answers.items() if status == 200)
    client = app.test_client()
    for run in started["runs"]:
        held = wait_idle(client, run["run_id"])["progress"]["held"]
        assert held == (0 if run["name"] == winner else 4), (run, held)


def test_a_comparison_survives_a_restart(tmp_path):
    from console.store import Store

    store = Store(tmp_path / "console.db")
    store.create_comparison("c1", "/photos", True, 3, [("A", "r1", "blue", "m1"), ("B", "r2", "red", "m2")])
    assert store.choose_variant("c1", "B") and not store.choose_variant("c1", "A")
    again = Store(tmp_path / "console.db").comparison("c1")
    assert (again["input_path"], again["recursive"], again["sample"], again["chosen"]) == ("/photos", True, 3, "B")
    assert [(v["name"], v["run_id"], v["prompt"], v["model"]) for v in again["variants"]] == [
        ("A", "r1", "blue", "m1"), ("B", "r2", "red", "m2")]
