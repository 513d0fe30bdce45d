"""Turn a vision model's answer into a caption, or say why it gives none."""

from __future__ import annotations

import re

from ..messages import say
from ..store_captions import CAPTION_MAX_BYTES

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_OPEN_THINK = re.compile(r"<think>.*\Z", re.DOTALL | re.IGNORECASE)  # an answer cut off while thinking
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "「": "」", "『": "』", "`": "`", "«": "»"}


class NoCaption(Exception):
    """The answer gives no caption (a refusal or no text); str(e) says why."""


def caption_from(text: str, refusal: str | None = None) -> str:
    """Return the caption an answer's text makes; NoCaption when it was refused or holds no text."""
    if refusal:
        raise NoCaption(say("upstream.caption_declined", refusal=refusal))
    caption = _unquoted(_OPEN_THINK.sub("", _THINK.sub("", text)).strip())
    if not caption:
        raise NoCaption(say("upstream.caption_no_text") if not text.strip() else
                        say("upstream.caption_only_reasoning"))
    return capped(caption)


def capped(caption: str, limit: int = CAPTION_MAX_BYTES) -> str:
    """Return `caption` cut to at most `limit` bytes of UTF-8, at a character boundary."""
    data = caption.encode("utf-8")
    if len(data) <= limit:
        return caption
    return data[:limit].decode("utf-8", errors="ignore").rstrip()


def _unquoted(text: str) -> str:
    """Take away quotes the model put round its whole answer."""
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1] and text[0] not in text[1:-1]:
        text = text[1:-1].strip()
    return text
