"""The older console's vocabulary and its five presets save the names it would have.

The expected names are fixtures written from the older console's documented rules (the issue):
- "AI-Toolkit edit (start→end, no txt)": `{src_stem}`, start→end, selected results only, no .txt;
- "keep source name": `{src_stem}`;
- "source with txt": `{src_stem}`, and a .txt of `{src_name}`, the instruction and `{task_id}`;
- "first only, clean": only the first result of each task, named `{src_stem}`;
- "indexed archive": `{src_stem}_{result_index}`.
Results keep their format (the fake gateway answers a JPEG then a PNG, or one PNG with `latency`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import start, wait_idle
from testkit.images import make

PROMPT = "make it blue"


def images_and_captions(folder: Path) -> list[str]:
    """Return the file names a person sees in the folder (our manifest.jsonl left out)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "manifest.jsonl")


def preset(client, label: str) -> dict:
    presets = {p["label"]: p["rule"] for p in client.get("/api/save-presets").json["builtin"]}
    return presets[label]


def finished(client, fake, folder: Path, scenario: str = "g3_stream_dataurl") -> list[dict]:
    run_id = start(client, fake, folder, scenario)
    tasks = sorted(wait_idle(client, run_id)["tasks"], key=lambda t: t["index"])
    assert all(t["status"] == "done" for t in tasks), tasks
    return tasks


def save(client, run_id: str, out: Path, rule: dict, **more) -> dict:
    answer = client.post(f"/api/runs/{run_id}/save", json={**rule, "output_dir": str(out), **more})
    assert answer.status_code == 200, answer.json
    assert answer.json["errors"] == [], answer.json["errors"]
    return answer.json


@pytest.fixture
def start_end(tmp_path) -> Path:
    """Sources named the way the older console's start→end users name them."""
    folder = tmp_path / "pairs"
    folder.mkdir()
    for name in ("001_start.png", "002_start.png", "003_start.jpg"):
        (folder / name).write_bytes(make("JPEG" if name.endswith("jpg") else "PNG", (16, 12)))
    return folder


def test_aitoolkit_edit_start_to_end_saves_selected_results_as_end_files(client, fake, start_end, tmp_path):
    tasks = finished(client, fake, start_end)
    for task in (tasks[0], tasks[2]):  # 002 left unselected
        client.patch(f"/api/results/{task['results'][1]['id']}", json={"selected": True})  # the PNG result
    answer = save(client, tasks[0]["run_id"], start_end, preset(client, "AI-Toolkit edit (start→end, no txt)"))
    # Saved next to the sources, as its users do: start and end side by side, no .txt.
    assert images_and_captions(start_end) == ["001_end.png", "001_start.png", "002_start.png", "003_end.png",
                                              "003_start.jpg"]
    assert [s["source_name"] for s in answer["skipped"]] == ["002_start.png"]
    assert answer["report"]["trainer_ready"] is False  # one flat folder: ai-toolkit pairs nothing here


def test_keep_source_name(client, fake, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("beach.png", "Forest.JPG"):
        (folder / name).write_bytes(make("JPEG" if name.endswith("JPG") else "PNG", (16, 12)))
    tasks = finished(client, fake, folder, "latency.s=0")  # one PNG result per task
    save(client, tasks[0]["run_id"], tmp_path / "out", preset(client, "keep source name"))
    assert images_and_captions(tmp_path / "out") == ["Forest.png", "beach.png"]


def test_source_with_txt(client, fake, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "cat.webp").write_bytes(make("WEBP", (16, 12)))
    tasks = finished(client, fake, folder, "latency.s=0")
    out = tmp_path / "out"
    save(client, tasks[0]["run_id"], out, preset(client, "source with txt"))
    assert images_and_captions(out) == ["cat.png", "cat.txt"]
    assert (out / "cat.txt").read_text("utf-8") == f"cat.webp\n{PROMPT}\n{tasks[0]['id']}"


def test_first_only_clean_saves_the_first_result_under_the_source_name(client, fake, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(make("PNG", (16, 12)))
    tasks = finished(client, fake, folder)  # two results each: the first is a JPEG
    client.patch(f"/api/results/{tasks[0]['results'][1]['id']}", json={"selected": True})  # selection is not asked
    answer = save(client, tasks[0]["run_id"], tmp_path / "out", preset(client, "first only, clean"))
    assert images_and_captions(tmp_path / "out") == ["a.jpg", "b.jpg"]
    assert answer["report"]["counts"]["left_by_first_only"] == 2


def test_indexed_archive(client, fake, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(make("PNG", (16, 12)))
    tasks = finished(client, fake, folder)
    save(client, tasks[0]["run_id"], tmp_path / "out", preset(client, "indexed archive"))
    assert images_and_captions(tmp_path / "out") == ["a_1.jpg", "a_2.png", "b_1.jpg", "b_2.png"]


# -- the vocabulary beyond the presets ---------------------------------------------------------------------

def test_global_index_counts_the_results_this_save_chose(client, fake, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("x.png", "y.png", "z.png"):
        (folder / name).write_bytes(make("PNG", (16, 12)))
    tasks = finished(client, fake, folder)
    for task in (tasks[0], tasks[2]):
        client.patch(f"/api/results/{task['results'][0]['id']}", json={"selected": True})
    out = tmp_path / "out"
    save(client, tasks[0]["run_id"], out, {"template": "{global_index:04d}_{src_stem}{src_ext}_{task_id}"})
    assert images_and_captions(out) == [f"0001_xpng_{tasks[0]['id']}.jpg", f"0002_zpng_{tasks[2]['id']}.jpg"]


def test_replace_and_first_only_reach_pair_layouts_and_captions(client, fake, start_end, tmp_path):
    tasks = finished(client, fake, start_end)
    out = tmp_path / "out"
    rule = {"layout": "aitoolkit_edit", "replace_from": "_start", "replace_to": "", "first_only": True,
            "only_selected": False, "caption": "template", "caption_template": "{src_name} → {image_name}: {prompt}"}
    save(client, tasks[0]["run_id"], out, rule)
    assert sorted(p.name for p in (out / "dataset_target").iterdir()) == [
        "001.png", "001.txt", "002.png", "002.txt", "003.png", "003.txt"]
    assert (out / "dataset_target/003.txt").read_text("utf-8") == f"003_start.jpg → 003.png: {PROMPT}"


def test_a_caption_clash_follows_the_conflict_rule_like_the_image(client, fake, tmp_path):
    # The older console overwrote a clashing .txt silently; here the caption counts as a clash.
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "cat.png").write_bytes(make("PNG", (16, 12)))
    tasks = finished(client, fake, folder, "latency.s=0")
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat.txt").write_text("my own notes", "utf-8")
    rule = preset(client, "source with txt")
    skipped = client.post(f"/api/runs/{tasks[0]['run_id']}/save", json={**rule, "output_dir": str(out)}).json
    assert skipped["saved"] == [] and skipped["skipped"][0]["kind"] == "exists"
    assert (out / "cat.txt").read_text("utf-8") == "my own notes" and not (out / "cat.png").exists()
    save(client, tasks[0]["run_id"], out, rule, conflict="rename")
    assert images_and_captions(out) == ["cat-2.png", "cat-2.txt", "cat.txt"]
    assert (out / "cat.txt").read_text("utf-8") == "my own notes"


def test_image_name_in_a_caption_is_the_name_finally_written(client, fake, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "cat.png").write_bytes(make("PNG", (16, 12)))
    tasks = finished(client, fake, folder, "latency.s=0")
    out = tmp_path / "out"
    rule = {"template": "{src_stem}", "caption": "template", "caption_template": "{image_name} ← {src_name}",
            "only_selected": False, "conflict": "rename"}
    save(client, tasks[0]["run_id"], out, rule)
    save(client, tasks[0]["run_id"], out, rule, resave=True)  # renamed: the caption follows the new name
    assert (out / "cat.txt").read_text("utf-8") == "cat.png ← cat.png"
    assert (out / "cat-2.txt").read_text("utf-8") == "cat-2.png ← cat.png"
