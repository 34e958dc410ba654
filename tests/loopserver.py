"""A real OpenAI-compatible HTTP server on 127.0.0.1 for concurrency and rate-limit tests, and for
``benchmarks/map.py`` (run as ``python -m tests.loopserver``; it prints its port).

It answers ``POST /v1/chat/completions`` after ``latency`` seconds, serves at most ``capacity``
requests at once (the rest wait their turn), can answer 429 to a share of requests, and records
what it saw: every request's prompt, how many were in flight at most. Other requests (the
stored completions' ``GET``/``DELETE`` of ``/chat/completions`` too) go to ``route`` when one
is given (``FakeBatchAPI.serve`` puts the fake Batch API there). asyncio
streams, HTTP/1.1 with keep-alive; nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import threading
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], "LoopServer"], Any]
# (method, path, headers with lower-case names, body) -> (status, headers, payload bytes).
Route = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class LoopServer:
    """Start with ``start()`` (a thread with its own loop) or ``await serve()``; ``stop()``."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        capacity: int | None = None,
        throttle: float = 0.0,
        retry_after_ms: int | None = None,
        handler: Handler | None = None,
        route: Route | None = None,
        seed: int = 7,
        record: bool = True,
    ) -> None:
        self.latency = latency
        self.capacity = capacity
        self.throttle = throttle
        self.retry_after_ms = retry_after_ms
        self.handler = handler
        self.route = route
        self.record = record
        self.prompts: list[str] = []
        #: The Authorization header of every completion request, in order.
        self.authorizations: list[str | None] = []
        self.requests = 0
        self.throttled = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0
        self.port = 0
        self._random = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._slots: asyncio.Semaphore | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- running ------------------------------------------------------------------------------

    def start(self) -> LoopServer:
        self._thread = threading.Thread(target=self._run, name="loopserver", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the loop server did not start")
        return self

    def _run(self) -> None:
        asyncio.run(self.serve())

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.capacity is not None:
            self._slots = asyncio.Semaphore(self.capacity)
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            with contextlib.suppress(asyncio.CancelledError):
                await self._server.serve_forever()

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None:

            def shutdown() -> None:
                # In the server's own loop: tasks are not safe to touch from another thread.
                server.close()
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(shutdown)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> LoopServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ---------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                received: dict[str, str] = {}
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    received[name.strip().lower()] = value.strip()
                length = int(received.get("content-length", 0))
                body = await reader.readexactly(length) if length else b""
                completions = method == "POST" and path.endswith("/chat/completions")
                if completions and self.record:
                    self.authorizations.append(received.get("authorization"))
                if self.route is not None and not completions and not path.endswith("/models"):
                    status, headers, payload = self.route(method, path, received, body)
                else:
                    status, headers, payload = await self._answer(method, path, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}"]
                head += [f"{k}: {v}" for k, v in headers.items()]
                if "content-type" not in headers:
                    head.append("content-type: application/json")
                head.append(f"content-length: {len(data)}")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _answer(self, method: str, path: str, body: bytes) -> tuple[int, dict, Any]:
        if method == "GET" and path.endswith("/models"):
            return 200, {}, {"object": "list", "data": [{"id": "loop-model", "object": "model"}]}
        if not path.endswith("/chat/completions"):
            return 404, {}, {"error": {"message": "Not Found", "type": "not_found"}}
        request = json.loads(body)
        self.requests += 1
        if self._slots is not None:
            await self._slots.acquire()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.handler is not None:
                answer = self.handler(request, self)
                if asyncio.iscoroutine(answer):
                    answer = await answer
                return answer
            if self.latency:
                await asyncio.sleep(self.latency)
            if self.throttle and self._random.random() < self.throttle:
                self.throttled += 1
                headers = {}
                if self.retry_after_ms is not None:
                    headers["retry-after-ms"] = str(self.retry_after_ms)
                error = {"message": "Rate limit reached", "type": "requests", "code": None}
                return 429, headers, {"error": error}
            text = _prompt(request)
            if self.record:
                self.prompts.append(text)
            return 200, {}, completion(request.get("model", "loop-model"), "re: " + text)
        finally:
            self.in_flight -= 1
            if self._slots is not None:
                self._slots.release()


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Error"}


def _prompt(request: dict[str, Any]) -> str:
    content = request["messages"][-1]["content"]
    return content if isinstance(content, str) else json.dumps(content)


def completion(model: str, text: str, *, tokens: int = 7) -> dict[str, Any]:
    return {
        "id": "chatcmpl-loop",
        "object": "chat.completion",
        "created": 1716936000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": tokens - 2, "completion_tokens": 2, "total_tokens": tokens},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--capacity", type=int, default=None)
    parser.add_argument("--throttle", type=float, default=0.0)
    parser.add_argument("--retry-after-ms", type=int, default=None)
    options = parser.parse_args()
    server = LoopServer(
        latency=options.latency,
        capacity=options.capacity,
        throttle=options.throttle,
        retry_after_ms=options.retry_after_ms,
        record=False,
    )

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.port:
            await asyncio.sleep(0.01)
        print(server.port, flush=True)
        await task

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
