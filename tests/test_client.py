from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import gzip
import json
import logging
import traceback
import tracemalloc
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import nbchat
from nbchat import AsyncClient, Client
from nbchat.protocol.exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NbchatError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestValidationError,
    ResponseDecodingError,
    ResponseTooLargeError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from tests.reference import (
    CHAT_RESPONSE,
    ERROR_BODY,
    PERSON_INFO_FORMAT,
    SIMPLE_REQUEST,
    USER_MESSAGE,
    VISION_REQUEST,
    WEATHER_TOOL,
)
from tests.test_body import zeros_gzip

SECRET = "sk-proj-CLIENTSECRET-0123456789abcdef"
NOW = 1_716_936_000.0
USER = [USER_MESSAGE]
BASE = {"model": "gpt-4.1", "messages": USER}
ANSWER = CHAT_RESPONSE["choices"][0]["message"]["content"]
STREAM_BODY = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Server:
    """Answers each request with the next scripted reply (the last one repeats)."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies) or [httpx.Response(200, json=CHAT_RESPONSE)]
        self.requests: list[httpx.Request] = []

    def reply(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        if callable(reply) and not isinstance(reply, httpx.Response):
            return reply(request)
        # A fresh copy each time: a Response's body can be read once.
        return httpx.Response(
            reply.status_code, headers=reply.headers, content=reply.content, request=request
        )

    async def areply(self, request: httpx.Request) -> httpx.Response:
        return self.reply(request)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def client_for(server: Server, **options: Any) -> tuple[Client, list[float]]:
    client = Client(api_key=SECRET, transport=httpx.MockTransport(server.reply), **options)
    delays: list[float] = []
    client.retry_wait = delays.append
    client._random = lambda: 0.0
    client._now = lambda: NOW
    return client, delays


def async_client_for(server: Server, **options: Any) -> tuple[AsyncClient, list[float]]:
    client = AsyncClient(api_key=SECRET, transport=httpx.MockTransport(server.areply), **options)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    client.retry_wait = sleep
    client._random = lambda: 0.0
    client._now = lambda: NOW
    return client, delays


def error_reply(status: int, body: Any = None, **headers: str) -> httpx.Response:
    body = body if body is not None else {"error": {"message": f"status {status}"}}
    return httpx.Response(
        status, json=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


# ---------------------------------------------------------------------------------------------
# Request validation: every field of the reference, in range and out, and nothing sent when bad.

# (field, value, other fields the value needs)
VALID = [
    ("model", "gpt-4.1-2025-04-14", {}),
    ("messages", [{"role": "system", "content": "hi"}, *USER], {}),
    ("temperature", 0, {}),
    ("temperature", 0.7, {}),
    ("temperature", 2, {}),
    ("top_p", 0, {}),
    ("top_p", 1, {}),
    ("max_tokens", 1, {}),
    ("max_tokens", 4096, {}),
    ("max_completion_tokens", 1, {}),
    ("n", 1, {}),
    ("n", 3, {}),
    ("stop", "END", {}),
    ("stop", ["\n", "END"], {}),
    ("stop", ["a", "b", "c", "d"], {}),
    ("presence_penalty", -2, {}),
    ("presence_penalty", 2, {}),
    ("frequency_penalty", -2.0, {}),
    ("frequency_penalty", 1.5, {}),
    ("logit_bias", {"50256": -100}, {}),
    ("logit_bias", {"1": 100, "2": 0.5}, {}),
    ("seed", 42, {}),
    ("seed", -7, {}),
    ("user", "user-abc123", {}),
    ("tools", [WEATHER_TOOL], {}),
    ("tool_choice", "auto", {"tools": [WEATHER_TOOL]}),
    ("tool_choice", "required", {"tools": [WEATHER_TOOL]}),
    ("tool_choice", "none", {}),
    (
        "tool_choice",
        {"type": "function", "function": {"name": "get_weather"}},
        {"tools": [WEATHER_TOOL]},
    ),
    ("stream", False, {}),
    ("logprobs", True, {}),
    ("logprobs", False, {}),
    ("top_logprobs", 0, {"logprobs": True}),
    ("top_logprobs", 20, {"logprobs": True}),
    ("response_format", {"type": "text"}, {}),
    ("response_format", {"type": "json_object"}, {}),
    ("response_format", PERSON_INFO_FORMAT, {}),
    ("parallel_tool_calls", False, {"tools": [WEATHER_TOOL]}),
    ("store", True, {}),
    ("metadata", {"project": "nbchat", "run": "7"}, {}),
]

# (field, value, other fields, what the error names)
INVALID = [
    ("model", "", {}, "model"),
    ("model", 4, {}, "model"),
    ("model", None, {}, "model"),
    ("messages", [], {}, "messages"),
    ("messages", "hi", {}, "messages"),
    ("messages", [{"role": "user"}], {}, "messages.0.content"),
    ("messages", [{"role": "robot", "content": "x"}], {}, "messages.0.role"),
    ("temperature", -0.1, {}, "temperature"),
    ("temperature", 2.01, {}, "temperature"),
    ("temperature", "hot", {}, "temperature"),
    ("temperature", True, {}, "temperature"),
    ("temperature", float("nan"), {}, "temperature"),
    ("top_p", -0.01, {}, "top_p"),
    ("top_p", 1.5, {}, "top_p"),
    ("max_tokens", 0, {}, "max_tokens"),
    ("max_tokens", -5, {}, "max_tokens"),
    ("max_tokens", 1.5, {}, "max_tokens"),
    ("max_completion_tokens", 0, {}, "max_completion_tokens"),
    ("n", 0, {}, "n"),
    ("n", True, {}, "n"),
    ("stop", [], {}, "stop"),
    ("stop", ["a", "b", "c", "d", "e"], {}, "stop"),
    ("stop", [1], {}, "stop.0"),
    ("stop", 5, {}, "stop"),
    ("presence_penalty", -2.5, {}, "presence_penalty"),
    ("presence_penalty", 3, {}, "presence_penalty"),
    ("frequency_penalty", 2.1, {}, "frequency_penalty"),
    ("frequency_penalty", -3, {}, "frequency_penalty"),
    ("logit_bias", {"50256": -101}, {}, "logit_bias"),
    ("logit_bias", {"50256": 100.5}, {}, "logit_bias"),
    ("logit_bias", {"hello": 1}, {}, "logit_bias"),
    ("logit_bias", {"1": "up"}, {}, "logit_bias"),
    ("logit_bias", [50256], {}, "logit_bias"),
    ("seed", "lucky", {}, "seed"),
    ("seed", 4.5, {}, "seed"),
    ("seed", False, {}, "seed"),
    ("user", 123, {}, "user"),
    ("tools", "get_weather", {}, "tools"),
    ("tools", [{"type": "function"}], {}, "tools.0.function"),
    ("tools", [{"type": "retrieval", "function": {"name": "f"}}], {}, "tools.0.type"),
    (
        "tools",
        [{"type": "function", "function": {"name": "get weather"}}],
        {},
        "tools.0.function.name",
    ),
    ("tool_choice", "sometimes", {"tools": [WEATHER_TOOL]}, "tool_choice"),
    ("tool_choice", {"type": "function"}, {"tools": [WEATHER_TOOL]}, "tool_choice.function"),
    (
        "tool_choice",
        {"type": "function", "function": {}},
        {"tools": [WEATHER_TOOL]},
        "tool_choice.function.name",
    ),
    ("tool_choice", "auto", {}, "tool_choice"),
    ("stream", True, {}, "stream"),
    ("stream", "maybe", {}, "stream"),
    ("stream_options", {"include_usage": True}, {}, "stream_options"),
    ("logprobs", "lots", {}, "logprobs"),
    ("top_logprobs", 21, {"logprobs": True}, "top_logprobs"),
    ("top_logprobs", -1, {"logprobs": True}, "top_logprobs"),
    ("top_logprobs", 3, {}, "top_logprobs"),
    ("top_logprobs", 3, {"logprobs": False}, "top_logprobs"),
    ("response_format", {"type": "xml"}, {}, "response_format.type"),
    ("response_format", "json", {}, "response_format"),
    ("response_format", {"type": "json_schema"}, {}, "response_format.json_schema"),
    (
        "response_format",
        {"type": "json_schema", "json_schema": {"schema": {}}},
        {},
        "response_format.json_schema.name",
    ),
    (
        "response_format",
        {"type": "json_schema", "json_schema": {"name": "a b"}},
        {},
        "response_format.json_schema.name",
    ),
    (
        "response_format",
        {"type": "json_schema", "json_schema": {"name": "p", "strict": "sure"}},
        {},
        "response_format.json_schema.strict",
    ),
    (
        "response_format",
        {"type": "json_schema", "json_schema": {"name": "p", "schema": "{}"}},
        {},
        "response_format.json_schema.schema",
    ),
    ("parallel_tool_calls", "yes please", {"tools": [WEATHER_TOOL]}, "parallel_tool_calls"),
    ("parallel_tool_calls", True, {}, "parallel_tool_calls"),
    ("store", "always", {}, "store"),
    ("metadata", {"run": 7}, {}, "metadata.run"),
    ("metadata", "tag", {}, "metadata"),
]

# Fields only client.stream() sends: (field, value, what the error names or None when valid)
STREAM_ONLY = [
    ("stream_options", {"include_usage": True}, None),
    ("stream_options", {"include_usage": False}, None),
    ("stream_options", {"include_usage": "often"}, "stream_options.include_usage"),
    ("stream_options", "usage", "stream_options"),
]


@pytest.mark.parametrize(("field", "value", "needs"), VALID)
def test_valid_fields_are_sent_exactly_as_given(field: str, value: Any, needs: dict) -> None:
    server = Server()
    client, _ = client_for(server)
    request = {**BASE, **needs, field: value}
    client.create(**request)
    assert server.bodies == [json.loads(json.dumps(request))]


@pytest.mark.parametrize(("field", "value", "needs", "named"), INVALID)
def test_an_invalid_field_is_one_clear_line_and_nothing_is_sent(
    field: str, value: Any, needs: dict, named: str
) -> None:
    server = Server()
    client, _ = client_for(server)
    with pytest.raises(RequestValidationError) as info:
        client.create(**{**BASE, **needs, field: value})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Invalid request: ")
    assert named in message
    assert info.value.field == named
    assert server.requests == []


@pytest.mark.parametrize(("field", "value", "named"), STREAM_ONLY)
def test_stream_options_are_checked_on_streamed_requests(
    field: str, value: Any, named: str | None
) -> None:
    server = Server(httpx.Response(200, content=STREAM_BODY))
    client, _ = client_for(server)
    if named is None:
        client.stream(**BASE, **{field: value}).until_done()
        assert server.bodies == [{**BASE, "stream": True, field: value}]
        return
    with pytest.raises(RequestValidationError) as info:
        client.stream(**BASE, **{field: value})
    assert named in str(info.value)
    assert info.value.field == named
    assert server.requests == []


def test_missing_required_fields_are_named() -> None:
    server = Server()
    client, _ = client_for(server)
    with pytest.raises(RequestValidationError, match="model: Field required"):
        client.create(messages=USER)
    with pytest.raises(RequestValidationError, match="messages: Field required"):
        client.create(model="gpt-4.1")
    assert server.requests == []


def test_a_message_error_names_the_message_and_its_field() -> None:
    server = Server()
    client, _ = client_for(server)
    messages = [*USER, {"role": "tool", "content": "28°C"}]
    with pytest.raises(RequestValidationError) as info:
        client.create(model="gpt-4.1", messages=messages)
    assert info.value.field == "messages.1.tool_call_id"
    assert str(info.value) == "Invalid request: messages.1.tool_call_id: Field required"
    assert server.requests == []


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [{"role": "wizard", "content": "hi"}],
            "messages.0.role: 'wizard' is not one of "
            "'system', 'developer', 'user', 'assistant', 'tool', 'function'",
        ),
        ([{"content": "hi"}], "messages.0.role: Field required"),
        (
            [{"role": "user", "content": [{"type": "audio"}]}],
            "messages.0.content.0.type: 'audio' is not one of "
            "'text', 'image_url', 'input_audio', 'file'",
        ),
        (
            [{"role": "user", "content": []}],
            "messages.0.content: List should have at least 1 item after validation, not 0 (got [])",
        ),
        (
            [{"role": "user", "content": 5}],
            "messages.0.content: Input should be a valid string or a valid list (got 5)",
        ),
        (
            [{"role": "user", "content": [{"type": "text"}]}],
            "messages.0.content.0.text: Field required",
        ),
    ],
    ids=["unknown-role", "no-role", "unknown-part", "empty-parts", "number", "part-without-text"],
)
def test_message_errors_say_what_is_wrong_in_words(messages: list, expected: str) -> None:
    server = Server()
    client, _ = client_for(server)
    with pytest.raises(RequestValidationError) as info:
        client.create(model="gpt-4.1", messages=messages)
    assert str(info.value) == f"Invalid request: {expected}"
    assert server.requests == []


def test_an_async_bad_request_sends_nothing() -> None:
    server = Server()
    client, _ = async_client_for(server)

    async def main() -> None:
        with pytest.raises(RequestValidationError, match="temperature"):
            await client.create(**BASE, temperature=9)
        with pytest.raises(RequestValidationError, match="top_logprobs"):
            client.stream(**BASE, top_logprobs=3)

    asyncio.run(main())
    assert server.requests == []


def test_unknown_request_fields_pass_through_untouched() -> None:
    server = Server()
    client, _ = client_for(server)
    extra = {
        "top_k": 40,
        "min_p": 0.05,
        "chat_template_kwargs": {"enable_thinking": False, "list": [1, None, "x"]},
        "reasoning_effort": "low",
    }
    client.create(**BASE, **extra)
    assert server.bodies == [{**BASE, **extra}]


@pytest.mark.parametrize(
    "request_",
    [
        SIMPLE_REQUEST,
        VISION_REQUEST,
        {"model": "gpt-4.1", "messages": USER, "response_format": PERSON_INFO_FORMAT},
        {"model": "gpt-4.1", "messages": USER, "logprobs": True, "top_logprobs": 3},
    ],
    ids=["simple", "vision", "json_schema", "logprobs"],
)
def test_a_request_body_has_exactly_the_fields_the_caller_set(request_: dict[str, Any]) -> None:
    server = Server()
    client, _ = client_for(server)
    client.create(**request_)
    assert server.bodies == [request_]
    assert b"null" not in server.requests[0].content


def test_create_refuses_stream_true_and_points_to_stream() -> None:
    server = Server()
    client, _ = client_for(server)
    with pytest.raises(RequestValidationError, match=r"client\.stream") as info:
        client.create(**BASE, stream=True)
    assert info.value.field == "stream"
    assert server.requests == []


# ---------------------------------------------------------------------------------------------
# Requests and responses


def test_create_posts_to_chat_completions_and_returns_the_completion() -> None:
    server = Server(httpx.Response(200, json=CHAT_RESPONSE))
    client, _ = client_for(server, base_url="https://llm.example.com/v1/")
    completion = client.create(**BASE)
    assert completion.to_dict() == CHAT_RESPONSE
    assert completion.content == ANSWER
    [request] = server.requests
    assert request.method == "POST"
    assert str(request.url) == "https://llm.example.com/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.headers["content-type"] == "application/json"


def test_api_key_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8080/v1")
    server = Server()
    client = Client(transport=httpx.MockTransport(server.reply))
    client.create(**BASE)
    assert str(server.requests[0].url) == "http://localhost:8080/v1/chat/completions"
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env-123456789"


def test_no_key_sends_no_authorization_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = Server()
    Client(base_url="http://local/v1", transport=httpx.MockTransport(server.reply)).create(**BASE)
    assert "authorization" not in server.requests[0].headers


def test_per_call_options_are_not_request_fields() -> None:
    server = Server()
    client, _ = client_for(server, headers={"X-Team": "a"})
    client.create(**BASE, timeout=3.0, extra_headers={"X-Trace": "t1"})
    [request] = server.requests
    assert server.bodies == [BASE]
    assert request.headers["x-trace"] == "t1"
    assert request.headers["x-team"] == "a"
    assert request.extensions["timeout"]["read"] == 3.0


def test_timeouts_default_to_the_clients_and_none_means_no_limit() -> None:
    server = Server()
    client, _ = client_for(server)
    client.create(**BASE)
    assert server.requests[0].extensions["timeout"]["read"] == 600.0
    assert server.requests[0].extensions["timeout"]["connect"] == 10.0
    client.create(**BASE, timeout=None)
    assert set(server.requests[1].extensions["timeout"].values()) == {None}
    unlimited, _ = client_for(server, timeout=None)
    unlimited.create(**BASE)
    assert set(server.requests[2].extensions["timeout"].values()) == {None}


def test_stream_sends_stream_true_and_yields_chunks() -> None:
    server = Server(httpx.Response(200, content=STREAM_BODY))
    client, _ = client_for(server)
    with client.stream(**BASE, stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
    assert len(chunks) == 2
    assert stream.completion.content == "ok"
    assert server.bodies == [{**BASE, "stream": True, "stream_options": {"include_usage": True}}]


def test_models_lists_the_ids_the_server_has() -> None:
    body = {"object": "list", "data": [{"id": "gpt-4.1", "object": "model"}, {"id": "smollm2"}]}
    server = Server(httpx.Response(200, json=body))
    client, _ = client_for(server)
    assert client.models() == ["gpt-4.1", "smollm2"]
    assert server.requests[0].method == "GET"
    assert server.requests[0].url.path == "/v1/models"


def test_models_that_are_not_json_raise_response_validation_error() -> None:
    server = Server(httpx.Response(200, text="<html>login</html>"))
    client, _ = client_for(server)
    with pytest.raises(APIResponseValidationError, match="not a list of models"):
        client.models()


def test_a_200_that_is_not_a_completion_raises_response_validation_error() -> None:
    server = Server(httpx.Response(200, json={"choices": "none today"}))
    client, _ = client_for(server)
    with pytest.raises(APIResponseValidationError) as info:
        client.create(**BASE)
    assert "choices" in str(info.value)
    assert info.value.body == '{"choices":"none today"}'
    assert len(server.requests) == 1


def test_a_200_carrying_an_error_object_raises_the_typed_error() -> None:
    body = {"error": {"message": "model overloaded", "type": "server_error"}}
    server = Server(httpx.Response(200, json=body))
    client, _ = client_for(server)
    with pytest.raises(InternalServerError, match="model overloaded"):
        client.create(**BASE)


def test_response_with_unknown_fields_and_finish_reason_is_accepted() -> None:
    body = json.loads(json.dumps(CHAT_RESPONSE))
    body["choices"][0]["finish_reason"] = "eos_token"
    body["choices"][0]["message"]["reasoning_content"] = "hmm"
    body["timings"] = {"predicted_ms": 12.5}
    server = Server(httpx.Response(200, json=body))
    client, _ = client_for(server)
    completion = client.create(**BASE)
    assert completion.choices[0].finish_reason == "eos_token"
    assert completion.to_dict() == body


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, ServiceUnavailableError),
        (502, InternalServerError),
        (504, InternalServerError),
        (418, APIStatusError),
    ],
)
def test_each_error_status_raises_its_class_with_every_field(
    status: int, cls: type[APIStatusError]
) -> None:
    server = Server(error_reply(status, ERROR_BODY, x_request_id="req_abc123"))
    client, _ = client_for(server, max_retries=0)
    with pytest.raises(APIStatusError) as info:
        client.create(**BASE)
    error = info.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == ERROR_BODY["error"]["message"]
    assert error.type == "invalid_request_error"
    assert error.code == "context_length_exceeded"
    assert error.param == "messages"
    assert error.request_id == "req_abc123"
    assert error.body == ERROR_BODY


def test_an_html_502_page_gives_a_readable_internal_server_error() -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
    server = Server(httpx.Response(502, text=page, headers={"content-type": "text/html"}))
    client, _ = client_for(server, max_retries=0)
    with pytest.raises(InternalServerError) as info:
        client.create(**BASE)
    assert info.value.status_code == 502
    assert str(info.value) == (
        "Error code: 502 - 502 Bad Gateway (the server sent an HTML page, not JSON)"
    )


def test_an_empty_503_gives_service_unavailable_with_a_message() -> None:
    server = Server(httpx.Response(503))
    client, _ = client_for(server, max_retries=0)
    with pytest.raises(ServiceUnavailableError) as info:
        client.create(**BASE)
    assert info.value.message == "503 Service Unavailable (empty response body)"


def test_an_error_before_a_stream_starts_raises_the_typed_error() -> None:
    server = Server(
        error_reply(404, {"error": {"message": "no such model", "code": "model_not_found"}})
    )
    client, _ = client_for(server)
    with pytest.raises(NotFoundError) as info:
        client.stream(**BASE)
    assert info.value.code == "model_not_found"
    assert len(server.requests) == 1


# ---------------------------------------------------------------------------------------------
# Retries (with the fake clock: client.retry_wait records, client._random and client._now are fixed)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_until_success(status: int) -> None:
    server = Server(
        error_reply(status), error_reply(status), httpx.Response(200, json=CHAT_RESPONSE)
    )
    client, delays = client_for(server, max_retries=2)
    assert client.create(**BASE).content == ANSWER
    assert len(server.requests) == 3
    assert delays == [0.5, 1.0]


def test_every_retry_sends_the_same_request() -> None:
    server = Server(error_reply(500), httpx.Response(200, json=CHAT_RESPONSE))
    client, _ = client_for(server)
    client.create(**BASE, temperature=0.2)
    assert server.bodies[0] == server.bodies[1] == {**BASE, "temperature": 0.2}


def test_retries_stop_at_max_retries_and_raise_the_last_error() -> None:
    server = Server(error_reply(500, x_request_id="req_last"))
    client, delays = client_for(server, max_retries=3)
    with pytest.raises(InternalServerError) as info:
        client.create(**BASE)
    assert len(server.requests) == 4
    assert delays == [0.5, 1.0, 2.0]
    assert info.value.retries == 3
    assert info.value.request_id == "req_last"


def test_backoff_doubles_and_caps_at_eight_seconds() -> None:
    server = Server(error_reply(503))
    client, delays = client_for(server, max_retries=7)
    with pytest.raises(ServiceUnavailableError):
        client.create(**BASE)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_comes_from_client_random() -> None:
    server = Server(error_reply(503))
    client, delays = client_for(server, max_retries=3)
    client._random = lambda: 1.0
    with pytest.raises(ServiceUnavailableError):
        client.create(**BASE)
    assert delays == [0.375, 0.75, 1.5]


def test_max_retries_zero_sends_once() -> None:
    server = Server(error_reply(503))
    client, delays = client_for(server, max_retries=0)
    with pytest.raises(ServiceUnavailableError) as info:
        client.create(**BASE)
    assert len(server.requests) == 1
    assert delays == []
    assert info.value.retries == 0


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        Client(api_key=SECRET, max_retries=-1)


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": email.utils.formatdate(NOW + 5, usegmt=True)}, 5.0),
        ({"retry-after-ms": "1200", "retry-after": "30"}, 1.2),
        ({"retry-after": "86400"}, 0.5),
        ({"retry-after": email.utils.formatdate(NOW - 5, usegmt=True)}, 0.5),
    ],
    ids=["ms", "seconds", "http-date", "ms-first", "too-long", "date-in-past"],
)
def test_the_servers_retry_after_is_honoured_within_bounds(
    headers: dict[str, str], delay: float
) -> None:
    server = Server(
        httpx.Response(429, json={"error": {"message": "slow"}}, headers=headers),
        httpx.Response(200, json=CHAT_RESPONSE),
    )
    client, delays = client_for(server)
    client.create(**BASE)
    assert delays == [delay]


def test_x_should_retry_false_stops_a_retry_of_a_5xx() -> None:
    server = Server(error_reply(500, x_should_retry="false"))
    client, delays = client_for(server)
    with pytest.raises(InternalServerError):
        client.create(**BASE)
    assert len(server.requests) == 1
    assert delays == []


def test_x_should_retry_true_retries_an_otherwise_final_status() -> None:
    server = Server(
        error_reply(418, x_should_retry="true"), httpx.Response(200, json=CHAT_RESPONSE)
    )
    client, delays = client_for(server)
    client.create(**BASE)
    assert len(server.requests) == 2
    assert delays == [0.5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_hopeless_statuses_are_never_retried(status: int) -> None:
    server = Server(error_reply(status, x_should_retry="true"))
    client, delays = client_for(server, max_retries=5)
    with pytest.raises(APIStatusError):
        client.create(**BASE)
    assert len(server.requests) == 1
    assert delays == []


def test_a_429_for_an_exhausted_quota_is_never_retried() -> None:
    body = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    server = Server(error_reply(429, body))
    client, delays = client_for(server, max_retries=5)
    with pytest.raises(RateLimitError) as info:
        client.create(**BASE)
    assert info.value.code == "insufficient_quota"
    assert len(server.requests) == 1
    assert delays == []


def test_connection_failures_are_retried() -> None:
    server = Server(
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.Response(200, json=CHAT_RESPONSE),
    )
    client, delays = client_for(server)
    assert client.create(**BASE).content
    assert len(server.requests) == 3
    assert delays == [0.5, 1.0]


def test_connection_failures_past_max_retries_raise_api_connection_error() -> None:
    server = Server(httpx.ConnectError("connection refused"))
    client, delays = client_for(server, max_retries=2, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(APIConnectionError) as info:
        client.create(**BASE)
    assert not isinstance(info.value, APITimeoutError)
    assert (
        str(info.value)
        == "Could not connect to http://127.0.0.1:9/v1/chat/completions: connection refused"
    )
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert len(server.requests) == 3
    assert delays == [0.5, 1.0]


def test_timeouts_are_retried_then_raise_api_timeout_error() -> None:
    server = Server(httpx.ReadTimeout("timed out"))
    client, delays = client_for(server, max_retries=1)
    with pytest.raises(APITimeoutError, match="timed out"):
        client.create(**BASE)
    assert len(server.requests) == 2
    assert delays == [0.5]


def test_a_connection_lost_while_reading_a_non_streamed_body_is_retried() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        def body():
            yield b'{"id": "chatcmpl-1", "choi'
            raise httpx.ReadError("connection reset")

        return httpx.Response(200, content=body())

    server = Server(broken, httpx.Response(200, json=CHAT_RESPONSE))
    client, delays = client_for(server)
    assert client.create(**BASE).to_dict() == CHAT_RESPONSE
    assert len(server.requests) == 2
    assert delays == [0.5]


def test_a_stream_is_retried_before_its_first_byte_only() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        def body():
            yield STREAM_BODY[:60]
            raise httpx.ReadError("connection reset")

        return httpx.Response(200, content=body())

    server = Server(error_reply(503), broken, httpx.Response(200, content=STREAM_BODY))
    client, delays = client_for(server, max_retries=5)
    stream = client.stream(**BASE)
    assert len(server.requests) == 2  # the 503 was retried: no byte had reached the caller
    with pytest.raises(Exception, match="cut short"):
        list(stream)
    assert len(server.requests) == 2  # the broken stream was not
    assert delays == [0.5]


# ---------------------------------------------------------------------------------------------
# AsyncClient


def test_async_create_returns_the_completion() -> None:
    server = Server(httpx.Response(200, json=CHAT_RESPONSE))
    client, _ = async_client_for(server)

    async def main() -> Any:
        async with client:
            return await client.create(**BASE)

    assert asyncio.run(main()).to_dict() == CHAT_RESPONSE
    assert server.bodies == [BASE]


def test_async_retries_back_off_with_the_fake_sleep() -> None:
    server = Server(
        error_reply(503),
        httpx.ConnectError("refused"),
        error_reply(429, retry_after_ms="100"),
        httpx.Response(200, json=CHAT_RESPONSE),
    )
    client, delays = async_client_for(server, max_retries=3)
    completion = asyncio.run(client.create(**BASE))
    assert completion.content
    assert delays == [0.5, 1.0, 0.1]


def test_async_gives_up_after_max_retries() -> None:
    server = Server(error_reply(500))
    client, delays = async_client_for(server, max_retries=2)
    with pytest.raises(InternalServerError) as info:
        asyncio.run(client.create(**BASE))
    assert info.value.retries == 2
    assert len(server.requests) == 3
    assert delays == [0.5, 1.0]


def test_async_never_retries_hopeless_statuses() -> None:
    server = Server(
        error_reply(401, {"error": {"message": "bad key", "type": "authentication_error"}})
    )
    client, delays = async_client_for(server, max_retries=4)
    with pytest.raises(AuthenticationError) as info:
        asyncio.run(client.create(**BASE))
    assert info.value.type == "authentication_error"
    assert len(server.requests) == 1
    assert delays == []


def test_async_stream_is_retried_before_it_starts() -> None:
    server = Server(error_reply(502), httpx.Response(200, content=STREAM_BODY))
    client, delays = async_client_for(server)

    async def main() -> str | None:
        async with client.stream(**BASE) as stream:
            async for _ in stream:
                pass
        return stream.completion.content

    assert asyncio.run(main()) == "ok"
    assert delays == [0.5]
    assert server.bodies[1]["stream"] is True


def test_async_models() -> None:
    server = Server(httpx.Response(200, json={"data": [{"id": "a"}, {"id": "b"}, {"x": 1}]}))
    client, _ = async_client_for(server)
    assert asyncio.run(client.models()) == ["a", "b"]


# ---------------------------------------------------------------------------------------------
# The API key stays out of reprs, errors, logs and warnings


def echoing_401(request: httpx.Request) -> httpx.Response:
    key = request.headers["authorization"].removeprefix("Bearer ")
    body = {
        "error": {
            "message": f"Incorrect API key provided: {key}. You can find your API key at …",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        },
        "echo": {"authorization": request.headers["authorization"]},
    }
    return httpx.Response(401, json=body, headers={"x-request-id": "req_key"})


def full_text(error: BaseException) -> str:
    """Everything a user could see of an error: message, repr, body, the printed traceback."""
    parts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    if hasattr(error, "body"):
        parts.append(json.dumps(error.body, ensure_ascii=False, default=str))
    return "\n".join(parts)


def test_the_key_is_not_in_the_clients_repr() -> None:
    for client in (Client(api_key=SECRET), AsyncClient(api_key=SECRET)):
        assert SECRET not in repr(client)
        assert SECRET not in str(client)
        assert "api_key=set" in repr(client)


def test_a_key_echoed_in_an_error_is_redacted_everywhere() -> None:
    server = Server(echoing_401)
    client, _ = client_for(server)
    with pytest.raises(AuthenticationError) as info:
        client.create(**BASE)
    assert SECRET not in full_text(info.value)
    assert info.value.message.startswith("Incorrect API key provided: sk-…")
    assert info.value.code == "invalid_api_key"


def test_a_key_echoed_in_an_html_error_page_is_redacted() -> None:
    page = f"<html><body>Unauthorized: {SECRET}</body></html>"
    server = Server(httpx.Response(401, text=page))
    client, _ = client_for(server)
    with pytest.raises(AuthenticationError) as info:
        client.create(**BASE)
    assert SECRET not in full_text(info.value)


def test_a_key_echoed_in_an_unreadable_200_is_redacted() -> None:
    server = Server(httpx.Response(200, text=f"welcome {SECRET}, here is no JSON"))
    client, _ = client_for(server)
    with pytest.raises(APIResponseValidationError) as info:
        client.create(**BASE)
    assert SECRET not in full_text(info.value)


def test_a_key_in_a_connection_error_message_is_redacted() -> None:
    server = Server(httpx.ConnectError(f"proxy refused Bearer {SECRET}"))
    client, _ = client_for(server, max_retries=0)
    with pytest.raises(APIConnectionError) as info:
        client.create(**BASE)
    assert SECRET not in full_text(info.value)


def test_a_key_echoed_in_a_stream_error_is_redacted() -> None:
    body = f'data: {{"error": {{"message": "key {SECRET} revoked"}}}}\n\n'.encode()
    server = Server(httpx.Response(200, content=body))
    client, _ = client_for(server)
    with pytest.raises(APIStatusError) as info:
        list(client.stream(**BASE))
    assert SECRET not in full_text(info.value)


def test_a_key_in_a_broken_stream_is_redacted() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        def body():
            yield STREAM_BODY[:40]
            raise httpx.ReadError(f"reset while sending {SECRET}")

        return httpx.Response(200, content=body())

    client, _ = client_for(Server(broken))
    with pytest.raises(Exception, match="cut short") as info:
        list(client.stream(**BASE))
    assert SECRET not in full_text(info.value)


def test_async_errors_redact_the_key() -> None:
    server = Server(echoing_401)
    client, _ = async_client_for(server)
    with pytest.raises(AuthenticationError) as info:
        asyncio.run(client.create(**BASE))
    assert SECRET not in full_text(info.value)
    assert SECRET not in repr(client)


def test_the_key_never_reaches_a_log_record_or_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "nbchat"):
        caplog.set_level(logging.DEBUG, logger=name)
    server = Server(
        httpx.Response(200, json=CHAT_RESPONSE),
        error_reply(503),
        httpx.ConnectError("refused"),
        httpx.Response(200, content=STREAM_BODY),
        echoing_401,
    )
    client, _ = client_for(server, max_retries=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.create(**BASE)
        list(client.stream(**BASE))
        with pytest.raises(AuthenticationError):
            client.create(**BASE)
        with pytest.raises(AuthenticationError):
            asyncio.run(async_client_for(Server(echoing_401), max_retries=0)[0].models())
    assert caplog.records, "httpx logs each request: the check would be empty without them"
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.args)
    assert SECRET not in caplog.text
    for warning in caught:
        assert SECRET not in str(warning.message)


DEFAULT = "https://api.openai.com/v1"


def test_no_key_and_no_base_url_is_an_error_before_any_network_attempt(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def no_network(request):
        raise AssertionError(f"a request was sent: {request.url}")

    client = nbchat.Client(transport=httpx.MockTransport(no_network))
    # Building (a dry run) needs no key; sending does, and fails before any network attempt.
    hi = [{"role": "user", "content": "hi"}]
    assert client.build_request(model="m", messages=hi).url.startswith(DEFAULT)
    with pytest.raises(nbchat.NbchatError, match="No API key for OpenAI") as caught:
        client.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert "\n" not in str(caught.value)
    with pytest.raises(nbchat.NbchatError, match="No API key"):
        client.models()

    async def main():
        async_client = nbchat.AsyncClient(transport=httpx.MockTransport(no_network))
        with pytest.raises(nbchat.NbchatError, match="No API key"):
            await async_client.create(model="m", messages=[{"role": "user", "content": "hi"}])

    asyncio.run(main())
    # A server that needs no key is fine.
    assert nbchat.Client(base_url="http://localhost:8000/v1").api_key is None


# ---------------------------------------------------------------------------------------------
# What would hurt is refused: bodies past their limit, lying encodings, replies with no choices


def streamed(
    body: bytes | Callable[[], Any], status: int = 200, **headers: str
) -> Callable[[httpx.Request], httpx.Response]:
    """A reply whose body arrives in reads, as from a network, not read when built."""

    def reply(request: httpx.Request) -> httpx.Response:
        pieces = body() if callable(body) else [body[i : i + 512] for i in range(0, len(body), 512)]
        return httpx.Response(
            status,
            headers={k.replace("_", "-"): v for k, v in headers.items()},
            stream=Reads(pieces),
            request=request,
        )

    return reply


class Reads(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body read a piece at a time, by a Client or an AsyncClient alike."""

    def __init__(self, pieces: Any) -> None:
        self.pieces = pieces

    def __iter__(self) -> Any:
        yield from self.pieces

    async def __aiter__(self) -> Any:
        for piece in self.pieces:
            yield piece


COMPLETION_BYTES = json.dumps(CHAT_RESPONSE, ensure_ascii=False).encode()


def test_nbchat_asks_for_gzip_and_deflate_only_and_decodes_them() -> None:
    server = Server(
        streamed(gzip.compress(COMPLETION_BYTES), content_encoding="gzip"),
        streamed(zlib.compress(COMPLETION_BYTES), content_encoding="deflate"),
    )
    client, _ = client_for(server)
    assert client.create(**BASE).content == ANSWER
    assert client.create(**BASE).content == ANSWER
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_that_lies_about_its_encoding_is_a_one_line_nbchat_error(encoding: str) -> None:
    server = Server(streamed(COMPLETION_BYTES, content_encoding=encoding))
    client, _ = client_for(server)
    with pytest.raises(ResponseDecodingError) as info:
        client.create(**BASE)
    assert "\n" not in str(info.value)
    assert encoding in str(info.value)
    assert isinstance(info.value, APIResponseValidationError)
    assert not isinstance(info.value.__cause__, httpx.HTTPError)
    assert len(server.requests) == 1  # the server answered: asking again would not help


def test_an_encoding_nbchat_did_not_ask_for_is_refused_by_name() -> None:
    server = Server(streamed(b"\x8b\x00\x80" * 10, content_encoding="br"))
    client, _ = client_for(server)
    with pytest.raises(ResponseDecodingError, match="encoded with br, which nbchat did not ask"):
        client.create(**BASE)


def test_an_async_body_that_lies_about_its_encoding_is_an_nbchat_error() -> None:
    server = Server(streamed(COMPLETION_BYTES, content_encoding="gzip"))
    client, _ = async_client_for(server)
    with pytest.raises(ResponseDecodingError):
        asyncio.run(client.create(**BASE))
    with pytest.raises(ResponseDecodingError):
        asyncio.run(client.models())


def test_an_error_status_whose_body_lies_keeps_its_status_and_says_why() -> None:
    server = Server(streamed(b'{"error": {"message": "down"}}', 503, content_encoding="gzip"))
    client, delays = client_for(server, max_retries=1)
    with pytest.raises(ServiceUnavailableError) as info:
        client.create(**BASE)
    assert "its body could not be read" in info.value.message
    assert "gzip" in info.value.message
    assert len(delays) == 1  # a 503 is retried as any 503


def test_a_body_past_max_response_bytes_is_refused_and_not_retried() -> None:
    server = Server(streamed(COMPLETION_BYTES))
    client, _ = client_for(server, max_response_bytes=100)
    with pytest.raises(ResponseTooLargeError) as info:
        client.create(**BASE)
    assert info.value.limit == 100
    assert "max_response_bytes" in str(info.value)
    assert len(server.requests) == 1
    roomy, _ = client_for(
        Server(streamed(COMPLETION_BYTES)), max_response_bytes=len(COMPLETION_BYTES)
    )
    assert roomy.create(**BASE).content == ANSWER


def test_the_default_limit_is_32_mib_and_none_lifts_it() -> None:
    client = Client(api_key=SECRET)
    assert (client.max_response_bytes, client.max_stream_bytes, client.max_event_bytes) == (
        32 * 2**20,
        32 * 2**20,
        8 * 2**20,
    )
    assert client.max_file_bytes == AsyncClient(api_key=SECRET).max_file_bytes == 2**30
    unlimited, _ = client_for(Server(streamed(COMPLETION_BYTES)), max_response_bytes=None)
    assert unlimited.create(**BASE).content == ANSWER


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "32"])
def test_a_limit_that_is_not_a_positive_whole_number_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="max_response_bytes"):
        Client(api_key=SECRET, max_response_bytes=value)
    with pytest.raises(ValueError, match="max_event_bytes"):
        AsyncClient(api_key=SECRET, max_event_bytes=value)
    with pytest.raises(ValueError, match="max_file_bytes"):
        AsyncClient(api_key=SECRET, max_file_bytes=value)


def test_a_gzip_bomb_as_a_completion_is_refused_with_bounded_memory() -> None:
    # 5 GiB of zeros in 5 MB of gzip: the kernel must not take gigabytes for it.
    server = Server(streamed(lambda: zeros_gzip(5 * 1024), content_encoding="gzip"))
    client, _ = client_for(server)
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLargeError, match="32 MiB"):
            client.create(**BASE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_a_gzip_bomb_as_an_error_page_is_refused_with_bounded_memory() -> None:
    bomb = streamed(lambda: zeros_gzip(5 * 1024), 500, content_encoding="gzip")
    client, _ = client_for(Server(bomb), max_retries=0, max_response_bytes=2**20)
    tracemalloc.start()
    try:
        with pytest.raises(InternalServerError, match="larger than the 1 MiB limit"):
            client.create(**BASE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_an_async_gzip_bomb_is_refused_with_bounded_memory() -> None:
    async def pieces() -> Any:
        for piece in zeros_gzip(5 * 1024):
            yield piece

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=pieces())

    client = AsyncClient(
        api_key=SECRET, transport=httpx.MockTransport(reply), max_response_bytes=2**20
    )
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLargeError):
            asyncio.run(client.create(**BASE))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in CHAT_RESPONSE.items() if k != "choices"},
        {**CHAT_RESPONSE, "choices": []},
        {**CHAT_RESPONSE, "choices": None},
    ],
    ids=["missing", "empty", "null"],
)
def test_a_200_with_no_choices_is_an_error_not_an_empty_answer(body: dict[str, Any]) -> None:
    server = Server(httpx.Response(200, json=body))
    client, _ = client_for(server)
    with pytest.raises(APIResponseValidationError, match="choices"):
        client.create(**BASE)
    aclient, _ = async_client_for(server)
    with pytest.raises(APIResponseValidationError, match="choices"):
        asyncio.run(aclient.create(**BASE))


def test_invalid_utf8_in_a_completion_is_read_with_replacement_characters() -> None:
    body = COMPLETION_BYTES.replace("量子".encode(), "量".encode() + b"\xe5\xad")
    client, _ = client_for(Server(httpx.Response(200, content=body)))
    assert client.create(**BASE).content.startswith("量\ufffd纠缠")


# ---------------------------------------------------------------------------------------------
# Credentials in the base URL, and what errors expose


URL_USER, PASSWORD = "alice", "hunter2-url-password"
CREDENTIAL_URL = f"http://{URL_USER}:{PASSWORD}@llm.example.com:8443/v1"
TOKEN = base64.b64encode(f"{URL_USER}:{PASSWORD}".encode()).decode()


def reachable(value: Any, seen: set[int] | None = None) -> str:
    """The text of everything reachable from an error: message, repr, traceback, body, its
    request and response (headers, URL, content), attributes, causes and contexts."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return ""
    seen.add(id(value))
    parts: list[str] = []
    if isinstance(value, BaseException):
        parts += [str(value), repr(value), "".join(traceback.format_exception(value))]
        for name, item in vars(value).items():
            parts.append(f"{name}={reachable(item, seen)}")
        for linked in (value.__cause__, value.__context__):
            if linked is not None:
                parts.append(reachable(linked, seen))
        for name in ("request", "response"):
            try:
                item = getattr(value, name, None)
            except RuntimeError:  # httpx errors built without a request
                continue
            if item is not None:
                parts.append(reachable(item, seen))
    elif isinstance(value, httpx.Request):
        parts += [repr(value), str(value.url), repr(value.headers.multi_items())]
        with contextlib.suppress(httpx.RequestNotRead):
            parts.append(value.content.decode("utf-8", "replace"))
    elif isinstance(value, httpx.Response):
        parts += [repr(value), repr(value.headers.multi_items())]
        with contextlib.suppress(httpx.ResponseNotRead):
            parts.append(value.content.decode("utf-8", "replace"))
        with contextlib.suppress(RuntimeError):
            parts.append(reachable(value.request, seen))
    else:
        parts.append(json.dumps(value, default=repr, ensure_ascii=False))
    return "\n".join(parts)


def test_credentials_in_the_base_url_become_a_basic_header() -> None:
    server = Server()
    client = Client(base_url=CREDENTIAL_URL, transport=httpx.MockTransport(server.reply))
    client.create(**BASE)
    [request] = server.requests
    assert str(request.url) == "http://llm.example.com:8443/v1/chat/completions"
    assert request.headers["authorization"] == f"Basic {TOKEN}"
    assert client.base_url == "http://llm.example.com:8443/v1"


def test_percent_encoded_credentials_are_sent_decoded() -> None:
    server = Server()
    url = "http://us%40er:p%3Ass%2Fword@host.test/v1"
    Client(base_url=url, transport=httpx.MockTransport(server.reply)).create(**BASE)
    token = server.requests[0].headers["authorization"].removeprefix("Basic ")
    assert base64.b64decode(token).decode() == "us@er:p:ss/word"


def test_an_api_key_wins_over_credentials_in_the_url() -> None:
    server = Server()
    client = Client(
        api_key=SECRET, base_url=CREDENTIAL_URL, transport=httpx.MockTransport(server.reply)
    )
    client.create(**BASE)
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert PASSWORD not in repr(server.requests[0].headers.multi_items())


def test_credentials_in_openai_base_url_are_handled_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", CREDENTIAL_URL)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = Server()
    client = Client(transport=httpx.MockTransport(server.reply))
    client.create(**BASE)
    assert server.requests[0].headers["authorization"] == f"Basic {TOKEN}"
    assert PASSWORD not in repr(client)


def test_a_base_url_set_later_has_its_credentials_split_off_too() -> None:
    server = Server()
    client = Client(base_url="http://first.test/v1", transport=httpx.MockTransport(server.reply))
    client.base_url = CREDENTIAL_URL
    client.create(**BASE)
    assert client.base_url == "http://llm.example.com:8443/v1"
    assert server.requests[0].headers["authorization"] == f"Basic {TOKEN}"


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_url_credentials_appear_in_no_repr_dry_run_or_client_vars(cls: type) -> None:
    client = cls(base_url=CREDENTIAL_URL)
    prepared = client.build_request(**BASE)
    shown = "\n".join(
        [
            repr(client),
            str(client),
            repr(vars(client)),
            client.base_url,
            prepared.url,
            repr(prepared),
            json.dumps(prepared.to_dict(), ensure_ascii=False),
        ]
    )
    for secret in (PASSWORD, TOKEN, f"{URL_USER}:"):
        assert secret not in shown
    assert prepared.url == "http://llm.example.com:8443/v1/chat/completions"
    assert prepared.headers["Authorization"] == "Basic ••••••••"


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_the_api_key_is_not_in_the_clients_vars(cls: type) -> None:
    client = cls(api_key=SECRET)
    assert SECRET not in repr(vars(client))
    assert SECRET not in repr(client.__dict__)
    assert SECRET not in str([repr(value) for value in vars(client).values()])
    assert client.api_key == SECRET  # still readable on purpose


def test_credentials_a_caller_put_in_headers_are_masked_in_the_dry_run() -> None:
    client = Client(api_key=SECRET, headers={"X-Api-Key": "team-key-0123456789"})
    prepared = client.build_request(**BASE, extra_headers={"Proxy-Authorization": "Basic abcdefgh"})
    assert prepared.headers["X-Api-Key"] == "••••••••"
    assert prepared.headers["Proxy-Authorization"] == "Basic ••••••••"
    assert prepared.headers["Authorization"] == "Bearer ••••••••"


def test_url_credentials_never_reach_a_log_record_httpxs_own_included(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    server = Server(
        httpx.Response(200, json=CHAT_RESPONSE), error_reply(401), httpx.ConnectError("x")
    )
    client = Client(
        base_url=CREDENTIAL_URL, transport=httpx.MockTransport(server.reply), max_retries=0
    )
    client.create(**BASE)
    with pytest.raises(AuthenticationError):
        client.create(**BASE)
    with pytest.raises(APIConnectionError):
        client.create(**BASE)
    messages = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert messages, "httpx logs each request at INFO: the check would be empty without them"
    assert any("llm.example.com" in message for message in messages)
    for message in messages:
        assert PASSWORD not in message
        assert URL_USER not in message


def test_url_credentials_and_the_key_are_in_nothing_an_error_exposes() -> None:
    # A server that echoes the credentials it got; errors of every kind, sync and async.
    def echo(status: int) -> Callable[[httpx.Request], httpx.Response]:
        def reply(request: httpx.Request) -> httpx.Response:
            auth = request.headers.get("authorization", "")
            body = {"error": {"message": f"bad credentials {auth} {PASSWORD}"}}
            return httpx.Response(status, json=body)

        return reply

    errors: list[BaseException] = []
    replies: list[Any] = [
        echo(401),
        echo(500),
        httpx.ConnectError(f"refused {PASSWORD}"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, text=f"not json {PASSWORD}"),
        httpx.Response(200, json={"choices": []}),
        streamed(COMPLETION_BYTES, content_encoding="gzip"),
    ]
    for key in (None, SECRET):
        for reply in replies:
            for cls in (Client, AsyncClient):
                server = Server(reply)
                handler = server.reply if cls is Client else server.areply
                client = cls(
                    api_key=key,
                    base_url=CREDENTIAL_URL,
                    transport=httpx.MockTransport(handler),
                    max_retries=0,
                )
                with pytest.raises(NbchatError) as info:
                    if cls is Client:
                        client.create(**BASE)
                    else:
                        asyncio.run(client.create(**BASE))
                errors.append(info.value)
    assert len(errors) == 28
    for error in errors:
        text = reachable(error)
        assert "authorization" in text.lower(), type(error).__name__  # the check looks there
        for secret in (PASSWORD, TOKEN, SECRET):
            assert secret not in text, (type(error).__name__, secret)


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_secrets_is_every_credential_the_client_holds_in_every_form_it_could_be_echoed(
    cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    header_basic = base64.b64encode(b"carol:header-pass-42").decode()
    client = cls(
        base_url="http://bob:p%2Fw%22rd-1@gw.test/v1?api-key=query-key-77&api-version=1",
        headers={
            "api-key": "azure-key-0123",
            "X-Goog-Api-Key": "goog-key-0123",
            "Proxy-Authorization": f"Basic {header_basic}",
            "X-Trace": "trace-not-a-secret",
        },
    )
    secrets = client.secrets
    assert isinstance(secrets, tuple)
    url_token = base64.b64encode(b'bob:p/w"rd-1').decode()
    for held in (
        'p/w"rd-1',  # the URL's password, decoded
        "p%2Fw%22rd-1",  # percent-encoded
        'p/w\\"rd-1',  # escaped inside JSON text
        'p\\/w\\"rd-1',  # and with the slash escaped too
        url_token,  # the Basic token sent for it
        "query-key-77",
        "azure-key-0123",
        "goog-key-0123",
        f"Basic {header_basic}",
        header_basic,
        "header-pass-42",  # inside the Basic header given
    ):
        assert held in secrets, held
    assert "trace-not-a-secret" not in secrets and "bob" not in secrets and "1" not in secrets
    assert [len(s) for s in secrets] == sorted((len(s) for s in secrets), reverse=True)
    with pytest.raises(AttributeError):
        client.secrets = ()  # read-only
    keyed = cls(api_key=SECRET, headers={"Authorization": "Bearer abc"})
    assert SECRET in keyed.secrets and "abc" not in keyed.secrets  # under 4 characters
    assert cls(api_key="x", base_url="http://local.test/v1").secrets == ()


def test_credentials_given_as_headers_are_in_nothing_an_error_exposes() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        said = f"{request.headers['x-api-key']} {request.headers['authorization']}"
        return httpx.Response(401, json={"error": {"message": f"rejected {said}"}})

    client = Client(
        base_url="http://gw.test/v1",
        headers={"x-api-key": "team-key-0123456789", "Authorization": "Token tok-9876543210"},
        transport=httpx.MockTransport(echo),
        max_retries=0,
    )
    with pytest.raises(AuthenticationError) as info:
        client.create(**BASE)
    text = reachable(info.value)
    assert "rejected" in text
    for secret in ("team-key-0123456789", "tok-9876543210"):
        assert secret not in text, secret


def test_a_credential_in_the_base_urls_query_is_masked_wherever_the_url_is_shown() -> None:
    server = Server()
    client = Client(
        base_url="https://res.test/openai?api-key=QUERY-SECRET-1&api-version=2024-06-01",
        transport=httpx.MockTransport(server.reply),
    )
    prepared = client.build_request(**BASE)
    assert "QUERY-SECRET-1" not in prepared.url and "QUERY-SECRET-1" not in repr(client)
    assert prepared.url.startswith("https://res.test/openai?api-key=••••••••&api-version=")
    client.create(**BASE)
    assert server.requests[0].url.params["api-key"] == "QUERY-SECRET-1"  # sent as given


def test_stream_errors_expose_neither_the_key_nor_url_credentials() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        def body() -> Any:
            yield STREAM_BODY[:40]
            raise httpx.ReadError("reset")

        return httpx.Response(200, content=body())

    bodies: list[Any] = [
        broken,
        httpx.Response(200, content=b'data: {"error": {"message": "revoked"}}\n\n'),
        httpx.Response(200, content=b"data: [DONE]\n\n"),
        streamed(STREAM_BODY, content_encoding="gzip"),
        error_reply(429),
    ]
    for key in (None, SECRET):
        for body in bodies:
            client = Client(
                api_key=key,
                base_url=CREDENTIAL_URL,
                transport=httpx.MockTransport(Server(body).reply),
                max_retries=0,
            )
            with pytest.raises(NbchatError) as info:
                list(client.stream(**BASE))
            text = reachable(info.value)
            assert "Authorization" in text or "authorization" in text  # the check looks there
            for secret in (PASSWORD, TOKEN, SECRET):
                assert secret not in text, (type(info.value).__name__, secret)


def test_an_errors_request_and_response_are_masked_copies() -> None:
    client, _ = client_for(Server(echoing_401))
    with pytest.raises(AuthenticationError) as info:
        client.create(**BASE)
    error = info.value
    assert error.request is not None and error.response is not None
    assert error.request.headers["authorization"] == "Bearer ********"
    assert error.response.request.headers["authorization"] == "Bearer ********"
    assert error.response.status_code == 401
    assert error.response.json()["error"]["code"] == "invalid_api_key"
    assert json.loads(error.request.content) == BASE  # the body is kept: it holds no credential


def test_a_chained_httpx_error_is_a_safe_copy_of_the_same_kind() -> None:
    client, _ = client_for(Server(httpx.ConnectError(f"refused {SECRET}")), max_retries=0)
    with pytest.raises(APIConnectionError) as info:
        client.create(**BASE)
    cause = info.value.__cause__
    assert isinstance(cause, httpx.ConnectError)
    assert SECRET not in str(cause)
    assert cause.request.headers["authorization"] == "Bearer ********"
    assert info.value.__context__ is None or info.value.__context__ is cause
