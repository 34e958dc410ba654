"""ChatStream and AsyncChatStream: iterate a streamed completion chunk by chunk.

Decoded bytes go through the SSE decoder, each event becomes a ChatCompletionChunk, and the
accumulator keeps ``completion`` up to date. The response is closed in a ``finally`` whatever
happens; a stream, or one event of it, past its size limit is refused.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import httpx
from pydantic import ValidationError

from ..protocol.exceptions import (
    APIError,
    APIResponseValidationError,
    IncompleteStreamError,
    ResponseTooLargeError,
    Secrets,
    redact,
    redact_cut,
    safe_cause,
    status_error_from_event,
)
from ..protocol.types import ChatCompletion, ChatCompletionChunk
from .accumulate import ChatCompletionAccumulator
from .body import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_STREAM_BYTES,
    decoded_flow,
    read_flow,
    too_large,
)
from .drive import Emit, Flow, aiterate, iterate
from .sse import DEFAULT_MAX_EVENT_BYTES, ServerSentEvent, SSEDecoder

__all__ = ["AsyncChatStream", "ChatStream"]

# The validator itself, not model_validate_json: one Python call less on every chunk.
_validate_chunk = ChatCompletionChunk.__pydantic_validator__.validate_json
_HEAD = 512
_SSE_STARTS = (b"data", b":", b"event", b"id", b"retry", b"\xef\xbb\xbf")


class _Limits:
    """The size limits of one stream, in decoded bytes (None: no limit)."""

    __slots__ = ("max_event_bytes", "max_response_bytes", "max_stream_bytes")

    def __init__(
        self,
        max_event_bytes: int | None,
        max_stream_bytes: int | None,
        max_response_bytes: int | None,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_stream_bytes = max_stream_bytes
        self.max_response_bytes = max_response_bytes


class _StreamState:
    """What the sync and async streams share: decoding, parsing, accumulating, ending."""

    def __init__(self, response: httpx.Response, secret: Secrets, limits: _Limits) -> None:
        self.response = response
        self._secret = secret
        self.limits = limits
        self._decoder = SSEDecoder(limits.max_event_bytes)
        self._received = 0
        self._max_stream = (
            limits.max_stream_bytes if limits.max_stream_bytes is not None else float("inf")
        )
        self.accumulator = ChatCompletionAccumulator()
        self.done = False
        self._snapshot: ChatCompletion | None = None
        self._snapshot_at = -1
        # The first bytes, kept until a chunk arrives, to show what came if none ever does.
        self._head = b""

    def chunks_from(self, events: list[ServerSentEvent]) -> Iterator[ChatCompletionChunk]:
        # A generator, so that chunks read before a bad event still reach the caller first.
        handle = self.accumulator.handle_chunk
        for event in events:
            data = event.data
            if data == b"[DONE]":
                self.done = True
                if not self.accumulator.has_choices:
                    raise self._no_choices()
                return
            if event.event == "error":
                raise self._error(data)
            if not data:
                continue  # an event of empty data: a keep-alive, carrying no chunk
            try:
                chunk = _validate_chunk(data)
            except ValidationError as exc:
                fixed = self._retry_as_text(event, exc)
                if fixed is None:
                    continue
                chunk = fixed
            extra = chunk.__pydantic_extra__
            if extra and "error" in extra:
                raise self._error(data)
            handle(chunk)
            yield chunk

    def _retry_as_text(
        self, event: ServerSentEvent, exc: ValidationError
    ) -> ChatCompletionChunk | None:
        """The chunk of an event that failed validation as bytes, read as the rules read it.

        The event-stream rules decode the stream as UTF-8 with invalid bytes replaced (a server
        that cuts a character in two must not lose the whole reply), and data of only
        whitespace is a keep-alive (None). Anything else is not a chunk.
        """
        data = event.data
        if data.isspace():
            return None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                return _validate_chunk(event.text)
            except ValidationError as again:
                exc = again
        raise self._not_a_chunk(event, exc)

    def feed(self, raw: bytes) -> Iterator[ChatCompletionChunk]:
        self._received += len(raw)
        if self._received > self._max_stream:
            limit = self.limits.max_stream_bytes or 0
            raise too_large("stream", limit, "max_stream_bytes", self.response.request)
        if len(self._head) < _HEAD and not self.accumulator.chunks:
            self._head += raw[:_HEAD]
        try:
            events = self._decoder.feed(raw)
        except ResponseTooLargeError as exc:
            raise ResponseTooLargeError(
                exc.message, limit=exc.limit, request=self.response.request
            ) from None
        return self.chunks_from(events)

    def finish(self) -> Iterator[ChatCompletionChunk]:
        if self.done:
            return
        yield from self.chunks_from(self._decoder.flush())
        pending = self._decoder.pending.strip()
        if pending == b"[DONE]":
            self.done = True
        elif pending and not self.done:
            # The last event lacks only its blank line: a server that ends the body right after
            # it still said everything. A cut in the middle of the JSON is no chunk, though.
            try:
                last = list(self.chunks_from([ServerSentEvent(pending)]))
            except APIResponseValidationError:
                last = []
            yield from last
        if not self.done and not self.accumulator.finished:
            head = self._head.lstrip()
            if head and not self.accumulator.chunks and not head.startswith(_SSE_STARTS):
                raise self._not_a_stream()
            raise self.cut_short("the connection closed")

    def flow(self) -> Flow[None]:
        """The stream's chunks, emitted as they are decoded (a ``drive.iterate`` flow): the
        sync and async streams differ only in how they run it."""
        broken: httpx.TransportError | None = None
        try:
            if self.is_json:
                body = yield from read_flow(self.response, self.limits.max_response_bytes)
            else:
                yield from decoded_flow(self.response, self.feed, until=lambda: self.done)
        except httpx.TransportError as exc:
            broken = exc
        if broken is not None:
            # Raised here, not in the except block: httpx's error holds the request as it was
            # sent, key and all, and must not ride along as the context.
            raise self.cut_short(self.broken_by(broken)) from self.safe_cause(broken)
        yield Emit(self.whole(body) if self.is_json else self.finish())

    def _not_a_stream(self) -> APIError:
        """Bytes came, but not one event: say what came instead of "cut short"."""
        kind = self.response.headers.get("content-type", "").split(";", 1)[0].strip()
        # The head is cut at a byte count: a secret's first characters may end it.
        head = redact_cut(self._head.decode("utf-8", "replace"), self._secret)
        text = " ".join(head.split())
        return APIResponseValidationError(
            f"The server answered with {kind or 'a body'}, not an event stream: {text[:200]}"
            + ("…" if len(text) > 200 else ""),
            request=self.response.request,
            body=text,
        )

    @property
    def is_json(self) -> bool:
        kind = self.response.headers.get("content-type", "")
        return kind.split(";", 1)[0].strip().lower() == "application/json"

    def whole(self, raw: bytes) -> Iterator[ChatCompletionChunk]:
        """The one chunk of a server that ignored ``stream`` and answered with plain JSON."""
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        if isinstance(body, list) and len(body) == 1 and isinstance(body[0], dict):
            body = body[0]  # an error object wrapped in a list, as some servers send
            raw = json.dumps(body).encode()
        if isinstance(body, dict) and "choices" in body and "error" not in body:
            raw = json.dumps(_as_chunk(body)).encode()
        # An error object (or anything else) takes the road a stream event would.
        yield from self.chunks_from([ServerSentEvent(raw)])
        if not self.accumulator.has_choices:
            raise self._no_choices()
        self.done = True

    def _no_choices(self) -> APIError:
        return APIResponseValidationError(
            "The server's reply has no choices: the stream ended without a message.",
            request=self.response.request,
        )

    def cut_short(self, why: str) -> IncompleteStreamError:
        return IncompleteStreamError(
            f"The stream was cut short ({why}) before it finished; "
            f"{self.accumulator.chunks} chunks arrived and are kept in .completion.",
            request=self.response.request,
            completion=self.completion,
        )

    def safe_cause(self, exc: BaseException) -> BaseException | None:
        return safe_cause(exc, self._secret)

    def broken_by(self, exc: httpx.TransportError) -> str:
        why = redact(str(exc), self._secret)
        return f"{type(exc).__name__}: {why}" if why else type(exc).__name__

    @property
    def completion(self) -> ChatCompletion:
        if self._snapshot is None or self._snapshot_at != self.accumulator.chunks:
            self._snapshot = self.accumulator.snapshot()
            self._snapshot_at = self.accumulator.chunks
        return self._snapshot

    def _not_a_chunk(self, event: ServerSentEvent, exc: ValidationError) -> Exception:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the event"
        text = redact(event.text, self._secret)
        snippet = text if len(text) <= 200 else text[:200] + "…"
        # The location may hold the server's own keys, and a message its values: all of it is
        # redacted, not only the snippet.
        message = f"({where}: {first['msg']}): {snippet}"
        return APIResponseValidationError(
            "The stream sent an event that is not a chat completion chunk "
            + redact(message, self._secret),
            request=self.response.request,
            body=text,
        )

    def _error(self, data: bytes) -> Exception:
        try:
            body: Any = json.loads(data)
        except ValueError:
            body = {"error": {"message": data.decode("utf-8", errors="replace")}}
        if not isinstance(body, dict):
            body = {"error": {"message": str(body)}}
        if "error" not in body:
            body = {"error": body}
        return status_error_from_event(body, response=self.response, secret=self._secret)


def _as_chunk(completion: dict[str, Any]) -> dict[str, Any]:
    """A ChatCompletion as a dict, turned into the single chunk that carries all of it."""
    choices = []
    for choice in completion.get("choices") or []:
        if not isinstance(choice, dict):
            return completion  # not a completion after all: let validation say so
        delta = dict(choice.get("message") or {})
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            delta["tool_calls"] = [
                {"index": n, **call} if isinstance(call, dict) else call
                for n, call in enumerate(calls)
            ]
        rest = {key: value for key, value in choice.items() if key != "message"}
        choices.append({**rest, "delta": delta})
    return {**completion, "object": "chat.completion.chunk", "choices": choices}


class _Stream:
    """What both streams are made of: the response, its limits and the state of its chunks."""

    def __init__(
        self,
        response: httpx.Response,
        *,
        secret: Secrets = None,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
        max_stream_bytes: int | None = DEFAULT_MAX_STREAM_BYTES,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        limits = _Limits(max_event_bytes, max_stream_bytes, max_response_bytes)
        self._state = _StreamState(response, secret, limits)
        self._iterator = self._iterate()

    @property
    def response(self) -> httpx.Response:
        return self._state.response

    @property
    def completion(self) -> ChatCompletion:
        return self._state.completion

    def _iterate(self) -> Any:
        raise NotImplementedError


class ChatStream(_Stream):
    """A streamed chat completion: a context manager and an iterator of ChatCompletionChunk.

    ``completion`` is the ChatCompletion accumulated so far, in the shape ``create()`` returns.
    A stream that ends early raises IncompleteStreamError and keeps what arrived.
    """

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self._iterator

    def __next__(self) -> ChatCompletionChunk:
        return next(self._iterator)

    def _iterate(self) -> Iterator[ChatCompletionChunk]:
        # The driver closes the response when the iteration ends: a chunk passes through no
        # generator of ours but the flow's on its way out.
        return iterate(self._state.flow(), then=self._state.response.close)

    def until_done(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole completion."""
        for _ in self._iterator:
            pass
        return self.completion

    def close(self) -> None:
        self._iterator.close()
        self._state.response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncChatStream(_Stream):
    """The asyncio twin of ChatStream: ``async for chunk in stream``."""

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iterator

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._iterator.__anext__()

    async def _iterate(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        try:
            async for chunk in aiterate(self._state.flow()):
                yield chunk
        finally:
            await self._state.response.aclose()

    async def until_done(self) -> ChatCompletion:
        async for _ in self._iterator:
            pass
        return self.completion

    async def close(self) -> None:
        await self._iterator.aclose()
        await self._state.response.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
