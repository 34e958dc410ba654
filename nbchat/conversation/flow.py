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
from collections.abc import Awaitable, Callable
from typing import Any

# The machinery is the transport's (its client runs flows too); conversations use it from here.
from ..transport.drive import Flow, Op, adrive, drive

__all__ = [
    "Complete",
    "Drain",
    "Explain",
    "Flow",
    "ListModels",
    "Op",
    "Open",
    "RunTools",
    "adrive",
    "drive",
]


# -- the operations -----------------------------------------------------------------------------


class Complete:
    """Send an unstreamed request and read the completion."""

    __slots__ = ("client", "prepared")

    def __init__(self, client: Any, prepared: Any) -> None:
        self.client = client
        self.prepared = prepared

    def run(self) -> Any:
        return self.client.send_completion(self.prepared)

    def arun(self) -> Awaitable[Any]:
        return self.client.send_completion(self.prepared)


class Open(Complete):
    """Send a streamed request; the stream, once the server has answered with a success."""

    __slots__ = ()

    def run(self) -> Any:
        return self.client.send_stream(self.prepared)

    async def arun(self) -> Any:
        return await self.client.send_stream(self.prepared)


class Drain:
    """Read a stream to its end, handing each chunk to ``on_chunk(chunk, stream)``; closed
    whatever happens."""

    __slots__ = ("on_chunk", "stream")

    def __init__(self, stream: Any, on_chunk: Callable[[Any, Any], None]) -> None:
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

    def __init__(self, client: Any) -> None:
        self.client = client

    def run(self) -> list[str]:
        return list(self.client.models())

    async def arun(self) -> list[str]:
        return list(await self.client.models())


class Explain:
    """Ask a server why it dropped a stream (a blocking call: run in a thread when async)."""

    __slots__ = ("body", "client", "explain")

    def __init__(self, explain: Callable[[Any, Any], Any], client: Any, body: Any) -> None:
        self.explain = explain
        self.client = client
        self.body = body

    def run(self) -> Any:
        return self.explain(self.client, self.body)

    def arun(self) -> Awaitable[Any]:
        return asyncio.to_thread(self.explain, self.client, self.body)


class RunTools:
    """Run one round of tool calls (``run_tool_calls``/``arun_tool_calls``)."""

    __slots__ = ("calls", "options", "toolbox")

    def __init__(self, calls: Any, toolbox: Any, **options: Any) -> None:
        self.calls = calls
        self.toolbox = toolbox
        self.options = options

    def run(self) -> Any:
        from .toolrun import run_tool_calls

        return run_tool_calls(self.calls, self.toolbox, **self.options)

    def arun(self) -> Awaitable[Any]:
        from .toolrun import arun_tool_calls

        return arun_tool_calls(self.calls, self.toolbox, **self.options)
