"""The instructions a captioning job offers ready-made, and the size its images are sent at."""

from __future__ import annotations

from typing import Any

LONG_SIDE = 1024  # px: a vision model needs no more to describe an image, and the call stays small
INSTRUCTION_MAX_BYTES = 4096
INSTRUCTIONS: tuple[tuple[str, str], ...] = (
    ("tags", "List what this image shows as short, comma-separated tags (subject, style, setting, lighting, "
             "colours, composition), most important first. Answer with the tags only, on one line."),
    ("sentence", "Describe this image in one sentence for a training caption: the subject, what it does, the "
                 "setting and the style. Answer with the sentence only."),
    ("detailed", "Describe this image in detail for a training caption, in a short paragraph: the subject and "
                 "its appearance, pose and expression, clothing, the setting and background, lighting, colours, "
                 "composition and the art style or medium. State only what is visible. Answer with the "
                 "description only, without a preamble."),
)


def presets() -> dict[str, Any]:
    """Return the instruction presets and the long side images are sent at (what the page offers)."""
    return {"instructions": [{"id": key, "instruction": text} for key, text in INSTRUCTIONS], "long_side": LONG_SIDE}
