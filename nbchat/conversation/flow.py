"""The sans-I/O way a send runs: a generator decides, and a driver does what it asks.

A conversation's send (its rounds, the tool loop, server fallbacks, partial replies) is one
generator, written once. It yields an *operation* — send this request, open this stream, run
these tool calls — and is resumed with the result, or has the exception thrown into it.
``drive()`` runs operations in this thread; ``adrive()`` awaits them on the running loop (both
are ``transport/drive.py``'s). Each operation is a line or two of I/O for each side, nothing more
(httpx's ``auth_flow`` is the model).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

# The machinery is the transport's (its client runs flows too); conversations use it from here.
from ..transport.drive import Flow, Op, adrive, drive

if TYPE_CHECKING:
    from ..protocol.types import ChatCompletionChunk
    from ..transport.prepared import PreparedRequest
    from ..transport.seams import AsyncSender, StreamSnapshot, SyncSender

__all__ = [
    "Complete",
    "Drain",
    "Explain",
    "Flow",
    "ListModels",
    "Op",
    "Open",
    "adrive",
    "drive",
]

# -- the operations -----------------------------------------------------------------------------


class Complete:
    """Send an unstreamed request and read the completion."""

    __slots__ = ("client", "prepared")

    def __init__(self, client: SyncSender | AsyncSender, prepared: PreparedRequest) -> None:
        self.client = client
        self.prepared = prepared

    def run(self) -> Any:
        return cast("SyncSender", self.client).send_completion(self.prepared)

    def arun(self) -> Awaitable[Any]:
        return cast("AsyncSender", self.client).send_completion(self.prepared)


class Open(Complete):
    """Send a streamed request; the stream, once the server has answered with a success."""

    __slots__ = ()

    def run(self) -> Any:
        return cast("SyncSender", self.client).send_stream(self.prepared)

    async def arun(self) -> Any:
        return await cast("AsyncSender", self.client).send_stream(self.prepared)


class Drain:
    """Read a stream to its end, handing each chunk to ``on_chunk(chunk, stream)``; closed
    whatever happens."""

    __slots__ = ("on_chunk", "stream")

    def __init__(
        self, stream: Any, on_chunk: Callable[[ChatCompletionChunk, StreamSnapshot], None]
    ) -> None:
        self.stream = stream
        self.on_chunk = on_chunk

    def run(self) -> None:
        with self.stream as stream:
            for chunk in stream:
                self.on_chunk(chunk, stream)

    async def arun(self) -> None:
        async with self.stream as stream:
            async for chunk in stream:
                self.on_chunk(chunk, stream)


class ListModels:
    """The model ids a server lists (``GET /models``)."""

    __slots__ = ("client",)

    def __init__(self, client: SyncSender | AsyncSender) -> None:
        self.client = client

    def run(self) -> list[str]:
        return list(cast("SyncSender", self.client).models())

    async def arun(self) -> list[str]:
        return list(await cast("AsyncSender", self.client).models())


class Explain:
    """Ask a server why it dropped a stream (a blocking call: run in a thread when async)."""

    __slots__ = ("body", "client", "explain")

    def __init__(
        self,
        explain: Callable[[Any, Mapping[str, Any]], Any],
        client: SyncSender,
        body: Mapping[str, Any],
    ) -> None:
        self.explain = explain
        self.client = client
        self.body = body

    def run(self) -> Any:
        return self.explain(self.client, self.body)

    def arun(self) -> Awaitable[Any]:
        return asyncio.to_thread(self.explain, self.client, self.body)
