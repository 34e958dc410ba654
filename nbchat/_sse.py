"""Server-sent events decoding, as the WHATWG event-stream rules say, over raw bytes.

Pure: bytes in, events out. Lines may be split anywhere between reads, CRLF included.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent", "iter_events"]


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event. ``data`` is kept as UTF-8 bytes for fast JSON parsing."""

    data: bytes
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class SSEDecoder:
    """Feed bytes as they arrive; get back the events they complete."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_retry")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        lines = buffer.splitlines(keepends=True)
        # A last line with no ending may continue in the next read; so may a lone CR, whose
        # LF could be the first byte of the next read (CRLF split in two).
        if lines and (lines[-1][-1:] not in b"\r\n" or lines[-1][-1:] == b"\r"):
            self._buffer = lines.pop()
        else:
            self._buffer = b""
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._line(line.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[ServerSentEvent]:
        """At end of stream: finish a pending line. An event without its blank line is dropped."""
        events: list[ServerSentEvent] = []
        if self._buffer:
            line, self._buffer = self._buffer.rstrip(b"\r\n"), b""
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    @property
    def pending(self) -> bytes:
        """Data of an event not yet dispatched (for a stream cut off mid-event)."""
        return b"\n".join(self._data)

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[:1] == b":":
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", errors="replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = ServerSentEvent(data, self._event or "message", self._id, self._retry)
        self._data = []
        self._event = ""
        return event


def iter_events(chunks: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    """Decode a whole byte stream into events."""
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()
