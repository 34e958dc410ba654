"""AsyncClient twins of a Client for work that runs many requests at once (``nbchat.map``), with
pools of a size httpx serves fast; ways to watch every response one receives (retries too) and
to run its waits before a retry through the caller's code.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ..protocol.exceptions import NbchatError
from .client import AsyncClient, Client

__all__ = ["POOL_SIZE", "around_retry_waits", "async_twin", "async_twins", "watch_responses"]

#: Connections per pool when work is spread over several: httpx's pool does work for every
#: connection it holds on each request, so 128 requests in flight through one pool cost about
#: four times the CPU per request of the same requests through 16 pools of 8 (measured with
#: benchmarks/map.py; at 8 in flight one pool is as fast).
POOL_SIZE = 8


def async_twin(client: Client, *, connections: int) -> AsyncClient:
    """An AsyncClient for ``client``'s endpoint: the same URL, key, headers, time-out, retries,
    size limits and server profile (what one learns, the other knows), with a pool of
    ``connections``.

    httpx keeps only 20 idle connections by default; a run with more requests in flight would
    open a new connection for most of them, so the pool holds as many as may be in flight.
    """
    http = client._http
    transport = getattr(http, "_transport", None)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    twin_transport: httpx.AsyncBaseTransport | None
    if hasattr(transport, "handle_async_request"):
        # httpx.MockTransport (tests) and other transports that serve both kinds of client.
        twin_transport = transport
    elif isinstance(transport, httpx.HTTPTransport):
        if getattr(http, "_mounts", None):
            # Proxies from the environment: let httpx set them up the same way.
            twin_transport = None
        else:
            twin_transport = httpx.AsyncHTTPTransport(limits=limits, verify=_tls())
    else:
        raise NbchatError(
            f"Cannot run requests concurrently through a Client with a "
            f"{type(transport).__name__}: pass client=nbchat.AsyncClient(...) instead."
        )
    twin = AsyncClient(
        api_key=client.api_key,
        base_url=client.base_url,
        timeout=client.timeout,
        max_retries=client.max_retries,
        transport=twin_transport,
        headers=client.headers,
        server=client.profile,
        max_response_bytes=client.max_response_bytes,
        max_stream_bytes=client.max_stream_bytes,
        max_event_bytes=client.max_event_bytes,
        max_file_bytes=client.max_file_bytes,
    )
    twin._now = client._now
    return twin


_TLS: list[ssl.SSLContext] = []


def _tls() -> ssl.SSLContext:
    """httpx's default TLS settings, made once: loading the certificates takes 0.15 s, which
    every new transport would spend again (16 pools: 2.4 s before the first request)."""
    if not _TLS:
        _TLS.append(httpx.create_ssl_context())
    return _TLS[0]


def async_twins(client: Client, *, connections: int) -> list[AsyncClient]:
    """Twins of ``client`` holding ``connections`` between them, at most POOL_SIZE each."""
    pools = -(-connections // POOL_SIZE)
    size = -(-connections // pools)
    return [async_twin(client, connections=size) for _ in range(pools)]


@contextmanager
def watch_responses(
    client: AsyncClient, hook: Callable[[httpx.Response], Awaitable[None]]
) -> Iterator[None]:
    """Call ``hook`` with every response ``client`` receives inside the block, retries included."""
    hooks = client._http.event_hooks
    hooks["response"].append(hook)
    try:
        yield
    finally:
        hooks = client._http.event_hooks
        if hook in hooks["response"]:
            hooks["response"].remove(hook)


RetryWait = Callable[[Callable[[float], Awaitable[Any]], float], Awaitable[None]]


@contextmanager
def around_retry_waits(client: AsyncClient, around: RetryWait) -> Iterator[None]:
    """Inside the block, ``client`` waits before a retry with ``await around(wait, seconds)``,
    ``wait`` being the wait it had; the client is as it was afterwards.

    A client already waiting through ``around`` (two maps on one client) is left as it is.
    """
    wait = client._sleep
    if getattr(wait, "__wrapped_by__", None) is around:
        yield
        return

    async def waiting(seconds: float) -> None:
        await around(wait, seconds)

    waiting.__wrapped_by__ = around  # type: ignore[attr-defined]
    client._sleep = waiting
    try:
        yield
    finally:
        if client._sleep is waiting:
            client._sleep = wait
