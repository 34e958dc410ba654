"""Server-sent events decoding, as the WHATWG event-stream rules say, over raw bytes.

Pure: bytes in, events out. Lines may be split anywhere between reads, CRLF included; a line or
an event longer than ``max_event_bytes`` is refused before it is held whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..protocol.exceptions import ResponseTooLargeError
from .body import size_text

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "ServerSentEvent", "iter_events"]

#: The longest line, and the most data of one event, a stream may send: far above any chunk
#: (a whole tool call's arguments arrive in one on some servers) and far below harm.
DEFAULT_MAX_EVENT_BYTES = 8 * 2**20

_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event. ``data`` is kept as bytes for fast JSON parsing; ``text`` is it
    decoded as the rules say (UTF-8, invalid bytes replaced by U+FFFD)."""

    data: bytes
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class SSEDecoder:
    """Feed bytes as they arrive; get back the events they complete.

    A line, or the data of one event, longer than ``max_event_bytes`` (None: no limit) raises
    ResponseTooLargeError as soon as it passes the limit.
    """

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_head",
        "_id",
        "_limit",
        "_partial",
        "_partial_size",
        "_retry",
        "_skip_lf",
    )

    def __init__(self, max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._limit: float = max_event_bytes if max_event_bytes is not None else float("inf")
        # Pieces of a line whose end has not arrived; joined once, when it does, so that one
        # long line read in many small pieces costs linear time.
        self._partial: list[bytes] = []
        self._partial_size = 0
        # The first bytes of the stream, while they could still be a split byte-order mark.
        self._head: bytes | None = b""
        # The last read ended in CR: an LF starting the next read belongs to the same CRLF.
        self._skip_lf = False
        self._data: list[bytes] = []
        self._data_size = 0
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._head is not None:
            head = self._head + chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._head = head
                return []
            self._head = None
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\n" not in chunk and b"\r" not in chunk:
            if chunk:
                self._partial.append(chunk)
                self._partial_size += len(chunk)
                if self._partial_size > self._limit:
                    raise self._too_large("line")
            return []
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
        lines = chunk.splitlines()
        last = chunk[-1]
        if last == 13:  # CR: the line is complete, but an LF may follow in the next read
            self._skip_lf = True
        elif last != 10:  # no line ending yet: the last line continues in the next read
            rest = lines.pop()
            self._partial.append(rest)
            self._partial_size = len(rest)
        if len(chunk) > self._limit and (
            self._partial_size > self._limit or any(len(line) > self._limit for line in lines)
        ):
            raise self._too_large("line")
        return self._lines(lines)

    def flush(self) -> list[ServerSentEvent]:
        """At end of stream: finish a pending line. An event without its blank line is dropped.

        Its data stays readable in ``pending``, for callers that want to look at it.
        """
        if self._head:
            # A stream of fewer bytes than a byte-order mark is shorter than any event.
            self._partial.append(self._head)
        self._head = None
        if not self._partial:
            return []
        line = b"".join(self._partial)
        self._partial = []
        self._partial_size = 0
        return self._lines([line])

    @property
    def pending(self) -> bytes:
        """Data of an event not yet dispatched (for a stream cut off mid-event)."""
        return b"\n".join(self._data)

    def _lines(self, lines: list[bytes]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if not line:
                # A blank line dispatches the event gathered so far if it had a data line, even
                # an empty one (a bare "data:" gives an event whose data is empty); an event of
                # no data lines at all is dropped, as the rules say.
                if data:
                    events.append(
                        ServerSentEvent(
                            data[0] if len(data) == 1 else b"\n".join(data),
                            self._event or "message",
                            self._id,
                            self._retry,
                        )
                    )
                    data.clear()
                    self._data_size = 0
                self._event = ""
            elif line[:5] == b"data:":
                # Nearly every line of a chat stream: the fast path.
                value = line[6:] if line[5:6] == b" " else line[5:]
                self._data_size += len(value) + 1
                if self._data_size > self._limit:
                    raise self._too_large("event")
                data.append(value)
            elif line[:1] != b":":  # a line starting with a colon is a comment (keep-alive)
                self._field(line)
        return events

    def _too_large(self, what: str) -> ResponseTooLargeError:
        limit = int(self._limit)
        # Let go of what was gathered: the caller may keep the decoder.
        self._data, self._partial = [], []
        self._data_size = self._partial_size = 0
        return ResponseTooLargeError(
            f"The server sent a stream {what} longer than the {size_text(limit)} limit "
            "(max_event_bytes); reading stopped there.",
            limit=limit,
        )

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data_size += len(value) + 1
            if self._data_size > self._limit:
                raise self._too_large("event")
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", errors="replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)


def iter_events(
    chunks: Iterable[bytes], *, max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES
) -> Iterator[ServerSentEvent]:
    """Decode a whole byte stream into events."""
    decoder = SSEDecoder(max_event_bytes)
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()
