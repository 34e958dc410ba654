from __future__ import annotations

import asyncio
import copy
import gzip
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from nbchat import AsyncClient, Client
from nbchat.protocol.exceptions import (
    APIResponseValidationError,
    IncompleteStreamError,
    InternalServerError,
    RateLimitError,
    ResponseDecodingError,
    ResponseTooLargeError,
)
from tests.reference import (
    CHAT_RESPONSE,
    FULL_RESPONSE,
    LOGPROBS_RESPONSE,
    PARALLEL_TOOL_CALLS_RESPONSE,
    STREAM_BYTES,
    STREAM_CHUNKS,
    STREAM_REQUEST,
    TOOL_CALL_RESPONSE,
    TOOL_FOLLOW_UP_RESPONSE,
    TOOL_STREAM_BYTES,
)

SECRET = "sk-stream-SECRET-0123456789abcdef"
MESSAGES = STREAM_REQUEST["messages"]
# The fields every chunk of the reference stream carries besides its choices.
HEAD = {key: value for key, value in STREAM_CHUNKS[0].items() if key != "choices"}


def sse(*events: dict[str, Any] | str, done: bool = True) -> bytes:
    """An SSE body: each dict becomes a ``data:`` event; strings are sent as they are."""
    parts = [
        event if isinstance(event, str) else f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
        for event in events
    ]
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def delta_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": extra.pop("index", 0), "delta": delta, "finish_reason": finish}
    if "logprobs" in extra:
        choice["logprobs"] = extra.pop("logprobs")
    return {**HEAD, "choices": [choice], **extra}


class Server:
    """Serves the given body (bytes, or a list of reads) to every request it gets."""

    def __init__(self, body: bytes | list[bytes] | Callable[[], Iterator[bytes]]) -> None:
        self.body = body
        self.requests: list[httpx.Request] = []
        self.headers = {"content-type": "text/event-stream"}

    def pieces(self) -> Iterator[bytes]:
        if callable(self.body):
            return self.body()
        return iter([self.body] if isinstance(self.body, bytes) else self.body)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, headers=self.headers, content=self.pieces())

    def client(self) -> Client:
        return Client(api_key=SECRET, transport=httpx.MockTransport(self), max_retries=2)

    async def _apieces(self) -> AsyncIterator[bytes]:
        for piece in self.pieces():
            await asyncio.sleep(0)
            yield piece

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, headers=self.headers, content=self._apieces())

    def async_client(self) -> AsyncClient:
        return AsyncClient(api_key=SECRET, transport=httpx.MockTransport(self.ahandle))


def collect(body: bytes | list[bytes] | Callable[[], Iterator[bytes]]) -> tuple[list, Any]:
    server = Server(body)
    with server.client().stream(model="gpt-4.1", messages=MESSAGES) as stream:
        chunks = [chunk.to_dict() for chunk in stream]
        return chunks, stream.completion


def test_reference_stream_yields_its_chunks_and_the_whole_answer() -> None:
    server = Server(STREAM_BYTES)
    with server.client().stream(model="gpt-4.1", messages=MESSAGES) as stream:
        contents = [chunk.choices[0].delta.content for chunk in stream if chunk.choices]
        completion = stream.completion
    assert contents == ["", "秋", "风", None]
    assert completion.content == "秋风"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.role == "assistant"
    assert (completion.id, completion.object, completion.model, completion.created) == (
        "chatcmpl-abc",
        "chat.completion",
        "gpt-4.1-2025-04-14",
        1716936000,
    )
    assert json.loads(server.requests[0].content)["stream"] is True


def test_reference_tool_stream_gives_one_tool_call_with_joined_arguments() -> None:
    _, completion = collect(TOOL_STREAM_BYTES)
    [call] = completion.choices[0].message.tool_calls
    assert (call.id, call.function.name) == ("call_abc", "get_weather")
    assert json.loads(call.function.arguments) == {"location": "Beijing"}
    assert completion.choices[0].finish_reason == "tool_calls"


def test_the_stream_is_a_context_manager_that_closes_the_response() -> None:
    server = Server(STREAM_BYTES)
    with server.client().stream(model="gpt-4.1", messages=MESSAGES) as stream:
        first = next(stream)
        assert first.choices[0].delta.role == "assistant"
        assert not stream.response.is_closed
    assert stream.response.is_closed
    assert list(stream) == []


def test_reading_to_the_end_closes_the_response_without_a_with_block() -> None:
    stream = Server(STREAM_BYTES).client().stream(model="gpt-4.1", messages=MESSAGES)
    assert stream.until_done().content == "秋风"
    assert stream.response.is_closed


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_a_split_at_every_byte_offset_yields_identical_chunks(ending: bytes) -> None:
    expected, _ = collect(STREAM_BYTES)
    body = STREAM_BYTES.replace(b"\n", ending)
    server = Server(body)
    client = server.client()
    for at in range(len(body) + 1):
        server.body = [body[:at], body[at:]]
        with client.stream(model="gpt-4.1", messages=MESSAGES) as stream:
            assert [chunk.to_dict() for chunk in stream] == expected, f"split at byte {at}"
            assert stream.completion.content == "秋风"


def test_comments_and_keep_alives_anywhere_are_ignored() -> None:
    body = b": connected\n\n" + STREAM_BYTES.replace(
        b"\n\ndata:", b"\n\n: keep-alive\n\ndata:", 2
    ).replace(b'data: {"id"', b': inside\ndata: {"id"').replace(
        b"data: [DONE]", b":\n\ndata: \n\ndata: [DONE]"
    )
    assert collect(body) == collect(STREAM_BYTES)


def test_data_without_the_space_and_split_over_lines_is_read() -> None:
    chunk = json.dumps(delta_chunk({"content": "hi"}, "stop"), indent=1)
    body = "".join(f"data:{line}\n" for line in chunk.splitlines()) + "\ndata:[DONE]\n\n"
    chunks, completion = collect(body.encode())
    assert len(chunks) == 1
    assert completion.content == "hi"


def test_done_ends_the_stream_and_what_follows_is_not_read() -> None:
    body = STREAM_BYTES + b"data: this is not json\n\n"
    chunks, completion = collect(body)
    assert len(chunks) == 4
    assert completion.content == "秋风"


def test_an_error_object_inside_a_200_stream_raises_the_typed_error() -> None:
    error = {
        "error": {
            "message": "Rate limit reached for gpt-4.1",
            "type": "rate_limit_error",
            "code": "rate_limit_exceeded",
        }
    }
    server = Server(sse(delta_chunk({"content": "半"}), error))
    server.headers["x-request-id"] = "req_stream_1"
    stream = server.client().stream(model="gpt-4.1", messages=MESSAGES)
    seen = []
    with pytest.raises(RateLimitError) as info:
        for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 1
    assert info.value.status_code == 429
    assert info.value.message == "Rate limit reached for gpt-4.1"
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.request_id == "req_stream_1"
    assert info.value.body == error
    assert stream.completion.content == "半"
    assert stream.response.is_closed
    assert len(server.requests) == 1


def test_an_error_event_type_raises_the_typed_error() -> None:
    body = sse(
        delta_chunk({"content": "x"}),
        'event: error\ndata: {"message": "overloaded", "type": "server_error"}\n\n',
    )
    with pytest.raises(InternalServerError) as info:
        collect(body)
    assert info.value.message == "overloaded"
    assert info.value.status_code == 500


def test_an_error_event_whose_data_is_not_json_still_raises_with_its_text() -> None:
    with pytest.raises(InternalServerError, match="upstream went away"):
        collect(sse("event: error\ndata: upstream went away\n\n"))


def test_chunks_with_choices_null_or_empty_are_tolerated() -> None:
    body = sse(
        {**HEAD, "choices": None},
        {**HEAD, "choices": []},
        delta_chunk({"content": "ok"}, "stop"),
    )
    chunks, completion = collect(body)
    assert [chunk["choices"] for chunk in chunks[:2]] == [None, []]
    assert completion.content == "ok"


def test_usage_arrives_in_the_usage_only_chunk() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}
    body = sse(delta_chunk({"content": "hi"}, "stop"), {**HEAD, "choices": [], "usage": usage})
    _, completion = collect(body)
    assert completion.usage.to_dict() == usage


def test_a_stream_ending_without_done_or_finish_reason_is_cut_short() -> None:
    body = sse(delta_chunk({"role": "assistant", "content": "秋"}), delta_chunk({"content": "风"}))
    body = body[: body.index(b"data: [DONE]")]
    stream = Server(body).client().stream(model="gpt-4.1", messages=MESSAGES)
    seen = []
    with pytest.raises(IncompleteStreamError) as info:
        for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 2
    assert "cut short" in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.completion.content == "秋风"
    assert info.value.completion.choices[0].finish_reason is None
    assert stream.completion.content == "秋风"
    assert stream.response.is_closed


def test_a_stream_cut_in_the_middle_of_an_event_keeps_what_came_before() -> None:
    body = STREAM_BYTES[: STREAM_BYTES.index(b'"finish_reason":"stop"')]
    with pytest.raises(IncompleteStreamError) as info:
        collect(body)
    assert info.value.completion.content == "秋风"


def test_a_finish_reason_without_done_is_a_complete_stream() -> None:
    body = STREAM_BYTES.replace(b"data: [DONE]\n\n", b"")
    _, completion = collect(body)
    assert completion.content == "秋风"


def test_a_last_event_missing_only_its_blank_line_is_kept() -> None:
    body = STREAM_BYTES.replace(b"data: [DONE]\n\n", b"")[:-2]
    _, completion = collect(body)
    assert completion.choices[0].finish_reason == "stop"
    collect(STREAM_BYTES[:-2])  # "data: [DONE]" without its line ending still ends it


def test_a_transport_error_mid_stream_raises_incomplete_and_is_not_retried() -> None:
    def broken() -> Iterator[bytes]:
        yield sse(delta_chunk({"content": "Hello, "}), done=False)
        yield b'data: {"id":"chatcmpl-abc","choi'
        raise httpx.ReadError("connection reset by peer")

    server = Server(broken)
    stream = server.client().stream(model="gpt-4.1", messages=MESSAGES)
    seen = []
    with pytest.raises(IncompleteStreamError) as info:
        for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 1
    assert "cut short" in str(info.value)
    assert "connection reset by peer" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ReadError)
    assert info.value.completion.content == "Hello, "
    assert stream.completion.content == "Hello, "
    assert len(server.requests) == 1


def test_an_event_that_is_not_a_chunk_raises_response_validation_error() -> None:
    body = sse(delta_chunk({"content": "a"}), f"data: {{not json {SECRET}\n\n")
    with pytest.raises(APIResponseValidationError) as info:
        collect(body)
    assert "not a chat completion chunk" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in str(info.value.body)
    assert info.value.__cause__ is None


ESCAPED = SECRET.replace("s", "\\u0073", 1)


@pytest.mark.parametrize(
    "event",
    [
        # The key as a value, as JSON escapes, as a key of the server's, percent-encoded.
        f'data: {{"choices": [{{"delta": {{"content": 5}}}}], "echo": "{SECRET}"}}\n\n',
        f'data: {{"choices": [{{"delta": {{"content": 5}}}}], "echo": "{ESCAPED}"}}\n\n',
        f'data: {{"choices": [{{"delta": {{"content": 5}}}}], "echo": "{ESCAPED}\n\n',
        f'data: {{"choices": {{"{ESCAPED}": 1}}}}\n\n',
        f'data: {{"choices": "{SECRET.replace("-", "%2D")}"}}\n\n',
    ],
    ids=["plain", "json-escaped", "escaped-in-broken-json", "as-a-key", "percent-encoded"],
)
def test_a_key_echoed_in_a_malformed_chunk_is_in_no_error_message(event: str) -> None:
    with pytest.raises(APIResponseValidationError) as info:
        collect(sse(event, done=False))
    shown = str(info.value) + json.dumps(info.value.body)
    assert SECRET not in shown
    assert ESCAPED not in shown and "SECRET-0123456789abcdef" not in shown


def test_a_key_cut_off_at_the_head_of_a_body_that_is_not_a_stream_is_masked() -> None:
    # The first 512 bytes are shown: the key's first half ends them.
    body = b"x" * (512 - 16) + SECRET.encode() + b" and more"
    server = Server(body)
    server.headers = {"content-type": "text/html"}
    stream = server.client().stream(model="gpt-4.1", messages=MESSAGES)
    with pytest.raises(APIResponseValidationError) as info:
        list(stream)
    assert "not an event stream" in str(info.value)
    assert SECRET[:16] not in str(info.value)


def test_an_event_of_the_wrong_shape_names_the_field() -> None:
    with pytest.raises(APIResponseValidationError, match="choices"):
        collect(sse({**HEAD, "choices": "lots"}))


def test_a_server_error_in_the_stream_that_echoes_the_key_is_redacted() -> None:
    body = sse({"error": {"message": f"bad key {SECRET}", "type": "authentication_error"}})
    with pytest.raises(Exception) as info:
        collect(body)
    assert SECRET not in str(info.value)
    assert SECRET not in json.dumps(info.value.body)


def test_a_server_that_ignores_stream_and_sends_json_still_streams_one_chunk() -> None:
    server = Server(json.dumps(TOOL_CALL_RESPONSE).encode())
    server.headers = {"content-type": "application/json; charset=utf-8"}
    with server.client().stream(model="gpt-4.1", messages=MESSAGES) as stream:
        chunks = list(stream)
        completion = stream.completion
    assert len(chunks) == 1
    assert completion.to_dict() == TOOL_CALL_RESPONSE


def test_a_json_error_body_on_a_200_stream_raises_the_typed_error() -> None:
    server = Server(json.dumps({"error": {"message": "nope", "type": "server_error"}}).encode())
    server.headers = {"content-type": "application/json"}
    stream = server.client().stream(model="gpt-4.1", messages=MESSAGES)
    with pytest.raises(InternalServerError, match="nope"):
        list(stream)
    assert stream.response.is_closed


def as_stream(response: dict[str, Any], *, piece: int = 7) -> bytes:
    """A non-streamed response as the chunks a server would stream for it.

    As OpenAI's streams do, the first delta carries every message field the reply has (text
    fields as "" or null), each chunk carries the choice's logprobs when the reply has them as
    null, and a choice's index and the header fields appear only when the reply has them.
    """
    head = {
        k: response[k] for k in ("id", "created", "model", "system_fingerprint") if k in response
    }
    if "object" in response:
        head["object"] = "chat.completion.chunk"
    events: list[dict[str, Any]] = []
    for choice in response["choices"]:
        message = choice["message"]
        null_logprobs = "logprobs" in choice and choice["logprobs"] is None

        def event(
            delta: dict[str, Any],
            finish: str | None = None,
            choice: dict[str, Any] = choice,
            null_logprobs: bool = null_logprobs,
            **more: Any,
        ) -> None:
            one: dict[str, Any] = {"delta": delta, "finish_reason": finish, **more}
            if "index" in choice:
                one["index"] = choice["index"]
            if null_logprobs:
                one["logprobs"] = None
            events.append({**head, "choices": [one]})

        first = {"role": message.get("role", "assistant")}
        for key in ("content", "refusal"):
            if key in message:
                first[key] = "" if message[key] else None
        event(first)
        text = message.get("content") or ""
        for at in range(0, len(text), piece):
            event({"content": text[at : at + piece]})
        for n, call in enumerate(message.get("tool_calls") or []):
            start = {"index": n, "id": call["id"], "type": "function"}
            event({"tool_calls": [{**start, "function": {"name": call["function"]["name"]}}]})
            arguments = call["function"]["arguments"]
            for at in range(0, len(arguments), piece):
                fragment = {"arguments": arguments[at : at + piece]}
                event({"tool_calls": [{"index": n, "function": fragment}]})
        if choice.get("logprobs"):
            for token in choice["logprobs"]["content"]:
                event({}, logprobs={"content": [token]})
        event({}, choice["finish_reason"])
    if "usage" in response:
        events.append({**head, "choices": [], "usage": response["usage"]})
    return sse(*events)


REFERENCE_RESPONSES = {
    "chat": CHAT_RESPONSE,
    "tool_call": TOOL_CALL_RESPONSE,
    "tool_follow_up": TOOL_FOLLOW_UP_RESPONSE,
    "parallel_tool_calls": PARALLEL_TOOL_CALLS_RESPONSE,
    "logprobs": LOGPROBS_RESPONSE,
    "full": FULL_RESPONSE,
}


@pytest.mark.parametrize("name", list(REFERENCE_RESPONSES))
def test_stream_completion_equals_what_create_returns(name: str) -> None:
    response = REFERENCE_RESPONSES[name]

    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, content=as_stream(response))
        return httpx.Response(200, json=response)

    client = Client(api_key=SECRET, transport=httpx.MockTransport(handler))
    created = client.create(model="gpt-4.1", messages=MESSAGES)
    with client.stream(model="gpt-4.1", messages=MESSAGES) as stream:
        streamed = stream.until_done()
    assert streamed.model_dump() == created.model_dump()
    assert streamed.to_dict() == created.to_dict() == response


def test_stream_completion_equals_create_with_n_choices_and_logprobs() -> None:
    def token(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode()), "top_logprobs": []}

    response = {
        "id": "chatcmpl-n",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": {"content": [token(t, -0.5) for t in text]},
                "finish_reason": "stop",
            }
            for i, text in enumerate(["蓝色", "天蓝"])
        ],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, content=as_stream(response, piece=1))
        return httpx.Response(200, json=response)

    client = Client(api_key=SECRET, transport=httpx.MockTransport(handler))
    created = client.create(model="m", messages=MESSAGES, n=2, logprobs=True)
    streamed = client.stream(model="m", messages=MESSAGES, n=2, logprobs=True).until_done()
    assert [c.message.content for c in streamed.choices] == ["蓝色", "天蓝"]
    assert streamed.model_dump() == created.model_dump()


def test_async_stream_works_with_async_with_and_with_await() -> None:
    async def main() -> tuple[list[str | None], str | None, str | None, bool]:
        server = Server([STREAM_BYTES[:100], STREAM_BYTES[100:]])
        client = server.async_client()
        async with client.stream(model="gpt-4.1", messages=MESSAGES) as stream:
            contents = [chunk.choices[0].delta.content async for chunk in stream]
            first = stream.completion.content
        closed = stream.response.is_closed
        awaited = await client.stream(model="gpt-4.1", messages=MESSAGES)
        second = (await awaited.until_done()).content
        await client.aclose()
        return contents, first, second, closed

    contents, first, second, closed = asyncio.run(main())
    assert contents == ["", "秋", "风", None]
    assert first == second == "秋风"
    assert closed


def test_async_stream_cut_short_keeps_the_partial_answer() -> None:
    def broken() -> Iterator[bytes]:
        yield sse(delta_chunk({"content": "Hel"}), done=False)
        raise httpx.RemoteProtocolError("peer closed connection")

    async def main() -> tuple[IncompleteStreamError, str | None, int]:
        server = Server(broken)
        stream = await server.async_client().stream(model="gpt-4.1", messages=MESSAGES)
        try:
            async for _ in stream:
                pass
        except IncompleteStreamError as exc:
            return exc, stream.completion.content, len(server.requests)
        raise AssertionError("no error")

    error, content, requests = asyncio.run(main())
    assert "cut short" in str(error)
    assert error.completion.content == content == "Hel"
    assert requests == 1


def test_async_stream_without_done_or_finish_reason_is_cut_short() -> None:
    body = sse(delta_chunk({"content": "秋"}), done=False)

    async def main() -> IncompleteStreamError:
        async with Server(body).async_client().stream(model="m", messages=MESSAGES) as stream:
            with pytest.raises(IncompleteStreamError) as info:
                async for _ in stream:
                    pass
        return info.value

    assert asyncio.run(main()).completion.content == "秋"


def test_async_stream_error_event_raises_the_typed_error() -> None:
    body = sse({"error": {"message": "slow down", "type": "rate_limit_error"}})

    async def main() -> None:
        async with Server(body).async_client().stream(model="m", messages=MESSAGES) as stream:
            async for _ in stream:
                pass

    with pytest.raises(RateLimitError, match="slow down"):
        asyncio.run(main())


def test_the_callers_response_dict_is_not_changed_by_streaming_it() -> None:
    response = copy.deepcopy(TOOL_CALL_RESPONSE)
    collect(as_stream(response))
    assert response == TOOL_CALL_RESPONSE


def test_an_html_page_instead_of_a_stream_says_what_came() -> None:
    server = Server(b"<html><head><title>Jupyter</title></head><body>Log in</body></html>")
    server.headers = {"content-type": "text/html"}
    stream = server.client().stream(model="gpt-4.1", messages=MESSAGES)
    with pytest.raises(APIResponseValidationError) as info:
        list(stream)
    assert str(info.value).startswith("The server answered with text/html, not an event stream:")
    assert "Log in" in str(info.value)


def test_a_stream_of_only_keep_alives_that_closes_is_cut_short() -> None:
    with pytest.raises(IncompleteStreamError, match="cut short"):
        collect(b": keep-alive\n\n: keep-alive\n\n")
    with pytest.raises(IncompleteStreamError, match="cut short"):
        collect(b"")


# ---------------------------------------------------------------------------------------------
# The event-stream rules: invalid UTF-8 and empty data


def test_invalid_utf8_in_a_stream_becomes_replacement_characters_and_the_reply_is_kept() -> None:
    # A server that cuts a character in two (秋 is e7 a7 8b): the rules replace what is broken.
    broken = b'data: {"choices":[{"index":0,"delta":{"content":"\xe7\xa7"}}]}\n\n'
    body = sse(delta_chunk({"content": "秋"}), done=False) + broken
    body += sse(delta_chunk({"content": "风"}, "stop"))
    chunks, completion = collect(body)
    assert completion.content == "秋\ufffd风"
    assert len(chunks) == 3
    # Every read split alike gives the same reply.
    assert collect([body[i : i + 1] for i in range(len(body))])[1].content == "秋\ufffd风"


def test_invalid_utf8_in_an_async_stream_is_replaced_alike() -> None:
    body = (
        b'data: {"choices":[{"index":0,"delta":{"content":"a\xffb"},"finish_reason":"stop"}]}\n\n'
    )

    async def main() -> str | None:
        async with Server(body).async_client().stream(model="m", messages=MESSAGES) as stream:
            return (await stream.until_done()).content

    assert asyncio.run(main()) == "a\ufffdb"


def test_events_of_empty_or_blank_data_are_keep_alives_between_chunks() -> None:
    body = sse(
        "data:\n\n",
        delta_chunk({"content": "a"}),
        "data: \n\n",
        "data:   \n\n",
        "event: message\ndata:\n\n",
        delta_chunk({"content": "b"}, "stop"),
    )
    chunks, completion = collect(body)
    assert completion.content == "ab"
    assert len(chunks) == 2


def test_an_error_event_with_empty_data_is_still_an_error() -> None:
    with pytest.raises(InternalServerError, match="error in the stream"):
        collect(sse(delta_chunk({"content": "a"}), "event: error\ndata:\n\n"))


# ---------------------------------------------------------------------------------------------
# A reply with no choices is an error, not an empty answer


@pytest.mark.parametrize(
    "body",
    [
        b"data: [DONE]\n\n",
        sse({**HEAD, "choices": []}, {**HEAD, "choices": None}),
        sse({**HEAD, "choices": [], "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    ],
    ids=["only-done", "empty-choices", "only-usage"],
)
def test_a_stream_that_ends_without_any_choice_is_an_error(body: bytes) -> None:
    with pytest.raises(APIResponseValidationError, match="no choices"):
        collect(body)


def test_a_json_answer_with_no_choices_to_a_stream_request_is_an_error() -> None:
    server = Server(json.dumps({**CHAT_RESPONSE, "choices": []}).encode())
    server.headers = {"content-type": "application/json"}
    with pytest.raises(APIResponseValidationError, match="no choices"):
        list(server.client().stream(model="gpt-4.1", messages=MESSAGES))


def test_an_async_stream_without_any_choice_is_an_error() -> None:
    async def main() -> None:
        async with (
            Server(b"data: [DONE]\n\n")
            .async_client()
            .stream(model="m", messages=MESSAGES) as stream
        ):
            await stream.until_done()

    with pytest.raises(APIResponseValidationError, match="no choices"):
        asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# Accumulation: exactly what the same reply unstreamed would be, nulls included


def test_the_reference_stream_accumulates_to_its_unstreamed_reply_with_its_nulls() -> None:
    _, completion = collect(STREAM_BYTES)
    assert completion.to_dict() == {
        **HEAD,
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "秋风"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
    }


def test_header_fields_and_extras_sent_as_null_are_kept_as_null() -> None:
    response = {
        "id": "chatcmpl-n",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "system_fingerprint": None,
        "service_tier": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
                "stop_reason": None,
            }
        ],
        "usage": None,
        "prompt_filter_results": [{"prompt_index": 0}],
    }
    head = {
        k: response[k] for k in ("id", "created", "model", "system_fingerprint", "service_tier")
    }
    head |= {"object": "chat.completion.chunk", "usage": None, "prompt_filter_results": None}

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [{**choice, "stop_reason": None}], **more}

    body = sse(
        chunk({"role": "assistant", "content": "", "refusal": None}),
        chunk({"content": "hi"}),
        chunk({}, "stop", prompt_filter_results=[{"prompt_index": 0}]),
    )
    _, completion = collect(body)
    assert completion.to_dict() == response


# ---------------------------------------------------------------------------------------------
# Limits: a stream, and one event of it, past their limits are refused with bounded memory


def gzip_forever(head: bytes, unit: bytes, repeats: int) -> Iterator[bytes]:
    """gzip of ``head`` then ``unit`` ``repeats`` times, made a piece at a time.

    After a full flush the output for another ``unit`` is the same bytes, so a huge body costs
    one piece repeated. The trailer is never reached by a reader that stops at its limit.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    yield compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
    for _ in range(repeats):
        yield piece
    yield compressor.flush()


def gzip_server(body: Callable[[], Iterator[bytes]] | bytes) -> Server:
    server = Server(body)
    server.headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
    return server


def test_a_gzip_stream_is_decoded() -> None:
    server = gzip_server(gzip.compress(STREAM_BYTES))
    with server.client().stream(model="gpt-4.1", messages=MESSAGES) as stream:
        assert stream.until_done().content == "秋风"
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_a_stream_that_is_not_in_its_claimed_encoding_is_a_decoding_error() -> None:
    stream = gzip_server(STREAM_BYTES).client().stream(model="gpt-4.1", messages=MESSAGES)
    with pytest.raises(ResponseDecodingError) as info:
        list(stream)
    assert "\n" not in str(info.value)
    assert "claims Content-Encoding gzip" in str(info.value)
    assert stream.response.is_closed


def test_an_async_stream_not_in_its_claimed_encoding_is_a_decoding_error() -> None:
    async def main() -> None:
        async with (
            gzip_server(STREAM_BYTES).async_client().stream(model="m", messages=MESSAGES) as stream
        ):
            await stream.until_done()

    with pytest.raises(ResponseDecodingError):
        asyncio.run(main())


def test_a_stream_line_that_inflates_forever_is_refused_with_bounded_memory() -> None:
    # 2 GiB of a line that never ends, in about 2 MB of gzip; refused at the 8 MiB line limit.
    server = gzip_server(lambda: gzip_forever(b"data: ", bytes(2**20), 2048))
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLargeError, match="8 MiB") as info:
            list(server.client().stream(model="gpt-4.1", messages=MESSAGES))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert "max_event_bytes" in str(info.value)


def test_a_stream_of_valid_chunks_past_max_stream_bytes_is_refused_with_bounded_memory() -> None:
    event = f"data: {json.dumps(delta_chunk({'content': '0'}))}\n\n".encode()
    unit = event * (2**20 // len(event))  # about 1 MiB of chunks, repeated 1000 times
    server = gzip_server(lambda: gzip_forever(b"", unit, 1000))
    client = Client(
        api_key=SECRET, transport=httpx.MockTransport(server), max_stream_bytes=2 * 2**20
    )
    seen = 0
    tracemalloc.start()
    try:
        stream = client.stream(model="gpt-4.1", messages=MESSAGES)
        with pytest.raises(ResponseTooLargeError, match="stream is larger than the 2 MiB") as info:
            for _ in stream:
                seen += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen > 5_000  # what came before the limit reached the caller
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert info.value.limit == 2 * 2**20
    assert stream.response.is_closed


def test_max_event_bytes_and_max_stream_bytes_reach_the_stream_from_the_client() -> None:
    body = sse(delta_chunk({"content": "x" * 3000}, "stop"))
    server = Server(body)
    small = Client(api_key=SECRET, transport=httpx.MockTransport(server), max_event_bytes=2000)
    with pytest.raises(ResponseTooLargeError, match="max_event_bytes"):
        list(small.stream(model="gpt-4.1", messages=MESSAGES))
    short = Client(api_key=SECRET, transport=httpx.MockTransport(server), max_stream_bytes=100)
    with pytest.raises(ResponseTooLargeError, match="max_stream_bytes"):
        list(short.stream(model="gpt-4.1", messages=MESSAGES))
    unlimited = Client(
        api_key=SECRET,
        transport=httpx.MockTransport(server),
        max_event_bytes=None,
        max_stream_bytes=None,
    )
    assert unlimited.stream(model="gpt-4.1", messages=MESSAGES).until_done().content == "x" * 3000


def test_an_async_stream_past_its_limit_is_refused() -> None:
    body = sse(*[delta_chunk({"content": "x" * 100}) for _ in range(50)])
    server = Server(body)
    client = AsyncClient(
        api_key=SECRET, transport=httpx.MockTransport(server.ahandle), max_stream_bytes=2000
    )

    async def main() -> None:
        async with client.stream(model="m", messages=MESSAGES) as stream:
            await stream.until_done()

    with pytest.raises(ResponseTooLargeError, match="max_stream_bytes"):
        asyncio.run(main())


def test_a_limit_error_carries_the_request_with_the_key_masked() -> None:
    body = sse(delta_chunk({"content": "x" * 3000}, "stop"))
    client = Client(
        api_key=SECRET, transport=httpx.MockTransport(Server(body)), max_event_bytes=100
    )
    with pytest.raises(ResponseTooLargeError) as info:
        list(client.stream(model="gpt-4.1", messages=MESSAGES))
    assert info.value.request is not None
    assert info.value.request.headers["authorization"] == "Bearer ********"
