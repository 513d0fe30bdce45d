"""The SSE decoder, fed from byte-chunk generators (STYLE: openai-python test_streaming)."""

from __future__ import annotations

import json

import pytest

from console.upstream.sse import LineDecoder, ServerSentEvent, SSEDecoder


def decode(chunks) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.finish())
    return events


def every_split(data: bytes):
    """Yield the stream cut at every possible single point, and byte by byte."""
    for cut in range(len(data) + 1):
        yield [data[:cut], data[cut:]]
    yield [data[i : i + 1] for i in range(len(data))]


def test_basic_events_and_done():
    events = decode([b'data: {"a":1}\n\ndata: [DONE]\n\n'])
    assert [e.data for e in events] == ['{"a":1}', "[DONE]"]
    assert events[1].done and not events[0].done


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_all_line_endings_at_every_split(newline):
    stream = newline.join([b"event: chat.completion.chunk", b'data: {"x":"\xe5\x9b\xbe"}', b"", b"data: two", b"", b""])
    for chunks in every_split(stream):
        events = decode(chunks)
        assert [(e.event, e.data) for e in events] == [("chat.completion.chunk", '{"x":"图"}'), (None, "two")], chunks


def test_crlf_split_across_chunks_is_one_line_end():
    events = decode([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"])
    assert [e.data for e in events] == ["a", "b"]


def test_multibyte_utf8_split_across_chunks():
    payload = "图片正在生成 ✓ 🎨".encode()
    stream = b"data: " + payload + b"\n\n"
    for chunks in every_split(stream):
        assert [e.data for e in decode(chunks)] == [payload.decode()]


def test_u2028_and_u2029_stay_inside_data():
    text = "line\u2028separator\u2029paragraph\x85nel"
    events = decode([f"data: {text}\n\n".encode()])
    assert [e.data for e in events] == [text]


def test_comments_are_ignored():
    events = decode([b": ping\n\n: keep-alive\ndata: x\n\n:\n\n"])
    assert [e.data for e in events] == ["x"]


def test_multiline_data_joined_with_newline():
    events = decode([b'data: {"a":\ndata: 1}\n\n'])
    assert [e.data for e in events] == ['{"a":\n1}']
    assert json.loads(events[0].data) == {"a": 1}


def test_data_without_space_and_with_two_spaces():
    events = decode([b"data:x\n\ndata:  y\n\n"])
    assert [e.data for e in events] == ["x", " y"]  # only one leading space is stripped (WHATWG)


def test_event_id_retry_fields():
    events = decode([b"id: 7\nretry: 3000\nevent: response.completed\ndata: {}\n\n"])
    assert events == [ServerSentEvent("{}", "response.completed", "7", 3000)]


def test_event_name_resets_between_events():
    events = decode([b"event: error\ndata: {}\n\ndata: {}\n\n"])
    assert [e.event for e in events] == ["error", None]


def test_unknown_fields_and_lone_event_are_ignored():
    events = decode([b"foo: bar\n\nevent: keepalive\n\ndata: z\n\n"])
    assert [e.data for e in events] == ["z"]


def test_empty_data_is_not_dispatched():
    assert decode([b"data:\n\n"]) == []


def test_eof_without_blank_line_or_done_dispatches_pending():
    events = decode([b'data: {"last":true}'])
    assert [e.data for e in events] == ['{"last":true}']


def test_eof_with_trailing_cr_only():
    events = decode([b"data: a\r"])
    assert [e.data for e in events] == ["a"]


def test_ndjson_lines_with_done():
    stream = b'{"result":{"response":{"token":"![im"}}}\n{"result":{"response":{"token":"age](u)"}}}\n[DONE]\n'
    for chunks in every_split(stream):
        events = decode(chunks)
        assert [e.data for e in events][-1] == "[DONE]"
        tokens = [json.loads(e.data)["result"]["response"]["token"] for e in events[:-1]]
        assert "".join(tokens) == "![image](u)"


def test_ndjson_without_done_and_without_final_newline():
    events = decode([b'{"a":1}\n{"b":2}'])
    assert [json.loads(e.data) for e in events] == [{"a": 1}, {"b": 2}]


def test_ndjson_lines_with_data_prefix_mixed():
    events = decode([b'data: {"a":1}\n\n{"b":2}\n[DONE]'])
    assert [e.data for e in events] == ['{"a":1}', '{"b":2}', "[DONE]"]


def test_invalid_utf8_is_replaced_not_fatal():
    events = decode([b"data: \xff\xfe ok\n\n"])
    assert events[0].data.endswith(" ok")


def test_huge_single_line_in_small_chunks_is_exact():
    body = b"A" * (3 * 1024 * 1024 + 5)
    stream = b"data: " + body + b"\r\n\r\n"
    chunks = [stream[i : i + 16384] for i in range(0, len(stream), 16384)]
    events = decode(chunks)
    assert len(events) == 1 and len(events[0].data) == len(body)


def test_line_decoder_keeps_partial_line_until_finish():
    lines = LineDecoder()
    assert lines.feed(b"abc") == []
    assert lines.feed(b"def\nghi") == [b"abcdef"]
    assert lines.finish() == [b"ghi"]
    assert lines.finish() == []
