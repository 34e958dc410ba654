"""AsyncClient twins of a Client for work that runs many requests at once (``nbchat.map``), with
pools as large as the work; ways to watch every response one receives (retries too) and to run
its waits before a retry through the caller's code. Only the clients' public API is used.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ..protocol.exceptions import NbchatError
from .client import AsyncClient, Client
from .fast import available

__all__ = ["POOL_SIZE", "around_retry_waits", "async_twin", "async_twins", "watch_responses"]

#: Connections per pool when work is spread over several httpx pools: httpx's pool does work for
#: every connection it holds on each request, so 128 requests in flight through one pool cost
#: about four times the CPU per request of the same requests through 16 pools of 8 (measured with
#: benchmarks/map.py; at 8 in flight one pool is as fast). aiohttp's pool has no such cost: with
#: it (the ``fast`` extra) one pool holds them all.
POOL_SIZE = 8


def async_twin(client: Client, *, connections: int) -> AsyncClient:
    """An AsyncClient for ``client``'s endpoint (``AsyncClient.from_client``): the same URL, key,
    headers, time-out, retries, size limits and server profile, with a pool of ``connections``.

    httpx keeps only 20 idle connections by default; a run with more requests in flight would
    open a new connection for most of them, so the pool holds as many as may be in flight.
    """
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    twin = AsyncClient.from_client(client, limits=limits)
    given = client.transport
    if given is not None and not isinstance(given, httpx.HTTPTransport) and twin.transport is None:
        raise NbchatError(
            f"Cannot run requests concurrently through a Client with a "
            f"{type(given).__name__}: pass client=nbchat.AsyncClient(...) instead."
        )
    return twin


def async_twins(client: Client, *, connections: int) -> list[AsyncClient]:
    """Twins of ``client`` holding ``connections`` between them: one pool through aiohttp (or
    one twin sharing a transport that serves both kinds), else httpx pools of at most POOL_SIZE
    each."""
    carried = client.transport is not None and not isinstance(client.transport, httpx.HTTPTransport)
    if available() or carried:
        return [async_twin(client, connections=connections)]
    pools = -(-connections // POOL_SIZE)
    size = -(-connections // pools)
    return [async_twin(client, connections=size) for _ in range(pools)]


@contextmanager
def watch_responses(client: AsyncClient, hook: Callable[[httpx.Response], Any]) -> Iterator[None]:
    """Call ``hook`` with every response ``client`` receives inside the block, retries included."""
    hooks = client.event_hooks["response"]
    hooks.append(hook)
    try:
        yield
    finally:
        if hook in hooks:
            hooks.remove(hook)


RetryWait = Callable[[Callable[[float], Awaitable[Any]], float], Awaitable[None]]


@contextmanager
def around_retry_waits(client: AsyncClient, around: RetryWait) -> Iterator[None]:
    """Inside the block, ``client`` waits before a retry with ``await around(wait, seconds)``,
    ``wait`` being the wait it had; the client is as it was afterwards.

    A client already waiting through ``around`` (two maps on one client) is left as it is.
    """
    wait = client.retry_wait
    if getattr(wait, "__wrapped_by__", None) is around:
        yield
        return

    async def waiting(seconds: float) -> None:
        await around(wait, seconds)

    waiting.__wrapped_by__ = around  # type: ignore[attr-defined]
    client.retry_wait = waiting
    try:
        yield
    finally:
        if client.retry_wait is waiting:
            client.retry_wait = wait
