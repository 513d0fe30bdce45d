"""Keep the text a model sent with its images: the answer without image references, thinking or base64.

Saves can write it into captions ({answer_text}), and the page shows it beside a result. Every
step is linear in the answer's length: data URLs go first (one pass over a payload of many MB),
then what remains is small, whatever it was.
"""

from __future__ import annotations

import re

from .extract import (
    _BARE_URL, _BASE64_BODY, _DATA_URL, _MARKDOWN, _RELATIVE_LINE, _WHITESPACE, DATA_PLACEHOLDER, _looks_base64,
)

ANSWER_TEXT_MAX = 2000  # characters kept, the ellipsis included
ELLIPSIS = "…"
ANSWER_LINE_SCAN = 64 * 1024  # characters: below this every pass is cheap anyway
_IMG_ELEMENT = re.compile(r"<img\b[^>]*>", re.I)  # the whole tag; extract's pattern stops at its src
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


def answer_text(text: str) -> str | None:
    """Return the answer's text without images, thinking or base64, whitespace collapsed, capped; None if empty."""
    if not text:
        return None
    text = _DATA_URL.sub(DATA_PLACEHOLDER, text)
    text = _without_thinking(text)
    if len(text) > ANSWER_LINE_SCAN:  # an answer of bare base64 lines: dropped before the URL scans read them
        text = "\n".join(line for line in text.split("\n") if not _looks_base64(line.strip()))
    for pattern in (_MARKDOWN, _IMG_ELEMENT, _BARE_URL, _BASE64_BODY):
        text = pattern.sub(" ", text)
    text = _WHITESPACE.sub(" ", text.replace(DATA_PLACEHOLDER, " ")).strip()
    if not text or _RELATIVE_LINE.match(text):  # a lone relative URL (`/v1/files/…`) is the image itself
        return None
    return text if len(text) <= ANSWER_TEXT_MAX else text[:ANSWER_TEXT_MAX - 1].rstrip() + ELLIPSIS


def _without_thinking(text: str) -> str:
    """Remove <think>…</think> blocks; one left open runs to the end (a stream cut while thinking).

    By hand rather than a lazy regex, which rescans to the end for every unclosed tag.
    """
    if _THINK_OPEN not in text and _THINK_CLOSE not in text:
        return text
    kept: list[str] = []
    position = 0
    while True:
        start = text.find(_THINK_OPEN, position)
        if start < 0:
            kept.append(text[position:])
            break
        kept.append(text[position:start])
        end = text.find(_THINK_CLOSE, start)
        if end < 0:
            break
        position = end + len(_THINK_CLOSE)
    return " ".join(kept).replace(_THINK_CLOSE, " ")
