"""Register the fake upstream's scenarios: one handler per wire variant or fault (docs/gateways.md).

Each handler answers in its own shape whatever endpoint was hit.  Field names, key order,
separators and framing follow each generation's own: G1 = `json.dumps` defaults, G1.5+ = compact orjson,
G3 = Go (sorted keys, `\\u0026`-style escapes, `text/event-stream; charset=utf-8`).
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import random
import secrets
import struct
import threading
import time
import uuid
from typing import Any, Callable
from urllib.parse import quote

from PIL import Image, ImageFilter

from testkit.fake_upstream import (
    CREATED, DONE, IMAGES, SCENARIOS, SEED, SSE, SSE_GO, Ctx, b64, big_png, compact_json, data_url,
    expected_images, g1_json, g1_path, g16_final_path, g16_user_path, g2_path, g3_path, go_json, mime_of,
    scenario, sse_frame,
)

M16 = "grok-imagine-1.0"
M2 = "grok-imagine-image"
M3 = "grok-imagine-image"
G16_USAGE = {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0,
             "input_tokens_details": {"text_tokens": 0, "image_tokens": 0}}
G2_USAGE = {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52,
            "prompt_tokens_details": {"cached_tokens": 0, "text_tokens": 12, "audio_tokens": 0, "image_tokens": 0},
            "completion_tokens_details": {"text_tokens": 40, "audio_tokens": 0, "reasoning_tokens": 0}}
G3_USAGE = {"completion_tokens": 18, "prompt_tokens": 3, "total_tokens": 21}
G3_STREAM_USAGE = {"completion_tokens": 180000, "prompt_tokens": 3, "total_tokens": 180003}
ZERO_IMAGE_USAGE = {"input_tokens": 0, "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
                    "output_tokens": 0, "total_tokens": 0}
REFUSAL = "I can't help with that request."


# --------------------------------------------------------------------------- ids and markdown


def g16_id() -> str:
    """Return a G1.6-style completion id (`chatcmpl-<ms><hex>`)."""
    return f"chatcmpl-{CREATED}{secrets.randbelow(1000):03d}{secrets.token_hex(4)}"


def g3_id() -> str:
    """Return a G3-style completion id (`chatcmpl_<32hex>`, underscore)."""
    return "chatcmpl_" + secrets.token_hex(16)


def g1_id() -> str:
    """Return a G1-style completion id (a fresh uuid each time)."""
    return f"chatcmpl-{uuid.uuid4()}"


def stable_alt(name: str) -> str:
    """Return the uuid G1.6 chat models use as alt text for an image."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def image_event_id(name: str) -> str:
    """Return a stable image_id for G1.6 image-stream events."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, name))


def md(target: str, alt: str = "image") -> str:
    """Return a markdown image."""
    return f"![{alt}]({target})"


# --------------------------------------------------------------------------- chunk builders


def g16_chunk(cid: str, delta: dict, index: int = 0, finish: str | None = "stop",
              usage: bool = False, model: str = M16) -> str:
    """Build a G1.6 chat.completion.chunk (compact, OpenAI key order)."""
    obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                           "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
    if usage:
        obj["usage"] = G16_USAGE
    return compact_json(obj)


def g16_frame(cid: str, content: str, **options: Any) -> bytes:
    """Frame a G1.6 image chunk (`event: chat.completion.chunk` + role/content delta)."""
    delta = {"role": "assistant", "content": content}
    return sse_frame(g16_chunk(cid, delta, **options), event="chat.completion.chunk")


def g2_chunk(cid: str, delta: dict, finish: str | None = None, model: str = M2) -> str:
    """Build a G2 chunk: role repeated in every delta, finish_reason omitted unless final."""
    choice: dict[str, Any] = {"index": 0, "delta": {"role": "assistant", **delta}}
    if finish:
        choice["finish_reason"] = finish
    return compact_json({"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                         "choices": [choice]})


def g3_chunk(cid: str, delta: dict, finish: str | None = None, usage: dict | None = None,
             model: str = M3) -> str:
    """Build a G3 chunk (Go map: sorted keys, explicit null finish_reason)."""
    obj: dict[str, Any] = {"choices": [{"delta": delta, "finish_reason": finish, "index": 0}],
                           "created": CREATED, "id": cid, "model": model, "object": "chat.completion.chunk"}
    if usage:
        obj["usage"] = usage
    return go_json(obj)


def g3_chunks(content: str) -> list[str]:
    """Return the G3 chat stream payloads: role chunk, one content delta, final chunk with usage."""
    cid = g3_id()
    return [g3_chunk(cid, {"role": "assistant"}),
            g3_chunk(cid, {"content": content}),
            g3_chunk(cid, {}, "stop", G3_STREAM_USAGE)]


def g3_frames(content: str) -> list[bytes]:
    """Return a whole G3 chat stream: three frames and `[DONE]`."""
    return [sse_frame(c) for c in g3_chunks(content)] + [DONE]


def g3_completion(content: str) -> str:
    """Build a G3 non-stream chat.completion."""
    message = {"content": content, "reasoning_content": "", "role": "assistant"}
    return go_json({"choices": [{"finish_reason": "stop", "index": 0, "message": message}], "created": CREATED,
                    "id": g3_id(), "model": M3, "object": "chat.completion", "usage": G3_USAGE})


def answer_g3(ctx: Ctx, content: str, default_stream: bool = True, chunk_size: int | None = None) -> None:
    """Answer G3-style: a stream, or a chat.completion when the request's stream flag is false."""
    if ctx.stream_flag(default_stream):
        ctx.send_stream(g3_frames(content), SSE_GO, chunk_size=chunk_size)
    else:
        ctx.send_json(200, g3_completion(content))


def g1_chunk(content: str, index: int, finish: str | None = None) -> str:
    """Build a G1 chunk: fresh id, given index, `system_fingerprint: null`, json.dumps separators."""
    return g1_json({"id": g1_id(), "object": "chat.completion.chunk", "created": CREATED, "model": "grok-3",
                    "system_fingerprint": None,
                    "choices": [{"index": index, "delta": {"content": content}, "finish_reason": finish}]})


# --------------------------------------------------------------------------- chat, non-stream


def g16_completion(content: str, model: str = M16) -> str:
    """Build a G1.6 chat.completion with images-API usage keys."""
    return compact_json({"id": g16_id(), "object": "chat.completion", "created": CREATED, "model": model,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                                                              "refusal": None}, "finish_reason": "stop"}],
                         "usage": G16_USAGE})


@scenario("g16_nonstream_url", ["green_jpeg"])
def g16_nonstream_url(ctx: Ctx) -> None:
    """G1.6 non-stream: content is the bare absolute file URL."""
    ctx.send_json(200, g16_completion(ctx.abs(g16_user_path("green_jpeg"))))


@scenario("g16_nonstream_b64", ["orange_jpeg"])
def g16_nonstream_b64(ctx: Ctx) -> None:
    """G1.6 non-stream: content is bare base64 (no data: prefix)."""
    ctx.send_json(200, g16_completion(b64(IMAGES["orange_jpeg"])))


@scenario("g15_chat_images_shape", ["purple_png"])
def g15_chat_images_shape(ctx: Ctx) -> None:
    """G1.5: the chat endpoint answers the images-API shape."""
    url = ctx.abs(g16_final_path("purple_png", "png"))
    ctx.send_json(200, compact_json({"created": CREATED, "data": [{"url": url}], "usage": G16_USAGE}))


@scenario("g2_nonstream_md", ["blue_webp", "yellow_gif"])
def g2_nonstream_md(ctx: Ctx) -> None:
    """G2 non-stream: markdown images joined by a blank line, progress in reasoning_content."""
    content = "\n\n".join(md(ctx.abs(g2_path(n))) for n in ("blue_webp", "yellow_gif"))
    message = {"role": "assistant", "content": content,
               "reasoning_content": "图片正在生成 40% (0/1)\n图片正在生成 100% (1/1)\n"}
    ctx.send_json(200, compact_json({"id": g16_id(), "object": "chat.completion", "created": CREATED, "model": M2,
                                     "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                                     "usage": G2_USAGE}))


@scenario("g3_nonstream_md", ["magenta_jpeg"])
def g3_nonstream_md(ctx: Ctx) -> None:
    """G3 non-stream: sorted keys, `chatcmpl_` id, `&` in the URL escaped as \\u0026."""
    ctx.send_json(200, g3_completion(md(ctx.abs(g3_path("magenta_jpeg")) + "?sig=1&exp=2")))


@scenario("g1_nonstream", ["olive_jpeg"])
def g1_nonstream(ctx: Ctx) -> None:
    """G1 non-stream: model text plus a relative `/images/…` markdown image, usage null."""
    content = "Here is your image.\n" + md(g1_path("olive_jpeg"), "Generated Image")
    ctx.send_json(200, g1_json({"id": g1_id(), "object": "chat.completion", "created": CREATED, "model": "grok-3",
                                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                             "finish_reason": "stop"}],
                                "usage": None}))


# --------------------------------------------------------------------------- chat, streaming


@scenario("g16_stream_url", ["brown_jpeg"])
def g16_stream_url(ctx: Ctx) -> None:
    """G1.6 stream: one final frame with an absolute `-final.jpg` URL, usage, [DONE]."""
    content = md(ctx.abs(g16_final_path("brown_jpeg")))
    ctx.send_stream([g16_frame(g16_id(), content, usage=True), DONE])


@scenario("g16_stream_n2", ["gray_jpeg", "cyan_png"])
def g16_stream_n2(ctx: Ctx) -> None:
    """G1.6 stream n=2: two frames, index 0 and 1, both finish_reason stop."""
    cid = g16_id()
    first = g16_frame(cid, md(ctx.abs(g16_final_path("gray_jpeg"))), index=0)
    second = g16_frame(cid, md(ctx.abs(g16_final_path("cyan_png", "png"))), index=1, usage=True)
    ctx.send_stream([first, second, DONE])


@scenario("g16_stream_relative", ["pink_png"])
def g16_stream_relative(ctx: Ctx) -> None:
    """G1.6 stream with a relative `/v1/files/image/<uuid>-final.png` URL (app_url unset)."""
    ctx.send_stream([g16_frame(g16_id(), md(g16_final_path("pink_png", "png")), usage=True), DONE])


@scenario("g16_stream_dataurl", ["noise_jpeg"])
def g16_stream_dataurl(ctx: Ctx) -> None:
    """G1.6 stream with a data URL labelled image/png around JPEG bytes, on one big line."""
    content = md(data_url("noise_jpeg", "image/png"))
    ctx.send_stream([g16_frame(g16_id(), content, usage=True), DONE])


@scenario("g16_stream_empty")
def g16_stream_empty(ctx: Ctx) -> None:
    """G1.6 stream when nothing was produced: one frame with empty content."""
    ctx.send_stream([g16_frame(g16_id(), "", usage=True), DONE])


@scenario("g16_chat_think", ["teal_webp"])
def g16_chat_think(ctx: Ctx) -> None:
    """G1.6 chat model: progress inside <think>…</think> content, then `![<uuid>](url)`."""
    cid, model = g16_id(), "grok-4"
    pieces = ["<think>\n", "正在生成第1张图片中，当前进度50%\n", "正在生成第1张图片中，当前进度100%\n", "</think>\n",
              md(ctx.abs(g16_user_path("teal_webp")), stable_alt("teal_webp")) + "\n"]
    frames = [sse_frame(g16_chunk(cid, {"role": "assistant", "content": pieces[0]}, finish=None, model=model),
                        event="chat.completion.chunk")]
    frames += [sse_frame(g16_chunk(cid, {"content": p}, finish=None, model=model), event="chat.completion.chunk")
               for p in pieces[1:]]
    frames.append(sse_frame(g16_chunk(cid, {}, finish="stop", usage=True, model=model),
                            event="chat.completion.chunk"))
    ctx.send_stream(frames + [DONE])


@scenario("g3_stream_dataurl", ["orange_jpeg", "red_png"])
def g3_stream_dataurl(ctx: Ctx) -> None:
    """G3 stream: role chunk, one delta with two data URLs, usage chunk, [DONE]."""
    ctx.send_stream(g3_frames(f"{md(data_url('orange_jpeg'))}\n\n{md(data_url('red_png'))}"), SSE_GO)


@scenario("g1_stream_b64", ["noise_jpeg"])
def g1_stream_b64(ctx: Ctx) -> None:
    """G1 base64 mode: a data URL split in 8192-char slices, new id and index per chunk."""
    text = b64(IMAGES["noise_jpeg"])
    pieces = ["![Generated Image](data:image/jpeg;base64,"]
    pieces += [text[i:i + 8192] for i in range(0, len(text), 8192)] + [")\n"]
    frames = [sse_frame(g1_chunk(p, i)) for i, p in enumerate(pieces)]
    frames.append(sse_frame(g1_chunk("", len(pieces), "stop")))
    ctx.send_stream(frames + [DONE])


@scenario("g1_stream_url", ["olive_jpeg"])
def g1_stream_url(ctx: Ctx) -> None:
    """G1 URL mode: one chunk with a relative `/images/…` URL and finish_reason stop, no [DONE]."""
    ctx.send_stream([sse_frame(g1_chunk(md(g1_path("olive_jpeg"), "Generated Image"), 0, "stop"))])


@scenario("g2_stream_progress", ["blue_webp"])
def g2_stream_progress(ctx: Ctx) -> None:
    """G2 stream: progress in reasoning_content, markdown content, empty final, [DONE]."""
    cid = g16_id()
    frames = [sse_frame(g2_chunk(cid, {"reasoning_content": f"图片正在生成 {p}% ({p // 100}/1)\n"}))
              for p in (40, 80, 100)]
    frames.append(sse_frame(g2_chunk(cid, {"content": md(ctx.abs(g2_path("blue_webp")))})))
    frames.append(sse_frame(g2_chunk(cid, {"content": ""}, "stop")))
    ctx.send_stream(frames + [DONE])


@scenario("g2_stream_bare_url", ["yellow_gif"])
def g2_stream_bare_url(ctx: Ctx) -> None:
    """G2 chat model, grok_url style: content is a bare URL followed by a newline."""
    cid = g16_id()
    frames = [sse_frame(g2_chunk(cid, {"content": ctx.abs(g2_path("yellow_gif")) + "\n"}, model="grok-4")),
              sse_frame(g2_chunk(cid, {"content": ""}, "stop", model="grok-4")), DONE]
    ctx.send_stream(frames)


def ndjson_lines(ctx: Ctx) -> list[bytes]:
    """Return upstream-Grok NDJSON token lines that spell a markdown image, split mid-URL."""
    url = ctx.abs(g3_path("magenta_jpeg"))
    tokens = ["Here you go: ", "![", "image](", url[:17], url[17:40], url[40:], ")"]
    return [(compact_json({"result": {"response": {"token": t}}}) + "\n").encode() for t in tokens]


@scenario("ndjson_tokens", ["magenta_jpeg"])
def ndjson_tokens(ctx: Ctx) -> None:
    """Raw one-line JSON objects, then a bare [DONE] line."""
    ctx.send_stream(ndjson_lines(ctx) + [b"[DONE]\n"], "application/x-ndjson")


@scenario("ndjson_no_done", ["magenta_jpeg"])
def ndjson_no_done(ctx: Ctx) -> None:
    """Raw one-line JSON objects without [DONE]."""
    ctx.send_stream(ndjson_lines(ctx), "application/x-ndjson")


def proxy_frames(eol: str) -> list[bytes]:
    """Return a G3 stream as a proxy may re-frame it: comments, `data:` without space, split data."""
    role, content, final = g3_chunks(md(data_url("red_png")))
    cut = final.index(',"created"') + 1  # a newline after this comma is legal JSON whitespace
    return [f": ping{eol}{eol}".encode(),
            f"data: {role}{eol}{eol}".encode(),
            f": ping{eol}".encode(),
            f"data:{content}{eol}{eol}".encode(),
            f"data: {final[:cut]}{eol}data: {final[cut:]}{eol}{eol}".encode(),
            f": ping{eol}{eol}data: [DONE]{eol}{eol}".encode()]


@scenario("proxy_crlf", ["red_png"])
def proxy_crlf(ctx: Ctx) -> None:
    """A proxied G3 stream with CRLF line endings."""
    ctx.send_stream(proxy_frames("\r\n"), SSE_GO)


@scenario("proxy_cr", ["red_png"])
def proxy_cr(ctx: Ctx) -> None:
    """A proxied G3 stream with bare CR line endings."""
    ctx.send_stream(proxy_frames("\r"), SSE_GO)


@scenario("gzip_stream", ["green_jpeg"])
def gzip_stream(ctx: Ctx) -> None:
    """A G3 stream gzip-compressed by a proxy, flushed per frame."""
    ctx.send_stream(g3_frames(md(data_url("green_jpeg"))), SSE_GO, gzip=True)


@scenario("tiny_chunks", ["pink_png"])
def tiny_chunks(ctx: Ctx) -> None:
    """A CRLF stream with non-ASCII alt text and U+2028, written in 7-byte chunks."""
    cid = g16_id()
    content = "好的\u2028这是你要的图片：\n" + md(data_url("pink_png"), "图片 ✓")
    chunks = [g16_chunk(cid, {"role": "assistant", "content": ""}, finish=None),
              g16_chunk(cid, {"content": content}, finish=None),
              g16_chunk(cid, {}, finish="stop", usage=True)]
    body = b"".join(sse_frame(c, eol="\r\n") for c in chunks) + sse_frame("[DONE]", eol="\r\n")
    ctx.send_stream([body], SSE, chunk_size=7)


# --------------------------------------------------------------------------- responses api


def official_image_item(status: str, result: str | None) -> dict:
    """Build an official image_generation_call output item."""
    item: dict[str, Any] = {"id": "ig_0894" + "a1" * 12, "type": "image_generation_call", "status": status}
    if result is not None:
        item.update(background="opaque", output_format="png", quality="low", size="1024x1024",
                    revised_prompt="A red fox sitting in fresh snow", result=result)
    return item


def official_message_item(status: str, text: str) -> dict:
    """Build an official assistant message output item."""
    content = [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}] if text else []
    return {"id": "msg_0894" + "b2" * 12, "type": "message", "status": status, "content": content,
            "role": "assistant"}


def official_response(status: str, output: list) -> dict:
    """Build an official Response object."""
    usage = {"input_tokens": 2329, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1531,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 3860}
    return {"id": "resp_0894" + "c3" * 12, "object": "response", "created_at": CREATED, "status": status,
            "background": False, "error": None, "incomplete_details": None, "model": "gpt-5",
            "output": output, "parallel_tool_calls": True,
            "tools": [{"type": "image_generation", "background": "auto", "output_format": "png",
                       "partial_images": 2, "quality": "low", "size": "1024x1024"}],
            "usage": usage if status == "completed" else None, "metadata": {}}


@scenario("responses_official_stream", ["cyan_png"])
def responses_official_stream(ctx: Ctx) -> None:
    """Official Responses image tool stream: every event, sequence numbers, no [DONE]."""
    final, text = b64(IMAGES["cyan_png"]), "Here is your image."
    ig = official_image_item("in_progress", None)["id"]
    msg = official_message_item("in_progress", "")
    done_msg = official_message_item("completed", text)
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    events = [
        {"type": "response.created", "response": official_response("in_progress", [])},
        {"type": "response.in_progress", "response": official_response("in_progress", [])},
        {"type": "response.output_item.added", "output_index": 0, "item": official_image_item("in_progress", None)},
        {"type": "response.image_generation_call.in_progress", "output_index": 0, "item_id": ig},
        {"type": "response.image_generation_call.generating", "output_index": 0, "item_id": ig},
        *({"type": "response.image_generation_call.partial_image", "output_index": 0, "item_id": ig,
           "partial_image_index": i, "partial_image_b64": b64(IMAGES[n])}
          for i, n in enumerate(("preview_a_png", "preview_b_png"))),
        {"type": "response.image_generation_call.completed", "output_index": 0, "item_id": ig},
        {"type": "response.output_item.done", "output_index": 0, "item": official_image_item("completed", final)},
        {"type": "response.output_item.added", "output_index": 1, "item": msg},
        {"type": "response.content_part.added", "item_id": msg["id"], "output_index": 1, "content_index": 0,
         "part": part},
        {"type": "response.output_text.delta", "item_id": msg["id"], "output_index": 1, "content_index": 0,
         "delta": text, "logprobs": []},
        {"type": "response.output_text.done", "item_id": msg["id"], "output_index": 1, "content_index": 0,
         "text": text, "logprobs": []},
        {"type": "response.content_part.done", "item_id": msg["id"], "output_index": 1, "content_index": 0,
         "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 1, "item": done_msg},
        # A real capture showed "generating" on an item that already had its result.
        {"type": "response.completed",
         "response": official_response("completed", [official_image_item("generating", final), done_msg])},
    ]
    frames = []
    for seq, event in enumerate(events):
        event = {"type": event["type"], "sequence_number": seq, **event}
        frames.append(sse_frame(compact_json(event), event=event["type"]))
    ctx.send_stream(frames)


@scenario("responses_official_json", ["cyan_png"])
def responses_official_json(ctx: Ctx) -> None:
    """Official non-stream Response with an image_generation_call result and a message."""
    output = [official_image_item("completed", b64(IMAGES["cyan_png"])),
              official_message_item("completed", "Here is your image.")]
    ctx.send_json(200, compact_json(official_response("completed", output)))


def gateway_response_events(text: str, model: str) -> list[dict]:
    """Return grok2api Responses events carrying image text in output_text deltas."""
    rid, mid = "resp_" + secrets.token_hex(12), "msg_" + secrets.token_hex(12)
    part = {"type": "output_text", "text": "", "annotations": []}
    item = {"id": mid, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    done_item = {**item, "status": "completed", "content": [{**part, "text": text}]}
    head = {"id": rid, "object": "response", "created_at": CREATED, "model": model}
    where = {"item_id": mid, "output_index": 0, "content_index": 0}
    return [
        {"type": "response.created", "response": {**head, "status": "in_progress", "output": []}},
        {"type": "response.in_progress", "response": {**head, "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
        {"type": "response.output_text.delta", **where, "delta": text},
        {"type": "response.output_text.done", **where, "text": text},
        {"type": "response.content_part.done", **where, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": "response.completed", "response": {**head, "status": "completed", "output": [done_item],
                                                    "usage": {"input_tokens": 3, "output_tokens": 18,
                                                              "total_tokens": 21}}},
    ]


@scenario("responses_g2_stream", ["blue_webp"])
def responses_g2_stream(ctx: Ctx) -> None:
    """G2 Responses stream: markdown URL in output_text.delta, no sequence_number, trailing [DONE]."""
    events = gateway_response_events(md(ctx.abs(g2_path("blue_webp"))), M2)
    ctx.send_stream([sse_frame(compact_json(e), event=e["type"]) for e in events] + [DONE])


@scenario("responses_g3_stream", ["navy_png"])
def responses_g3_stream(ctx: Ctx) -> None:
    """G3 Responses stream: response_id on events, a keepalive, data URL delta, no [DONE]."""
    events = gateway_response_events(md(data_url("navy_png")), M3)
    rid = events[0]["response"]["id"]
    frames = [sse_frame(go_json({**e, "response_id": rid}), event=e["type"]) for e in events]
    frames.insert(3, sse_frame(go_json({"type": "keepalive", "sequence_number": 3}), event="keepalive"))
    ctx.send_stream(frames, SSE_GO)


# --------------------------------------------------------------------------- images api


@scenario("images_official_json", ["red_png"])
def images_official_json(ctx: Ctx) -> None:
    """Official images JSON with b64_json and the gpt-image extras."""
    usage = {"input_tokens": 50, "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
             "output_tokens": 272, "total_tokens": 322}
    ctx.send_json(200, compact_json({"created": CREATED, "data": [{"b64_json": b64(IMAGES["red_png"])}],
                                     "background": "opaque", "output_format": "png", "quality": "low",
                                     "size": "1024x1024", "usage": usage}))


@scenario("images_g16_json_padded", ["green_jpeg"])
def images_g16_json_padded(ctx: Ctx) -> None:
    """G1.6 images JSON for n=2 with only one image: padded with the literal "error"."""
    data = [{"url": ctx.abs(g16_user_path("green_jpeg"))}, {"url": "error"}]
    ctx.send_json(200, compact_json({"created": CREATED, "data": data, "usage": G16_USAGE}))


def g3_images_json(ctx: Ctx, name: str) -> str:
    """Build G3 images JSON with one URL (Go encoding)."""
    return go_json({"created": CREATED, "data": [{"mime_type": mime_of(name), "revised_prompt": "",
                                                  "url": ctx.abs(g3_path(name))}]})


@scenario("images_g3_json", ["magenta_jpeg"])
def images_g3_json(ctx: Ctx) -> None:
    """G3 images JSON: mime_type, revised_prompt, url to /v1/media/images/img_…."""
    ctx.send_json(200, g3_images_json(ctx, "magenta_jpeg"))


@scenario("images_g3_stream", ["orange_jpeg"])
def images_g3_stream(ctx: Ctx) -> None:
    """G3 images stream: partial then completed, official names, no [DONE]."""
    kind = "image_edit" if ctx.endpoint == "/v1/images/edits" else "image_generation"
    common = {"background": "auto", "quality": "auto", "size": "1024x1024"}
    partial = {**common, "b64_json": b64(IMAGES["preview_a_png"]), "created_at": CREATED, "output_format": "png",
               "partial_image_index": 0, "type": f"{kind}.partial_image"}
    completed = {**common, "b64_json": b64(IMAGES["orange_jpeg"]), "created_at": CREATED + 10,
                 "output_format": "jpeg", "type": f"{kind}.completed"}
    if kind == "image_edit":
        completed["usage"] = ZERO_IMAGE_USAGE
    ctx.send_stream([sse_frame(go_json(e), event=e["type"]) for e in (partial, completed)], SSE_GO)


@scenario("images_g16_stream_url", ["brown_jpeg"])
def images_g16_stream_url(ctx: Ctx) -> None:
    """G1.6 images stream, app-chat path: empty partials with progress, then a final url."""
    image_id = image_event_id("brown_jpeg")
    frames = []
    for i, (stage, progress) in enumerate((("preview", 33), ("medium", 66))):
        partial = {"type": "image_generation.partial_image", "url": "", "created_at": CREATED,
                   "size": "1024x1024", "index": 0, "partial_image_index": i, "image_id": image_id,
                   "stage": stage, "progress": progress}
        frames.append(sse_frame(compact_json(partial), event=partial["type"]))
    completed = {"type": "image_generation.completed", "url": ctx.abs(g16_final_path("brown_jpeg")),
                 "created_at": CREATED + 10, "size": "1024x1024", "index": 0, "image_id": image_id,
                 "stage": "final", "usage": G16_USAGE}
    frames.append(sse_frame(compact_json(completed), event=completed["type"]))
    ctx.send_stream(frames)


# --------------------------------------------------------------------------- edits validation


def g16_error(message: str, type_: str, code: str | None, param: str | None = None) -> str:
    """Build a G1.6 error body (message, type, param, code)."""
    return compact_json({"error": {"message": message, "type": type_, "param": param, "code": code}})


def g3_error(message: str, type_: str, code: str | None = None, param: bool = False) -> str:
    """Build a G3 error body (sorted keys; param null only where G3 sends it)."""
    body: dict[str, Any] = {"message": message, "type": type_}
    if code:
        body["code"] = code
    if param:
        body["param"] = None
    return go_json({"error": body})


@scenario("edits_g16_multipart", ["gray_jpeg"])
def edits_g16_multipart(ctx: Ctx) -> None:
    """G1.6 edits: multipart with file field `image` only (`image[]` fails validation)."""
    form = ctx.req.form
    if form is None:
        return ctx.send_json(400, g16_error("Request body must be multipart/form-data", "invalid_request_error",
                                            "invalid_request", None))
    if "image" not in form or "image[]" in form:
        return ctx.send_json(400, g16_error("Field required: image", "invalid_request_error", "missing_image",
                                            "image"))
    if "prompt" not in form:
        return ctx.send_json(400, g16_error("Field required: prompt", "invalid_request_error", "missing_prompt",
                                            "prompt"))
    data = [{"url": ctx.abs(g16_user_path("gray_jpeg"))}]
    ctx.send_json(200, compact_json({"created": CREATED, "data": data, "usage": G16_USAGE}))


@scenario("edits_g2_multipart", ["lime_png"])
def edits_g2_multipart(ctx: Ctx) -> None:
    """G2 edits: multipart with field `image[]` only (plain `image` → FastAPI-style 400)."""
    form = ctx.req.form or {}
    if "image[]" not in form:
        detail = [{"type": "missing", "loc": ["body", "image[]"], "msg": "Field required", "input": None}]
        return ctx.send_json(400, compact_json({"detail": detail}))
    if "mask" in form:
        return ctx.send_json(400, compact_json({"error": {"message": "mask is not supported",
                                                          "type": "invalid_request_error",
                                                          "code": "unsupported_parameter"}}))
    ctx.send_json(200, compact_json({"created": CREATED, "data": [{"url": ctx.abs(g2_path("lime_png"))}]}))


@scenario("edits_g3_json", ["olive_jpeg"])
def edits_g3_json(ctx: Ctx) -> None:
    """G3 edits: application/json with `images:[{"url":"data:…"}]` only (multipart → 415)."""
    ctype = ctx.req.headers.get("content-type", "").lower()
    if not ctype.startswith("application/json"):
        return ctx.send_json(415, g3_error("请求体必须是 application/json", "invalid_request_error",
                                           "unsupported_media_type", param=True))
    images = ctx.req.json.get("images") if isinstance(ctx.req.json, dict) else None
    if not isinstance(images, list) or not 1 <= len(images) <= 8 or not all(
            isinstance(i, dict) and str(i.get("url", "")).startswith("data:") for i in images):
        return ctx.send_json(400, g3_error("images 必须包含 1-8 张图片", "invalid_request_error", "invalid_image",
                                           param=True))
    ctx.send_json(200, g3_images_json(ctx, "olive_jpeg"))


# --------------------------------------------------------------------------- http errors


def _fixed_error(name: str, status: int, body: str, headers: tuple = ()) -> None:
    """Register a scenario that always answers one HTTP error (also on GET /v1/models)."""

    def handler(ctx: Ctx) -> None:
        ctx.send_json(status, body, headers)

    handler.__doc__ = f"Answer HTTP {status} ({name})."
    scenario(name, models_error=True)(handler)


_fixed_error("err_401_g16", 401, g16_error("Invalid authentication token", "authentication_error",
                                           "invalid_api_key"))
_fixed_error("err_401_g2", 401, compact_json({"detail": "Missing or invalid Authorization header."}),
             (("WWW-Authenticate", "Bearer"),))
_fixed_error("err_403_g2", 403, compact_json({"detail": "Invalid API key."}))
_fixed_error("err_400_g16", 400, g16_error("n must be between 1 and 2 when stream=true", "invalid_request_error",
                                           "invalid_n", "image_config.n"))
_fixed_error("err_429_g2", 429, compact_json({"error": {"message": "No available accounts for image generation",
                                                        "type": "rate_limit_exceeded",
                                                        "code": "rate_limit_exceeded"}}))
_fixed_error("err_502_g16", 502, g16_error("Upstream service error: 502 Bad Gateway", "server_error",
                                           "upstream_error"))
_fixed_error("err_503_g3", 503, g3_error("上游服务暂时不可用，请稍后重试", "server_error", "upstream_unavailable"),
             (("Retry-After", "1"),))
_fixed_error("err_400_g3_provider", 400, g3_error("Image generation failed: the requested size is not supported",
                                                  "invalid_request_error"))


@scenario("err_text_plain_500", models_error=True)
def err_text_plain_500(ctx: Ctx) -> None:
    """A proxy's plain-text 500."""
    ctx.send(500, b"Internal Server Error", "text/plain; charset=utf-8")


_STATUS_TYPES = {401: "authentication_error", 403: "authentication_error", 429: "rate_limit_error"}


def _then_images(options: dict[str, str]) -> list[bytes]:
    """Return what fail_then_ok delivers once it succeeds."""
    return expected_images(options.get("then", "g3_stream_dataurl"))


@scenario("fail_then_ok", _then_images)
def fail_then_ok(ctx: Ctx) -> None:
    """Fail the first `times` requests to this exact segment with `status`, then act as `then`."""
    status, times = int(ctx.opt("status", 429)), int(ctx.opt("times", 1))
    if ctx.fake._bump(ctx.segment) < times:
        headers = [("Retry-After", ctx.opts["retry_after"])] if "retry_after" in ctx.opts else []
        if status == 429:
            body = g16_error("No available tokens. Please try again later.", "rate_limit_error",
                             "rate_limit_exceeded")
        else:
            type_ = _STATUS_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
            body = g3_error(f"上游返回错误 (HTTP {status})", type_, "upstream_unavailable")
        return ctx.send_json(status, body, headers)
    then = ctx.opts.get("then", "g3_stream_dataurl")
    SCENARIOS[then].handler(dataclasses.replace(ctx, name=then, opts={}))


# --------------------------------------------------------------------------- in-stream errors


@scenario("instream_error_g16")
def instream_error_g16(ctx: Ctx) -> None:
    """G1.6: HTTP 200, then `event: error` with a rate-limit error, then [DONE]."""
    error = {"error": {"message": "No available tokens. Please try again later.", "type": "rate_limit_error",
                       "code": "rate_limit_exceeded"}}
    ctx.send_stream([sse_frame(compact_json(error), event="error"), DONE])


@scenario("instream_error_g2")
def instream_error_g2(ctx: Ctx) -> None:
    """G2: HTTP 200, then `event: error` (type upstream_error, no code), then [DONE]."""
    error = {"error": {"message": "Upstream returned 502 while generating the image", "type": "upstream_error"}}
    ctx.send_stream([sse_frame(compact_json(error), event="error"), DONE])


@scenario("instream_error_g3")
def instream_error_g3(ctx: Ctx) -> None:
    """G3 chat: a `"type":"error"` frame without an event line, then [DONE]."""
    error = {"error": {"code": "upstream_stream_interrupted", "message": "上游流式响应中断", "type": "server_error"},
             "type": "error"}
    ctx.send_stream([sse_frame(go_json(error)), DONE], SSE_GO)


@scenario("responses_failed_g3")
def responses_failed_g3(ctx: Ctx) -> None:
    """G3 Responses: response.created, then `event: response.failed` (status failed)."""
    rid = "resp_" + secrets.token_hex(12)
    created = {"type": "response.created", "response_id": rid,
               "response": {"id": rid, "object": "response", "created_at": CREATED, "model": M3,
                            "status": "in_progress", "output": []}}
    failed = {"type": "response.failed", "response_id": rid,
              "response": {"id": rid, "status": "failed",
                           "error": {"code": "image_generation_incomplete", "message": "上游仅返回 0/1 张可用图片"}}}
    ctx.send_stream([sse_frame(go_json(e), event=e["type"]) for e in (created, failed)], SSE_GO)


@scenario("g1_error_text")
def g1_error_text(ctx: Ctx) -> None:
    """G1: the error arrives as content `Error: …` with finish_reason stop, then [DONE]."""
    message = "Error: Request failed, status code 429: Too many requests, please try again later."
    ctx.send_stream([sse_frame(g1_chunk(message, 0, "stop")), DONE])


@scenario("refusal_text")
def refusal_text(ctx: Ctx) -> None:
    """A text-only refusal, streamed only when the request asked for a stream."""
    if not ctx.stream_flag(False):
        return ctx.send_json(200, g16_completion(REFUSAL, "grok-4"))
    cid = g16_id()
    chunks = [g16_chunk(cid, {"role": "assistant", "content": ""}, finish=None, model="grok-4"),
              g16_chunk(cid, {"content": REFUSAL}, finish=None, model="grok-4"),
              g16_chunk(cid, {}, finish="stop", model="grok-4")]
    ctx.send_stream([sse_frame(c) for c in chunks] + [DONE])


PICKY_REFUSAL = "I can't help with that image."


def _picky_images(options: dict[str, str]) -> list[bytes]:
    """Return what picky delivers when it does not refuse: one image (`image=NAME`, default orange_jpeg)."""
    return [IMAGES[options.get("image", "orange_jpeg")]]


@scenario("picky", _picky_images, sources=True)
def picky(ctx: Ctx) -> None:
    """G3 stream with one data URL, but the first call for every third distinct source is refused.

    Sources are numbered by first arrival (the hash of the uploaded image, GET /v1/models aside),
    counting calls a `key=` check turned away; the refusal is a plain 200 chat.completion with text
    and no image, and only that source's first call gets it, so a retry succeeds. `every=N` changes 3.
    """
    order, before = ctx.source or (0, 0)
    every = int(ctx.opt("every", 3))
    if before == 0 and order % every == every - 1:
        return ctx.send_json(200, g3_completion(PICKY_REFUSAL))
    ctx.send_stream(g3_frames(md(data_url(ctx.opts.get("image", "orange_jpeg")))), SSE_GO)


# --------------------------------------------------------------------------- connection faults


@scenario("reset_midstream")
def reset_midstream(ctx: Ctx) -> None:
    """Send headers and two frames (the second a truncated data URL), then reset the TCP connection."""
    cid = g3_id()
    writer = ctx.stream(SSE_GO)
    writer.write(sse_frame(g3_chunk(cid, {"role": "assistant"})))
    writer.write(sse_frame(g3_chunk(cid, {"content": "![image](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA"})))
    if not ctx.wait(0.1):  # let the frames reach the client before the RST discards anything unsent
        ctx.reset_connection()


@scenario("slow_headers", ["orange_jpeg", "red_png"])
def slow_headers(ctx: Ctx) -> None:
    """Wait `s` seconds (default 2) before any byte, then answer like g3_stream_dataurl."""
    if not ctx.wait(ctx.opt("s", 2.0)):
        g3_stream_dataurl(ctx)


@scenario("stall")
def stall(ctx: Ctx) -> None:
    """Send headers and a role chunk, then nothing until the client disconnects (cap 120 s)."""
    writer = ctx.stream(SSE_GO)
    writer.write(sse_frame(g3_chunk(g3_id(), {"role": "assistant"})))
    ctx.wait_for_disconnect(120.0)


@scenario("latency", ["gradient512_png"])
def latency(ctx: Ctx) -> None:
    """Sleep `s` seconds (default 0.5), then answer one 512x512 data URL (stream unless stream=false)."""
    if not ctx.wait(ctx.opt("s", 0.5)):
        answer_g3(ctx, md(data_url("gradient512_png")))


@scenario("garbage_dataurl")
def garbage_dataurl(ctx: Ctx) -> None:
    """A data URL whose base64 decodes to random non-image bytes."""
    junk = random.Random(SEED + 4).randbytes(3000)
    answer_g3(ctx, md("data:image/png;base64," + b64(junk)))


@scenario("html_url")
def html_url(ctx: Ctx) -> None:
    """A markdown image pointing at an HTML page."""
    answer_g3(ctx, md(ctx.abs("/files/html")))


@scenario("huge_url")
def huge_url(ctx: Ctx) -> None:
    """A markdown image pointing at an 80 MiB never-valid image."""
    answer_g3(ctx, md(ctx.abs("/files/huge")))


@scenario("redirect_url", ["purple_png"])
def redirect_url(ctx: Ctx) -> None:
    """A markdown image pointing at a 302 that leads to a real image."""
    answer_g3(ctx, md(ctx.abs("/files/redirect?to=" + quote(ctx.abs(g3_path("purple_png")), safe=""))))


@scenario("foreign_url", ["purple_png"])
def foreign_url(ctx: Ctx) -> None:
    """A markdown image on another private host (127.0.0.2), as grok2api's app_url may say."""
    answer_g3(ctx, md(ctx.abs(g3_path("purple_png")).replace("127.0.0.1", "127.0.0.2", 1)))


@scenario("mixed_good_bad", ["teal_webp"])
def mixed_good_bad(ctx: Ctx) -> None:
    """One real image and one link to an HTML page."""
    answer_g3(ctx, "\n\n".join([md(ctx.abs("/files/html")), md(data_url("teal_webp"))]))


@scenario("dup_images", ["teal_webp"])
def dup_images(ctx: Ctx) -> None:
    """The same image as a URL, again as a data URL, and the URL once more."""
    url = md(ctx.abs(g3_path("teal_webp")))
    answer_g3(ctx, "\n\n".join([url, md(data_url("teal_webp")), url]))


_oversize_lock = threading.Lock()
_oversize_frame: list[bytes] = []


def oversize_frame() -> bytes:
    """Return one ~64 KiB G3 frame of base64-looking content (built once)."""
    with _oversize_lock:
        if not _oversize_frame:
            filler = b64(random.Random(SEED + 5).randbytes(48 * 1024 - 200))
            _oversize_frame.append(sse_frame(g3_chunk("chatcmpl_" + "0" * 32, {"content": filler})))
        return _oversize_frame[0]


@scenario("oversize_stream")
def oversize_stream(ctx: Ctx) -> None:
    """Send an endless data URL in 64 KiB frames until the client leaves or 300 MB went out."""
    cid, limit = g3_id(), 300 * 1024 * 1024
    writer = ctx.stream(SSE_GO)
    writer.write(sse_frame(g3_chunk(cid, {"role": "assistant"})))
    writer.write(sse_frame(g3_chunk(cid, {"content": "![image](data:image/png;base64,iVBORw0KGgo"})))
    frame = oversize_frame()
    while writer.sent < limit and not ctx.fake._stop.is_set():
        writer.write(frame)
    writer.close()


_frames_lock = threading.Lock()
_big_frames: dict[float, list[bytes]] = {}


def big_frames(mb: float) -> list[bytes]:
    """Return a G3 stream whose content frame is one ~mb MiB data URL line (built once per size)."""
    with _frames_lock:
        if mb not in _big_frames:
            content = md("data:image/png;base64," + b64(big_png(mb)))
            _big_frames[mb] = g3_frames(content)
        return _big_frames[mb]


@scenario("big_dataurl", lambda options: [big_png(float(options.get("mb", 24)))])
def big_dataurl(ctx: Ctx) -> None:
    """One single-line data URL of about `mb` MiB (default 24) of a real PNG, in 16 KiB chunks."""
    ctx.send_stream(big_frames(ctx.opt("mb", 24.0)), SSE_GO, chunk_size=16 * 1024)


# --------------------------------------------------------------------------- bench: throughput


_photo_lock = threading.Lock()
_photos: dict[tuple[int, int, str], bytes] = {}
_answer_numbers = itertools.count(1)


def photo(side: int, seed: int = SEED, fmt: str = "JPEG") -> bytes:
    """Return a photo-like side×side image (gradient + blurred noise), encoded as PNG or JPEG q90 (cached).

    Sizes: PNG ~25 KB at 128, ~390 KB at 512; JPEG ~15 KB at 256, ~58 KB at 512.
    """
    key = (side, seed, fmt)
    with _photo_lock:
        if key not in _photos:
            ramp = Image.linear_gradient("L").resize((side, side))
            smooth = Image.merge("RGB", (ramp, ramp.rotate(90), ramp.rotate(180)))
            noise = Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3))
            image = Image.blend(smooth, noise.filter(ImageFilter.GaussianBlur(1)), 0.35)
            out = io.BytesIO()
            image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            _photos[key] = out.getvalue()
        return _photos[key]


def with_comment(jpeg: bytes, text: str) -> bytes:
    """Return the JPEG with a COM segment after SOI: other bytes (and SHA-256), same picture, no re-encode."""
    note = text.encode("ascii")
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(note) + 2) + note + jpeg[2:]


@scenario("latency_jpeg", lambda options: [] if options.get("unique", "0") != "0"
          else [photo(int(options.get("side", 256)))])
def latency_jpeg(ctx: Ctx) -> None:
    """Sleep `s` seconds (default 0.5), then answer one side×side (default 256) JPEG data URL, G3 stream.

    `unique=1` makes every answer's bytes distinct (a numbered JPEG comment), as real results are,
    so a client's content-addressed cache writes each one; the expected-image list is then empty.
    """
    if ctx.wait(ctx.opt("s", 0.5)):
        return
    jpeg = photo(int(ctx.opt("side", 256)))
    if ctx.opts.get("unique", "0") != "0":
        jpeg = with_comment(jpeg, f"answer {next(_answer_numbers)}")
    answer_g3(ctx, md(f"data:image/jpeg;base64,{b64(jpeg)}"))


# --------------------------------------------------------------------------- reliability and hostile answers


# What `chaos` can do to one call, with its weight and whether the console must retry it.
# Rate limits are rarer than the rest: each one holds the whole run back (the run's throttle).
CHAOS_FAULTS: dict[str, tuple[int, bool]] = {
    "ok": (50, False),
    "429_retry_after": (3, True), "429": (1, True), "instream_transient": (1, True),
    "500": (4, True), "502": (3, True), "503": (3, True), "reset": (4, True), "stall": (3, True),
    "zero_events": (4, True),  # nothing sent at all: a broken connection, retried
    "instream_fatal": (4, False), "garbage": (5, False), "empty": (4, False),
    "400": (4, False),
}
_calls_lock = threading.Lock()
CALL_LOG: dict[str, list[dict[str, Any]]] = {}  # segment -> one entry per call, in arrival order


def chaos_fault(seed: str, digest: str, call: int) -> str:
    """Return the fault `chaos` plays for a source's call number `call` (0-based): seeded, order-independent."""
    rng = random.Random(f"{seed}/{digest}/{call}")
    names = list(CHAOS_FAULTS)
    return rng.choices(names, weights=[CHAOS_FAULTS[n][0] for n in names])[0]


def call_log(segment: str) -> list[dict[str, Any]]:
    """Return a copy of the calls `chaos` or `paid` answered under `segment`: {"digest", "call", "fault", "at"} each."""
    with _calls_lock:
        return [dict(entry) for entry in CALL_LOG.get(segment, [])]


def _log_call(ctx: Ctx, fault: str) -> tuple[str, int]:
    """Note a call in CALL_LOG; return the source's digest and how many calls it had before."""
    from testkit.fake_upstream import source_digest

    digest = source_digest(ctx.req)
    before = (ctx.source or (0, 0))[1]
    with _calls_lock:
        CALL_LOG.setdefault(ctx.segment, []).append({"digest": digest, "call": before, "fault": fault,
                                                     "at": ctx.req.at})
    return digest, before


@scenario("chaos", lambda options: [IMAGES["orange_jpeg"]], sources=True)
def chaos(ctx: Ctx) -> None:
    """Play a seeded random fault per call (CHAOS_FAULTS): 429 with and without Retry-After, 5xx, resets,
    stalls, in-stream errors, garbage images, empty answers, zero-event streams, 400s, or a good image.

    The fault depends only on `seed`, the source and how many calls it had before, so a run gets
    the same faults whatever order its tasks go in. `ra` is the Retry-After value (default 0.2).
    """
    from testkit.fake_upstream import source_digest

    before = (ctx.source or (0, 0))[1]
    fault = chaos_fault(ctx.opts.get("seed", "0"), source_digest(ctx.req), before)
    _log_call(ctx, fault)
    _CHAOS_PLAYS[fault](ctx)


@scenario("paid", lambda options: [], sources=True)
def paid(ctx: Ctx) -> None:
    """Every call costs money: log it per source (CALL_LOG), wait `s` (default 0.3), answer an image of its own.

    The image is a swatch marked with the source's order of first arrival, so each task's result
    is distinct; the log tells a test how often each source was paid for.
    """
    _log_call(ctx, "ok")
    if ctx.wait(ctx.opt("s", 0.3)):
        return
    order = (ctx.source or (0, 0))[0]
    image = _paid_image(order)
    answer_g3(ctx, md("data:image/png;base64," + b64(image)))


def _paid_image(order: int) -> bytes:
    out = io.BytesIO()
    picture = Image.new("RGB", (48, 32), (order * 37 % 256, order * 91 % 256, 120))
    picture.putpixel((order % 48, (order // 48) % 32), (255, 255, 255))
    picture.save(out, "PNG")
    return out.getvalue()


def _chaos_status(status: int, headers: tuple = ()) -> Callable[[Ctx], None]:
    def play(ctx: Ctx) -> None:
        type_ = "rate_limit_error" if status == 429 else ("server_error" if status >= 500 else "invalid_request_error")
        ctx.send_json(status, g3_error(f"chaos: HTTP {status}", type_, "chaos_" + str(status)), headers)
    return play


def _chaos_retry_after(ctx: Ctx) -> None:
    _chaos_status(429, (("Retry-After", ctx.opts.get("ra", "0.2")),))(ctx)


def _chaos_fatal_stream(ctx: Ctx) -> None:
    error = {"error": {"message": "chaos: the prompt was rejected by the content policy",
                       "type": "invalid_request_error", "code": "content_policy_violation"}}
    ctx.send_stream([sse_frame(compact_json(error), event="error"), DONE])


def _chaos_empty(ctx: Ctx) -> None:
    ctx.send_json(200, g3_completion(""))


def _chaos_zero_events(ctx: Ctx) -> None:
    ctx.send_stream([], SSE_GO)


def _chaos_ok(ctx: Ctx) -> None:
    answer_g3(ctx, md(data_url("orange_jpeg")))


_CHAOS_PLAYS: dict[str, Callable[[Ctx], None]] = {
    "ok": _chaos_ok, "429_retry_after": _chaos_retry_after, "429": _chaos_status(429), "500": _chaos_status(500),
    "502": _chaos_status(502), "503": _chaos_status(503), "reset": reset_midstream, "stall": stall,
    "instream_transient": instream_error_g16, "instream_fatal": _chaos_fatal_stream,
    "garbage": garbage_dataurl, "empty": _chaos_empty, "zero_events": _chaos_zero_events,
    "400": _chaos_status(400),
}


@scenario("link_to", ["purple_png"])
def link_to(ctx: Ctx) -> None:
    """A markdown image on `http://<ip>:<port>/<path>` (defaults: 127.0.0.2, this fake's port, the G3 purple path).

    For SSRF tests: the address is any loopback one a test serves (a canary), given as options;
    `via=redirect` links to this fake's 302 to it instead, so only a followed redirect reaches it;
    `slow=red_png` links to this fake's slow copy of that image (`/files/slow/red_png`).
    """
    ip = ctx.opts.get("ip", "127.0.0.2")
    port = ctx.opts.get("port", str(ctx.fake.port))
    path = f"/files/slow/{ctx.opts['slow']}" if "slow" in ctx.opts else g3_path("purple_png")
    target = f"http://{ip}:{port}{path}"
    if ctx.opts.get("via") == "redirect":  # this fake's own 302, so the first hop is the API's host
        target = ctx.abs("/files/redirect?to=" + quote(target, safe=""))
    answer_g3(ctx, md(target))


@scenario("many_links")
def many_links(ctx: Ctx) -> None:
    """An answer with `n` (default 10000) markdown images, each a distinct URL on this fake (the same picture)."""
    count = int(ctx.opt("n", 10000))
    base = ctx.abs(g3_path("purple_png"))
    answer_g3(ctx, "\n".join(md(f"{base}?copy={number}") for number in range(count)))


_bomb_lock = threading.Lock()
_bombs: list[bytes] = []


def bomb_png(side: int = 20000) -> bytes:
    """Return a 1-bit PNG of side×side pixels (400 M at the default) that is ~50 KB: a decompression bomb."""
    import zlib

    with _bomb_lock:
        if not _bombs:
            row = b"\x00" * (1 + (side + 7) // 8)
            packer = zlib.compressobj(9)
            body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

            def chunk(kind: bytes, data: bytes) -> bytes:
                return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

            header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
            _bombs.append(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
        return _bombs[0]


@scenario("bomb_result")
def bomb_result(ctx: Ctx) -> None:
    """A data URL of a decompression bomb (400 M pixels in ~50 KB)."""
    answer_g3(ctx, md("data:image/png;base64," + b64(bomb_png())))


@scenario("truncated_result")
def truncated_result(ctx: Ctx) -> None:
    """A data URL of a PNG cut off in the middle of its pixel data."""
    whole = IMAGES["gradient512_png"]
    answer_g3(ctx, md("data:image/png;base64," + b64(whole[: len(whole) // 2])))


@scenario("echo_key", models_error=True)
def echo_key(ctx: Ctx) -> None:
    """A careless gateway: a 401 whose message repeats the Authorization header it got, key and all."""
    header = ctx.req.headers.get("authorization", "")
    ctx.send_json(401, compact_json({"error": {"message": f"Invalid token: {header}", "type": "authentication_error",
                                               "code": "invalid_api_key"}}))


@scenario("echo_request", models_error=True)
def echo_request(ctx: Ctx) -> None:
    """A careless gateway: a 401 whose message repeats the request target and every header it got."""
    said = f"{ctx.req.method} {ctx.http.path} with {compact_json(ctx.req.headers)}"
    ctx.send_json(401, compact_json({"error": {"message": f"Not authorized: {said}", "type": "authentication_error",
                                               "code": "invalid_api_key"}}))


# --------------------------------------------------------------------------- a gateway that really edits


RESTYLE_PALETTES = (((46, 16, 84), (226, 96, 136), (255, 214, 150)),  # dusk: deep purple, pink, gold
                    ((16, 34, 72), (70, 120, 190), (250, 232, 200)))  # blue hour
RESTYLE_REFUSAL = ("Your request was rejected by the safety system. If you believe this is an error, "
                   "contact us and include the request ID.")


def _first_data_url(value: Any) -> str | None:
    """Return the first `data:` string in a JSON value (the uploaded source), depth first."""
    if isinstance(value, str):
        return value if value.startswith("data:") else None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next(filter(None, map(_first_data_url, items)), None)


def restyled(source: bytes, variant: int) -> bytes:
    """Return the source graded to a dusk palette (variant 0) or blue hour (1), blended with the original, as PNG."""
    from PIL import ImageOps

    with Image.open(io.BytesIO(source)) as opened:
        picture = opened.convert("RGB")
    dark, mid, light = RESTYLE_PALETTES[variant % len(RESTYLE_PALETTES)]
    toned = ImageOps.colorize(ImageOps.grayscale(picture), dark, light, mid)
    out = io.BytesIO()
    Image.blend(picture, toned, 0.8).filter(ImageFilter.SMOOTH).save(out, "PNG")
    return out.getvalue()


@scenario("restyle", lambda options: [], sources=True)
def restyle(ctx: Ctx) -> None:
    """Edit for real: answer `n` (default 2) recoloured versions of the uploaded source after `s` s (default 0.2).

    G3 chat stream, one data URL per version. `refuse=K` refuses the first call for the K-th distinct
    source (0-based) the way OpenAI's moderation does (400 `moderation_blocked`); a retry succeeds.
    Without a source (a text-only call) a stock photo is recoloured, as a generation. The README
    screenshot (tests/test_journeys.py) is made with it.
    """
    if ctx.wait(ctx.opt("s", 0.2)):
        return
    order, before = ctx.source or (0, 0)
    if "refuse" in ctx.opts and before == 0 and order == int(ctx.opts["refuse"]):
        error = {"message": RESTYLE_REFUSAL, "type": "image_generation_user_error", "param": None,
                 "code": "moderation_blocked"}
        return ctx.send_json(400, compact_json({"error": error}))
    import base64  # local: the rest of this module only encodes (b64)

    found = _first_data_url(ctx.req.json) if ctx.req.json is not None else None
    source = base64.b64decode(found.split(",", 1)[1]) if found else photo(256, fmt="PNG")  # no source: generate
    urls = [f"data:image/png;base64,{b64(restyled(source, variant))}" for variant in range(int(ctx.opt("n", 2)))]
    answer_g3(ctx, "\n\n".join(md(url) for url in urls))


# --------------------------------------------------------------------------- rate limits and quota


@scenario("ratelimited", _then_images, sources=True)  # sources: `then=picky` numbers them too
def ratelimited(ctx: Ctx) -> None:
    """A gateway under load, as grok2api's current line answers.

    Every `every`-th call (default 3) to this segment answers 429 `upstream_cooling` (with
    `Retry-After: retry_after` when given); after `quota_after` calls that got an image, every call
    answers 429 `upstream_quota_exhausted` with `Retry-After: 3600`. Other calls act as `then`.
    """
    if ctx.req.method != "POST":
        return SCENARIOS["g3_stream_dataurl"].handler(ctx)
    if "quota_after" in ctx.opts and ctx.fake.count(f"{ctx.segment}\0ok") >= int(ctx.opts["quota_after"]):
        body = g3_error("上游账号额度已用尽 (quota exhausted)", "rate_limit_error", "upstream_quota_exhausted")
        return ctx.send_json(429, body, [("Retry-After", "3600")])
    if ctx.fake._bump(ctx.segment) % int(ctx.opt("every", 3)) == int(ctx.opt("every", 3)) - 1:
        headers = [("Retry-After", ctx.opts["retry_after"])] if "retry_after" in ctx.opts else []
        return ctx.send_json(429, g3_error("上游冷却中，请稍后再试", "rate_limit_error", "upstream_cooling"), headers)
    ctx.fake._bump(f"{ctx.segment}\0ok")
    then = ctx.opts.get("then", "g3_stream_dataurl")
    SCENARIOS[then].handler(dataclasses.replace(ctx, name=then, opts={}))


G4_FAULTS: dict[str, tuple[int, str, str, tuple[tuple[str, str], ...]]] = {
    # kind: (status, message, code, headers) — grok2api's current line
    "not_submitted": (503, "上游请求未提交，可安全重试", "upstream_not_submitted", ()),
    "not_submitted_header": (503, "upstream busy", "upstream_error",
                             (("X-Upstream-Request-Disposition", "not-submitted"),)),
    "cooling": (429, "上游冷却中", "upstream_cooling", (("Retry-After", "7"),)),
    "model_cooling": (429, "模型冷却中", "upstream_model_cooling", (("Retry-After", "5"),)),
    "quota": (429, "上游账号额度已用尽", "upstream_quota_exhausted", (("Retry-After", "3600"),)),
    "unavailable": (503, "上游服务暂不可用", "upstream_unavailable", ()),
    "edit_incomplete": (502, "上游未返回可用的编辑图片", "image_edit_incomplete", ()),
}


@scenario("g4_fault", _then_images)
def g4_fault(ctx: Ctx) -> None:
    """grok2api's current faults: the first `times` calls (default 1) play `kind`, then act as `then`.

    Kinds: G4_FAULTS, plus `zero_events` (HTTP 200 SSE that closes at once) and `huge_500` (a
    LiteLLM-style 500 whose 605 KB JSON body embeds a whole answer after its message).
    """
    if ctx.req.method == "POST" and ctx.fake._bump(ctx.segment) < int(ctx.opt("times", 1)):
        kind = ctx.opts.get("kind", "not_submitted")
        if kind == "zero_events":
            return ctx.send_stream([], SSE_GO)
        if kind == "huge_500":
            message = "litellm.APIConnectionError: upstream answer could not be parsed"
            body = '{"error":{"message":"%s","type":"api_connection_error","param":null,"code":"500","raw":"%s"}}' % (
                message, "A" * 605_000)
            return ctx.send_json(500, body)
        status, message, code, headers = G4_FAULTS[kind]
        type_ = "rate_limit_error" if status == 429 else "server_error"
        return ctx.send_json(status, g3_error(message, type_, code), list(headers))
    then = ctx.opts.get("then", "g3_stream_dataurl")
    SCENARIOS[then].handler(dataclasses.replace(ctx, name=then, opts={}))


# LiteLLM's router (its RouterRateLimitError): once a deployment's call fails,
# the deployment cools down and every call to its model group is refused with this text, which
# the proxy (ProxyException) turns into a 429 with this body and no Retry-After.
LITELLM_COOLDOWN = ("No deployments available for selected model, Try again in {seconds} seconds. Passed model={model}. "
                    "pre-call-checks=False, cooldown_list=['{deployment}']")
LITELLM_DEPLOYMENT = "7f4c2b9e0d1a6c3e5b8f2a4d9c1e0b7a6f3d2c1b0a9e8d7c6b5a4f3e2d1c0b9a"


def litellm_error(message: str, status: int) -> str:
    """Return the LiteLLM proxy's error body: its type and param are the string 'None', its code a string."""
    return compact_json({"error": {"message": message, "type": "None", "param": "None", "code": str(status)}})


@scenario("router_cooldown", _then_images)
def router_cooldown(ctx: Ctx) -> None:
    """A LiteLLM proxy in front of one broken deployment: a call that reaches it fails (500) and puts it in
    cooldown for `cooldown` seconds (default 5, LiteLLM's), during which every call gets LiteLLM's 429
    "No deployments available"; the next call after that reaches the deployment and fails again.

    `fails=N` makes only the first N calls that reach the deployment fail (a flaky one), later ones act
    as `then`; `limit=1` answers OpenAI's own "Rate limit reached" 429 (a true rate limit) on the
    first call instead of a 500, so its cooldown follows a rate limit, not a failure.
    """
    if ctx.req.method != "POST":
        return SCENARIOS["g3_stream_dataurl"].handler(ctx)
    seconds = ctx.opt("cooldown", 5)
    model = (ctx.req.json or {}).get("model", "gpt-image-1") if isinstance(ctx.req.json, dict) else "gpt-image-1"
    with ctx.fake._lock:
        now_ms = int(time.monotonic() * 1000)
        cooling = now_ms < ctx.fake._counters.get(f"{ctx.segment}\0cool_until", 0)
        reached = None if cooling else ctx.fake._counters.get(f"{ctx.segment}\0reached", 0)
        if reached is not None:
            ctx.fake._counters[f"{ctx.segment}\0reached"] = reached + 1
            if reached < ctx.opt("fails", float("inf")):
                ctx.fake._counters[f"{ctx.segment}\0cool_until"] = now_ms + int(seconds * 1000)
    if cooling:
        message = LITELLM_COOLDOWN.format(seconds=f"{seconds:g}", model=model, deployment=LITELLM_DEPLOYMENT)
        return ctx.send_json(429, litellm_error(message, 429))
    if reached < ctx.opt("fails", float("inf")):
        if ctx.opts.get("limit") == "1" and reached == 0:
            said = ("litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for gpt-image-1 "
                    "in organization org-test on images per minute (IPM): Limit 5, Used 5, Requested 1.")
            return ctx.send_json(429, litellm_error(said, 429))
        said = ("litellm.InternalServerError: InternalServerError: OpenAIException - The server had an error "
                "processing your request.")
        return ctx.send_json(500, litellm_error(said, 500))
    then = ctx.opts.get("then", "g3_stream_dataurl")
    SCENARIOS[then].handler(dataclasses.replace(ctx, name=then, opts={}))


# --------------------------------------------------------------------------- Gemini native and Seedream


GEMINI_MODELS = ("gemini-2.5-flash-image", "gemini-3-pro-image-preview", "gemini-2.5-flash", "text-embedding-004")
GEMINI_USAGE = {"promptTokenCount": 265, "candidatesTokenCount": 1290, "totalTokenCount": 1555,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 7}, {"modality": "IMAGE", "tokenCount": 258}]}


def google_error(status: int, word: str, message: str) -> str:
    """Build a Google API error body (`{"error": {"code", "message", "status"}}`)."""
    return compact_json({"error": {"code": status, "message": message, "status": word}})


def gemini_quota_error(per: str) -> str:
    """Google's 429 for a free tier's requests per minute or per day, as Gemini sends it (no Retry-After header)."""
    quota = "GenerateRequestsPerDayPerProjectPerModel-FreeTier" if per == "day" else \
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    return compact_json({"error": {
        "code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                     "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                     "quotaId": quota}]},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}})


def gemini_key_refused(ctx: Ctx) -> bool:
    """Answer like Google unless `x-goog-api-key` is exactly `gkey` and no Authorization came; True if refused."""
    given = ctx.req.headers.get("x-goog-api-key")
    if "authorization" in ctx.req.headers:
        ctx.send_json(401, google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. "
                                        "Expected OAuth 2 access token, login cookie or other valid authentication credential."))
    elif given is None:
        ctx.send_json(403, google_error(403, "PERMISSION_DENIED",
                                        "Method doesn't allow unregistered callers (callers without established identity). "
                                        "Please use API Key or other form of API consumer identity to call this API."))
    elif "gkey" in ctx.opts and given != ctx.opts["gkey"]:
        ctx.send_json(400, google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."))
    else:
        return False
    return True


def gemini_inputs(ctx: Ctx) -> list[bytes]:
    """Return the input images of a generateContent request (inline_data or inlineData parts), in order."""
    import base64  # local: the rest of this module only encodes (b64)

    found = []
    for content in (ctx.req.json or {}).get("contents") or []:
        for part in content.get("parts") or []:
            inline = part.get("inline_data") or part.get("inlineData")
            if isinstance(inline, dict):
                found.append(base64.b64decode(inline["data"]))
    return found


def gemini_chunk(parts: list[dict], finish: str | None = None, usage: bool = False, **extra: Any) -> str:
    """Build one GenerateContentResponse (a whole answer, or one streamed chunk), camelCase as the REST API sends."""
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    obj: dict[str, Any] = {"candidates": [candidate], **extra}
    if usage:
        obj["usageMetadata"] = GEMINI_USAGE
    obj["modelVersion"] = "gemini-2.5-flash-image"
    obj["responseId"] = "n4QfaN2kGZ6B1dkP6eKW0Ak"
    return compact_json(obj)


def gemini_answer(ctx: Ctx, chunks: list[str]) -> None:
    """Answer as Gemini does: SSE with CRLF and no [DONE] for streamGenerateContent?alt=sse, else one JSON body.

    A whole answer merges the chunks' parts into one candidate (the last chunk's finishReason).
    """
    if ctx.endpoint.endswith(":streamGenerateContent"):
        if ctx.req.query.get("alt") != "sse":
            return ctx.send_json(400, google_error(400, "INVALID_ARGUMENT", "this fake streams only with alt=sse"))
        return ctx.send_stream([sse_frame(chunk, eol="\r\n") for chunk in chunks], "text/event-stream")
    import json

    objects = [json.loads(chunk) for chunk in chunks]
    whole = objects[-1]
    if whole.get("candidates"):
        parts = [part for obj in objects for c in obj.get("candidates", []) for part in c["content"]["parts"]]
        whole["candidates"][0]["content"]["parts"] = parts
    ctx.send_json(200, compact_json(whole))


def _gemini_images(options: dict[str, str]) -> list[bytes]:
    return [] if options.get("edit") == "1" else [IMAGES["cyan_png"]]


@scenario("gemini", _gemini_images)
def gemini(ctx: Ctx) -> None:
    """Gemini native: a text part, then the image as `inlineData` (`snake=1`: `inline_data`),
    then STOP with usage; streamed as three chunks.

    `gkey=K` checks `x-goog-api-key` (Google's 400/403 otherwise); GET …/models lists Gemini models.
    `relay=md` puts the image in a text part as a markdown data URL, `relay=url` as a hosted link,
    `thought=1` sends a draft image marked `thought` first. `quota=minute` / `quota=day` answers every
    image call with Google's 429 RESOURCE_EXHAUSTED (its wait in RetryInfo, the quota in QuotaFailure). `edit=1` answers a recoloured copy of the
    first input image instead of the fixed one (a real edit, for the journeys).
    """
    if gemini_key_refused(ctx):
        return
    if ctx.req.method == "POST" and ctx.opts.get("quota") in ("minute", "day"):
        return ctx.send_json(429, gemini_quota_error(ctx.opts["quota"]))
    if ctx.req.method == "GET":
        models = [{"name": f"models/{m}", "displayName": m, "supportedGenerationMethods": ["generateContent"]}
                  for m in GEMINI_MODELS]
        return ctx.send_json(200, compact_json({"models": models}))
    if not isinstance(ctx.req.json, dict) or "contents" not in ctx.req.json:
        return ctx.send_json(400, google_error(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified"))
    inputs = gemini_inputs(ctx)
    image = restyled(inputs[0], 0) if ctx.opts.get("edit") == "1" and inputs else IMAGES["cyan_png"]
    mime = "image/png"
    relay = ctx.opts.get("relay")
    if relay == "md":
        part: dict[str, Any] = {"text": md(f"data:{mime};base64,{b64(image)}")}
    elif relay == "url":
        part = {"text": f"Here it is: {ctx.abs(g3_path('cyan_png'))}"}
    elif ctx.opts.get("snake") == "1":
        part = {"inline_data": {"mime_type": mime, "data": b64(image)}}
    else:
        part = {"inlineData": {"mimeType": mime, "data": b64(image)}}
    chunks = [gemini_chunk([{"text": "Here is the edited picture. "}])]
    if ctx.opts.get("thought") == "1":
        draft = {"inlineData": {"mimeType": "image/png", "data": b64(IMAGES["preview_a_png"])}, "thought": True}
        chunks.insert(0, gemini_chunk([{"text": "Planning the colours…", "thought": True}, draft]))
    chunks += [gemini_chunk([part]), gemini_chunk([], finish="STOP", usage=True)]
    gemini_answer(ctx, chunks)


@scenario("gemini_refusal")
def gemini_refusal(ctx: Ctx) -> None:
    """Gemini declining: `reason=block` (promptFeedback.blockReason PROHIBITED_CONTENT, no candidates) or a
    finishReason (`reason=IMAGE_SAFETY` default, SAFETY, PROHIBITED_CONTENT, NO_IMAGE) with a text part."""
    if ctx.req.method == "GET" or gemini_key_refused(ctx):
        return gemini(ctx) if ctx.req.method == "GET" else None
    reason = ctx.opts.get("reason", "IMAGE_SAFETY")
    if reason == "block":
        return gemini_answer(ctx, [compact_json({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                                                 "usageMetadata": GEMINI_USAGE, "modelVersion": "gemini-2.5-flash-image"})])
    said = "I can't create that image, as it may go against my safety guidelines."
    final = gemini_chunk([], finish=reason, usage=True)
    if reason == "IMAGE_SAFETY":
        import json

        obj = json.loads(final)
        obj["candidates"][0]["finishMessage"] = "Unable to show the generated image: it may violate the usage policy."
        final = compact_json(obj)
    gemini_answer(ctx, [gemini_chunk([{"text": said}]), final])


SEEDREAM_MODEL = "doubao-seedream-4-0-250828"
SEEDREAM_FAILED = {"code": "OutputImageSensitiveContentDetected",
                   "message": "The request failed because the output image may contain sensitive information."}


def _seedream_images(options: dict[str, str]) -> list[bytes]:
    if options.get("edit") == "1":
        return []
    count, failed = int(options.get("images", 1)), options.get("fail", "")
    return [IMAGES[name] for index, name in enumerate(("red_png", "lime_png", "navy_png")[:count])
            if failed != "all" and str(index) != failed]


@scenario("seedream", _seedream_images)
def seedream(ctx: Ctx) -> None:
    """Volcengine Ark Seedream on `/images/generations`: the inputs must come as `image`
    (a data URL string, or a list for several; `images` or multipart get Ark's 400).

    `images=N` (1–3) answers N images; `fail=K` makes image K fail (`fail=all`: every one). Streamed:
    one `image_generation.partial_succeeded` per image (a final image), `partial_failed` for a
    failed one, `image_generation.completed` with usage, `[DONE]` (`events=1` adds `event:` lines).
    Whole: `{"model", "created", "data": [...], "usage"}`. `response_format` url links to this fake.
    `edit=1` answers recoloured copies of the first input instead of the fixed images.
    """
    body = ctx.req.json if isinstance(ctx.req.json, dict) else None
    if body is None or "images" in body or (ctx.req.form is not None):
        error = {"code": "InvalidParameter", "message": "The request body must be JSON; the input image goes in `image`.",
                 "param": "image", "type": "BadRequest"}
        return ctx.send_json(400, compact_json({"error": error}))
    given = body.get("image")
    inputs = [given] if isinstance(given, str) else given if isinstance(given, list) else []
    if given is not None and (not inputs or not all(isinstance(i, str) and i.startswith("data:") for i in inputs)):
        error = {"code": "InvalidParameter", "message": "The parameter `image` specified in the request is not valid.",
                 "param": "image", "type": "BadRequest"}
        return ctx.send_json(400, compact_json({"error": error}))
    import base64  # local: the rest of this module only encodes (b64)

    count, failed = int(ctx.opt("images", 1)), ctx.opts.get("fail", "")
    if ctx.opts.get("edit") == "1" and inputs:
        source = base64.b64decode(inputs[0].split(",", 1)[1])
        pictures = [restyled(source, index) for index in range(count)]
        names: list[str | None] = [None] * count
    else:
        names = list(("red_png", "lime_png", "navy_png")[:count])
        pictures = [IMAGES[name] for name in names]
    as_url = body.get("response_format") == "url"
    items: list[dict[str, Any]] = []
    for index, (name, picture) in enumerate(zip(names, pictures)):
        if failed == "all" or str(index) == failed:
            items.append({"image_index": index, "error": SEEDREAM_FAILED})
        elif as_url and name is not None:
            items.append({"image_index": index, "url": ctx.abs(g3_path(name)), "size": "2048x2048"})
        else:
            items.append({"image_index": index, "b64_json": b64(picture), "size": "2048x2048"})
    usage = {"generated_images": sum("error" not in item for item in items), "output_tokens": 16384,
             "total_tokens": 16384}
    if not body.get("stream"):
        data = [{key: value for key, value in item.items() if key != "image_index"} for item in items]
        return ctx.send_json(200, compact_json({"model": SEEDREAM_MODEL, "created": CREATED, "data": data,
                                                "usage": usage}))
    with_events = ctx.opts.get("events") == "1"
    frames = []
    for item in items:
        kind = "image_generation.partial_failed" if "error" in item else "image_generation.partial_succeeded"
        event = {"type": kind, "model": SEEDREAM_MODEL, "created": CREATED, **item}
        frames.append(sse_frame(compact_json(event), event=kind if with_events else None))
    done = {"type": "image_generation.completed", "model": SEEDREAM_MODEL, "created": CREATED, "usage": usage}
    frames += [sse_frame(compact_json(done), event="image_generation.completed" if with_events else None), DONE]
    ctx.send_stream(frames)


# --------------------------------------------------------------------------- results that need a look (review flags)

REVIEW_KINDS = ("edit", "blank", "same", "other", "dup", "squeeze")


def review_answer(source: bytes | None, kind: str) -> bytes:
    """Return what `review_mix` answers for a source: a real edit, or one of the results the flags point at."""
    from PIL import ImageDraw

    from bench.flagset import scene

    if source is None:
        picture = scene(4242, 384, 256)
    else:
        with Image.open(io.BytesIO(source)) as opened:
            picture = opened.convert("RGB")
    size = picture.size
    if kind == "blank":
        picture = Image.new("RGB", size, (128, 128, 128))
    elif kind == "dup":  # one stock picture for every source, at the source's size
        picture = scene(777, 384, 256).resize(size)
    elif kind == "other":  # another picture for each source
        picture = scene(900 + sum(picture.resize((4, 4)).tobytes()), *size)
    elif kind != "same":  # a plausible edit: warmer, with a red disc added; "squeeze" then squeezes it
        picture = Image.merge("RGB", [band.point(lambda v, g=g: min(255, int(v * g)))
                                      for band, g in zip(picture.split(), (1.15, 1.0, 0.8))])
        width, height = size
        ImageDraw.Draw(picture).ellipse((width // 3, height // 3, width // 2, height // 2), fill=(220, 30, 30))
        if kind == "squeeze":
            picture = picture.resize((max(size), max(size) * 9 // 16 if width != height else max(size) // 2))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue()


@scenario("review_mix", lambda options: [], sources=True)
def review_mix(ctx: Ctx) -> None:
    """Answer each source with the kind `plan` gives it (`~`-separated REVIEW_KINDS, cycled by the source's
    order of first arrival; default all of them in turn), after `s` s (default 0.05), as one G3 data URL.

    With concurrency 1 the order is the tasks' order, so a test knows which task gets which kind.
    """
    import base64

    if ctx.wait(ctx.opt("s", 0.05)):
        return
    plan = ctx.opts.get("plan", "~".join(REVIEW_KINDS)).split("~")
    order = (ctx.source or (0, 0))[0]
    found = _first_data_url(ctx.req.json) if ctx.req.json is not None else None
    source = base64.b64decode(found.split(",", 1)[1]) if found else None
    answer_g3(ctx, md("data:image/jpeg;base64," + b64(review_answer(source, plan[order % len(plan)]))))


# --------------------------------------------------------------------------- what each call used and cost (spend)

OPENROUTER_MODEL = "google/gemini-2.5-flash-image"
GPT_IMAGE_USAGE = {"input_tokens": 1240, "input_tokens_details": {"text_tokens": 50, "image_tokens": 1190},
                   "output_tokens": 4160, "total_tokens": 5400}
RESPONSES_IMAGE_USAGE = {"input_tokens": 1500,
                         "input_tokens_details": {"cached_tokens": 0, "text_tokens": 310, "image_tokens": 1190},
                         "output_tokens": 1531, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 3031}


def _edited_or_stock(ctx: Ctx) -> bytes:
    """Return a recoloured copy of the request's source, or of a stock photo when it has none."""
    import base64  # local: the rest of this module only encodes (b64)

    found = _first_data_url(ctx.req.json) if ctx.req.json is not None else None
    return restyled(base64.b64decode(found.split(",", 1)[1]) if found else photo(256, fmt="PNG"), 0)


def openrouter_usage(ctx: Ctx) -> dict[str, Any]:
    """Return OpenRouter's usage object: tokens with their details, and `cost` in credits (USD)."""
    return {"prompt_tokens": int(ctx.opt("prompt", 1300)), "completion_tokens": int(ctx.opt("completion", 1290)),
            "total_tokens": int(ctx.opt("prompt", 1300)) + int(ctx.opt("completion", 1290)),
            "cost": ctx.opt("cost", 0.0387), "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "cost_details": {"upstream_inference_cost": None, "upstream_inference_prompt_cost": 0.0004,
                             "upstream_inference_completions_cost": 0.0383},
            "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": int(ctx.opt("completion", 1290))}}


@scenario("openrouter", lambda options: [], sources=True)
def openrouter(ctx: Ctx) -> None:
    """OpenRouter chat completions for an image model: the image in `message.images` (a data URL), `usage.cost` in
    the final chunk (streamed, after `: OPENROUTER PROCESSING` comments) or in the JSON answer.

    `cost=X` (default 0.0387), `prompt=N`, `completion=N` set the usage; `fail=1` makes the first call of each
    source fail mid-stream as OpenRouter does (an `error` chunk with finish_reason "error", code server_error)
    after reporting what it used, so the retry and the paid failure both count; `s` waits first (default 0).
    `nocost=1` leaves `cost` out (a gateway that reports tokens only).
    """
    if ctx.wait(ctx.opt("s", 0)):
        return
    order, before = ctx.source or (0, 0)
    usage = openrouter_usage(ctx)
    if ctx.opts.get("nocost") == "1":
        del usage["cost"], usage["cost_details"]
    cid = f"gen-{CREATED}-{secrets.token_hex(10)}"
    head = {"id": cid, "provider": "Google", "model": OPENROUTER_MODEL, "object": "chat.completion.chunk",
            "created": CREATED}
    if ctx.opts.get("fail") == "1" and before == 0:
        error = {**head, "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
                 "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}], "usage": usage}
        return ctx.send_stream([b": OPENROUTER PROCESSING\n\n", sse_frame(compact_json(error)), DONE])
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(_edited_or_stock(ctx))}"},
             "index": 0}
    if not ctx.stream_flag(False):
        message = {"role": "assistant", "content": "", "refusal": None, "reasoning": None, "images": [image]}
        return ctx.send_json(200, compact_json({**head, "object": "chat.completion", "choices": [
            {"logprobs": None, "finish_reason": "stop", "native_finish_reason": "STOP", "index": 0,
             "message": message}], "usage": usage}))
    chunks = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "images": [image]},
                                    "finish_reason": None, "native_finish_reason": None, "logprobs": None}]},
              {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": "stop", "native_finish_reason": "STOP", "logprobs": None}]},
              {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                                    "native_finish_reason": None, "logprobs": None}], "usage": usage}]
    ctx.send_stream([b": OPENROUTER PROCESSING\n\n", *(sse_frame(compact_json(c)) for c in chunks), DONE])


@scenario("litellm_cost", lambda options: [], sources=True)
def litellm_cost(ctx: Ctx) -> None:
    """A LiteLLM proxy: what the call cost in the `x-litellm-response-cost` header (`cost=X`, default 0.04), no
    usage in the body. Images endpoints answer images JSON, others a chat completion (streamed when asked)."""
    headers = [("x-litellm-response-cost", f"{ctx.opt('cost', 0.04)}"), ("x-litellm-model-id", "b0f6c3e1"),
               ("x-litellm-call-id", str(uuid.uuid4())), ("x-litellm-version", "1.74.9")]
    picture = b64(_edited_or_stock(ctx))
    if "/images/" in ctx.endpoint:
        return ctx.send_json(200, compact_json({"created": CREATED, "data": [{"b64_json": picture}]}), headers)
    content = md(f"data:image/png;base64,{picture}")
    if ctx.stream_flag(True):
        cid = g3_id()
        frames = [sse_frame(compact_json({"id": cid, "object": "chat.completion.chunk", "created": CREATED,
                                          "model": "gpt-image-1", "choices": [{"index": 0, "delta": delta,
                                                                               "finish_reason": finish}]}))
                  for delta, finish in (({"role": "assistant", "content": content}, None), ({}, "stop"))]
        return ctx.send_stream([*frames, DONE], headers=headers)
    ctx.send_json(200, compact_json({"id": g3_id(), "object": "chat.completion", "created": CREATED,
                                     "model": "gpt-image-1", "choices": [{"index": 0, "finish_reason": "stop",
                                                                          "message": {"role": "assistant",
                                                                                      "content": content}}]}),
                  headers)


@scenario("images_usage", ["red_png"])
def images_usage(ctx: Ctx) -> None:
    """OpenAI's images API for gpt-image-1 with its token usage split into text and image input tokens: JSON, or
    streamed (`stream` in the request) as a partial image then `image_edit.completed` / `image_generation.completed`
    carrying the usage."""
    if not ctx.stream_flag(False):
        return ctx.send_json(200, compact_json({"created": CREATED, "data": [{"b64_json": b64(IMAGES["red_png"])}],
                                                "background": "opaque", "output_format": "png", "quality": "low",
                                                "size": "1024x1024", "usage": GPT_IMAGE_USAGE}))
    kind = "image_edit" if ctx.endpoint == "/v1/images/edits" else "image_generation"
    partial = {"type": f"{kind}.partial_image", "b64_json": b64(IMAGES["preview_a_png"]), "created_at": CREATED,
               "size": "1024x1024", "quality": "low", "background": "opaque", "output_format": "png",
               "partial_image_index": 0}
    completed = {"type": f"{kind}.completed", "b64_json": b64(IMAGES["red_png"]), "created_at": CREATED,
                 "size": "1024x1024", "quality": "low", "background": "opaque", "output_format": "png",
                 "usage": GPT_IMAGE_USAGE}
    ctx.send_stream([sse_frame(compact_json(e), event=e["type"]) for e in (partial, completed)])


@scenario("responses_usage", ["cyan_png"])
def responses_usage(ctx: Ctx) -> None:
    """OpenAI's Responses API with the image tool and usage split into text and image input tokens: a whole Response,
    or streamed (`stream` in the request) with the usage on `response.completed` only."""
    done = official_image_item("completed", b64(IMAGES["cyan_png"]))
    whole = {**official_response("completed", [done]), "usage": RESPONSES_IMAGE_USAGE}
    if not ctx.stream_flag(False):
        return ctx.send_json(200, compact_json(whole))
    events = [{"type": "response.created", "response": official_response("in_progress", [])},
              {"type": "response.output_item.done", "output_index": 0, "item": done},
              {"type": "response.completed", "response": whole}]
    ctx.send_stream([sse_frame(compact_json({**e, "sequence_number": n}), event=e["type"])
                     for n, e in enumerate(events)])


# --------------------------------------------------------------------------- vision models (captioning)

VISION_MODEL = "vision-captioner-1"
VISION_REFUSAL = "I'm sorry, but I can't help with describing this image."


def _sent_image(obj: Any) -> Image.Image | None:
    """Return the first image a chat or Responses request carries as a data URL, decoded."""
    import base64  # local: the rest of this module only encodes (b64)

    if isinstance(obj, str):
        if obj.startswith("data:image/"):
            return Image.open(io.BytesIO(base64.b64decode(obj.split(",", 1)[1])))
        return None
    values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    for value in values:
        found = _sent_image(value)
        if found is not None:
            return found
    return None


def describe_image(image: Image.Image | None) -> str:
    """Return the caption `vision_caption` gives an image: `a photo of a <colour> scene, <w>x<h>`.

    The colour is the dominant channel's name (grey when the channels are within 24 of each other).
    """
    if image is None:
        return "no image was sent"
    from PIL import ImageStat

    means = ImageStat.Stat(image.convert("RGB")).mean
    colour = "grey" if max(means) - min(means) < 24 else ("red", "green", "blue")[means.index(max(means))]
    return f"a photo of a {colour} scene, {image.width}x{image.height}"


def _vision_usage(ctx: Ctx) -> dict[str, Any] | None:
    if "usage" not in ctx.opts and "cost" not in ctx.opts:
        return None
    usage: dict[str, Any] = {"prompt_tokens": 1100, "completion_tokens": 24, "total_tokens": 1124}
    if "cost" in ctx.opts:
        usage["cost"] = ctx.opt("cost", 0.0)
    return usage


def _vision_fault(ctx: Ctx) -> bool:
    """Play the options' faults: the first `rl` calls of the segment answer 429 (Retry-After `ra`, default 0.2 s),
    the next `fail` calls 503; a call with `s` waits that long first (ending early if the caller hangs up), except
    the first `fast` calls that get through."""
    seen = ctx.fake._bump(f"vision\0{ctx.segment}")
    limited, failing = int(ctx.opt("rl", 0)), int(ctx.opt("fail", 0))
    if seen < limited:
        ctx.send_json(429, g16_error("Rate limit reached for requests", "rate_limit_error", "rate_limit_exceeded"),
                      [("Retry-After", ctx.opts.get("ra", "0.2"))])
        return True
    if seen < limited + failing:
        ctx.send_json(503, g3_error("upstream unavailable", "server_error", "upstream_unavailable"))
        return True
    if "s" in ctx.opts and seen - limited - failing >= int(ctx.opt("fast", 0)):
        ctx.wait_for_disconnect(ctx.opt("s", 0))
        if ctx.fake._stop.is_set():
            return True
    return False


def _chat_text(ctx: Ctx, content: str | None, refusal: str | None = None, finish: str = "stop") -> None:
    """Answer a chat completion with text (or a refusal), streamed when the request asks."""
    usage = _vision_usage(ctx)
    if not ctx.stream_flag(False):
        message = {"role": "assistant", "content": content, "refusal": refusal}
        body: dict[str, Any] = {"id": g3_id(), "object": "chat.completion", "created": CREATED, "model": VISION_MODEL,
                                "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
        if usage:
            body["usage"] = usage
        return ctx.send_json(200, compact_json(body))
    cid = g3_id()
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    if refusal is not None:
        deltas.append({"refusal": refusal})
    text = content or ""
    deltas += [{"content": text[i:i + 12]} for i in range(0, len(text), 12)]
    chunks = [{"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": VISION_MODEL,
               "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
    last: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": VISION_MODEL,
                            "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    if usage:
        last["usage"] = usage
    ctx.send_stream([*(sse_frame(compact_json(chunk)) for chunk in [*chunks, last]), DONE])


def _responses_text(ctx: Ctx, content: str | None, refusal: str | None = None) -> None:
    """Answer the Responses API with output text (or a refusal part), streamed when the request asks."""
    usage = _vision_usage(ctx)
    part = {"type": "refusal", "refusal": refusal} if refusal is not None else \
        {"type": "output_text", "text": content or "", "annotations": []}
    message = {"id": "msg_" + secrets.token_hex(8), "type": "message", "status": "completed", "role": "assistant",
               "content": [part]}
    whole: dict[str, Any] = {"id": "resp_" + secrets.token_hex(8), "object": "response", "created_at": CREATED,
                             "status": "completed", "model": VISION_MODEL, "output": [message]}
    if usage:
        whole["usage"] = {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                          "total_tokens": usage["total_tokens"], **({"cost": usage["cost"]} if "cost" in usage else {})}
    if not ctx.stream_flag(False):
        return ctx.send_json(200, compact_json(whole))
    events: list[dict[str, Any]] = [{"type": "response.created", "response": {**whole, "status": "in_progress",
                                                                              "output": []}}]
    if refusal is not None:
        events.append({"type": "response.refusal.delta", "item_id": message["id"], "delta": refusal})
    else:
        text = content or ""
        events += [{"type": "response.output_text.delta", "item_id": message["id"], "delta": text[i:i + 12]}
                   for i in range(0, len(text), 12)]
        events.append({"type": "response.output_text.done", "item_id": message["id"], "text": text})
    events += [{"type": "response.output_item.done", "output_index": 0, "item": message},
               {"type": "response.completed", "response": whole}]
    ctx.send_stream([sse_frame(compact_json({**e, "sequence_number": n}), event=e["type"])
                     for n, e in enumerate(events)])


def _answer_text(ctx: Ctx, content: str | None, refusal: str | None = None) -> None:
    if ctx.endpoint.endswith("/responses"):
        return _responses_text(ctx, content, refusal)
    _chat_text(ctx, content, refusal, "content_filter" if refusal is not None else "stop")


@scenario("vision_caption")
def vision_caption(ctx: Ctx) -> None:
    """A vision model (chat completions or Responses, streamed when asked) that describes the image it got:
    `a photo of a <colour> scene, <w>x<h>` (see `describe_image`). Options: `s` delay, `think=1` a `<think>`
    block first, `usage=1` usage, `cost=X` OpenRouter's usage.cost, `rl=N` first N calls 429, `fail=N` then N 503,
    `fast=N` the first N answers without the delay."""
    if _vision_fault(ctx):
        return
    caption = describe_image(_sent_image(ctx.req.json))
    if ctx.opts.get("think") == "1":
        caption = f"<think>The user wants a caption. Let me look at the colours.</think>\n\"{caption}\""
    _answer_text(ctx, caption)


@scenario("vision_refuse")
def vision_refuse(ctx: Ctx) -> None:
    """A vision model that declines: chat `message.refusal` with finish_reason `content_filter`, or a Responses
    refusal part."""
    if not _vision_fault(ctx):
        _answer_text(ctx, None, VISION_REFUSAL)


@scenario("vision_empty")
def vision_empty(ctx: Ctx) -> None:
    """A vision model that answers with no text at all."""
    if not _vision_fault(ctx):
        _answer_text(ctx, "")
