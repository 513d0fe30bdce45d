"""Keep a capped, redacted log of one upstream call for the user to read when it goes wrong."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..masking import REDACTED, is_secret_header, redact_patterns

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{200,}={0,2}")
RAW_HEAD_BYTES = 48 * 1024
RAW_TAIL_BYTES = 16 * 1024


class DebugLog:
    """Lines about one call (request, answer head, raw stream, notes), capped and redacted."""

    def __init__(self, secrets: Iterable[str] = (), cap_bytes: int = 256 * 1024) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self._cap = cap_bytes
        self._size = 0
        self._lines: list[str | _RawBody] = []
        self._truncated = False
        self._start = time.monotonic()
        self._raw_head = bytearray()
        self._raw_tail = bytearray()
        self._raw_total = 0

    def note(self, text: str) -> None:
        """Add one line, prefixed with the seconds since the call began."""
        self._flush_raw()
        self._add(f"[{self._elapsed()}] {self.redact(text)}", None)

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._start:7.3f}s"

    def _add(self, line: str, size: int | None) -> None:
        size = len(line) if size is None else size
        if self._size + size > self._cap:
            if not self._truncated:
                self._lines.append(f"… debug log truncated at {self._cap} bytes")
                self._truncated = True
            return
        self._lines.append(line)
        self._size += size + 1

    def request(self, method: str, url: str, headers: Mapping[str, str], body: Any) -> None:
        """Log a request without secrets or payloads."""
        self.note(f"→ {method} {url}")
        self.note(f"  headers: {json.dumps(redact_headers(headers), ensure_ascii=False)}")
        self.note(f"  body: {json.dumps(body, ensure_ascii=False, default=str)}")

    def response(self, status: int, headers: Mapping[str, str]) -> None:
        """Log the status line and headers of an answer."""
        self.note(f"← HTTP {status}")
        self.note(f"  headers: {json.dumps(redact_headers(headers), ensure_ascii=False)}")

    def raw(self, chunk: bytes) -> None:
        """Keep the first and last bytes of the raw answer body."""
        self._raw_total += len(chunk)
        room = RAW_HEAD_BYTES - len(self._raw_head)
        if room > 0:
            self._raw_head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._raw_tail += chunk
            if len(self._raw_tail) > RAW_TAIL_BYTES:
                del self._raw_tail[: len(self._raw_tail) - RAW_TAIL_BYTES]

    def text(self) -> str:
        """Return the whole log (raw bodies are decoded and redacted here, off the event loop)."""
        self._flush_raw()
        return "\n".join(line if isinstance(line, str) else line.render(self.redact) for line in self._lines)

    def redact(self, text: str) -> str:
        """Remove secrets and shorten long base64 runs."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _BASE64_RUN.sub(lambda m: f"{m.group(0)[:24]}…<{len(m.group(0))} base64 chars>", redact_patterns(text))

    def _flush_raw(self) -> None:
        # Kept as bytes in its place among the lines: decoding and redacting up to 64 KB is
        # regex work that text() does later in a pool thread (bench: 12 % of the loop).
        if not self._raw_total:
            return
        raw = _RawBody(self._elapsed(), self._raw_total, bytes(self._raw_head), bytes(self._raw_tail))
        self._raw_total, self._raw_head, self._raw_tail = 0, bytearray(), bytearray()
        if self._size + raw.size > self._cap:
            self._add("", raw.size)  # over the cap: only the truncation note, once
            return
        self._lines.append(raw)
        self._size += raw.size + 1


@dataclass(frozen=True)
class _RawBody:
    """The first and last bytes of one answer body, rendered only when the log is read."""

    at: str
    total: int
    head: bytes
    tail: bytes

    @property
    def size(self) -> int:
        return len(self.head) + len(self.tail) + 64

    def render(self, redact: Callable[[str], str]) -> str:
        skipped = self.total - len(self.head) - len(self.tail)
        parts = [f"  raw body ({self.total} bytes):", self.head.decode("utf-8", errors="replace")]
        if skipped > 0:
            parts.append(f"… <{skipped} bytes not shown> …")
        if self.tail:
            parts.append(self.tail.decode("utf-8", errors="replace"))
        return f"[{self.at}] {redact(chr(10).join(parts))}"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return headers with credential values replaced."""
    return {name: REDACTED if is_secret_header(name) else value for name, value in headers.items()}

