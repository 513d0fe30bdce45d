"""Key pools: calls spread over several keys, each cooled and parked on its own; keys stay secret."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.helpers import api, make_sources, wait_for

GOOD = "sk-good-key-0001-AAAA"
OTHER = "sk-good-key-0002-BBBB"
BAD = "sk-revoked-key-0003-CCCC"


def keys_used(fake) -> Counter:
    return Counter(r.headers.get("authorization", "").removeprefix("Bearer ") for r in fake.requests if r.method == "POST")


def pooled(fake, scenario: str, *more: str | dict, **fields) -> dict:
    return api(fake, scenario, api_key=GOOD, key_pool=list(more), **fields)


def finish(engine, run_id: str) -> dict:
    wait_for(lambda: not engine.is_running(run_id), timeout=60)
    return engine.store.progress(run_id)


def test_a_two_key_run_spreads_its_calls_over_both_keys(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 24)), False, "edit",
                                  pooled(fake, f"latency.s=0.05.key={GOOD}~{OTHER}", OTHER, concurrency=4))
    assert finish(engine, run_id)["done"] == 24
    used = keys_used(fake)
    assert set(used) == {GOOD, OTHER} and min(used.values()) >= 10
    keys = engine.keys(run_id)
    assert [(k["number"], k["key"], k["calls"], k["errors"], k["state"]) for k in keys] == [
        (1, "••••••••AAAA", used[GOOD], 0, "ready"), (2, "••••••••BBBB", used[OTHER], 0, "ready")]


def test_a_key_answering_401_is_parked_and_the_run_finishes_on_the_other(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 12)), False, "edit",
                                  pooled(fake, f"g3_stream_dataurl.key={GOOD}", BAD, concurrency=2))
    progress = finish(engine, run_id)
    assert (progress["done"], progress["failed"]) == (12, 0)
    assert 1 <= keys_used(fake)[BAD] <= 2  # parked after its first answer: at most the calls already under way
    good, bad = engine.keys(run_id)
    assert good["state"] == "ready" and good["calls"] == 12
    assert bad["state"] == "parked" and bad["errors"] == bad["calls"] == keys_used(fake)[BAD]
    assert bad["reason"].startswith("refused by the gateway: HTTP 401: Incorrect API key provided")
    every_word = json.dumps([engine.keys(run_id), engine.store.tasks_since(run_id).to_dict()])
    assert BAD not in every_word  # (the good key is in the fake's URL: its scenario checks for it)


def test_every_key_refused_pauses_the_run_and_a_fixed_profile_resumes_it(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 10)), False, "edit",
                                  api(fake, f"g3_stream_dataurl.key={GOOD}", api_key=BAD,
                                      key_pool=["sk-also-revoked-0004"], concurrency=2))
    progress = finish(engine, run_id)
    assert progress["failed"] == 0 and progress["stopped"] == 10
    reason = engine.cooling(run_id)["paused"]
    assert reason.startswith("paused: every key is parked (key 1 ••••••••CCCC: refused by the gateway: HTTP 401")
    assert {t.error for t in engine.store.tasks_since(run_id).tasks} == {reason}
    assert engine.resume(run_id, pooled(fake, f"g3_stream_dataurl.key={GOOD}", "sk-also-revoked-0004",
                                        concurrency=2)) == 10
    assert finish(engine, run_id)["done"] == 10 and engine.cooling(run_id) is None
    assert [k["state"] for k in engine.keys(run_id)] == ["ready", "parked"]


def test_a_cooling_key_waits_alone_and_its_calls_go_to_the_other_key(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 12)), False, "edit",
                                  pooled(fake, f"g3_stream_dataurl.busy_key={OTHER}.busy_s=60", OTHER, concurrency=2))
    progress = finish(engine, run_id)
    assert (progress["done"], progress["failed"]) == (12, 0)
    good, other = engine.keys(run_id)
    assert good["calls"] == 12 and other["calls"] == other["errors"] >= 1
    assert other["state"] == "cooling" and other["reason"] == "429 from the gateway (upstream_cooling)"
    assert other["until"] > good["calls"]  # a wall-clock time: the page shows it as "until 14:32"


def test_a_spent_key_is_parked_and_a_run_whose_keys_are_all_spent_pauses(engine, fake, tmp_path):
    scenario = f"g3_stream_dataurl.spent_key={OTHER}"
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 8)), False, "edit",
                                  pooled(fake, scenario, OTHER, concurrency=2))
    assert finish(engine, run_id)["done"] == 8
    assert engine.keys(run_id)[1]["reason"] == "429 from the gateway (upstream_quota_exhausted): quota used up"
    fake.requests.clear()
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "more", 4)), False, "edit",
                                  pooled(fake, f"g3_stream_dataurl.spent_key={GOOD}~{OTHER}", OTHER, concurrency=1))
    progress = finish(engine, run_id)
    assert progress["stopped"] == 4 and progress["failed"] == 0
    assert "quota used up" in engine.cooling(run_id)["paused"]


def test_a_key_with_its_own_concurrency_never_has_more_calls_at_once(engine, fake, tmp_path):
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 16)), False, "edit",
                                  pooled(fake, "latency.s=0.1", {"api_key": OTHER, "concurrency": 1}, concurrency=6))
    seen = []
    wait_for(lambda: seen.append(engine.keys(run_id)[1]["in_flight"]) or not engine.is_running(run_id), timeout=60)
    assert max(seen) == 1 and engine.store.progress(run_id)["done"] == 16


def test_a_pooled_key_with_its_own_url_calls_that_url(engine, fake, tmp_path):
    elsewhere = fake.url(f"g3_stream_dataurl.key={OTHER}", "/v1/chat/completions")
    run_id, _ = engine.create_run(str(make_sources(tmp_path / "src", 6)), False, "edit",
                                  pooled(fake, f"g3_stream_dataurl.key={GOOD}", {"api_key": OTHER, "api_url": elsewhere},
                                         concurrency=2))
    assert finish(engine, run_id)["done"] == 6
    by_segment = Counter((r.scenario, r.headers["authorization"]) for r in fake.requests if r.method == "POST")
    assert set(by_segment) == {(f"g3_stream_dataurl.key={GOOD}", f"Bearer {GOOD}"),
                               (f"g3_stream_dataurl.key={OTHER}", f"Bearer {OTHER}")}


# -- the profile: validation, masking and the keep rule for every key -----------------------------


def test_settings_mask_every_pooled_key_and_a_masked_one_keeps_the_stored_key(client):
    saved = client.put("/api/settings", json={"api": {"api_key": GOOD, "key_pool": [OTHER, {"api_key": "sk-short"}]}})
    assert saved.status_code == 200
    shown = saved.json["api"]["key_pool"]
    assert [entry["api_key"] for entry in shown] == ["••••••••BBBB", "••••••••"]
    # the page sends the masks back, reordered and with a new key added: the stored keys stay
    again = client.put("/api/settings", json={"api": {"key_pool": [shown[1], {"api_key": "sk-new-one"}, shown[0]]}})
    assert again.status_code == 200
    stored = client.application.extensions["console.config"].profile().key_pool
    assert [entry["api_key"] for entry in stored] == ["sk-short", "sk-new-one", OTHER]
    assert OTHER not in json.dumps(client.get("/api/settings").json)
    exported = client.get("/api/config/export").get_data(as_text=True)
    assert OTHER not in exported and "sk-short" not in exported


@pytest.mark.parametrize("pool, message", [
    ([{"api_key": "sk-a b"}], "key_pool: key 2 api_key: a space (U+0020) at position 5 cannot be sent in an HTTP header"),
    ([{"api_key": "••••••••ZZZZ"}], "key_pool: key 2: the mask ••••••••ZZZZ stands for no stored key; type the key itself"),
    ([{"api_key": ""}], "key_pool: key 2 has no api_key; type the key or remove the row"),
    ([{"api_key": "sk-x", "concurrency": 65}], "key_pool: key 2 concurrency must be between 1 and 64; got 65"),
    ([{"api_key": "sk-x", "api_url": "ftp://h"}], "key_pool: key 2 api_url must start with http:// or https://"),
    (["sk-x", "sk-x"], "key_pool: key 3 repeats key 2 (same key)"),
    ([GOOD], "key_pool: key 2 repeats the profile's own key (key 1)"),
    ("sk-x", "key_pool must be a list of keys"),
])
def test_a_bad_pooled_key_is_refused_at_the_door_naming_it(client, pool, message):
    answer = client.put("/api/settings", json={"api": {"api_key": GOOD, "key_pool": pool}})
    assert answer.status_code == 400 and message in answer.json["error"]
    assert GOOD not in answer.get_data(as_text=True)


def test_a_run_whose_pooled_url_is_not_allowed_is_refused_before_it_starts(client, fake, tmp_path):
    answer = client.post("/api/runs", json={"input_path": str(make_sources(tmp_path / "src", 1)), "prompt": "p",
                                            "api": pooled(fake, "g3_stream_dataurl",
                                                          {"api_key": OTHER, "api_url": "http://127.0.0.1:9/v1/images/generations"})})
    assert answer.status_code == 400
    assert answer.json["error"].startswith("key 2 of the key pool: its API URL calls images, the profile's calls chat_completions")


def test_test_connection_tries_every_key_and_says_which_one_fails(client, fake):
    answer = client.post("/api/test-connection", json={"api": pooled(fake, f"g3_stream_dataurl.key={GOOD}~{OTHER}",
                                                                     OTHER, BAD)}).json
    assert answer["ok"] is False and answer["http_status"] == 200 and "grok-imagine-1.0-edit" in answer["models"]
    assert [(k["number"], k["key"], k["ok"], k["http_status"]) for k in answer["keys"]] == [
        (1, "••••••••AAAA", True, 200), (2, "••••••••BBBB", True, 200), (3, "••••••••CCCC", False, 401)]
    assert answer["keys"][2]["error"].startswith("HTTP 401: Incorrect API key provided")
    assert BAD not in json.dumps(answer)
    single = client.post("/api/test-connection", json={"api": api(fake, "g3_stream_dataurl", api_key=GOOD)}).json
    assert single["ok"] is True and "keys" not in single


def test_presets_and_imports_keep_pooled_keys_by_the_same_rule(client):
    client.put("/api/settings", json={"api": {"api_key": GOOD, "key_pool": [OTHER]}})
    shown = client.get("/api/settings").json["api"]
    assert client.put("/api/presets/api/two keys", json=shown).status_code == 200  # as the page saves a preset
    presets = client.application.extensions["console.config"]
    assert [entry["api_key"] for entry in presets._presets["api"]["two keys"].key_pool] == [OTHER]
    assert client.get("/api/presets").json["api"]["two keys"]["key_pool"][0]["api_key"] == "••••••••BBBB"
    exported = client.get("/api/config/export").json  # without secrets: every key blank
    assert exported["settings"]["api"]["key_pool"][0]["api_key"] == ""
    assert client.post("/api/config/import", json=exported).status_code == 200  # blank keeps the stored key
    assert [entry["api_key"] for entry in presets.profile().key_pool] == [OTHER]
    assert [entry["api_key"] for entry in presets._presets["api"]["two keys"].key_pool] == [OTHER]
