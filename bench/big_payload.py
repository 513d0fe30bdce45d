"""Time a 24 MB single-line data URL from bytes to a verified image (budget < 1 s).

    python -m bench.big_payload [--mb 24] [--repeat 5]

Two figures: the pure pipeline (SSE decoder fed 16 KB chunks → JSON → answer parser → base64
decode → full Pillow decode → SHA-256), run at 1/4, 1/2 and all of the size to show the cost
is linear; and the same answer through the real client from the fake gateway over loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from console.profile import ApiProfile
from console.settings import resolve
from console.upstream.answer import AnswerParser
from console.upstream.client import UpstreamClient, make_http_client
from console.upstream.fetch import decode_inline
from console.upstream.sse import SSEDecoder
from testkit.fake_upstream import FakeUpstream, b64, big_png

CHUNK = 16 * 1024
BUDGET_S = 1.0


def sse_body(png: bytes) -> bytes:
    """Return one G3-style SSE frame holding the image as a markdown data URL, then [DONE]."""
    content = f"![image](data:image/png;base64,{b64(png)})"
    frame = json.dumps({"choices": [{"delta": {"content": content}, "index": 0}]}, separators=(",", ":"))
    return f"data: {frame}\n\ndata: [DONE]\n\n".encode()


def pipeline(body: bytes, settings) -> float:
    """Return the seconds from the first chunk to a verified image."""
    start = time.perf_counter()
    decoder, parser = SSEDecoder(), AnswerParser()
    for offset in range(0, len(body), CHUNK):
        for event in decoder.feed(body[offset : offset + CHUNK]):
            if not event.done:
                parser.feed(json.loads(event.data), event.event)
    (ref,) = parser.refs()
    image = decode_inline(ref, settings.max_download_bytes, settings.max_image_pixels)
    assert image.width > 0
    return time.perf_counter() - start


def through_client(fake: FakeUpstream, mb: float, settings) -> float:
    """Return the seconds for one real call to the fake gateway answering `big_dataurl`."""
    profile = ApiProfile.from_dict({"api_url": fake.url(f"big_dataurl.mb={mb:g}", "/v1/chat/completions"),
                                    "model": "m", "allow_private_api": True, "max_retries": 0})

    async def go() -> float:
        async with make_http_client() as http:
            start = time.perf_counter()
            outcome = await UpstreamClient(http, settings).call(profile, "p", None)
            assert len(outcome.images) == 1
            return time.perf_counter() - start

    return asyncio.run(go())


def median_of(repeat: int, measure) -> float:
    return statistics.median(measure() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=24.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    settings = resolve({})
    print(f"{'figure':<44} {'median':>9} {'per MB':>9}")
    for fraction in (0.25, 0.5, 1.0):
        mb = args.mb * fraction
        body = sse_body(big_png(mb))
        seconds = median_of(args.repeat, lambda: pipeline(body, settings))
        size = len(body) / 2**20
        print(f"{f'pipeline, {size:.1f} MB line in 16 KB chunks':<44} {seconds:>8.3f}s {seconds / size * 1000:>7.1f}ms")
    with FakeUpstream() as fake:
        big_png(args.mb)
        seconds = median_of(args.repeat, lambda: through_client(fake, args.mb, settings))
    verdict = "PASS" if seconds < BUDGET_S else "FAIL"
    print(f"{f'client over loopback, {args.mb:g} MB data URL':<44} {seconds:>8.3f}s   budget < {BUDGET_S:g}s {verdict}")


if __name__ == "__main__":
    main()
