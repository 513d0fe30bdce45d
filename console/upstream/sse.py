"""Decode a server-sent event stream (or NDJSON) incrementally: bytes in, events out.

Pure: no I/O, no httpx. Lines end at CR, LF or CRLF, found as bytes (a CRLF may be split
across chunks); UTF-8 is decoded only once a line is complete, so a multibyte character split
across chunks is safe, and U+2028 inside data is just data. Field rules follow the WHATWG
HTML "Interpreting an event stream" section. Tolerances for real gateways (docs/gateways.md):
a line that starts with ``{`` or ``[`` outside any field is one JSON event by itself
(NDJSON), and a bare ``[DONE]`` line ends the stream like ``data: [DONE]``.

Cost is linear in the input: a pending partial line is kept as a list of chunks and only the
new chunk is searched for line ends, so a 24 MB single line in 16 KB chunks is one join.
"""

from __future__ import annotations

from dataclasses import dataclass

DONE = "[DONE]"
_CR, _LF = 0x0D, 0x0A


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event; ``done`` marks the ``[DONE]`` sentinel."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    @property
    def done(self) -> bool:
        return self.data == DONE


class LineDecoder:
    """Split a byte stream into lines on CR, LF or CRLF, incrementally."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._skip_lf = False  # the previous chunk ended on CR: a leading LF belongs to it

    def feed(self, chunk: bytes) -> list[bytes]:
        """Return the lines completed by this chunk, without their terminators."""
        lines: list[bytes] = []
        start = 0
        if self._skip_lf and chunk[:1] == b"\n":
            start = 1
        self._skip_lf = False
        end = len(chunk)
        while start < end:
            cut = _next_break(chunk, start)
            if cut < 0:
                self._pending.append(chunk[start:])
                break
            lines.append(self._take(chunk[start:cut]))
            if chunk[cut] == _CR:
                if cut + 1 == end:
                    self._skip_lf = True
                elif chunk[cut + 1] == _LF:
                    cut += 1
            start = cut + 1
        return lines

    def finish(self) -> list[bytes]:
        """Return the last, unterminated line if there is one."""
        self._skip_lf = False
        if not self._pending:
            return []
        return [self._take(b"")]

    def _take(self, tail: bytes) -> bytes:
        if not self._pending:
            return tail
        self._pending.append(tail)
        line = b"".join(self._pending)
        self._pending = []
        return line


def _next_break(chunk: bytes, start: int) -> int:
    cr = chunk.find(b"\r", start)
    lf = chunk.find(b"\n", start)
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)


class SSEDecoder:
    """Turn byte chunks into ServerSentEvents: ``feed(chunk) -> events``, ``finish()``."""

    def __init__(self) -> None:
        self._lines = LineDecoder()
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._has_fields = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode one chunk; return the events it completed."""
        events: list[ServerSentEvent] = []
        for line in self._lines.feed(chunk):
            self._line(line, events)
        return events

    def finish(self) -> list[ServerSentEvent]:
        """End of input: dispatch what is pending (servers often omit the final blank line)."""
        events: list[ServerSentEvent] = []
        for line in self._lines.finish():
            self._line(line, events)
        self._dispatch(events)
        return events

    def _line(self, raw: bytes, events: list[ServerSentEvent]) -> None:
        if not raw:
            self._dispatch(events)
            return
        line = raw.decode("utf-8", errors="replace")
        if line[0] == ":":
            return  # comment, e.g. ": ping" keep-alives from proxies
        if not self._has_fields and _is_bare_payload(line):
            events.append(ServerSentEvent(data=line.strip()))
            return
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        self._field(name, value)

    def _field(self, name: str, value: str) -> None:
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        else:
            return  # unknown fields are ignored (WHATWG)
        self._has_fields = True

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        if self._data and (len(self._data) > 1 or self._data[0]):
            events.append(ServerSentEvent("\n".join(self._data), self._event, self._id, self._retry))
        self._data = []
        self._event = None
        self._retry = None
        self._has_fields = False


def _is_bare_payload(line: str) -> bool:
    # Look at the head only: the line may be tens of MB and must not be copied.
    return line[:1] == "{" or (len(line) <= 16 and line.strip() == DONE)
