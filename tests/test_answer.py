"""Folding answer payloads into text, image references and errors (pure units)."""

from __future__ import annotations

import pytest

from console.upstream.answer import AnswerParser
from console.upstream.errors import StreamError
from console.upstream.extract import ImageRef
from console.upstream.retry import is_retryable


def parse(*payloads, events=None):
    parser = AnswerParser()
    for i, payload in enumerate(payloads):
        parser.feed(payload, (events or {}).get(i))
    return parser


def chunk(content=None, **delta):
    if content is not None:
        delta["content"] = content
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}


def test_chat_deltas_accumulate_across_unstable_ids_and_indexes():
    parts = ["![Generated Image](data:image/jpeg;base64,", "iVBORw0KGgo" + "A" * 60, ")\n"]
    payloads = [{"id": f"r{i}", "choices": [{"index": i, "delta": {"content": p}}]} for i, p in enumerate(parts)]
    parser = parse(*payloads)
    assert parser.refs() == [ImageRef("data_url", "data:image/jpeg;base64,iVBORw0KGgo" + "A" * 60)]


def test_reasoning_content_kept_apart_from_text():
    parser = parse(chunk(reasoning_content="图片正在生成 40% (0/1)\n"), chunk("![image](https://x.test/a.jpg)"))
    assert parser.text() == "![image](https://x.test/a.jpg)"
    assert "40%" in parser.reasoning()


def test_chat_content_parts_and_message_images():
    message = {"role": "assistant", "content": [{"type": "text", "text": "here"},
               {"type": "image_url", "image_url": {"url": "https://x.test/1.png"}}],
               "images": [{"type": "image_url", "image_url": {"url": "https://x.test/2.png"}}]}
    parser = parse({"object": "chat.completion", "choices": [{"index": 0, "message": message}]})
    assert [ref.value for ref in parser.refs()] == ["https://x.test/1.png", "https://x.test/2.png"]


def test_images_api_data_with_error_padding():
    parser = parse({"created": 1, "data": [{"url": "http://h/v1/files/image/a.jpg"}, {"url": "error"}]})
    assert parser.refs() == [ImageRef("url", "http://h/v1/files/image/a.jpg")]


def test_images_stream_partials_are_not_results():
    parser = parse(
        {"type": "image_generation.partial_image", "b64_json": "iVBORw0KGgoPARTIAL", "partial_image_index": 0},
        {"type": "image_generation.partial_image", "url": "", "stage": "preview", "progress": 50},
        {"type": "image_generation.completed", "b64_json": "iVBORw0KGgoFINAL", "stage": "final"},
    )
    assert parser.refs() == [ImageRef("base64", "iVBORw0KGgoFINAL")]
    assert parser.partial_images == 2


def test_responses_item_repeated_in_completed_is_counted_once():
    item = {"id": "ig_1", "type": "image_generation_call", "status": "completed", "result": "iVBORw0KGgoX"}
    completed = {"type": "response.completed", "response": {"status": "completed", "output": [
        {**item, "status": "generating"}, {"id": "msg_1", "type": "message",
                                           "content": [{"type": "output_text", "text": "done"}]}]}}
    parser = parse({"type": "response.output_item.done", "item": item}, completed)
    assert parser.refs() == [ImageRef("base64", "iVBORw0KGgoX")]
    assert parser.text() == "done"


def test_responses_result_keyed_on_result_not_status():
    parser = parse({"object": "response", "output": [{"id": "ig_2", "type": "image_generation_call",
                                                       "status": "generating", "result": "iVBORw0KGgoY"}]})
    assert parser.refs() == [ImageRef("base64", "iVBORw0KGgoY")]


def test_responses_text_deltas_not_doubled_by_completed():
    parser = parse(
        {"type": "response.output_text.delta", "delta": "![image](https://x.test/a.png)"},
        {"type": "keepalive", "sequence_number": 3},
        {"type": "response.completed", "response": {"output": [
            {"id": "m", "type": "message", "content": [{"type": "output_text", "text": "![image](https://x.test/a.png)"}]}]}},
    )
    assert parser.text() == "![image](https://x.test/a.png)"


def test_grok_ndjson_tokens():
    parser = parse({"result": {"response": {"token": "![a](https://x.te"}}}, {"result": {"response": {"token": "st/a.png)"}}})
    assert parser.refs() == [ImageRef("url", "https://x.test/a.png")]


@pytest.mark.parametrize("payload, event, message, retryable", [
    ({"error": {"message": "No available tokens.", "type": "rate_limit_error", "code": "rate_limit_exceeded"}},
     "error", "No available tokens. (rate_limit_error, rate_limit_exceeded)", True),
    ({"error": {"message": "boom", "type": "upstream_error"}}, "error", "boom (upstream_error)", True),
    ({"error": {"code": "upstream_stream_interrupted", "message": "上游流式响应中断", "type": "server_error"}, "type": "error"},
     None, "上游流式响应中断 (server_error, upstream_stream_interrupted)", True),
    ({"type": "response.failed", "response": {"status": "failed", "error": {"code": "bad_prompt", "message": "nope"}}},
     "response.failed", "nope (bad_prompt)", False),
    ({"error": {"message": "invalid size", "type": "invalid_request_error"}}, None, "invalid size (invalid_request_error)", False),
])
def test_in_stream_errors_raise_with_the_message_verbatim(payload, event, message, retryable):
    with pytest.raises(StreamError) as caught:
        parse(payload, events={0: event})
    assert str(caught.value) == message
    assert is_retryable(caught.value) is retryable


def test_null_error_field_is_not_an_error():
    parser = parse({"object": "response", "status": "completed", "error": None, "output": []})
    assert parser.refs() == []


def test_unknown_shapes_are_noted_not_fatal():
    parser = parse({"weird": 1}, [1, 2])
    assert len(parser.notes) == 2
