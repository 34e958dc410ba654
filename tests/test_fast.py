"""The AsyncClient's own transports on a real socket: aiohttp's (the ``fast`` extra) and httpx's
behave alike — retries, time-outs, size limits, decompression bounds and typed errors.

Every test runs on both. The server is a raw socket on 127.0.0.1 that answers each request with
the next scripted bytes (or closes, or stalls), so what goes wrong on the wire is real.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from nbchat import AsyncClient
from nbchat.protocol.exceptions import (
    APIConnectionError,
    APITimeoutError,
    IncompleteStreamError,
    RateLimitError,
    ResponseTooLargeError,
)
from nbchat.transport import fast
from nbchat.transport.fast import AiohttpTransport, HttpxTransport, environment_proxy
from tests.loopserver import completion

BASE = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SECRET = "sk-fast-0123456789abcdefSECRET"

# A reply: bytes to write (then keep the connection for the next request), "close" (close at
# once, nothing sent), ("stall", seconds) (send nothing for that long, then close) or
# ("cut", bytes) (write them, then close).
Reply = bytes | str | tuple[str, float] | tuple[str, bytes]


def http(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if not any(name.lower() == "content-type" for name in headers or {}):
        head.append("content-type: application/json")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def ok(text: str = "hello") -> bytes:
    return http(200, json.dumps(completion("m", text)).encode())


class RawServer:
    """Answers the n-th request with ``replies[n]`` (the last repeats); counts requests."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while not self._stop.is_set():
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(data) < length:
                    data += conn.recv(65536)
                data = data[length:]
                reply = self.replies[min(self.requests, len(self.replies) - 1)]
                self.requests += 1
                if reply == "close":
                    return
                if isinstance(reply, tuple) and reply[0] == "cut":
                    conn.sendall(reply[1])  # type: ignore[arg-type]
                    return
                if isinstance(reply, tuple):
                    self._stop.wait(reply[1])  # type: ignore[arg-type]
                    return
                assert isinstance(reply, bytes)
                conn.sendall(reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.listener.close()


TRANSPORTS: dict[str, Callable[[], httpx.AsyncBaseTransport]] = {
    "aiohttp": AiohttpTransport,
    "httpx": HttpxTransport,
}


@pytest.fixture(params=list(TRANSPORTS))
def make(request: pytest.FixtureRequest) -> Iterator[Callable[..., tuple[AsyncClient, RawServer]]]:
    servers: list[RawServer] = []
    waits: list[float] = []

    def make(*replies: Reply, **options) -> tuple[AsyncClient, RawServer]:
        server = RawServer(*replies)
        servers.append(server)

        async def no_wait(seconds: float) -> None:
            waits.append(seconds)

        client = AsyncClient(
            api_key=SECRET,
            base_url=options.pop("base_url", server.base_url),
            transport=TRANSPORTS[request.param](),
            retry_wait=no_wait,
            **options,
        )
        client.waits = waits  # type: ignore[attr-defined]
        return client, server

    yield make
    for server in servers:
        server.close()


def run(client: AsyncClient, work: Callable) -> object:
    async def main() -> object:
        async with client:
            return await work(client)

    return asyncio.run(main())


def create(client: AsyncClient) -> object:
    return client.create(**BASE)


def test_a_completion_arrives_and_the_connection_is_kept(make):
    client, server = make(ok("one"))

    async def twice(client):
        first = await client.create(**BASE)
        second = await client.create(**BASE)
        return first.content, second.content

    assert run(client, twice) == ("one", "one")
    assert server.requests == 2


def test_gzip_is_decoded_by_nbchat(make):
    body = gzip.compress(json.dumps(completion("m", "zipped")).encode())
    client, _ = make(http(200, body, {"content-encoding": "gzip"}))
    assert run(client, create).content == "zipped"


def test_a_gzip_bomb_stops_at_the_limit(make):
    bomb = gzip.compress(b" " * 5_000_000)
    client, _ = make(http(200, bomb, {"content-encoding": "gzip"}), max_response_bytes=100_000)
    with pytest.raises(ResponseTooLargeError, match="max_response_bytes"):
        run(client, create)


def test_a_429_is_retried_after_its_retry_after(make):
    error = http(429, b'{"error": {"message": "slow down"}}', {"retry-after-ms": "250"})
    client, server = make(error, ok("after"))
    assert run(client, create).content == "after"
    assert server.requests == 2
    assert client.waits == [0.25]


def test_a_429_past_the_retries_is_a_rate_limit_error(make):
    error = http(429, b'{"error": {"message": "slow down"}}', {"retry-after-ms": "10"})
    client, server = make(error, max_retries=1)
    with pytest.raises(RateLimitError, match="slow down"):
        run(client, create)
    assert server.requests == 2


def test_a_connection_closed_without_an_answer_is_retried_then_a_connection_error(make):
    client, server = make("close", max_retries=2)
    with pytest.raises(APIConnectionError) as info:
        run(client, create)
    assert not isinstance(info.value, APITimeoutError)
    assert server.requests == 3
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.__cause__)
    assert isinstance(info.value.__cause__, httpx.TransportError)


def test_a_refused_connection_is_a_connection_error(make):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    client, _ = make(ok(), base_url=f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(APIConnectionError, match="Could not connect") as info:
        run(client, create)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_a_server_that_never_answers_times_out(make):
    client, _ = make(("stall", 3.0), max_retries=1, timeout=httpx.Timeout(5.0, read=0.3))
    with pytest.raises(APITimeoutError, match="timed out"):
        run(client, create)
    assert client.waits == [pytest.approx(client.waits[0])]  # retried once


def test_a_body_cut_short_is_retried(make):
    whole = json.dumps(completion("m", "whole")).encode()
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 999\r\n\r\n" + whole[:20]
    client, server = make(("cut", cut), ok("whole"))
    assert run(client, create).content == "whole"
    assert server.requests == 2
    assert client.waits == [pytest.approx(client.waits[0])]


def test_a_stream_cut_short_keeps_what_arrived(make):
    events = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}\n\n'
    )
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 9999\r\n\r\n"
    client, _ = make(("cut", head + events))

    async def read(client):
        stream = await client.stream(**BASE)
        chunks = []
        with pytest.raises(IncompleteStreamError) as info:
            async for chunk in stream:
                chunks.append(chunk)
        return chunks, info.value.completion.content

    chunks, kept = run(client, read)
    assert len(chunks) == 1
    assert kept == "par"


def test_the_proxy_comes_from_the_environment_unless_no_proxy_names_the_host(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "internal.test")
    assert environment_proxy("https", "api.openai.com") == "http://proxy.test:3128"
    assert environment_proxy("https", "internal.test") is None
    assert environment_proxy("http", "api.openai.com") is None


def test_an_async_client_uses_aiohttp_when_it_is_installed(monkeypatch):
    assert isinstance(fast.default_async_transport(None), AiohttpTransport)
    monkeypatch.setattr(fast, "available", lambda: False)
    assert isinstance(fast.default_async_transport(None), HttpxTransport)


def test_an_async_client_dropped_on_a_running_loop_leaves_no_complaint(tmp_path):
    import subprocess
    import sys

    server = RawServer(ok("left open"))
    script = tmp_path / "open.py"
    script.write_text(
        "import asyncio, gc, nbchat\n"
        "async def cell():\n"
        f"    client = nbchat.AsyncClient(api_key='k', base_url={server.base_url!r})\n"
        "    print((await client.create(model='m', messages=[{'role': 'user', 'content': 'x'}]))"
        ".content)\n"
        "async def kernel():\n"  # a notebook: the loop runs on after the cell's client is gone
        "    await cell()\n"
        "    gc.collect()\n"
        "    await asyncio.sleep(0.2)\n"
        "asyncio.run(kernel())\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NBCHAT_STORE": "off", "PYTHONPATH": os.getcwd()},
        )
    finally:
        server.close()
    assert done.stdout.strip() == "left open"
    assert "Unclosed" not in done.stderr, done.stderr
