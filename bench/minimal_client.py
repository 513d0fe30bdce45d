"""The baseline of the throughput figure: a minimal async httpx client doing the console's work.

    python -m bench.minimal_client URL FOLDER OUT [--concurrency 32]

For every source file in FOLDER (sorted by name), at most `concurrency` at once: read it, send it
as a data URL in the same chat-completions body the console sends (`stream: true`), read the SSE
answer to the end, take the first image data URL out of the `content` deltas, base64-decode it,
check it with Pillow (`verify()`, then a full `load()` on a fresh open), and write it to OUT.

Deliberately plain: one event loop, no thread pool (the CPU work runs inline), no database, no
fsync, no retries. What the console does on top of this (task state in SQLite, the source
checked by a full decode, thread hops, atomic writes, the HTTP API being polled) is what
`console / minimal client` measures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

DATA_URL = re.compile(r"data:image/[\w.+-]+;base64,([A-Za-z0-9+/=]+)")
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


@dataclass
class Outcome:
    wall_s: float
    cpu_s: float  # this process, user + system, during the run
    done: int
    failed: int
    errors: list[str]


def request_body(model: str, prompt: str, source: bytes, mime: str) -> bytes:
    """Return the chat-completions body the console builds for one source (same keys, order, separators)."""
    url = f"data:{mime};base64,{base64.b64encode(source).decode('ascii')}"
    body = {"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": url}}]}], "stream": True}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def answer_text(body: bytes) -> str:
    """Join the `content` deltas of an SSE chat-completion stream."""
    parts = []
    for line in body.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            continue
        for choice in json.loads(data).get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                parts.append(content)
    return "".join(parts)


def check_and_write(answer: bytes, target: Path) -> None:
    """Decode the answer's image, verify and fully decode it with Pillow, and write it to target."""
    match = DATA_URL.search(answer_text(answer))
    if match is None:
        raise ValueError("no image data URL in the answer")
    data = base64.b64decode(match.group(1))
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
    target.write_bytes(data)


async def one(http: httpx.AsyncClient, url: str, source: Path, target: Path, model: str, prompt: str) -> None:
    body = request_body(model, prompt, source.read_bytes(), MIME.get(source.suffix.lower(), "image/png"))
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
    async with http.stream("POST", url, content=body, headers=headers) as answer:
        answer.raise_for_status()
        received = bytearray()
        async for chunk in answer.aiter_bytes():
            received += chunk
    check_and_write(bytes(received), target)


async def run_async(url: str, folder: Path, out: Path, concurrency: int = 32, model: str = "m",
                    prompt: str = "edit") -> Outcome:
    cpu0, start = time.process_time(), time.monotonic()
    sources = sorted(path for path in folder.iterdir() if path.suffix.lower() in MIME)
    out.mkdir(parents=True, exist_ok=True)
    gate = asyncio.Semaphore(concurrency)
    errors: list[str] = []
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)

    async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=300) as http:
        async def task(index: int, source: Path) -> bool:
            async with gate:
                try:
                    await one(http, url, source, out / f"{index}.jpg", model, prompt)
                    return True
                except Exception as exc:  # noqa: BLE001 - count it, report the first few
                    errors.append(f"{source.name}: {type(exc).__name__}: {exc}")
                    return False

        results = await asyncio.gather(*(task(i, s) for i, s in enumerate(sources)))
    wall = time.monotonic() - start
    done = sum(results)
    return Outcome(wall, time.process_time() - cpu0, done, len(results) - done, errors[:5])


def run(url: str, folder: Path, out: Path, concurrency: int = 32) -> Outcome:
    """Process every source of folder against url; return the wall time and counts."""
    return asyncio.run(run_async(url, folder, out, concurrency))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="the chat completions endpoint, e.g. http://127.0.0.1:8000/v1/chat/completions")
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    outcome = run(args.url, args.folder, args.out, args.concurrency)
    print(f"{outcome.done} done, {outcome.failed} failed in {outcome.wall_s:.2f} s "
          f"(CPU {outcome.cpu_s:.2f} s)", *outcome.errors, sep="\n")
    return 0 if not outcome.failed else 1


if __name__ == "__main__":
    sys.exit(main())
