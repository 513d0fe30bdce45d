"""A picture's look: the small fingerprint the review flags compare, made with Pillow alone.

Every check works on a 32×32 box average of the picture as a viewer shows it (EXIF turned,
transparency on white). At that size JPEG or WebP noise, a re-encode and a resize vanish, while
what a person notices (an object added, colours changed, another scene) stays. Decoding is most
of the cost: a JPEG is decoded at 1/8 scale where it can be (`draft`), and Pillow does the
decoding and the box averages in C without holding the GIL, so flagging runs beside the engine.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..imaging import orientation, upright, upright_size

SIDE = 32  # the compared grid: 1,024 cells
THUMB = 16  # the stored grey thumbnail near-duplicates are confirmed with
_SPREAD_SIDE = 64  # the blank check looks at a finer grid (a small subject on a plain ground counts)
_CUT = 0.02  # the blank check ignores the darkest and lightest 2 % (a watermark, a few stray pixels)
_PACK = struct.Struct("<HHB")  # width, height (clamped), spread
MARK_BYTES = _PACK.size + THUMB * THUMB  # a packed mark

@dataclass(frozen=True, slots=True)
class Look:
    """What the flags need of one picture."""

    width: int  # as displayed
    height: int
    rgb: bytes  # SIDE×SIDE RGB, box averaged
    grey: bytes  # SIDE×SIDE luminance
    spread: int  # widest channel range (0-255) once the extreme 2 % at each end are cut

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def thumb(self) -> bytes:
        """Return the THUMB×THUMB grey thumbnail (what is stored to confirm near-duplicates)."""
        return Image.frombytes("L", (SIDE, SIDE), self.grey).resize((THUMB, THUMB), Image.Resampling.BOX).tobytes()


@dataclass(frozen=True, slots=True)
class Mark:
    """The part of a look kept in the store: enough to find a result's near-duplicates later."""

    width: int
    height: int
    spread: int
    thumb: bytes

    def to_bytes(self) -> bytes:
        return _PACK.pack(min(self.width, 65535), min(self.height, 65535), self.spread) + self.thumb

    @classmethod
    def from_bytes(cls, data: bytes) -> Mark:
        width, height, spread = _PACK.unpack_from(data)
        return cls(width, height, spread, bytes(data[_PACK.size:MARK_BYTES]))

    @classmethod
    def of(cls, look: Look) -> Mark:
        return cls(look.width, look.height, look.spread, look.thumb())


def look_at(path: str | Path) -> Look:
    """Return the look of the image file at `path` (raises OSError or Pillow's errors when it cannot be read)."""
    with Image.open(path) as image:
        stored = image.size
        image.draft("RGB", (_SPREAD_SIDE * 2, _SPREAD_SIDE * 2))  # JPEG only: decode at 1/2…1/8 scale
        image.load()
        turn = orientation(image)  # after load: a PNG's EXIF may follow its pixels (no second decode)
        width, height = upright_size(*stored, turn)
        picture = upright(_flat(image), turn)
    fine = picture.resize((_SPREAD_SIDE, _SPREAD_SIDE), Image.Resampling.BOX, reducing_gap=3.0)
    small = fine.resize((SIDE, SIDE), Image.Resampling.BOX)
    grey = small.convert("L")
    return Look(width, height, small.tobytes(), grey.tobytes(), _spread(fine))


def _flat(image: Image.Image) -> Image.Image:
    """Return the picture as RGB, transparency laid on white (how a viewer shows a cut-out)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        ground = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(ground, rgba).convert("RGB")
    if image.mode.startswith("I"):  # 16-bit grey: keep the top 8 bits
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L").convert("RGB")
    return image.convert("RGB")


def _spread(picture: Image.Image) -> int:
    """Return the widest of the three channels' ranges once the extreme _CUT at each end is ignored."""
    histogram = picture.histogram()
    total = picture.width * picture.height
    cut = total * _CUT
    widest = 0
    for band in range(3):
        counts = histogram[band * 256 : band * 256 + 256]
        low = _level(counts, cut)
        high = 255 - _level(counts[::-1], cut)
        widest = max(widest, high - low)
    return widest


def _level(counts: list[int], cut: float) -> int:
    """Return the first level at which the running count passes `cut`."""
    seen = 0
    for level, count in enumerate(counts):
        seen += count
        if seen > cut:
            return level
    return len(counts) - 1
