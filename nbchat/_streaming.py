"""ChatStream and AsyncChatStream: iterate a streamed completion chunk by chunk.

Bytes go through the SSE decoder, each event becomes a ChatCompletionChunk, and the accumulator
keeps ``completion`` up to date. The response is closed in a ``finally`` whatever happens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from pydantic import ValidationError

from ._accumulate import ChatCompletionAccumulator
from ._exceptions import (
    APIResponseValidationError,
    IncompleteStreamError,
    status_error_from_event,
)
from ._sse import ServerSentEvent, SSEDecoder
from ._types import ChatCompletion, ChatCompletionChunk

__all__ = ["AsyncChatStream", "ChatStream"]

_validate_chunk = ChatCompletionChunk.model_validate_json


class _StreamState:
    """What the sync and async streams share: decoding, parsing, accumulating, ending."""

    def __init__(self, response: httpx.Response, secret: str | None) -> None:
        self.response = response
        self._secret = secret
        self._decoder = SSEDecoder()
        self.accumulator = ChatCompletionAccumulator()
        self.done = False
        self._snapshot: ChatCompletion | None = None
        self._snapshot_at = -1

    def chunks_from(self, events: list[ServerSentEvent]) -> list[ChatCompletionChunk]:
        chunks = []
        for event in events:
            data = event.data
            if data == b"[DONE]":
                self.done = True
                break
            if event.event == "error":
                raise self._error(data)
            try:
                chunk = _validate_chunk(data)
            except ValidationError as exc:
                raise APIResponseValidationError(
                    f"The stream sent an event that is not a chat completion chunk: "
                    f"{_snippet(data)}",
                    request=self.response.request,
                    body=event.text,
                ) from exc
            extra = chunk.__pydantic_extra__
            if extra and "error" in extra:
                raise self._error(data)
            self.accumulator.handle_chunk(chunk)
            chunks.append(chunk)
        return chunks

    def feed(self, raw: bytes) -> list[ChatCompletionChunk]:
        return self.chunks_from(self._decoder.feed(raw))

    def finish(self) -> list[ChatCompletionChunk]:
        chunks = [] if self.done else self.chunks_from(self._decoder.flush())
        if not self.done and self._decoder.pending.strip() == b"[DONE]":
            self.done = True
        if not self.done and not self.accumulator.finished:
            raise self.cut_short("the connection closed")
        return chunks

    def cut_short(self, why: str) -> IncompleteStreamError:
        return IncompleteStreamError(
            f"The stream was cut short ({why}) before it finished; "
            f"{self.accumulator.chunks} chunks arrived and are kept in .completion.",
            request=self.response.request,
            completion=self.completion,
        )

    @property
    def completion(self) -> ChatCompletion:
        if self._snapshot is None or self._snapshot_at != self.accumulator.chunks:
            self._snapshot = self.accumulator.snapshot()
            self._snapshot_at = self.accumulator.chunks
        return self._snapshot

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


def _snippet(data: bytes, limit: int = 200) -> str:
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "…"


class ChatStream:
    """A streamed chat completion: a context manager and an iterator of ChatCompletionChunk.

    ``completion`` is the ChatCompletion accumulated so far, in the shape ``create()`` returns.
    A stream that ends early raises IncompleteStreamError and keeps what arrived.
    """

    def __init__(self, response: httpx.Response, *, secret: str | None = None) -> None:
        self._state = _StreamState(response, secret)
        self._iterator = self._iterate()

    @property
    def response(self) -> httpx.Response:
        return self._state.response

    @property
    def completion(self) -> ChatCompletion:
        return self._state.completion

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self._iterator

    def __next__(self) -> ChatCompletionChunk:
        return next(self._iterator)

    def _iterate(self) -> Iterator[ChatCompletionChunk]:
        state = self._state
        try:
            try:
                for raw in state.response.iter_bytes():
                    yield from state.feed(raw)
                    if state.done:
                        return
            except httpx.TransportError as exc:
                raise state.cut_short(type(exc).__name__) from exc
            yield from state.finish()
        finally:
            state.response.close()

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


class AsyncChatStream:
    """The asyncio twin of ChatStream: ``async for chunk in stream``."""

    def __init__(self, response: httpx.Response, *, secret: str | None = None) -> None:
        self._state = _StreamState(response, secret)
        self._iterator = self._iterate()

    @property
    def response(self) -> httpx.Response:
        return self._state.response

    @property
    def completion(self) -> ChatCompletion:
        return self._state.completion

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iterator

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._iterator.__anext__()

    async def _iterate(self) -> AsyncIterator[ChatCompletionChunk]:
        state = self._state
        try:
            try:
                async for raw in state.response.aiter_bytes():
                    for chunk in state.feed(raw):
                        yield chunk
                    if state.done:
                        return
            except httpx.TransportError as exc:
                raise state.cut_short(type(exc).__name__) from exc
            for chunk in state.finish():
                yield chunk
        finally:
            await state.response.aclose()

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
