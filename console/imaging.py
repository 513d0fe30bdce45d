"""Do all the Pillow work on images: verify, turn upright, read sources, conform and encode."""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .messages import say, sized, told
from .userfiles import NotRegularFile, open_regular

# Formats accepted as sources and results; anything else Pillow might open (e.g. EPS, ICO)
# is refused so a "result" is always something a browser and a trainer can read.
# MPO (multi-picture JPEG from phones and cameras) is a JPEG with extra frames: treat it as one.
FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
# Pillow plugins allowed to open files: never EPS and the like, which run external programs.
# (JPEG's opener also yields MPO.)
OPEN_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
        "bmp": "image/bmp", "tiff": "image/tiff"}
EXTENSION = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "gif": ".gif", "bmp": ".bmp", "tiff": ".tif"}
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own default guard
JPEG_QUALITY = WEBP_QUALITY = 95  # images written into datasets
SOURCE_JPEG_QUALITY = 90  # sources re-encoded before they are sent
ORIENTATION_TAG = 0x0112
# The one EXIF rule: an image means what a viewer shows, so EXIF orientation n is undone by
# _UPRIGHT[n] (the table of ImageOps.exif_transpose) everywhere: thumbnails, the sizes the save
# checks compare, converted dataset files and the sources sent upstream.
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
_SWAPS_SIDES = frozenset({5, 6, 7, 8})
_ORIENTATION_INFO = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")
# Bytes literals in an error message are the file's own bytes: never quoted (see _describe).
_QUOTED_BYTES = re.compile(r"""(?<!\w)b(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
REASON_MAX = 200
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class InvalidImage(ValueError):
    """The bytes are not a complete image in an accepted format."""


class TooManyPixels(InvalidImage):
    """The image has more pixels than allowed; refused from its header, before any decoding."""

    def __init__(self, pixels: str, limit: int) -> None:
        super().__init__(say("sources.image_too_large", pixels=pixels, limit=limit))
        self.pixels, self.limit = pixels, limit

    @classmethod
    def from_pillow(cls, exc: Image.DecompressionBombError) -> TooManyPixels:
        """Return the error for an image over Pillow's own guard (twice Image.MAX_IMAGE_PIXELS)."""
        found = re.search(r"\((\d+) pixels\)", str(exc))
        return cls(f"{int(found[1]):,}" if found else say("sources.image_too_many_pixels"), 2 * (Image.MAX_IMAGE_PIXELS or 0))


class SourceError(ValueError):
    """A source image that cannot be sent; str(e) is a readable message naming the limit or fault."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the bytes really are, learned by decoding them (width and height as displayed)."""

    format: str  # png, jpeg, webp, gif, bmp, tiff
    width: int
    height: int
    orientation: int = 1  # EXIF orientation still to apply to the stored pixels, 1 when none

    @property
    def mime(self) -> str:
        return MIME[self.format]


# -- the EXIF rule --------------------------------------------------------------------------------


def _pillow_turns_tiffs() -> bool:
    """Return whether this Pillow applies a TIFF's orientation itself on load (newer ones do)."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    buffer = io.BytesIO()
    Image.new("L", (2, 1)).save(buffer, "TIFF", exif=exif)
    with Image.open(buffer) as probe:
        return probe.size == (1, 2)


_PILLOW_TURNS_TIFFS = _pillow_turns_tiffs()


def orientation(image: Image.Image) -> int:
    """Return the EXIF orientation (2-8) still to apply to an opened image, or 1 (reading it may decode a PNG)."""
    if image.format == "TIFF" and _PILLOW_TURNS_TIFFS:
        return 1  # its size is reported upright already and load() turns the pixels
    value = image.getexif().get(ORIENTATION_TAG, 1)
    return value if value in _UPRIGHT else 1


def _header_orientation(image: Image.Image) -> int:
    """Return the orientation without decoding: a PNG's EXIF counts when it comes before the pixels."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1  # Pillow would decode the whole image to look for an eXIf chunk after IDAT
    return orientation(image)


def upright(image: Image.Image, turn: int | None = None) -> Image.Image:
    """Return a new image turned as viewers show it (EXIF orientation, or `turn` read earlier)."""
    method = _UPRIGHT.get(orientation(image) if turn is None else turn)
    if method is None:
        return image.copy()
    turned = image.transpose(method)
    for key in _ORIENTATION_INFO:  # the turn is done: a stale tag must never turn it twice
        turned.info.pop(key, None)
    return turned


def upright_size(width: int, height: int, turn: int) -> tuple[int, int]:
    """Return the size as displayed of a width×height image with EXIF orientation `turn`."""
    return (height, width) if turn in _SWAPS_SIDES else (width, height)


# -- checking bytes -------------------------------------------------------------------------------


def sniff(data: bytes) -> str | None:
    """Return the format named by the leading magic bytes, or None (cheap, no decoding)."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def inspect(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, decode: bool = True) -> ImageInfo:
    """Return the real format and size of `data`, or raise InvalidImage.

    With `decode` (results: an image counts only once it fully decodes) every pixel is decoded;
    without it (sources, which the upstream decodes) the header and structure are checked with
    `verify()`, 40× cheaper on a 512 px PNG (bench).
    """
    if not data:
        raise InvalidImage(say("sources.image_empty"))
    try:
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as image:
            fmt = FORMATS.get(image.format or "")
            if fmt is None:
                raise InvalidImage(say("sources.image_unsupported", format=image.format) if image.format
                                   else say("sources.image_unsupported_unknown"))
            width, height = image.size
            if width * height > max_pixels:
                raise TooManyPixels(f"{width}×{height}", max_pixels)  # from the header: nothing decoded yet
            if decode:
                image.load()  # a full decode: truncated or corrupt data fails here, not later
                turn = orientation(image)
            else:
                turn = _header_orientation(image)
                image.verify()
    except InvalidImage:
        raise
    except UnidentifiedImageError:
        raise InvalidImage(say("sources.image_not_image", kind=_describe(data))) from None
    except Image.DecompressionBombError as exc:
        raise TooManyPixels.from_pillow(exc) from None
    except _DECODE_ERRORS as exc:
        found = sniff(data)
        raise InvalidImage(say("sources.image_corrupt", format=found, reason=_pillow_reason(exc)) if found
                           else say("sources.image_corrupt_any", reason=_pillow_reason(exc))) from None
    return ImageInfo(fmt, *upright_size(width, height, turn), turn)


def _describe(data: bytes) -> str:
    """Say what kind of bytes these are, never quoting them: a source may be a link to a secret file."""
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return say("sources.bytes_html")
    if head.startswith((b"{", b"[")):
        return say("sources.bytes_json")
    if head.startswith(b"%pdf"):
        return say("sources.bytes_pdf")
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return say("sources.bytes_heic")
    if head.isascii():
        return say("sources.bytes_text", size=len(data))
    return say("sources.bytes_unknown", size=len(data))


def _pillow_reason(exc: BaseException) -> str:
    """Return Pillow's message without the bytes it sometimes quotes (chunk names, tag values)."""
    text = _QUOTED_BYTES.sub("…", str(exc))
    return text if len(text) <= REASON_MAX else text[:REASON_MAX] + "…"


# -- sources sent upstream ------------------------------------------------------------------------


def read_source(path: str | os.PathLike, *, max_bytes: int, max_pixels: int, max_side: int,
                max_source_bytes: int) -> tuple[bytes, str]:
    """Read a source file within the limits and return (bytes, MIME type) to send; raise SourceError.

    `max_source_bytes` (MAX_SOURCE_BYTES) and `max_pixels` (MAX_IMAGE_PIXELS) refuse a source;
    `max_side` and `max_bytes` (the profile's source_max_side/source_max_bytes, 0 = off) shrink it.
    """
    data = _read_within(Path(path), max_source_bytes)
    try:
        return prepare_source(data, max_side, max_bytes, max_pixels=max_pixels)
    except TooManyPixels as exc:
        raise SourceError(say("sources.source_too_many_pixels", pixels=exc.pixels, limit=exc.limit)) from None
    except InvalidImage as exc:
        raise SourceError(say("sources.source_not_usable", reason=told(exc))) from None


def _read_within(path: Path, limit: int) -> bytes:
    """Return the bytes of a regular file of at most `limit` bytes; raise SourceError."""
    try:
        with open_regular(path) as file:  # never blocks: a FIFO or a device is refused, not read
            size = os.fstat(file.fileno()).st_size
            if size > limit:
                raise SourceError(say("sources.source_too_big", size=sized(size), limit=sized(limit)))
            data = file.read(limit + 1)  # the file may have grown since fstat()
    except OSError as exc:  # NotRegularFile says "not a regular file (a FIFO)"
        raise SourceError(say("sources.source_unreadable", reason=exc.strerror or type(exc).__name__)) from None
    if len(data) > limit:
        raise SourceError(say("sources.source_grew", limit=sized(limit)))
    return data


def prepare_source(data: bytes, max_side: int = 0, max_bytes: int = 0,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[bytes, str]:
    """Return (bytes, MIME type) of a source, upright, shrunk to `max_side`/`max_bytes` when set (0 = off)."""
    info = inspect(data, max_pixels, decode=False)
    too_wide = max_side > 0 and max(info.width, info.height) > max_side
    too_heavy = max_bytes > 0 and len(data) > max_bytes
    if not (too_wide or too_heavy or info.orientation != 1):
        return data, info.mime
    with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as opened:
        image = upright(opened, info.orientation)
    if too_wide:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return _encode_within(image, max_bytes)


def _encode_within(image: Image.Image, max_bytes: int) -> tuple[bytes, str]:
    """Encode as PNG (alpha) or JPEG, scaling down until it fits in `max_bytes` (0 = any)."""
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    while True:
        buffer = io.BytesIO()
        if alpha:
            image.save(buffer, "PNG", optimize=True)
        else:
            image.convert("RGB").save(buffer, "JPEG", quality=SOURCE_JPEG_QUALITY, optimize=True)
        encoded = buffer.getvalue()
        if not max_bytes or len(encoded) <= max_bytes or max(image.size) <= 64:
            return encoded, "image/png" if alpha else "image/jpeg"
        scale = max(0.5, (max_bytes / len(encoded)) ** 0.5 * 0.95)
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)


# -- images written into datasets -----------------------------------------------------------------


def source_info(path: Path) -> tuple[str, int, int]:
    """Return (format, width, height) of an image file as displayed (upright); raise InvalidImage."""
    try:
        with open_regular(path) as file, Image.open(file, formats=OPEN_FORMATS) as image:
            fmt = FORMATS.get(image.format or "")
            width, height = upright_size(*image.size, orientation(image))
    except FileNotFoundError:
        raise InvalidImage(say("sources.file_missing", path=str(path))) from None
    except NotRegularFile as exc:
        raise InvalidImage(say("sources.file_not_regular", kind=exc.kind, path=str(path))) from None
    except UnidentifiedImageError:
        raise InvalidImage(say("sources.file_not_image", path=str(path))) from None
    except _DECODE_ERRORS as exc:
        raise InvalidImage(say("sources.file_unreadable", path=str(path), reason=_pillow_reason(exc))) from None
    if fmt is None:
        raise InvalidImage(say("sources.file_unsupported", path=str(path)))
    return fmt, width, height


def convert(data: bytes, fmt: str, conform_to: tuple[str, int, int] | None = None) -> bytes:
    """Return image bytes decoded, turned upright, conformed to (mode, width, height) when given, encoded as `fmt`."""
    try:
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as opened:
            image = plain_mode(upright(opened))
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise InvalidImage(say("sources.image_corrupt_any", reason=_pillow_reason(exc))) from None
    if conform_to:
        image = conform(image, *conform_to)
    return encode(image, fmt)


def conform(image: Image.Image, mode: str, width: int, height: int) -> Image.Image:
    """Return `image` at width×height: pad (letterbox in black), crop (centre crop, resize) or resize (stretch)."""
    size = (width, height)
    if mode == "pad":
        black = (0, 0, 0, 255) if image.mode == "RGBA" else (0, 0, 0)
        return ImageOps.pad(image, size, Image.Resampling.LANCZOS, color=black)
    if mode == "crop":
        return ImageOps.fit(image, size, Image.Resampling.LANCZOS)
    return image.resize(size, Image.Resampling.LANCZOS)


def encode(image: Image.Image, fmt: str) -> bytes:
    """Encode as png, jpeg (alpha flattened on black) or webp, or in the other formats Pillow writes."""
    buffer = io.BytesIO()
    if fmt == "jpeg":
        if image.mode == "RGBA":
            flat = Image.new("RGB", image.size)
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=WEBP_QUALITY)
    else:
        image.save(buffer, fmt.upper())
    return buffer.getvalue()


def plain_mode(image: Image.Image) -> Image.Image:
    """Return `image` as RGB or RGBA (16-bit greys scaled down first, so they do not clip to white)."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B"):
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")
