"""Every layout saves a real run that its trainer reads right, checked by readers written from the trainers' rules.

The runs go through the engine and the fake gateway; the folders are read back only by
tests/trainers.py, which knows nothing of our writer. Each sample must pair the right images:
the task's source (and its reference images, in order) as inputs and the chosen result as the
target, or the other way round with `role_swap`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from console.store import NewTask
from tests.helpers import api, make_sources, wait_idle
from testkit.images import make
from tests.trainers import Reading, read_aitoolkit, read_civitai, read_fal, read_musubi, read_musubi_jsonl

PROMPT = "make it blue"


def pixels(path_or_bytes) -> tuple[tuple[int, int], bytes]:
    """Return (size, RGB bytes) of an image file or encoded bytes: what a trainer decodes."""
    import io
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        return image.size, image.convert("RGB").tobytes()


def start_tasks(app, client, fake, folder: Path, tasks: list[NewTask], scenario: str = "g3_stream_dataurl") -> str:
    """Store a run of these tasks with a profile for the fake gateway, run it through the engine, wait for it."""
    engine, store = app.extensions["console.engine"], app.extensions["console.store"]
    profile = engine.profile_for(api(fake, scenario)).to_dict(mask_key=False)
    run_id = store.create_run(str(folder), False, PROMPT, profile, tasks)
    engine.resume(run_id)
    listing = wait_idle(client, run_id)
    assert listing["progress"]["done"] == len(tasks), listing["progress"]
    return run_id


def select_first(client, run_id: str) -> list[dict]:
    tasks = client.get(f"/api/runs/{run_id}/tasks").json["tasks"]
    for task in tasks:
        assert client.patch(f"/api/results/{task['results'][0]['id']}", json={"selected": True}).status_code == 200
    return sorted(client.get(f"/api/runs/{run_id}/tasks").json["tasks"], key=lambda t: t["index"])


def save(client, run_id: str, out: Path, **rule) -> dict:
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(out), **rule})
    assert answer.status_code == 200, answer.json
    assert answer.json["errors"] == [], answer.json["errors"]
    return answer.json


@pytest.fixture
def plain(app, client, fake, tmp_path):
    """A run over img1.png and img2.png (16x12; results 64x48, first one selected), no reference images."""
    folder = make_sources(tmp_path / "src", 2)
    run_id = start_tasks(app, client, fake, folder, [NewTask(p.name, str(p)) for p in sorted(folder.iterdir())])
    return run_id, select_first(client, run_id)


@pytest.fixture
def with_refs(app, client, fake, tmp_path):
    """A run whose two tasks each have two reference images besides their source (three inputs per task)."""
    folder = make_sources(tmp_path / "src", 2)
    refs = tmp_path / "refs"
    refs.mkdir()
    for name, fmt, color in (("style.png", "PNG", (1, 2, 3)), ("pose.jpg", "JPEG", (200, 100, 50)),
                             ("face.webp", "WEBP", (9, 200, 9))):
        (refs / name).write_bytes(make(fmt, (24, 24), color))
    tasks = [NewTask("img1.png", str(folder / "img1.png"), references=(str(refs / "style.png"), str(refs / "pose.jpg"))),
             NewTask("img2.png", str(folder / "img2.png"), references=(str(refs / "face.webp"), str(refs / "style.png")))]
    run_id = start_tasks(app, client, fake, folder, tasks)
    return run_id, select_first(client, run_id)


def result_bytes(client, task: dict) -> bytes:
    return client.get(f"/api/results/{task['results'][0]['id']}/image").data


def check_pairs(client, reading: Reading, tasks: list[dict], *, swapped: bool = False, caption: str | None = PROMPT) -> None:
    """Every task gives one sample: its inputs (source, then references) and its first result, or swapped."""
    assert reading.problems == []
    samples = sorted(reading.samples, key=lambda s: s.target.name)
    assert len(samples) == len(tasks)
    for sample, task in zip(samples, tasks):
        result = pixels(result_bytes(client, task))
        source = pixels(Path(task["source_path"]))
        wanted_target, first_input = (source, result) if swapped else (result, source)
        assert pixels(sample.target) == wanted_target, sample.target
        assert pixels(sample.inputs[0]) == first_input, sample.inputs[0]
        assert [pixels(p) for p in sample.inputs[1:]] == [pixels(Path(r)) for r in task["references"]]
        assert sample.caption == caption


# -- one input per target ---------------------------------------------------------------------------

@pytest.mark.parametrize("swapped", [False, True])
def test_aitoolkit_edit_is_read_by_ai_toolkit(client, plain, tmp_path, swapped):
    run_id, tasks = plain
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="aitoolkit_edit", name="blue", role_swap=swapped)
    check_pairs(client, read_aitoolkit(out / "blue_target", [out / "blue_control"]), tasks, swapped=swapped)
    assert answer["report"]["trainer_ready"] is True and answer["report"]["role_swap"] is swapped


@pytest.mark.parametrize("swapped", [False, True])
def test_musubi_is_read_by_musubi_both_ways(client, plain, tmp_path, swapped):
    run_id, tasks = plain
    out = tmp_path / "out"
    save(client, run_id, out, layout="musubi", name="set", role_swap=swapped)
    check_pairs(client, read_musubi(out / "set/image", out / "set/control"), tasks, swapped=swapped)
    check_pairs(client, read_musubi_jsonl(out / "set/dataset.jsonl"), tasks, swapped=swapped)


@pytest.mark.parametrize("swapped", [False, True])
def test_fal_start_end_is_read_by_fal(client, plain, tmp_path, swapped):
    run_id, tasks = plain
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="fal_start_end", name="zipme", role_swap=swapped)
    assert sorted(p.name for p in (out / "zipme").iterdir()) == [
        "img1.txt", "img1_end.png", "img1_start.png", "img2.txt", "img2_end.png", "img2_start.png"]
    check_pairs(client, read_fal(out / "zipme"), tasks, swapped=swapped)
    assert answer["report"]["trainer_ready"] is True


@pytest.mark.parametrize("swapped", [False, True])
def test_civitai_edit_is_read_by_civitai(client, plain, tmp_path, swapped):
    run_id, tasks = plain
    out = tmp_path / "out"
    save(client, run_id, out, layout="civitai_edit", name="civ", role_swap=swapped, format="jpeg")
    check = read_civitai(out / "civ")
    assert {p.suffix for s in check.samples for p in [s.target, *s.inputs]} == {".jpg"}
    # JPEG is lossy: compare what the trainer decodes with the re-encoded originals' sizes and count only.
    assert check.problems == [] and len(check.samples) == 2
    assert all(s.caption == PROMPT and len(s.inputs) == 1 for s in check.samples)
    save(client, run_id, out, layout="civitai_edit", name="lossless", role_swap=swapped)  # png: exact pixels
    check_pairs(client, read_civitai(out / "lossless"), tasks, swapped=swapped)


@pytest.mark.parametrize("swapped", [False, True])
def test_flat_pairs_is_read_with_fal_names_in_output_dir(client, plain, tmp_path, swapped):
    run_id, tasks = plain
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="flat_pairs", format="png", caption="prompt", role_swap=swapped)
    check_pairs(client, read_fal(out), tasks, swapped=swapped)
    assert answer["report"]["trainer_ready"] is False  # for people: trainers get fal_start_end


def test_aitoolkit_multi_without_references_is_a_plain_pair_dataset(client, plain, tmp_path):
    run_id, tasks = plain
    out = tmp_path / "out"
    save(client, run_id, out, layout="aitoolkit_multi", name="m")
    check_pairs(client, read_aitoolkit(out / "m_target", [out / "m_control"], require_all=True), tasks)


# -- several inputs per target ------------------------------------------------------------------------

@pytest.mark.parametrize("swapped", [False, True])
def test_aitoolkit_multi_writes_references_as_control2_and_control3(client, with_refs, tmp_path, swapped):
    run_id, tasks = with_refs
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="aitoolkit_multi", name="multi", role_swap=swapped)
    controls = [out / "multi_control", out / "multi_control2", out / "multi_control3"]
    check_pairs(client, read_aitoolkit(out / "multi_target", controls, require_all=True), tasks, swapped=swapped)
    assert answer["report"]["validation"]["controls_per_target"] == {"3": 2}
    assert answer["report"]["trainer_ready"] is True


@pytest.mark.parametrize("swapped", [False, True])
def test_musubi_with_several_controls_numbers_them(client, with_refs, tmp_path, swapped):
    run_id, tasks = with_refs
    out = tmp_path / "out"
    save(client, run_id, out, layout="musubi", name="set", role_swap=swapped)
    assert sorted(p.name for p in (out / "set/control").iterdir()) == [
        "img1_0.png", "img1_1.png", "img1_2.png", "img2_0.png", "img2_1.png", "img2_2.png"]
    check_pairs(client, read_musubi(out / "set/image", out / "set/control"), tasks, swapped=swapped)
    check_pairs(client, read_musubi_jsonl(out / "set/dataset.jsonl"), tasks, swapped=swapped)


@pytest.mark.parametrize("swapped", [False, True])
def test_fal_start_end_writes_further_inputs_as_start2_start3(client, with_refs, tmp_path, swapped):
    run_id, tasks = with_refs
    out = tmp_path / "out"
    save(client, run_id, out, layout="fal_start_end", name="f", role_swap=swapped)
    assert sorted(p.name for p in (out / "f").glob("img1*")) == [
        "img1.txt", "img1_end.png", "img1_start.png", "img1_start2.png", "img1_start3.png"]
    check_pairs(client, read_fal(out / "f"), tasks, swapped=swapped)


@pytest.mark.parametrize("swapped", [False, True])
def test_civitai_edit_writes_control_1_to_3(client, with_refs, tmp_path, swapped):
    run_id, tasks = with_refs
    out = tmp_path / "out"
    save(client, run_id, out, layout="civitai_edit", name="c", role_swap=swapped)
    assert sorted(p.name for p in (out / "c").iterdir()) == ["control_1", "control_2", "control_3", "main"]
    check_pairs(client, read_civitai(out / "c"), tasks, swapped=swapped)


def test_single_control_layouts_refuse_tasks_with_references(client, with_refs, tmp_path):
    run_id, tasks = with_refs
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(tmp_path / "out"),
                                                           "layout": "aitoolkit_edit"}).json
    assert answer["saved"] == [] and [e["kind"] for e in answer["errors"]] == ["inputs", "inputs"]
    assert all("3 input images" in e["error"] and e["source_name"] in ("img1.png", "img2.png") for e in answer["errors"])
    assert any("tasks with reference images are refused" in note for note in answer["report"]["notes"])


def test_uneven_inputs_are_not_trainer_ready_for_qwen_edit_plus(app, client, fake, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    ref = tmp_path / "ref.png"
    ref.write_bytes(make("PNG", (8, 8)))
    tasks = [NewTask("img1.png", str(folder / "img1.png"), references=(str(ref),)),
             NewTask("img2.png", str(folder / "img2.png"))]
    run_id = start_tasks(app, client, fake, folder, tasks)
    select_first(client, run_id)
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="aitoolkit_multi")
    reading = read_aitoolkit(out / "dataset_target", [out / "dataset_control", out / "dataset_control2"],
                             require_all=True)
    assert reading.problems == ["Missing control images for img2.png in dataset_control2"]
    assert answer["report"]["trainer_ready"] is False  # our own check says so too
    assert answer["report"]["validation"]["targets_with_fewer_controls"] == ["img2"]


# -- tasks without a source (generate mode) --------------------------------------------------------------

def test_generated_tasks_have_no_control_and_are_refused_by_pair_layouts(app, client, fake, tmp_path):
    ref = tmp_path / "ref.png"
    ref.write_bytes(make("PNG", (16, 12)))
    tasks = [NewTask("cat_snow", "", output_name="cat_snow"),
             NewTask("cat_rain", "", references=(str(ref),), output_name="cat_rain")]
    run_id = start_tasks(app, client, fake, tmp_path, tasks)
    tasks = select_first(client, run_id)
    out = tmp_path / "out"
    answer = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(out), "layout": "fal_start_end"}).json
    assert [(e["source_name"], e["kind"]) for e in answer["errors"]] == [("cat_snow", "no_source")]
    assert "generated from the prompt alone" in answer["errors"][0]["error"]
    sample, = read_fal(out / "dataset").samples  # the one with a reference image: it is the input
    assert sample.target.name == "cat_rain_end.png" and pixels(sample.inputs[0]) == pixels(ref)
    swapped = client.post(f"/api/runs/{run_id}/save", json={"output_dir": str(tmp_path / "swap"),
                                                            "layout": "musubi", "role_swap": True}).json
    assert [e["kind"] for e in swapped["errors"]] == ["no_source", "no_source"]
    flat = save(client, run_id, tmp_path / "flat", template="{stem}")
    assert sorted(Path(p).name for s in flat["saved"] for p in s["paths"]) == ["cat_rain.jpg", "cat_snow.jpg"]


def test_musubi_never_gives_one_target_anothers_controls(app, client, fake, tmp_path):
    # musubi reads `photo_1.png` in the control folder as a control of target `photo`: sources named
    # `photo` and `photo_1`, two results each, must still pair each target with its own source only.
    folder = tmp_path / "src"
    folder.mkdir()
    for name, color in (("photo.png", (200, 0, 0)), ("photo_1.png", (0, 200, 0))):
        (folder / name).write_bytes(make("PNG", (16, 12), color))
    run_id = start_tasks(app, client, fake, folder, [NewTask(p.name, str(p)) for p in sorted(folder.iterdir())])
    out = tmp_path / "out"
    answer = save(client, run_id, out, layout="musubi", only_selected=False)
    reading = read_musubi(out / "dataset/image", out / "dataset/control")
    assert reading.problems == [] and len(reading.samples) == 4
    source_of = {Path(s["paths"][-1]).stem: s["source_path"] for s in answer["saved"]}
    assert sorted(source_of) == ["photo", "photo-2", "photo_1-2", "photo_1-3"]
    for sample in reading.samples:
        assert len(sample.inputs) == 1 and pixels(sample.inputs[0]) == pixels(Path(source_of[sample.target.stem]))
    assert answer["report"]["validation"]["ok"] is True


def test_a_caption_is_the_prompt_that_made_the_result_not_the_tasks_new_one(app, client, plain, tmp_path):
    # A task can be re-prompted; its earlier results keep the prompt that made them, and so do captions.
    run_id, tasks = plain
    app.extensions["console.store"].set_task_prompt(tasks[0]["id"], "make it red instead")
    out = tmp_path / "out"
    save(client, run_id, out, layout="fal_start_end")
    assert (out / "dataset/img1.txt").read_text("utf-8") == PROMPT
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text("utf-8").splitlines()]
    assert [line["prompt"] for line in lines] == [PROMPT, PROMPT]
