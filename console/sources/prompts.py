"""Run prompts as templates: `{caption}` (the sidecar), `{src_stem}`, `{src_name}` and variables.

Only names the template language knows are replaced; any other `{word}` stays as typed, so a
prompt that happens to hold braces (JSON, a style tag) is sent as it always was.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Mapping

PLACEHOLDER = re.compile(r"\{(\w+)\}")  # \w is Unicode: {动物} is a name too
SIDECAR_MODES = ("off", "prepend", "append", "replace")
JOIN = "\n"  # prepend/append put the caption on its own line: models read it as its own sentence


def placeholders(template: str) -> list[str]:
    """Return the `{name}`s a template uses, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace each `{name}` that `values` knows; leave the others as typed."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def uses_caption(template: str) -> bool:
    """Return True when the template places the sidecar itself with `{caption}`."""
    return "caption" in placeholders(template)


def needs_sidecar(template: str, mode: str) -> bool:
    """Return True when a source without a usable sidecar cannot get a prompt (`{caption}` or replace)."""
    return uses_caption(template) or mode == "replace"


def wants_sidecar(template: str, mode: str) -> bool:
    """Return True when sidecars are read at all."""
    return uses_caption(template) or mode != "off"


def source_prompt(template: str, source: str, caption: str | None, mode: str) -> str:
    """Return one source's prompt: the template filled, then the caption placed by `mode`.

    With `{caption}` in the template the mode is not used (the template says where it goes).
    Otherwise `prepend` / `append` put the caption before / after the prompt on its own line and
    `replace` sends the caption alone; a missing caption leaves the prompt as it is.
    """
    path = PurePath(source)
    text = fill(template, {"caption": caption or "", "src_stem": path.stem, "src_name": path.name}).strip()
    if uses_caption(template) or not caption or mode == "off":
        return text
    if mode == "replace" or not text:
        return caption
    return f"{caption}{JOIN}{text}" if mode == "prepend" else f"{text}{JOIN}{caption}"
