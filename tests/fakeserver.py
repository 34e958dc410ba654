"""A scripted OpenAI-compatible server behind httpx.MockTransport, for tests of the upper layers.

Queue replies with ``reply()`` / ``error()``; each request pops one. Streamed requests get the
same reply as SSE chunks (content in small pieces, tool-call arguments in fragments).
``streaming_client()`` answers every request with raw bytes instead, for streams cut short.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from nbchat import Client

SECRET = "sk-test-0123456789abcdef-SECRET"


class FakeServer:
    def __init__(self, *, piece: int = 3) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []
        self._replies: deque[Any] = deque()
        self.piece = piece

    # -- scripting ------------------------------------------------------------------------------

    def reply(
        self,
        content: str | None = "Hello!",
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        finish_reason: str | None = None,
        refusal: str | None = None,
        logprobs: list[dict[str, Any]] | None = None,
        choices: int = 1,
        model: str = "fake-model",
        usage: dict[str, Any] | None = None,
        cut_after: int | None = None,
        reasoning: str | None = None,
        reasoning_field: str = "reasoning_content",
        custom_calls: list[dict[str, Any]] | None = None,
        audio: dict[str, Any] | None = None,
        annotations: list[dict[str, Any]] | None = None,
    ) -> FakeServer:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning is not None:
            # A reasoning model's thinking, in the field its server uses (streamed first).
            message[reasoning_field] = reasoning
        if tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.get("id", f"call_{i}"),
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": call["arguments"]
                        if isinstance(call["arguments"], str)
                        else json.dumps(call["arguments"]),
                    },
                }
                for i, call in enumerate(tool_calls)
            ]
        if custom_calls:
            # Custom tool calls (free text in, not JSON), after any function calls.
            message["tool_calls"] = message.get("tool_calls", []) + [
                {
                    "id": call.get("id", f"call_c{i}"),
                    "type": "custom",
                    "custom": {"name": call["name"], "input": call["input"]},
                }
                for i, call in enumerate(custom_calls)
            ]
        if audio is not None:
            message["audio"] = audio
        if annotations is not None:
            message["annotations"] = annotations
        if refusal:
            message["refusal"] = refusal
        reason = finish_reason or ("tool_calls" if tool_calls or custom_calls else "stop")
        completion = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1716936000,
            "model": model,
            "choices": [
                {
                    "index": i,
                    "message": message,
                    "logprobs": {"content": logprobs} if logprobs else None,
                    "finish_reason": reason,
                }
                for i in range(choices)
            ],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        self._replies.append(("ok", completion, cut_after))
        return self

    def error(
        self,
        status: int,
        message: str = "failed",
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> FakeServer:
        body = {"error": {"message": message, "type": type, "param": param, "code": code}}
        self._replies.append(("error", (status, body, headers or {}), None))
        return self

    # -- transport ------------------------------------------------------------------------------

    def client(self, **options: Any) -> Client:
        options.setdefault("max_retries", 0)
        client = Client(
            api_key=SECRET,
            base_url="http://fake.test/v1",
            transport=httpx.MockTransport(self.handle),
            **options,
        )
        client.retry_wait = lambda seconds: None
        return client

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.requests.append(body)
        self.headers.append(request.headers)
        if not self._replies:
            raise AssertionError(f"the fake server got an unexpected request: {body}")
        kind, payload, cut_after = self._replies.popleft()
        if kind == "error":
            status, error, headers = payload
            return httpx.Response(status, json=error, headers={"x-request-id": "req_1", **headers})
        if body.get("stream"):
            usage = (body.get("stream_options") or {}).get("include_usage")
            events = list(sse_events(payload, piece=self.piece, usage=bool(usage)))
            if cut_after is not None:
                events = events[:cut_after]
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=Events(events)
            )
        return httpx.Response(200, json=payload)

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]


class Events(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body sent an event at a time, to a Client or an AsyncClient alike."""

    def __init__(self, events: list[bytes]) -> None:
        self.events = events

    def __iter__(self) -> Iterator[bytes]:
        yield from self.events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self.events:
            yield event


def streaming_client(events: Callable[[], Iterator[bytes]]) -> Client:
    """A client that answers every request with the bytes a fresh ``events()`` yields, read as
    they come, so the generator can raise (an interrupt, a dropped connection) mid-stream."""
    return Client(
        api_key=SECRET,
        base_url="http://fake.test/v1",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=events())),
    )


def sse_events(completion: dict[str, Any], *, piece: int = 3, usage: bool = True):
    """The byte events a server would stream for ``completion``."""
    base = {k: completion[k] for k in ("id", "created", "model")}
    for key in ("system_fingerprint", "service_tier"):
        if key in completion:
            base[key] = completion[key]
    base["object"] = "chat.completion.chunk"

    def event(choices: list[Any], **extra: Any) -> bytes:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

    for choice in completion["choices"]:
        index = choice["index"]
        message = choice["message"]
        yield event([{"index": index, "delta": {"role": "assistant", "content": ""}}])
        for field in ("reasoning_content", "reasoning"):
            thought = message.get(field) or ""
            for start in range(0, len(thought), piece):
                yield event([{"index": index, "delta": {field: thought[start : start + piece]}}])
        content = message.get("content") or ""
        tokens = (choice.get("logprobs") or {}).get("content") or []
        if tokens:
            for token in tokens:
                yield event(
                    [
                        {
                            "index": index,
                            "delta": {"content": token["token"]},
                            "logprobs": {"content": [token]},
                        }
                    ]
                )
        else:
            for start in range(0, len(content), piece):
                yield event(
                    [{"index": index, "delta": {"content": content[start : start + piece]}}]
                )
        if message.get("refusal"):
            yield event([{"index": index, "delta": {"refusal": message["refusal"]}}])
        audio = message.get("audio")
        if audio:
            head = {key: audio[key] for key in ("id", "expires_at") if key in audio}
            yield event([{"index": index, "delta": {"audio": head}}])
            for key in ("data", "transcript"):
                text = audio.get(key) or ""
                for start in range(0, len(text), 8):
                    piece_ = {key: text[start : start + 8]}
                    yield event([{"index": index, "delta": {"audio": piece_}}])
        for i, call in enumerate(message.get("tool_calls") or ()):
            kind = call["type"]
            field = "arguments" if kind == "function" else "input"
            first = {
                "index": i,
                "id": call["id"],
                "type": kind,
                kind: {"name": call[kind]["name"], field: ""},
            }
            yield event([{"index": index, "delta": {"tool_calls": [first]}}])
            arguments = call[kind][field]
            for start in range(0, len(arguments), 5):
                fragment = {"index": i, kind: {field: arguments[start : start + 5]}}
                yield event([{"index": index, "delta": {"tool_calls": [fragment]}}])
        if message.get("annotations") is not None:
            notes = message["annotations"]
            yield event([{"index": index, "delta": {"annotations": notes}}])
        yield event([{"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}])
    if usage:
        yield event([], usage=completion["usage"])
    yield b"data: [DONE]\n\n"
