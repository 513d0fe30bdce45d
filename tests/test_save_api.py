"""Saving results into dataset layouts through the HTTP API: real runs against the fake gateway, real files."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from testkit.images import make
from tests.helpers import make_sources, start, wait_idle, words


KEY = "sk-test-SECRET-0123456789"


def tree(folder: Path) -> list[str]:
    """Return every file under `folder`, relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def finished_run(client, fake, folder: Path, **api) -> tuple[str, list[dict]]:
    """Start a run over `folder` (two results per task: JPEG then PNG, 64x48) and wait for it."""
    run_id = start(client, fake, folder, **api)
    return run_id, wait_idle(client, run_id)["tasks"]


def select_first(client, tasks: list[dict]) -> None:
    for task in tasks:
        assert client.patch(f"/api/results/{task['results'][0]['id']}", json={"selected": True}).status_code == 200


def save(client, run_id: str, out: Path, status: int = 200, **rule) -> dict:
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(out), **rule})
    assert answer.status_code == status, answer.json
    return answer.json


@pytest.fixture
def run(client, fake, tmp_path):
    """A finished run over img1.png and img2.png (16x12, the results' 4:3) with the first result of each selected."""
    run_id, tasks = finished_run(client, fake, make_sources(tmp_path / "src", 2), api_key=KEY)
    select_first(client, tasks)
    return run_id, tasks


# -- layouts ------------------------------------------------------------------------------------

def test_flat_saves_selected_results_with_the_default_template(client, run, tmp_path):
    run_id, tasks = run
    out = tmp_path / "out"
    answer = save(client, run_id, out)
    assert tree(out) == ["img1_1.jpg", "img2_1.jpg", "manifest.jsonl"]
    assert [s["result_id"] for s in answer["saved"]] == [t["results"][0]["id"] for t in tasks]
    assert (out / "img1_1.jpg").read_bytes() == client.get(f"/api/results/{tasks[0]['results'][0]['id']}/image").data
    assert answer["errors"] == [] and answer["skipped"] == [] and answer["dry_run"] is False
    assert answer["report"]["trainer_ready"] is False and answer["report"]["counts"]["saved"] == 2


def test_flat_template_subfolders_format_and_captions(client, run, tmp_path):
    run_id, tasks = run
    out = tmp_path / "out"
    save(client, run_id, out, template="{run}/{index:04d}_{n}_{sha8}", format="webp", caption="prompt",
         only_selected=False)
    sha = [[r["sha256"][:8] for r in t["results"]] for t in tasks]
    names = [f"{run_id}/0001_1_{sha[0][0]}", f"{run_id}/0001_2_{sha[0][1]}", f"{run_id}/0002_1_{sha[1][0]}",
             f"{run_id}/0002_2_{sha[1][1]}"]
    assert tree(out) == sorted([f"{n}.webp" for n in names] + [f"{n}.txt" for n in names] + ["manifest.jsonl"])
    with Image.open(out / f"{names[0]}.webp") as image:
        assert image.format == "WEBP" and image.size == (64, 48)
    assert (out / f"{names[0]}.txt").read_text("utf-8") == "make it blue"


def test_aitoolkit_edit_tree_same_stems_and_trigger_captions(client, run, tmp_path):
    run_id, tasks = run
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="aitoolkit_edit", name="blue", trigger="ohwx")
    assert tree(out) == ["blue_control/img1.png", "blue_control/img2.png", "blue_target/img1.png",
                         "blue_target/img1.txt", "blue_target/img2.png", "blue_target/img2.txt", "manifest.jsonl"]
    assert (out / "blue_target/img1.txt").read_text("utf-8") == "ohwx make it blue"
    assert (out / "blue_control/img1.png").read_bytes() == (tmp_path / "src/img1.png").read_bytes()  # PNG: copied
    with Image.open(out / "blue_target/img1.png") as target:
        assert target.format == "PNG" and target.size == (64, 48)  # the JPEG result converted
    report = answer["report"]
    assert report["trainer_ready"] is True and report["validation"]["ok"] is True
    assert report["validation"]["targets"] == 2 and report["validation"]["targets_without_control"] == []
    assert report["folders"] == {"target": str(out / "blue_target"), "control": str(out / "blue_control")}


def test_aitoolkit_edit_several_results_per_task_get_their_own_controls(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    save(client, run_id, out, layout="aitoolkit_edit", only_selected=False, format="jpeg", caption="none")
    assert tree(out) == ["dataset_control/img1.jpg", "dataset_control/img1_2.jpg", "dataset_control/img2.jpg",
                         "dataset_control/img2_2.jpg", "dataset_target/img1.jpg", "dataset_target/img1_2.jpg",
                         "dataset_target/img2.jpg", "dataset_target/img2_2.jpg", "manifest.jsonl"]


def test_aitoolkit_multi_without_references_writes_control_1_only_and_says_so(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="aitoolkit_multi")
    assert {p.name for p in out.iterdir()} == {"dataset_target", "dataset_control", "manifest.jsonl"}
    assert any("only the first control folder" in note for note in answer["report"]["notes"])
    assert answer["report"]["trainer_ready"] is True


def test_musubi_tree_and_dataset_jsonl(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    save(client, run_id, out, layout="musubi", name="set", trigger="ohwx")
    assert tree(out) == ["manifest.jsonl", "set/control/img1.png", "set/control/img2.png", "set/dataset.jsonl",
                         "set/image/img1.png", "set/image/img1.txt", "set/image/img2.png", "set/image/img2.txt"]
    lines = [json.loads(line) for line in (out / "set/dataset.jsonl").read_text("utf-8").splitlines()]
    assert lines == [{"image_path": str(out / f"set/image/img{i}.png"), "control_path": str(out / f"set/control/img{i}.png"),
                      "caption": "ohwx make it blue"} for i in (1, 2)]
    save(client, run_id, out, layout="musubi", name="set", conflict="overwrite", resave=True)  # not duplicated
    assert len((out / "set/dataset.jsonl").read_text("utf-8").splitlines()) == 2


def test_flat_pairs_names_and_not_trainer_ready(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="flat_pairs")
    assert tree(out) == ["img1_end.jpg", "img1_start.png", "img2_end.jpg", "img2_start.png", "manifest.jsonl"]
    assert answer["report"]["trainer_ready"] is False and answer["report"]["validation"]["pairs"] == 2
    assert any("for people to browse" in note for note in answer["report"]["notes"])


def test_sequential_stems_and_shared_source_stems(client, fake, tmp_path):
    folder = tmp_path / "src"
    for sub in ("a", "b"):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "cat.png").write_bytes(make("PNG", (32, 24)))
    answer = client.post("/api/runs", json={"input_path": str(folder), "recursive": True, "prompt": "make it blue",
                                            "api": {"api_url": fake.url("g3_stream_dataurl", "/v1/chat/completions"),
                                                    "model": "m", "allow_private_api": True, "max_retries": 0}})
    run_id = answer.json["run_id"]
    select_first(client, wait_idle(client, run_id)["tasks"])
    shared = save(client, run_id, tmp_path / "shared", layout="aitoolkit_edit")
    assert tree(tmp_path / "shared/dataset_target") == ["cat.png", "cat.txt", "cat_2.png", "cat_2.txt"]
    assert [d["stem"] for d in shared["report"]["duplicate_stems"]] == ["cat"]
    out = tmp_path / "seq"
    save(client, run_id, out, layout="aitoolkit_edit", sequential=True)
    assert tree(out / "dataset_control") == ["0001.png", "0002.png"]
    save(client, run_id, out, layout="aitoolkit_edit", sequential=True, resave=True)  # again: the numbers go on
    assert tree(out / "dataset_target") == [f"000{i}.{e}" for i in range(1, 5) for e in ("png", "txt")]


# -- dry run, conflicts, selection --------------------------------------------------------------

def test_dry_run_writes_nothing_and_returns_the_same_plan(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "new" / "out"
    preview = save(client, run_id, out, layout="aitoolkit_edit", dry_run=True)
    assert not (tmp_path / "new").exists() and preview["dry_run"] is True
    real = save(client, run_id, out, layout="aitoolkit_edit")
    assert preview["saved"] == real["saved"] and preview["skipped"] == real["skipped"]
    assert preview["report"]["validation"] == real["report"]["validation"]
    assert all(Path(p).is_file() for s in real["saved"] for p in s["paths"])


def test_conflict_skip_overwrite_rename(client, run, tmp_path):
    run_id, tasks = run
    out = tmp_path / "out"
    save(client, run_id, out, layout="aitoolkit_edit")
    (out / "dataset_target/img1.txt").write_text("hand-edited", "utf-8")
    skipped = save(client, run_id, out, layout="aitoolkit_edit", resave=True)
    assert skipped["saved"] == [] and [s["reason"].split(":")[0] for s in skipped["skipped"]] == ["exists", "exists"]
    assert (out / "dataset_target/img1.txt").read_text("utf-8") == "hand-edited"
    overwritten = save(client, run_id, out, layout="aitoolkit_edit", conflict="overwrite", resave=True)
    assert len(overwritten["saved"]) == 2 and (out / "dataset_target/img1.txt").read_text("utf-8") == "make it blue"
    renamed = save(client, run_id, out, layout="aitoolkit_edit", conflict="rename", resave=True)
    assert renamed["saved"][0]["paths"] == [str(out / "dataset_control/img1-2.png"), str(out / "dataset_target/img1-2.txt"),
                                            str(out / "dataset_target/img1-2.png")]
    assert tree(out / "dataset_control") == ["img1-2.png", "img1.png", "img2-2.png", "img2.png"]
    assert [c["action"] for c in renamed["report"]["conflicts"]] == ["renamed", "renamed"]


def test_overwrite_replaces_a_same_stem_image_of_another_format(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    save(client, run_id, out, layout="aitoolkit_edit", format="jpeg")
    save(client, run_id, out, layout="aitoolkit_edit", format="png", conflict="overwrite", resave=True)
    assert tree(out / "dataset_control") == ["img1.png", "img2.png"]  # never two files with one stem


def test_only_selected_skips_tasks_without_a_selection(client, fake, tmp_path):
    run_id, tasks = finished_run(client, fake, make_sources(tmp_path / "src", 2))
    client.patch(f"/api/results/{tasks[0]['results'][1]['id']}", json={"selected": True})
    answer = save(client, run_id, tmp_path / "out")
    assert tree(tmp_path / "out") == ["img1_2.png", "manifest.jsonl"]  # {n} is the result's place in its task
    assert words(answer["skipped"]) == [{"task_id": tasks[1]["id"], "source_name": "img2.png",
                                  "source_path": str(tmp_path / "src/img2.png"), "kind": "unselected",
                                  "reason": "no selected result", "fix": "select a result, or untick 'only selected'",
                                  "paths": []}]


def test_every_report_entry_names_its_source_file(client, fake, tmp_path):
    # A person reads the report; an internal id alone tells them nothing.
    run_id, tasks = finished_run(client, fake, make_sources(tmp_path / "src", 2))
    first = save(client, run_id, tmp_path / "out", layout="aitoolkit_edit", only_selected=False)
    again = save(client, run_id, tmp_path / "out", layout="aitoolkit_edit", only_selected=False, conflict="skip",
                 resave=True)
    entries = first["saved"] + again["skipped"]
    assert entries and all(entry["source_name"] in ("img1.png", "img2.png") for entry in entries)
    assert all(entry["kind"] == "exists" and "rename" in entry["fix"] for entry in again["skipped"])
    # Every entry also names the files written (or that would have been).
    assert [e["paths"] for e in again["skipped"]] == [e["paths"] for e in first["saved"]]
    assert all(len(entry["paths"]) == 3 and entry["source_path"].endswith(entry["source_name"]) for entry in entries)
    # ... and which of its task's results it is, so the page need not have the task loaded to say "2/2".
    assert sorted((e["source_name"], e["result_number"], e["result_count"]) for e in first["saved"]) == [
        ("img1.png", 1, 2), ("img1.png", 2, 2), ("img2.png", 1, 2), ("img2.png", 2, 2)]


# -- aspect ratios ------------------------------------------------------------------------------

@pytest.fixture
def square_run(client, fake, tmp_path):
    """A finished run whose one source is 32x32 while the results are 64x48."""
    folder = tmp_path / "square"
    folder.mkdir()
    (folder / "sq.png").write_bytes(make("PNG", (32, 32), (255, 255, 255)))
    run_id, tasks = finished_run(client, fake, folder)
    select_first(client, tasks)
    return run_id, tasks


def test_aspect_mismatch_is_refused_with_both_sizes(client, square_run, tmp_path):
    run_id, tasks = square_run
    answer = save(client, run_id, tmp_path / "out", layout="aitoolkit_edit", conform="none")
    assert answer["saved"] == [] and not (tmp_path / "out/dataset_target").exists()
    refused = answer["skipped"][0]
    assert refused["result_id"] == tasks[0]["results"][0]["id"]
    assert refused["source_size"] == [32, 32] and refused["result_size"] == [64, 48]
    assert "32x32" in refused["reason"] and "64x48" in refused["reason"]
    assert answer["report"]["aspect_refused"][0]["difference"] == pytest.approx(1 / 3, abs=1e-3)
    loose = save(client, run_id, tmp_path / "loose", layout="aitoolkit_edit", conform="none", aspect_tolerance=0.5)
    assert len(loose["saved"]) == 1


@pytest.mark.parametrize("mode", ["pad", "crop", "resize"])
def test_conform_makes_the_control_match_the_target(client, square_run, tmp_path, mode):
    run_id, _ = square_run
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="aitoolkit_edit", conform=mode)
    assert answer["skipped"] == [] and answer["report"]["conformed"][0]["to"] == [64, 48]
    assert size(out / "dataset_control/sq.png") == size(out / "dataset_target/sq.png") == (64, 48)
    with Image.open(out / "dataset_control/sq.png") as control:
        edge = control.convert("RGB").getpixel((0, 24))
    assert edge == ((0, 0, 0) if mode == "pad" else (255, 255, 255))


def test_by_default_a_control_of_another_aspect_is_resized_to_its_target_not_refused(client, square_run, tmp_path):
    run_id, tasks = square_run
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="aitoolkit_edit")
    assert answer["skipped"] == answer["errors"] == [] and len(answer["saved"]) == 1
    assert answer["report"]["conformed"][0]["mode"] == "resize" and answer["report"]["conformed"][0]["by_default"]
    assert size(out / "dataset_control/sq.png") == size(out / "dataset_target/sq.png") == (64, 48)
    with Image.open(out / "dataset_control/sq.png") as control:
        assert control.convert("RGB").getpixel((0, 24)) == (255, 255, 255)  # stretched, no bars


def test_by_default_a_control_within_the_tolerance_is_copied_as_it_is(client, run, tmp_path):
    run_id, _ = run  # 16x12 sources, 64x48 results: the same aspect
    answer = save(client, run_id, tmp_path / "out", layout="aitoolkit_edit")
    assert answer["report"]["conformed"] == [] and size(tmp_path / "out/dataset_control/img1.png") == (16, 12)


# -- names from the template in pair layouts ------------------------------------------------------

@pytest.mark.parametrize("layout, files", [
    ("aitoolkit_edit", ["dataset_control/wc_0001.png", "dataset_control/wc_0002.png", "dataset_target/wc_0001.png",
                        "dataset_target/wc_0001.txt", "dataset_target/wc_0002.png", "dataset_target/wc_0002.txt"]),
    ("musubi", ["dataset/control/wc_0001.png", "dataset/control/wc_0002.png", "dataset/dataset.jsonl",
                "dataset/image/wc_0001.png", "dataset/image/wc_0001.txt", "dataset/image/wc_0002.png",
                "dataset/image/wc_0002.txt"]),
    ("fal_start_end", ["dataset/wc_0001.txt", "dataset/wc_0001_end.png", "dataset/wc_0001_start.png",
                       "dataset/wc_0002.txt", "dataset/wc_0002_end.png", "dataset/wc_0002_start.png"]),
])
def test_pair_layouts_name_each_pair_with_the_template(client, run, tmp_path, layout, files):
    run_id, _ = run
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout=layout, template="wc_{global_index:04d}")
    assert tree(out) == [*files, "manifest.jsonl"] and len(answer["saved"]) == 2


def test_pair_layouts_keep_the_source_stem_without_a_template_and_refuse_folders_in_it(client, run, tmp_path):
    run_id, _ = run
    save(client, run_id, tmp_path / "out", layout="aitoolkit_edit", template="")
    assert (tmp_path / "out/dataset_target/img1.png").exists() and (tmp_path / "out/dataset_control/img1.png").exists()
    refused = save(client, run_id, tmp_path / "sub", 400, layout="aitoolkit_edit", template="x/{stem}")
    assert "'template'" in refused["error"] and "plain" in refused["error"]


# -- the trainer's config lines ------------------------------------------------------------------

def test_the_report_ends_with_the_lines_ai_toolkit_needs(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "o \"q\""  # a quote in the path stays one string in the YAML
    snippet = save(client, run_id, out, layout="aitoolkit_edit", name="wc")["report"]["trainer_snippet"]
    assert (snippet["trainer"], snippet["language"]) == ("ai-toolkit", "yaml")
    lines = snippet["text"].splitlines()
    assert lines[1] == f"  - folder_path: {json.dumps(str(out / 'wc_target'))}"
    assert lines[2] == f"    control_path: {json.dumps(str(out / 'wc_control'))}"
    assert json.loads(lines[1].split(": ", 1)[1]) == str(out / "wc_target") and (out / "wc_target/img1.png").exists()
    assert save(client, run_id, tmp_path / "flat")["report"].get("trainer_snippet") is None


def test_the_report_ends_with_musubis_dataset_toml(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    snippet = save(client, run_id, out, layout="musubi", name="wc")["report"]["trainer_snippet"]
    config = tomllib.loads(snippet["text"])["datasets"][0]
    assert config["image_directory"] == str(out / "wc/image") and config["control_directory"] == str(out / "wc/control")
    assert (Path(config["image_directory"]) / "img1.png").exists() and (Path(config["control_directory"]) / "img1.png").exists()


# -- another run's dataset in the folder ----------------------------------------------------------

def test_saving_into_another_runs_dataset_asks_for_append(client, fake, run, square_run, tmp_path):
    first, _ = run
    second, _ = square_run
    out = tmp_path / "out"
    save(client, first, out, layout="aitoolkit_edit")
    before = tree(out)
    for dry_run in (True, False):
        asked = save(client, second, out, 409, layout="aitoolkit_edit", dry_run=dry_run)
        assert asked["other_runs"] == [first] and "append" in asked["error"]
        details = asked["other_run_details"][0]
        assert (details["prompt"], details["items"]) == ("make it blue", 2) and details["created_at"]
    assert tree(out) == before  # nothing written before the person said yes
    appended = save(client, second, out, layout="aitoolkit_edit", append=True)
    assert len(appended["saved"]) == 1 and "dataset_target/sq.png" in tree(out)
    runs = {json.loads(line)["run_id"] for line in (out / "manifest.jsonl").read_text("utf-8").splitlines()}
    assert runs == {first, second}
    again = save(client, first, out, layout="aitoolkit_edit", append=True)  # the same run: never twice
    assert again["saved"] == [] and {e["kind"] for e in again["skipped"]} == {"saved_before"}


def test_the_same_run_saves_again_without_being_asked(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    save(client, run_id, out, layout="aitoolkit_edit")
    again = save(client, run_id, out, layout="aitoolkit_edit")
    assert again["saved"] == [] and {e["kind"] for e in again["skipped"]} == {"saved_before"}


# -- manifest, secrets, failures ----------------------------------------------------------------

def test_manifest_records_provenance_and_no_key_is_written_anywhere(client, run, tmp_path):
    run_id, tasks = run
    out = tmp_path / "out"
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(out), "layout": "musubi"})
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text("utf-8").splitlines()]
    assert len(lines) == 2
    first, source = lines[0], tmp_path / "src/img1.png"
    assert first["source_path"] == str(source)
    assert first["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert first["result_sha256"] == tasks[0]["results"][0]["sha256"] and first["result_id"] == tasks[0]["results"][0]["id"]
    assert first["provider"].startswith("127.0.0.1:") and first["model"] == "grok-imagine-1.0-edit"
    assert first["prompt"] == "make it blue" and first["request_id"] is None
    assert set(first["params"]) == {"size", "n", "api_mode"} and first["params"]["api_mode"] == "auto"
    assert first["paths"] == answer.json["saved"][0]["paths"] and first["timestamp"]
    assert KEY not in answer.get_data(as_text=True)
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    save(client, run_id, out, layout="musubi", conflict="overwrite", resave=True)
    assert len((out / "manifest.jsonl").read_text("utf-8").splitlines()) == 4  # appended


def test_missing_source_is_an_error_and_no_target_is_written_alone(client, run, tmp_path):
    run_id, tasks = run
    (tmp_path / "src/img1.png").unlink()
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="aitoolkit_edit")
    assert [e["result_id"] for e in answer["errors"]] == [tasks[0]["results"][0]["id"]]
    assert "missing" in answer["errors"][0]["error"]
    assert answer["report"]["missing_controls"][0]["task_id"] == tasks[0]["id"]
    assert tree(out) == ["dataset_control/img2.png", "dataset_target/img2.png", "dataset_target/img2.txt", "manifest.jsonl"]


def test_missing_cache_file_is_an_error_and_the_rest_goes_on(client, app, run, tmp_path):
    run_id, tasks = run
    gone = tasks[0]["results"][1]  # the fake answers the same two images for every task
    app.extensions["console.cache"].path(gone["sha256"], gone["format"]).unlink()
    answer = save(client, run_id, tmp_path / "out", only_selected=False)
    missing = "the result image is missing from the cache"
    assert words(answer["errors"]) == [{"result_id": t["results"][1]["id"], "task_id": t["id"], "source_name": t["source_name"],
                                 "source_path": t["source_path"], "result_number": 2, "result_count": 2,
                                 "kind": "missing", "error": missing, "paths": [],
                                 "fix": "retry the task to fetch the image again"} for t in tasks]
    assert tree(tmp_path / "out") == ["img1_1.jpg", "img2_1.jpg", "manifest.jsonl"]


def test_a_symlink_out_of_output_dir_is_refused(client, run, tmp_path):
    run_id, _ = run
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "dataset_target").symlink_to(elsewhere)
    answer = save(client, run_id, out, layout="aitoolkit_edit")
    assert answer["saved"] == [] and all("outside output_dir" in e["error"] for e in answer["errors"])
    assert list(elsewhere.iterdir()) == []


def test_sources_are_never_overwritten(client, run, tmp_path):
    run_id, _ = run
    before = (tmp_path / "src/img1.png").read_bytes()
    answer = save(client, run_id, tmp_path / "src", template="{stem}", format="png", conflict="overwrite")
    assert answer["saved"] == [] and all("source image" in e["error"] for e in answer["errors"])
    assert (tmp_path / "src/img1.png").read_bytes() == before


# -- one result, bad requests -------------------------------------------------------------------

def test_single_result_save(client, run, tmp_path):
    _, tasks = run
    second = tasks[0]["results"][1]  # not selected: only_selected does not apply here
    out = tmp_path / "out"
    answer = client.post(f"/api/results/{second['id']}/save", json={"output_dir": str(out), "layout": "aitoolkit_edit"})
    assert answer.status_code == 200, answer.json
    assert [s["result_id"] for s in answer.json["saved"]] == [second["id"]]
    assert tree(out) == ["dataset_control/img1.png", "dataset_target/img1.png", "dataset_target/img1.txt", "manifest.jsonl"]
    flat = client.post(f"/api/results/{second['id']}/save", json={"output_dir": str(out / "flat")}).json
    assert flat["saved"][0]["paths"] == [str(out / "flat/img1_2.png")]


def test_unknown_ids_are_404(client, tmp_path):
    rule = {"output_dir": str(tmp_path / "out")}
    assert client.post("/api/runs/nope/save", json=rule).status_code == 404
    missing = client.post("/api/results/nope/save", json=rule)
    assert missing.status_code == 404 and words(missing.json) == {"ok": False, "error": "no result nope"}


@pytest.mark.parametrize("rule, message", [
    ({}, "'output_dir' is required"),
    ({"output_dir": "out"}, "'output_dir' must be an absolute path"),
    ({"layout": "kohya"}, "'layout' must be one of"),
    ({"template": "{stem}_{seed}"}, "unknown variable {seed}"),
    ({"sequential": "no"}, "'sequential' must be true or false"),
    ({"template": "../{stem}"}, "template"),
])
def test_bad_rules_are_400(client, run, tmp_path, rule, message):
    run_id, _ = run
    body = {"output_dir": str(tmp_path / "out"), **rule} if "output_dir" not in rule and rule != {} else rule
    answer = client.post(f"/api/runs/{run_id}/save", json=body)
    assert answer.status_code == 400 and answer.json["ok"] is False and message in answer.json["error"]


def test_output_dir_that_cannot_be_created_is_400(client, run, tmp_path):
    run_id, tasks = run
    blocker = tmp_path / "file"
    blocker.write_text("x")
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(blocker / "out")})
    assert answer.status_code == 400 and "'output_dir'" in answer.json["error"] and str(blocker) in answer.json["error"]
    one = client.post(f"/api/results/{tasks[0]['results'][0]['id']}/save", json={"output_dir": str(blocker)})
    assert one.status_code == 400 and "'output_dir'" in one.json["error"]
    assert client.post(f"/api/runs/{run_id}/save", data="[]", content_type="application/json").status_code == 400


def test_flat_rename_keeps_subfolders_and_captions_together(client, run, tmp_path):
    run_id, _ = run
    out = tmp_path / "out"
    rule = {"template": "sub/{stem}", "caption": "prompt", "conflict": "rename"}
    save(client, run_id, out, **rule)
    again = save(client, run_id, out, **rule, resave=True)
    assert again["saved"][0]["paths"] == [str(out / "sub/img1-2.txt"), str(out / "sub/img1-2.jpg")]
    assert tree(out / "sub") == ["img1-2.jpg", "img1-2.txt", "img1.jpg", "img1.txt", "img2-2.jpg", "img2-2.txt",
                                 "img2.jpg", "img2.txt"]


def test_every_entry_and_every_refusal_names_the_source_and_the_files(client, fake, tmp_path):
    # Saved, skipped, errors and the report's lists all say which source file and which files.
    folder = tmp_path / "src"
    for sub in ("a", "b"):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "cat.png").write_bytes(make("PNG", (32, 24), (10, 20, 30) if sub == "a" else (30, 20, 10)))
    (folder / "sq.png").write_bytes(make("PNG", (32, 32)))
    answer = client.post("/api/runs", json={"input_path": str(folder), "recursive": True, "prompt": "make it blue",
                                            "api": {"api_url": fake.url("g3_stream_dataurl", "/v1/chat/completions"),
                                                    "model": "m", "allow_private_api": True, "max_retries": 0}})
    run_id = answer.json["run_id"]
    wait_idle(client, run_id)
    out = tmp_path / "out"
    first = save(client, run_id, out, layout="aitoolkit_edit", only_selected=False, conform="none")
    again = save(client, run_id, out, layout="aitoolkit_edit", only_selected=False, resave=True, conflict="rename",
                 conform="none")
    report_lists = [entry for answer in (first, again) for key in ("aspect_refused", "duplicate_stems", "conflicts",
                                                                   "missing_controls") for entry in answer["report"][key]]
    entries = [e for answer in (first, again) for key in ("saved", "skipped", "errors") for e in answer[key]]
    assert {e["source_name"] for e in entries + report_lists} == {"a/cat.png", "b/cat.png", "sq.png"}
    assert all(isinstance(e["paths"], list) and e["source_path"].startswith(str(folder)) for e in entries + report_lists)
    assert {e["kind"] for e in first["skipped"]} == {"aspect"} and all(e["paths"] == [] for e in first["skipped"])
    doubles = first["report"]["duplicate_stems"]  # b/cat.png's results could not be named "cat": a/cat.png is
    assert [(d["source_name"], d["as"], [Path(p).name for p in d["paths"]]) for d in doubles] == [
        ("b/cat.png", "cat_3", ["cat_3.png", "cat_3.txt", "cat_3.png"]),
        ("b/cat.png", "cat_4", ["cat_4.png", "cat_4.txt", "cat_4.png"])]
    renamed = again["report"]["conflicts"]
    assert renamed and all(c["action"] == "renamed" and c["paths"] == c["as"] for c in renamed)
    assert all(Path(c["paths"][-1]).stem.endswith("-2") for c in renamed), [c["paths"][-1] for c in renamed]
