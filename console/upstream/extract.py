"""Find image references in answer text and fields: markdown, HTML, URLs, data URLs, base64.

What gateways send (docs/gateways.md): `![any alt](url)` (optionally `<url>` and a title), `<img src>`, bare
`http(s)://` URLs, `data:<mime>;base64,…`, bare base64 (grok2api G1.6 non-stream), relative
URLs, `\\u0026` and HTML entities in URLs, and the literal `error` padding. Every regex here is
linear: data URLs are cut out first so a 24 MB payload is scanned once.
"""

from __future__ import annotations

import bisect
import html
import re
from dataclasses import dataclass
from typing import Callable, Literal

Origin = Literal["url", "data_url", "base64"]


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image named by an answer, not yet fetched or decoded."""

    origin: Origin
    value: str  # a URL as found (may be relative), a whole data URL, or bare base64

    def describe(self) -> str:
        """Return a short, log-safe description (never the whole payload)."""
        if self.origin == "url":
            return self.value if len(self.value) <= 200 else self.value[:200] + "…"
        return f"{self.origin} ({len(self.value)} chars)"


# Case-insensitive only in the prefix: a global re.I made the payload scan 5× slower (bench).
_DATA_URL = re.compile(r"(?i:data:(?:image/[\w.+-]+)?(?:;[\w.+-]+=?[\w.+-]*)*;base64,)([A-Za-z0-9+/_=-]*)")
_MARKDOWN = re.compile(r"!\[[^\]\n]*\]\(\s*<?([^\s)<>]+)>?(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)")
_IMG_TAG = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.I)
_BARE_URL = re.compile(r"https?://[^\s<>\"'`()\[\]{}]+", re.I)
_RELATIVE_LINE = re.compile(r"^/[^\s<>\"']+$")
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/_-]{64,}={0,2}")
_WHITESPACE = re.compile(r"\s+")
_THINK = re.compile(r"<think>.*?</think>", re.S)
# Base64 of the magic bytes of PNG, JPEG, GIF, WebP (RIFF), BMP and TIFF (both byte orders).
_IMAGE_BASE64_HEADS = ("iVBORw0KGgo", "/9j/", "_9j_", "R0lGOD", "UklGR", "Qk", "SUkq", "TU0AK")
_TRAILING = ".,;:!?*"
DATA_PLACEHOLDER = "\x00"


def refs_from_text(text: str) -> list[ImageRef]:
    """Return every image reference in `text`, in order of appearance, without repeats."""
    found: list[tuple[int, ImageRef]] = []
    pieces: list[str] = []
    last = 0
    for match in _DATA_URL.finditer(text):
        if len(match.group(1)) < 16:
            continue  # "data:…;base64," with (almost) nothing after it: not an image
        found.append((match.start(), ImageRef("data_url", match.group(0))))
        pieces.append(text[last : match.start()])
        pieces.append(DATA_PLACEHOLDER)
        last = match.end()
    rest = "".join(pieces) + text[last:] if pieces else text
    rest = _THINK.sub(" ", rest)  # progress text of G1.6 chat models never holds images
    found.extend(_url_refs(rest))
    found.extend(_base64_refs(rest))
    found.sort(key=lambda item: item[0])
    return unique(ref for _, ref in found)


def _url_refs(text: str) -> list[tuple[int, ImageRef]]:
    found: list[tuple[int, ImageRef]] = []
    taken: list[tuple[int, int]] = []
    for pattern in (_MARKDOWN, _IMG_TAG):
        for match in pattern.finditer(text):
            url = clean_url(match.group(1))
            if url and url != DATA_PLACEHOLDER and not _is_padding(url):
                found.append((match.start(), ImageRef("url", url)))
            taken.append(match.span())
    inside_taken = _span_lookup(taken)
    for match in _BARE_URL.finditer(text):
        if not inside_taken(match.start()):
            found.append((match.start(), ImageRef("url", clean_url(match.group(0)))))
    stripped = text.strip()
    if _RELATIVE_LINE.match(stripped) and not taken and not _looks_base64(stripped):
        found.append((text.find(stripped), ImageRef("url", clean_url(stripped))))
    return found


def _span_lookup(spans: list[tuple[int, int]]) -> Callable[[int], bool]:
    """Return a test of whether a position falls in one of `spans`, in log time.

    A scan of every span per URL was quadratic: an answer with 10,000 markdown images held the
    event loop for over 15 s.
    """
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    starts = [start for start, _ in merged]

    def inside(position: int) -> bool:
        index = bisect.bisect_right(starts, position) - 1
        return index >= 0 and position < merged[index][1]

    return inside


def _base64_refs(text: str) -> list[tuple[int, ImageRef]]:
    """Bare base64: the whole answer (G1.6 non-stream, maybe wrapped) or a line of its own."""
    whole = _WHITESPACE.sub("", text)
    if _looks_base64(whole):
        return [(0, ImageRef("base64", whole))]
    found = []
    offset = 0
    for line in text.split("\n"):
        body = line.strip()
        if _looks_base64(body):
            found.append((offset, ImageRef("base64", body)))
        offset += len(line) + 1
    return found


def _looks_base64(text: str) -> bool:
    """Long, base64 alphabet only, and starting like an encoded image (not any long word)."""
    return len(text) >= 64 and text.startswith(_IMAGE_BASE64_HEADS) and bool(_BASE64_BODY.fullmatch(text))


def clean_url(url: str) -> str:
    """Undo the escapes gateways leave in URLs and drop trailing punctuation."""
    url = url.strip().replace("\\u0026", "&").replace("\\/", "/")
    if "&" in url:
        url = html.unescape(url)
    return url.rstrip(_TRAILING)


def ref_from_field(value: object, *, base64_field: bool) -> ImageRef | None:
    """Return the reference held by a JSON field such as `b64_json`, `url` or `result`."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or _is_padding(value):
        return None
    if value[:5].lower() == "data:":
        return ImageRef("data_url", value)
    if base64_field:
        return ImageRef("base64", value)
    return ImageRef("url", clean_url(value))


def _is_padding(value: str) -> bool:
    # grok2api G1.6 pads a short images list with the literal string "error".
    return value.lower() == "error"


def unique(refs) -> list[ImageRef]:
    """Drop repeated references, keeping the first."""
    seen: set[ImageRef] = set()
    out = []
    for ref in refs:
        if ref not in seen:
            seen.add(ref)
            out.append(ref)
    return out
