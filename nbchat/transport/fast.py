"""The transports an AsyncClient makes for itself: aiohttp's when it is installed (the ``fast``
extra), whose connection pool costs a fraction of httpx's CPU per request, else httpx's own.

The aiohttp one hands back the body's bytes exactly as they came (no decoding: ``body.py``
decodes them within the client's limits) and raises httpx's exceptions, so that a client
behaves alike on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import httpx

__all__ = [
    "AiohttpTransport",
    "HttpxTransport",
    "available",
    "default_async_transport",
    "environment_proxy",
    "tls_context",
]


def available() -> bool:
    """True when aiohttp is installed (``pip install "nbchat[fast]"``)."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


_TLS: list[ssl.SSLContext] = []


def tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings, made once: loading the certificates takes 0.15 s, which
    every new transport would spend again (16 pools: 2.4 s before the first request)."""
    if not _TLS:
        _TLS.append(httpx.create_ssl_context())
    return _TLS[0]


def default_async_transport(limits: httpx.Limits | None) -> httpx.AsyncBaseTransport:
    """The transport an AsyncClient uses when given none: aiohttp's when it is installed, else
    httpx's own (proxies from the environment either way)."""
    if available():
        return AiohttpTransport(limits=limits)
    return HttpxTransport(limits=limits)


class HttpxTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, through the proxy the environment names for each host (what
    httpx's client does with its mounts), with one TLS context for every pool."""

    def __init__(self, *, limits: httpx.Limits | None = None) -> None:
        self.limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._by_host: dict[tuple[str, str], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.scheme, request.url.host)
        transport = self._by_host.get(key)
        if transport is None:
            proxy = environment_proxy(*key)
            transport = self._by_host[key] = httpx.AsyncHTTPTransport(
                limits=self.limits, verify=tls_context(), proxy=proxy
            )
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        transports, self._by_host = list(self._by_host.values()), {}
        for transport in transports:
            await transport.aclose()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp session (made on the first request, in its loop).

    ``limits.max_connections`` bounds the pool (None: no bound); idle connections are kept for
    ``limits.keepalive_expiry`` seconds. Proxies come from the environment (HTTP(S)_PROXY,
    ALL_PROXY, NO_PROXY) as they do for httpx; credentials are never read from ~/.netrc. A
    request's ``timeout`` is httpx's: ``connect`` for opening a
    connection, ``pool`` added to it for waiting for a free one, ``read`` for each read; aiohttp
    has no write time-out.
    """

    def __init__(
        self, *, limits: httpx.Limits | None = None, verify: ssl.SSLContext | None = None
    ) -> None:
        self.limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._verify = verify
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _session_for(self, loop: asyncio.AbstractEventLoop) -> Any:
        if self._session is None or self._loop is not loop or self._session.closed:
            import aiohttp

            expiry = self.limits.keepalive_expiry
            connector = aiohttp.TCPConnector(
                limit=self.limits.max_connections or 0,
                keepalive_timeout=expiry if expiry is not None else 5.0,
                ssl=self._verify or tls_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Proxies are looked up once per host here instead: with trust_env, aiohttp asks
                # a thread for them and another for ~/.netrc on every request (two thread hops
                # per request: a third of the run's time at 32 in flight).
                trust_env=False,
                auto_decompress=False,
                # The request's own headers only: no User-Agent or Accept-Encoding of aiohttp's.
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._loop = loop
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp

        session = self._session_for(asyncio.get_running_loop())
        try:
            content: bytes | None = request.content
        except httpx.RequestNotRead:
            content = await request.aread()
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _SKIPPED
        ]
        url = str(request.url)
        timeout = request.extensions.get("timeout") or {}
        connect, pool = timeout.get("connect"), timeout.get("pool")
        try:
            response = await session.request(
                request.method,
                url,
                headers=headers,
                proxy=self._proxy(request.url.scheme, request.url.host),
                data=content or None,
                allow_redirects=False,
                compress=None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=None if connect is None or pool is None else connect + pool,
                    sock_connect=connect,
                    sock_read=timeout.get("read"),
                ),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": _reason(response)},
        )

    def _proxy(self, scheme: str, host: str) -> str | None:
        key = (scheme, host)
        if key not in self._proxies:
            self._proxies[key] = environment_proxy(scheme, host)
        return self._proxies[key]

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def __del__(self) -> None:
        # A client dropped without being closed (common in a notebook, whose loop runs on):
        # its session is closed on that loop, so that aiohttp has nothing to complain of. In a
        # script whose loop ends with it, close the client (``async with``) instead.
        session, loop = self._session, self._loop
        if session is None or session.closed or loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(_close_soon, session)


def environment_proxy(scheme: str, host: str) -> str | None:
    """The proxy HTTP(S)_PROXY / ALL_PROXY name for ``host``, unless NO_PROXY exempts it."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def _close_soon(session: Any) -> None:
    task = asyncio.ensure_future(session.close())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


# Sessions being closed after their transport was dropped (a task needs a reference).
_CLOSING: set[asyncio.Task[Any]] = set()

# Headers aiohttp writes itself from the request (a second copy would be a malformed request).
_SKIPPED = frozenset({b"host", b"content-length", b"transfer-encoding"})


def _reason(response: Any) -> bytes:
    return (response.reason or "").encode("latin-1", errors="replace")


class _Body(httpx.AsyncByteStream):
    """The response body's bytes as they arrive; the connection goes back to the pool once it is
    read to its end, and is closed when the body is left before it."""

    def __init__(self, response: Any, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import aiohttp

        content = self._response.content
        while True:
            try:
                data = await content.readany()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _httpx_error(exc, self._request) from exc
            if not data:
                return
            yield data

    async def aclose(self) -> None:
        response = self._response
        if response.content.at_eof():
            response.release()
        else:
            response.close()


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """aiohttp's error as the httpx error httpx's own transport raises for the same failure."""
    import aiohttp

    kind: type[httpx.TransportError]
    message = str(exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        kind = httpx.ProxyError
    elif isinstance(exc, TimeoutError):  # sock_read, and aiohttp's other time-outs
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        # What the system said ("[Errno 111] Connect call failed …"), as httpx says it.
        kind, message = httpx.ConnectError, str(exc.os_error) or message
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        kind, message = httpx.RemoteProtocolError, "Server disconnected without sending a response."
    elif isinstance(exc, aiohttp.ClientPayloadError):
        kind = httpx.RemoteProtocolError
        message = "peer closed connection without sending complete message body"
    elif isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        kind = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ClientOSError):
        kind = httpx.ReadError
    elif isinstance(exc, aiohttp.ClientResponseError):
        kind, message = httpx.RemoteProtocolError, f"the server's response is not HTTP: {exc}"
    else:
        kind = httpx.NetworkError
    return kind(message or type(exc).__name__, request=request)
