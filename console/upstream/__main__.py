"""Check a real gateway by hand: one call (with retries), images written to a folder.

    python -m console.upstream --api-url URL --image PATH [--reference PATH ...] --prompt TEXT --out DIR

Prints one JSON line: {"ok", "images", "error", "http_status", "attempts"}; exit 0 when ok.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .. import imaging
from ..profile import API_MODES, EDIT_FORMATS, ApiProfile, ProfileError
from ..settings import SettingsError, resolve
from . import DebugLog, Source, UpstreamClient, UpstreamError, make_http_client


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m console.upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--api-url", required=True,
                        help="API base (…/v1) or full endpoint URL (Gemini: …/v1beta or …/models/X:generateContent)")
    parser.add_argument("--image", type=Path, help="source image; omit to generate from the prompt alone")
    parser.add_argument("--reference", type=Path, action="append", default=[], metavar="PATH",
                        help="a further input image sent after the source (repeatable, in order)")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", default="grok-imagine-1.0-edit")
    parser.add_argument("--mode", choices=API_MODES, default="auto")
    parser.add_argument("--api-key", default="", help="or set API_KEY in the environment")
    parser.add_argument("--no-stream", action="store_true", help="ask for a whole answer instead of SSE")
    parser.add_argument("--edit-format", choices=EDIT_FORMATS, default="multipart",
                        help="how the images API gets the inputs (json_image: Seedream's `image` field)")
    parser.add_argument("--size", default="", help="e.g. 1024x1024, 2K; Gemini: an aspect ratio 16:9 and/or 1K/2K/4K")
    parser.add_argument("--proxy", default="", help="proxy URL (http://, https://, socks5://host:port) or 'direct'; "
                        "PROXY_URL in the environment is used otherwise (HTTPS_PROXY never is)")
    parser.add_argument("--max-retries", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per attempt")
    parser.add_argument("--out", type=Path, required=True, help="folder for the images")
    parser.add_argument("--debug", action="store_true", help="print the redacted debug log to stderr")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, Any]:
    """Make the call and write the images; return the JSON report."""
    settings = resolve(environ)
    api_key = args.api_key or environ.get("API_KEY", "")
    profile = ApiProfile.from_dict({
        "api_url": args.api_url, "api_key": api_key, "model": args.model, "api_mode": args.mode,
        "stream": not args.no_stream, "edit_format": args.edit_format, "size": args.size, "proxy_url": args.proxy,
        "max_retries": args.max_retries, "timeout_s": args.timeout,
    })
    source = read_image(args.image) if args.image is not None else None
    references = [read_image(path) for path in args.reference]
    debug = DebugLog(profile.secrets(), settings.debug_log_bytes)
    report: dict[str, Any] = {"ok": False, "images": [], "error": None, "http_status": None, "attempts": 0}
    async with make_http_client() as http:
        try:
            outcome = await UpstreamClient(http, settings).call(profile, args.prompt, source, references=references,
                                                                debug=debug)
        except UpstreamError as exc:
            report.update(error=str(exc), http_status=exc.http_status, attempts=exc.attempts)
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            paths = [str(write_image(args.out, image.data, image.format, image.sha256)) for image in outcome.images]
            report.update(ok=True, images=paths, http_status=outcome.http_status, attempts=outcome.attempts)
            if outcome.warnings:
                report["warnings"] = outcome.warnings
    if args.debug:
        print(debug.text(), file=sys.stderr)
    return report


def read_image(path: Path) -> Source:
    """Read an input image as the console sends it (turned upright by its EXIF orientation)."""
    prepared, mime = imaging.prepare_source(path.read_bytes())
    return Source(path.name, prepared, mime)


def write_image(folder: Path, data: bytes, fmt: str, sha256: str) -> Path:
    """Write one image named by its hash, so repeated runs never overwrite a different image."""
    path = folder / f"{sha256[:16]}{imaging.EXTENSION[fmt]}"
    path.write_bytes(data)
    return path.resolve()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; print the JSON line."""
    args = parse_args(argv)
    try:
        report = asyncio.run(run(args, dict(os.environ)))
    except (OSError, imaging.InvalidImage, ProfileError, SettingsError) as exc:
        report = {"ok": False, "images": [], "error": str(exc), "http_status": None, "attempts": 0}
    print(json.dumps(report, ensure_ascii=False))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
