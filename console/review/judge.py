"""The review flags: which results need a look, and why, from their looks (pure, no I/O).

`unchanged`, `unrelated` and `off_size` compare a result with its task's source (or with the
requested size); `blank` looks at the result alone; `near_duplicate` compares it with the run's
other results (`Twins`). The thresholds were chosen on the labelled set `python -m bench --only
flags` builds (photos and photo-like scenes, every bad kind and plausible edits, several sizes and
formats); BENCHMARKS.md has its precision and recall.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageFilter

from ..messages import say
from .look import SIDE, THUMB, Look, Mark

FLAGS = ("unchanged", "unrelated", "blank", "off_size", "near_duplicate")

# unchanged: at 32×32 a re-encode or a resize moves no cell by more than a few levels; an object added
# moves the cells under it a lot, a colour change moves many a little.
UNCHANGED_MEAN = 3.2  # mean of each cell's largest channel difference (0-255)
UNCHANGED_PEAK = 7  # the 99th percentile of the same (both lightly blurred)
# blank: the widest channel range once the extreme 2 % are cut; a photo of a white mug on white
# still has shading and edges well beyond it.
BLANK_SPREAD = 10
# unrelated: how much of the source's structure the result keeps, as correlations of their detail
# (grey less its 5×5 blur) and of their coarser shapes (3×3 blur less 9×9 blur). Another picture
# keeps neither; recoloured, relit, restyled and slightly reframed edits keep one or the other.
UNRELATED_DETAIL = 0.25
UNRELATED_SHAPES = 0.6
# off_size: gateways round sizes to multiples of 16 or 64, a few percent off the asked aspect.
OFF_SIZE_TOLERANCE = 0.05
# near_duplicate: 16×16 grey thumbnails at most this far apart on average (0-255); copies of one
# picture in other sizes and formats differ by under a level, the same scene edited by far more.
TWIN_THUMB_MEAN = 4.0
KEY_STEP = 32  # the index's 3×3 grey key, in steps of 32 levels
KEY_MARGIN = 6  # a key this close to a step is looked up on both sides of it
_CELL_SCAN = 64  # candidates looked at per cell (a full cell is mostly copies of one picture)

_SIZE = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+)\s*$", re.IGNORECASE)
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")


def requested_aspect(size: str | None) -> float | None:
    """Return the aspect a run's `size` asks for ("1024x1536", "16:9"), or None ("auto", "2K", empty)."""
    if not size:
        return None
    found = _SIZE.match(size) or _RATIO.match(size)
    if not found:
        return None
    width, height = float(found[1]), float(found[2])
    return width / height if width > 0 and height > 0 else None


def judge(result: Look, source: Look | None, aspect: float | None) -> dict[str, str]:
    """Return the flags a result earns against its source (edit runs) and the asked aspect, with reasons (Messages)."""
    flags: dict[str, str] = {}
    if result.spread <= BLANK_SPREAD:
        flags["blank"] = say("review.blank", spread=result.spread)
    wanted = aspect or (source.aspect if source is not None else None)
    if wanted:
        off = aspect_difference(result.aspect, wanted)
        if off > OFF_SIZE_TOLERANCE:
            size, percent = f"{result.width}×{result.height}", round(off * 100)  # as {off:.0%} shows it
            flags["off_size"] = (say("review.off_size_requested", size=size, off=percent) if aspect else
                                 say("review.off_size_source", size=size, off=percent,
                                     source=f"{source.width}×{source.height}"))
    if source is None or "blank" in flags:
        return flags
    mean, peak = difference(result, source)
    if mean <= UNCHANGED_MEAN and peak <= UNCHANGED_PEAK:
        flags["unchanged"] = say("review.unchanged", mean=round(mean, 1))
    elif source.spread > BLANK_SPREAD:
        kept = structure(result, source)
        if kept is not None:
            flags["unrelated"] = say("review.unrelated", correlation=round(kept, 2))
    return flags


def aspect_difference(a: float, b: float) -> float:
    """Return how much two aspects differ, relative to the smaller (0.05 = 5 %)."""
    return max(a, b) / min(a, b) - 1


def difference(a: Look, b: Look) -> tuple[float, int]:
    """Return the mean and 99th percentile of each cell's largest channel difference (0-255)."""
    # A light blur first: an edge a pixel apart (chroma subsampling, another resampling) is no change.
    delta = ImageChops.difference(_rgb(a).filter(ImageFilter.BoxBlur(1)), _rgb(b).filter(ImageFilter.BoxBlur(1)))
    red, green, blue = delta.split()
    largest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    histogram = largest.histogram()
    cells = SIDE * SIDE
    mean = sum(level * count for level, count in enumerate(histogram)) / cells
    return mean, _percentile(histogram, 0.99 * cells)


def structure(a: Look, b: Look) -> float | None:
    """Return how much structure two pictures share when it is too little to be an edit (else None)."""
    detail = _correlation(_band(a, 0, 2), _band(b, 0, 2))
    if detail >= UNRELATED_DETAIL:
        return None
    shapes = _correlation(_band(a, 1, 4), _band(b, 1, 4))
    return None if shapes >= UNRELATED_SHAPES else max(detail, shapes)


def _rgb(look: Look) -> Image.Image:
    return Image.frombytes("RGB", (SIDE, SIDE), look.rgb)


def _band(look: Look, fine: int, coarse: int) -> list[int]:
    """Return the grey picture's band between two box blurs (radius 0 is the picture itself)."""
    grey = Image.frombytes("L", (SIDE, SIDE), look.grey)
    sharp = grey.filter(ImageFilter.BoxBlur(fine)) if fine else grey
    return [x - y for x, y in zip(sharp.tobytes(), grey.filter(ImageFilter.BoxBlur(coarse)).tobytes())]


def _correlation(xs: list[int], ys: list[int]) -> float:
    count = len(xs)
    mean_x, mean_y = sum(xs) / count, sum(ys) / count
    sxx = sum(x * x for x in xs) - count * mean_x * mean_x
    syy = sum(y * y for y in ys) - count * mean_y * mean_y
    if sxx <= 0 or syy <= 0:
        return 0.0
    sxy = sum(x * y for x, y in zip(xs, ys)) - count * mean_x * mean_y
    return sxy / math.sqrt(sxx * syy)


def _percentile(histogram: list[int], rank: float) -> int:
    seen = 0
    for level, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return level
    return len(histogram) - 1


def same_picture(a: Mark, b: Mark) -> bool:
    """Return whether two marks are perceptually the same picture (near-duplicates)."""
    mean = ImageChops.difference(_thumb(a.thumb), _thumb(b.thumb)).reduce(THUMB).getpixel((0, 0))  # a box average, in C
    return mean <= TWIN_THUMB_MEAN


@functools.lru_cache(maxsize=4096)
def _thumb(data: bytes) -> Image.Image:
    """Return a thumbnail as an image (kept: a run's duplicate search compares the same ones again and again)."""
    return Image.frombytes("L", (THUMB, THUMB), data)


@dataclass
class Twins:
    """The near-duplicate index of one run: each result's mark, found again by its 3×3 grey key.

    The key is the picture's 3×3 mean greys, in steps of KEY_STEP levels. Two copies of one picture
    differ by a level or two there, so a query looks in its own cell and, on each axis where it
    lies within KEY_MARGIN of a step, in the neighbouring cell too: a handful of cells, whatever the
    run's size (no pairwise comparison of the run).
    """

    marks: dict[str, tuple[Mark, Mark | None]] = field(default_factory=dict)  # result id → (mark, its source's)
    duplicated: set[str] = field(default_factory=set)  # results known to carry near_duplicate already
    _cells: dict[tuple[int, ...], list[str]] = field(default_factory=dict)

    def find(self, mark: Mark, source: Mark | None) -> str | None:
        """Return the id of an indexed result this picture duplicates, or None.

        Results of sources that are themselves the same picture may well look alike: they are not
        duplicates of each other (a result that is its own source again is `unchanged`).
        """
        for cell in _near_cells(_key_greys(mark)):
            for other in self._cells.get(cell, ())[:_CELL_SCAN]:
                other_mark, other_source = self.marks[other]
                if same_picture(mark, other_mark) and not (
                        source is not None and other_source is not None and same_picture(source, other_source)):
                    return other
        return None

    def add(self, result_id: str, mark: Mark, source: Mark | None) -> None:
        """Index a result's mark (with its source's, when it has one).

        A copy of a picture already indexed with the same source picture is not indexed again: any
        later result finds the first one just as well, and a run answered with one picture a
        thousand times keeps one entry, not a thousand to look through.
        """
        self.marks[result_id] = (mark, source)
        cell = self._cells.setdefault(tuple(grey // KEY_STEP for grey in _key_greys(mark)), [])
        for other in cell[:_CELL_SCAN]:
            other_mark, other_source = self.marks[other]
            if same_picture(mark, other_mark) and (source is None) == (other_source is None) and (
                    source is None or same_picture(source, other_source)):
                return
        cell.append(result_id)

    def forget(self, result_id: str) -> None:
        """Drop a deleted result (its unindexed copies stay unfound until they are looked at again)."""
        entry = self.marks.pop(result_id, None)
        self.duplicated.discard(result_id)
        if entry is not None:
            ids = self._cells.get(tuple(grey // KEY_STEP for grey in _key_greys(entry[0])))
            if ids and result_id in ids:
                ids.remove(result_id)


def _key_greys(mark: Mark) -> bytes:
    return _thumb(mark.thumb).resize((3, 3), Image.Resampling.BOX).tobytes()


def _near_cells(greys: bytes) -> list[tuple[int, ...]]:
    """Return the key cells a picture's copies may fall in: its own, and its neighbours on the axes it is close to."""
    cells: list[tuple[int, ...]] = [()]
    for grey in greys:
        own = grey // KEY_STEP
        options = [own]
        if grey - own * KEY_STEP < KEY_MARGIN and own > 0:
            options.append(own - 1)
        if (own + 1) * KEY_STEP - grey <= KEY_MARGIN and (own + 1) * KEY_STEP < 256:
            options.append(own + 1)
        cells = [cell + (option,) for cell in cells for option in options]
    return cells
