"""The labelled set of the review flags, and their precision and recall on it.

    python -m bench --only flags       # build the set in a temporary folder, judge it, print the table
    python -m bench.flagset --dump DIR # write the set's files into DIR to look at them

Bases: the photos in photos/ (public domain and CC0, see photos/CREDITS.md) and photo-like scenes
drawn here (sky, ground, hills, houses, trees, a sun; blurred, grained). Each base is cut to an
aspect (1:1, 3:2, 2:3, 4:3, 16:9), scaled to a size (512 to 1536 px on the long side) and saved in
a format (JPEG, PNG, WebP); then every kind of result is made from it, each labelled with the flags
it must get:

- good edits (no flag): a warm or cool grade, a region recoloured, an object added (a shape, a
  patch, a caption), brighter or darker, more contrast, black and white, a painterly posterise, a
  night look, a new sky, a mild zoom, a sharpen, a new resolution of the same aspect;
- unchanged: the source re-encoded (JPEG q60-q95, PNG, WebP), resized, or lightly blurred and
  grained (a model's round trip);
- unrelated: another base, at the source's size;
- blank: one colour (black, white, grey, any), with grain, a soft vignette or a small watermark;
- off_size: a good edit squeezed to another aspect;
- near_duplicate: the same picture (another base, re-encoded apiece) answered for two or three
  sources, so also unrelated to each.

All results are judged as one run, so near_duplicate is measured over the whole set: good edits
of different sources must not be called duplicates of each other.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from console.review.judge import FLAGS, Twins, judge
from console.review.look import Look, Mark, look_at

PHOTOS = Path(__file__).resolve().parent / "photos"
ASPECTS = ((1, 1), (3, 2), (2, 3), (4, 3), (16, 9))
LONG_SIDES = (512, 768, 1024, 1536)
FORMATS = ("JPEG", "PNG", "WEBP")
SCENES = 12
GOOD = ("warm", "cool", "recolour", "shape", "patch", "caption", "brighter", "darker", "contrast", "mono",
        "painterly", "night", "sky", "zoom", "vivid", "resolution")


@dataclass
class Case:
    """One result of the set: what it is, its files, the flags it must get and the flags it got."""

    kind: str  # "good:warm", "unchanged:q70", "unrelated", "blank:white", "off_size", "near_duplicate"
    source: Path | None
    result: Path
    expected: frozenset[str]
    got: dict[str, str] | None = None


def bases(rng: random.Random) -> list[tuple[str, Image.Image]]:
    """Return the photos and the drawn scenes the sources are made from, as RGB images."""
    out = [(path.stem, Image.open(path).convert("RGB")) for path in sorted(PHOTOS.glob("*.jpg"))]
    out += [(f"scene{seed}", scene(rng.randrange(1 << 30))) for seed in range(SCENES)]
    return out


def strangers(rng: random.Random, count: int) -> list[Image.Image]:
    """Return pictures no source is made from (the wrong answers): more drawn scenes, and the photos
    mirrored and cut to one of their quarters."""
    photos = [ImageOps.mirror(Image.open(path).convert("RGB")) for path in sorted(PHOTOS.glob("*.jpg"))]
    out: list[Image.Image] = []
    for number in range(count):
        if number % 2 and photos:
            photo = photos[(number // 2) % len(photos)]
            x, y = (number // 2 // len(photos)) % 2, (number // 4) % 2
            out.append(photo.crop((x * photo.width // 2, y * photo.height // 2,
                                   (x + 1) * photo.width // 2, (y + 1) * photo.height // 2)))
        else:
            out.append(scene(rng.randrange(1 << 30)))
    return out


def scene(seed: int, width: int = 768, height: int = 512) -> Image.Image:
    """Draw a photo-like landscape: a sky gradient, hills, ground, houses, trees and a sun, blurred and grained."""
    rng = random.Random(seed)
    top, bottom = _colour(rng, 90, 230), _colour(rng, 120, 255)
    sky = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), sky)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.7:
        x, y, r = rng.randrange(width), rng.randrange(height // 3), rng.randrange(20, 60)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_colour(rng, 200, 255))
    horizon = int(height * rng.uniform(0.45, 0.7))
    for _ in range(rng.randrange(2, 4)):  # hills
        points = [(0, height)] + [(x, horizon - rng.randrange(0, height // 4)) for x in range(0, width + 64, 64)] + [(width, height)]
        draw.polygon(points, fill=_colour(rng, 30, 160))
    draw.rectangle((0, horizon + rng.randrange(0, 40), width, height), fill=_colour(rng, 40, 180))
    for _ in range(rng.randrange(3, 9)):  # houses and trees
        x, base = rng.randrange(width), rng.randrange(horizon, height)
        size = rng.randrange(30, 120)
        if rng.random() < 0.5:
            draw.rectangle((x, base - size, x + size, base), fill=_colour(rng, 60, 240))
            draw.polygon([(x - 8, base - size), (x + size // 2, base - size - size // 2), (x + size + 8, base - size)],
                         fill=_colour(rng, 40, 160))
            for wx in range(x + 8, x + size - 12, 22):
                draw.rectangle((wx, base - size + 10, wx + 10, base - size + 22), fill=_colour(rng, 180, 255))
        else:
            draw.rectangle((x, base - size, x + size // 8, base), fill=_colour(rng, 40, 100))
            draw.ellipse((x - size // 2, base - size * 2, x + size // 2 + size // 8, base - size // 2),
                         fill=_colour(rng, 30, 140))
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    grain = Image.frombytes("RGB", image.size, rng.randbytes(width * height * 3)).filter(ImageFilter.GaussianBlur(0.7))
    return Image.blend(image, grain, 0.12)


def _colour(rng: random.Random, low: int, high: int) -> tuple[int, int, int]:
    return tuple(rng.randrange(low, high) for _ in range(3))  # type: ignore[return-value]


def cut(image: Image.Image, aspect: tuple[int, int], long_side: int) -> Image.Image:
    """Crop to the aspect (centred) and scale so the long side is long_side."""
    width, height = aspect
    if width >= height:
        size = (long_side, round(long_side * height / width))
    else:
        size = (round(long_side * width / height), long_side)
    return ImageOps.fit(image, size, Image.Resampling.LANCZOS)


def edit(image: Image.Image, kind: str, rng: random.Random, other: Image.Image) -> Image.Image:
    """Return a plausible edit of the picture (structure kept)."""
    width, height = image.size
    if kind in ("warm", "cool", "night"):
        gains = {"warm": (1.15, 1.0, 0.8), "cool": (0.82, 0.97, 1.18), "night": (0.45, 0.5, 0.8)}[kind]
        return Image.merge("RGB", [band.point(lambda v, g=g: min(255, int(v * g))) for band, g in zip(image.split(), gains)])
    if kind == "recolour":  # a region (a car, a shirt) in another colour, its shading kept
        box = _box(rng, width, height, 0.25, 0.5)
        region = ImageOps.grayscale(image.crop(box))
        image = image.copy()
        image.paste(ImageOps.colorize(region, _colour(rng, 0, 90), _colour(rng, 150, 255)), box[:2])
        return image
    if kind == "shape":
        image = image.copy()
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randrange(1, 3)):
            box = _box(rng, width, height, 0.15, 0.35)
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=_colour(rng, 0, 255))
        return image
    if kind == "patch":
        image = image.copy()
        patch = other.resize((width // 3, height // 3))
        image.paste(patch, (rng.randrange(width - patch.width), rng.randrange(height - patch.height)))
        return image
    if kind == "caption":
        image = image.copy()
        draw = ImageDraw.Draw(image)
        band = height // 7
        draw.rectangle((0, height - band, width, height), fill=(20, 20, 20))
        draw.text((width // 20, height - band * 0.75), "SUMMER SALE 50% OFF", fill=(255, 255, 255),
                  font_size=max(12, band // 2))
        return image
    if kind == "brighter":
        return ImageEnhance.Brightness(image).enhance(1.3)
    if kind == "darker":
        return ImageEnhance.Brightness(image).enhance(0.7)
    if kind == "contrast":
        return ImageEnhance.Contrast(image).enhance(1.5)
    if kind == "mono":  # black and white; a grey photo gets a sepia tone instead
        grey = ImageOps.grayscale(ImageEnhance.Contrast(image).enhance(1.2))
        return ImageOps.colorize(grey, (40, 20, 0), (255, 235, 190)) if _is_grey(image) else grey.convert("RGB")
    if kind == "painterly":
        smooth = image.reduce(2).filter(ImageFilter.SMOOTH_MORE).resize(image.size)
        return ImageOps.posterize(smooth, 3)
    if kind == "sky":
        image = image.copy()
        top = Image.linear_gradient("L").resize((width, height // 3))
        sky = Image.composite(Image.new("RGB", top.size, (250, 170, 90)), Image.new("RGB", top.size, (40, 60, 160)), top)
        image.paste(sky, (0, 0))
        return image
    if kind == "zoom":  # a model's slight reframing: 6 % closer
        inset = 0.03
        return image.crop((int(width * inset), int(height * inset), int(width * (1 - inset)),
                           int(height * (1 - inset)))).resize((width, height), Image.Resampling.LANCZOS)
    if kind == "vivid":  # livelier colours; a grey photo gets a duotone instead
        if _is_grey(image):
            return ImageOps.colorize(ImageOps.grayscale(image), (20, 30, 90), (255, 240, 170))
        return ImageEnhance.Color(image.filter(ImageFilter.UnsharpMask(3, 180, 2))).enhance(1.8)
    if kind == "resolution":  # a gateway's own resolution, same aspect, plus a shape
        scale = rng.choice((0.5, 1.5))
        return edit(image, "shape", rng, other).resize((round(width * scale), round(height * scale)))
    raise ValueError(kind)


def _is_grey(image: Image.Image) -> bool:
    red, green, blue = image.reduce(8).split()
    return red.tobytes() == green.tobytes() == blue.tobytes()


def _box(rng: random.Random, width: int, height: int, low: float, high: float) -> tuple[int, int, int, int]:
    w, h = int(width * rng.uniform(low, high)), int(height * rng.uniform(low, high))
    x, y = rng.randrange(width - w), rng.randrange(height - h)
    return x, y, x + w, y + h


def unchanged(image: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, dict]:
    """Return the source again as a gateway might: re-encoded, resized, or round-tripped."""
    if kind == "resized":
        scale = rng.choice((0.5, 0.75, 1.5, 2.0))
        return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC), {}
    if kind == "roundtrip":
        grain = Image.effect_noise(image.size, 6).convert("RGB")
        return Image.blend(image.filter(ImageFilter.GaussianBlur(0.8)), grain, 0.03), {}
    return image, {"quality": int(kind[1:])} if kind.startswith("q") else {}


def blank(size: tuple[int, int], kind: str, rng: random.Random) -> Image.Image:
    """Return a near-uniform frame: one colour with grain, a soft vignette, or a small watermark."""
    colour = {"black": (3, 3, 5), "white": (250, 250, 250), "grey": (128, 128, 128)}.get(kind, _colour(rng, 0, 255))
    image = Image.new("RGB", size, colour)
    grain = Image.effect_noise(size, 12).convert("RGB")
    image = Image.blend(image, grain, 0.08)
    if rng.random() < 0.4:
        fall = ImageOps.invert(Image.radial_gradient("L").resize(size)).point(lambda v: 235 + v * 20 // 255)
        image = Image.composite(image, Image.new("RGB", size, tuple(max(0, c - 8) for c in colour)), fall)
    if rng.random() < 0.4:
        ImageDraw.Draw(image).text((size[0] - 90, size[1] - 20), "preview", fill=(200, 200, 200))
    return image


def build(folder: Path, seed: int = 20) -> list[Case]:
    """Write the set's files into folder; return its cases."""
    rng = random.Random(seed)
    pictures = bases(rng)
    cases: list[Case] = []
    number = iter(range(1_000_000))

    def save(image: Image.Image, fmt: str, **options) -> Path:
        path = folder / f"{next(number):05d}.{fmt.lower().replace('jpeg', 'jpg')}"
        if fmt == "JPEG":
            options.setdefault("quality", 90)
        elif fmt == "PNG":
            options.setdefault("compress_level", 1)  # the set is written once and read once
        else:
            options.setdefault("method", 2)
        image.save(path, fmt, **options)
        return path

    wrong = strangers(rng, 2 * len(pictures) + 2 * len(ASPECTS))
    sources: list[tuple[Path, Image.Image]] = []
    for index, (name, base) in enumerate(pictures):
        aspect = ASPECTS[index % len(ASPECTS)]
        image = cut(base, aspect, LONG_SIDES[index % len(LONG_SIDES)])
        source = save(image, FORMATS[index % len(FORMATS)])
        sources.append((source, image))
        other = pictures[(index + 5) % len(pictures)][1]
        for n, kind in enumerate(GOOD):
            cases.append(Case(f"good:{kind}", source, save(edit(image, kind, rng, other), FORMATS[(index + n) % 3]), frozenset()))
        for kind in ("q60", "q75", "q95", "png", "webp", "resized", "roundtrip"):
            again, options = unchanged(image, kind, rng)
            fmt = {"png": "PNG", "webp": "WEBP"}.get(kind, "JPEG")
            cases.append(Case(f"unchanged:{kind}", source, save(again, fmt, **options), frozenset({"unchanged"})))
        for step in (0, 1):
            stranger = cut(wrong[2 * index + step], aspect, max(image.size)).resize(image.size)
            if rng.random() < 0.5:
                stranger = edit(stranger, rng.choice(("warm", "shape", "contrast")), rng, other)
            cases.append(Case("unrelated", source, save(stranger, FORMATS[(index + step) % 3]), frozenset({"unrelated"})))
        for kind in ("black", "white", "grey", "colour"):
            cases.append(Case(f"blank:{kind}", source, save(blank(image.size, kind, rng), FORMATS[index % 3]), frozenset({"blank"})))
        squeezed = (image.height, image.width) if image.width != image.height else (image.width, image.width * 9 // 16)
        for kind in ("warm", "shape"):
            bent = edit(image, kind, rng, other).resize(squeezed)
            cases.append(Case(f"off_size:{kind}", source, save(bent, "PNG"), frozenset({"off_size"})))
    # The same stock picture answered for two or three sources of one aspect (at their sizes, in
    # different formats): a duplicate, and unrelated to each source.
    stock = iter(wrong[2 * len(pictures):])
    for first in range(len(ASPECTS)):
        group = [sources[i] for i in range(first, len(sources), len(ASPECTS))]
        for start in range(0, len(group) - 1, 3):
            picture = next(stock)
            for offset, fmt in zip(range(start, min(start + 3, len(group))), FORMATS):
                source, image = group[offset]
                copy = cut(picture, (image.width, image.height), max(image.size))
                cases.append(Case("near_duplicate", source, save(copy, fmt), frozenset({"near_duplicate", "unrelated"})))
    return cases


def judge_all(cases: list[Case]) -> None:
    """Judge every case as one run would: its own flags, then the run's near-duplicates."""
    looks: dict[Path, Look] = {}

    def look(path: Path) -> Look:
        if path not in looks:
            looks[path] = look_at(path)
        return looks[path]

    twins = Twins()
    by_id: dict[str, Case] = {}
    for number, case in enumerate(cases):
        result = look(case.result)
        source = look(case.source) if case.source else None
        case.got = judge(result, source, None)
        if "blank" in case.got:
            continue
        key = str(number)
        by_id[key] = case
        mark, source_mark = Mark.of(result), (Mark.of(source) if source else None)
        twin = twins.find(mark, source_mark)
        twins.add(key, mark, source_mark)
        if twin is not None:
            case.got["near_duplicate"] = "twin"
            by_id[twin].got["near_duplicate"] = "twin"


@dataclass
class Score:
    flag: str
    tp: int
    fp: int
    fn: int

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0


def scores(cases: list[Case]) -> list[Score]:
    out = []
    for flag in FLAGS:
        tp = sum(1 for c in cases if flag in c.expected and flag in c.got)
        fp = sum(1 for c in cases if flag not in c.expected and flag in c.got)
        fn = sum(1 for c in cases if flag in c.expected and flag not in c.got)
        out.append(Score(flag, tp, fp, fn))
    return out


def false_flags(cases: list[Case]) -> tuple[int, int]:
    """Return (good edits that got any flag, good edits)."""
    good = [c for c in cases if not c.expected]
    return sum(1 for c in good if c.got), len(good)


def evaluate(folder: Path | None = None) -> tuple[list[Case], list[Score], tuple[int, int]]:
    """Build the set (in folder, or a temporary one), judge it; return cases, scores and false flags."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        cases = build(folder)
        judge_all(cases)
        return cases, scores(cases), false_flags(cases)
    with tempfile.TemporaryDirectory(prefix="ibc-flagset-") as temp:
        cases = build(Path(temp))
        judge_all(cases)
        return cases, scores(cases), false_flags(cases)


def report(cases: list[Case], table: list[Score], good: tuple[int, int]) -> str:
    lines = [f"{len(cases)} results: {sum(1 for c in cases if not c.expected)} good edits"]
    for score in table:
        lines.append(f"{score.flag:15} recall {score.recall:.3f}  precision {score.precision:.3f}  "
                     f"(tp {score.tp}, fp {score.fp}, fn {score.fn})")
    lines.append(f"good edits flagged: {good[0]} of {good[1]} ({good[0] / good[1]:.1%})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dump", type=Path, help="write the set into this folder and list the misses")
    args = parser.parse_args(argv)
    cases, table, good = evaluate(args.dump)
    print(report(cases, table, good))
    for case in cases:
        if set(case.got) != set(case.expected):
            print(f"  {case.kind:22} {case.result.name} expected {sorted(case.expected)} got {case.got}")


if __name__ == "__main__":
    main()


def evaluate_seed(seed: int) -> tuple[list[Case], list[Score], tuple[int, int]]:
    """Build and judge the set for one seed in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="ibc-flagset-") as temp:
        cases = build(Path(temp), seed=seed)
        judge_all(cases)
        return cases, scores(cases), false_flags(cases)


def cost_per_result(repeat: int = 3) -> dict[str, float]:
    """Return the CPU seconds the flagger spends on one result, for typical gateway answers.

    Each case is a result file and its source file, both read from disk as the flagger reads them
    (the source's look is kept per task, so a second result of a task costs the result alone).
    """
    import time

    photo = cut(Image.open(PHOTOS / "coffee.jpg").convert("RGB"), (3, 2), 1536)
    shapes = {"1024×1024 PNG result, 1536×1024 JPEG source": ((1024, 1024), "PNG", "JPEG"),
              "1536×1024 JPEG result, 1536×1024 JPEG source": ((1536, 1024), "JPEG", "JPEG"),
              "256×256 JPEG result, 128×128 PNG source": ((256, 256), "JPEG", "PNG")}
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ibc-flagcost-") as temp:
        for label, (size, result_fmt, source_fmt) in shapes.items():
            source_path = Path(temp) / f"source.{source_fmt.lower()}"
            source_size = (128, 128) if source_fmt == "PNG" else (1536, 1024)
            photo.resize(source_size).save(source_path, source_fmt)
            result_path = Path(temp) / f"result.{result_fmt.lower()}"
            edit(photo.resize(size), "shape", random.Random(1), photo).save(result_path, result_fmt)
            timings = []
            for _ in range(max(3, repeat * 3)):
                twins = Twins()
                started = time.process_time()
                source = look_at(source_path)
                result = look_at(result_path)
                judge(result, source, None)
                mark, source_mark = Mark.of(result), Mark.of(source)
                twins.find(mark, source_mark)
                twins.add("r", mark, source_mark)
                timings.append(time.process_time() - started)
            out[label] = sorted(timings)[len(timings) // 2]
    return out
