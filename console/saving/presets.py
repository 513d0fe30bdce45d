"""The older console's five save presets, with labels that say what they really write.

They all write flat files named after the source. The older console called the first one
"AI-Toolkit edit", but start→end names in one folder pair nothing for ai-toolkit (docs/datasets.md),
so its label says what it writes. "first only" in the older console forced the name to
`{src_stem}` whatever the template said; here the preset sets that template, and `first_only`
alone never overrides a template you typed.
"""

from __future__ import annotations

import copy
from typing import Any

_FLAT = {"layout": "flat", "format": "keep", "sequential": False, "replace_from": "", "replace_to": "",
         "first_only": False, "only_selected": False, "caption": "none", "caption_template": "{prompt}", "trigger": "",
         "role_swap": False}

LEGACY_PRESETS: dict[str, dict[str, Any]] = {
    "aitoolkit_start_end": {"label": "AI-Toolkit edit (start→end, no txt)", "rule": {
        **_FLAT, "template": "{src_stem}", "replace_from": "start", "replace_to": "end", "only_selected": True}},
    "keep_source_name": {"label": "keep source name", "rule": {**_FLAT, "template": "{src_stem}"}},
    "source_with_txt": {"label": "source with txt", "rule": {
        **_FLAT, "template": "{src_stem}", "caption": "template", "caption_template": "{src_name}\n{prompt}\n{task_id}"}},
    "first_only_clean": {"label": "first only, clean", "rule": {**_FLAT, "template": "{src_stem}", "first_only": True}},
    "indexed_archive": {"label": "indexed archive", "rule": {**_FLAT, "template": "{src_stem}_{result_index}"}},
}


def builtin_presets() -> list[dict[str, Any]]:
    """Return the built-in save presets as the page lists them: [{"id", "label", "rule"}]."""
    return [{"id": key, "label": preset["label"], "rule": copy.deepcopy(preset["rule"])}
            for key, preset in LEGACY_PRESETS.items()]
