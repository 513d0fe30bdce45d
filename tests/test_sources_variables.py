"""Generate mode: variables, every combination, count per combination, names from the values."""

from __future__ import annotations

import pytest

from console.sources import RunSpec, SourceProblem, plan_generate, task_count
from tests.helpers import make_sources


def generate(**fields) -> list:
    return plan_generate(RunSpec(mode="generate", **fields)).tasks


def test_every_combination_count_times_named_by_its_values():
    tasks = generate(prompt="a {animal} in the {weather}", variables={"animal": ["cat", "dog"], "weather": ["snow", "rain"]},
                     count=2)
    assert [t.name for t in tasks] == ["cat_snow_1", "cat_snow_2", "cat_rain_1", "cat_rain_2",
                                       "dog_snow_1", "dog_snow_2", "dog_rain_1", "dog_rain_2"]
    assert tasks[2].prompt == "a cat in the rain" and tasks[7].prompt == "a dog in the rain"
    assert all(t.path == "" and t.output_name == t.name and t.references == () for t in tasks)
    assert task_count({"animal": ["cat", "dog"], "weather": ["snow", "rain"]}, 2) == 8


def test_count_one_drops_the_copy_number_and_no_variables_means_image():
    assert [t.name for t in generate(prompt="a {动物}", variables={"动物": ["猫", "狗"]}, count=1)] == ["猫", "狗"]
    assert [t.name for t in generate(prompt="a fox", count=3)] == ["image_1", "image_2", "image_3"]


def test_values_become_safe_unique_file_names():
    tasks = generate(prompt="{style}", variables={"style": ["oil / canvas", "oil:canvas", "  ink  wash ", 3.5]})
    assert [t.name for t in tasks] == ["oil-canvas", "oil-canvas-2", "ink-wash", "3.5"]
    assert [t.prompt for t in tasks] == ["oil / canvas", "oil:canvas", "ink  wash", "3.5"]


def test_shared_references_go_with_every_task(tmp_path):
    refs = make_sources(tmp_path / "refs", 2)
    tasks = generate(prompt="{x}", variables={"x": ["a", "b"]}, reference_paths=(str(refs / "img1.png"), str(refs / "img2.png")))
    assert all(t.references == (str(refs / "img1.png"), str(refs / "img2.png")) for t in tasks)
    with pytest.raises(SourceProblem) as refused:
        generate(prompt="x", reference_paths=(str(refs / "img1.png"), str(refs / "nope.png"), "rel.png"))
    assert [f["name"] for f in refused.value.details["files"]] == [str(refs / "nope.png"), "rel.png"]
    assert "not found" in str(refused.value) and "must be an absolute path" in str(refused.value)


@pytest.mark.parametrize("fields, message", [
    ({"prompt": " "}, "the prompt is empty"),
    ({"prompt": "x", "count": 0}, "'count' must be a whole number between 1 and 100"),
    ({"prompt": "x", "count": 101}, "between 1 and 100"),
    ({"prompt": "x", "count": True}, "between 1 and 100"),
    ({"prompt": "a {colour}", "variables": {"color": ["red"]}}, r"the prompt uses \{colour\}, which 'variables' does not define \(defined: color\)"),
    ({"prompt": "{a}", "variables": {"a": []}}, "variables.a must be a non-empty list"),
    ({"prompt": "{a}", "variables": {"a": "red"}}, "variables.a must be a non-empty list"),
    ({"prompt": "{a}", "variables": {"a": ["red", " "]}}, r"variables.a\[2\] is blank"),
    ({"prompt": "{a}", "variables": {"a": ["red", "red"]}}, "lists 'red' twice"),
    ({"prompt": "{a}", "variables": {"a": [{"x": 1}]}}, "must be text or a number"),
    ({"prompt": "x", "variables": {"a b": ["1"]}}, "variable name 'a b' must be"),
    ({"prompt": "x", "variables": {f"v{i}": [str(j) for j in range(10)] for i in range(5)}, "count": 100},
     "make 10000000 tasks; at most 100000"),
])
def test_bad_input_is_refused_with_a_readable_reason(fields, message):
    with pytest.raises(SourceProblem, match=message):
        generate(**fields)
