from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from nbchat.protocol.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    DeveloperMessage,
    ErrorBody,
    FunctionCall,
    FunctionDefinition,
    ImageURL,
    ImageURLPart,
    NamedToolChoice,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolDefinition,
    ToolMessage,
    UserMessage,
)
from tests.reference import (
    ALL_FIELDS_REQUEST,
    ASSISTANT_MESSAGE,
    ASSISTANT_TOOL_CALL_MESSAGE,
    BASE64_IMAGE_PART,
    CHAT_RESPONSE,
    ERROR_BODY,
    FULL_RESPONSE,
    IMAGE_MESSAGE,
    JSON_MODE_CONTENT,
    JSON_MODE_REQUEST,
    JSON_SCHEMA_REQUEST,
    LOGPROBS_REQUEST,
    LOGPROBS_RESPONSE,
    MULTI_TURN_REQUEST,
    PARALLEL_TOOL_CALLS_RESPONSE,
    PARALLEL_TOOL_RESULTS_REQUEST,
    SIMPLE_REQUEST,
    STREAM_CHUNKS,
    STREAM_REQUEST,
    SYSTEM_MESSAGE,
    TOOL_CALL_RESPONSE,
    TOOL_CHOICES,
    TOOL_FOLLOW_UP_RESPONSE,
    TOOL_MESSAGE,
    TOOL_REQUEST,
    TOOL_RESULT_REQUEST,
    TOOL_STREAM_CHUNKS,
    USER_MESSAGE,
    VISION_REQUEST,
)

REFERENCE_REQUESTS = {
    "simple": SIMPLE_REQUEST,
    "tool": TOOL_REQUEST,
    "tool_result": TOOL_RESULT_REQUEST,
    "parallel_tool_results": PARALLEL_TOOL_RESULTS_REQUEST,
    "vision": VISION_REQUEST,
    "stream": STREAM_REQUEST,
    "json_mode": JSON_MODE_REQUEST,
    "json_schema": JSON_SCHEMA_REQUEST,
    "logprobs": LOGPROBS_REQUEST,
    "multi_turn": MULTI_TURN_REQUEST,
}

REFERENCE_RESPONSES = {
    "chat": CHAT_RESPONSE,
    "tool_call": TOOL_CALL_RESPONSE,
    "tool_follow_up": TOOL_FOLLOW_UP_RESPONSE,
    "parallel_tool_calls": PARALLEL_TOOL_CALLS_RESPONSE,
    "logprobs": LOGPROBS_RESPONSE,
    "full": FULL_RESPONSE,
}


def round_trip(payload: dict[str, Any]) -> dict[str, Any]:
    """Validate, serialize, and go through JSON text as the client does."""
    return json.loads(json.dumps(ChatCompletionRequest.model_validate(payload).to_dict()))


# ---------------------------------------------------------------------------------------------
# Requests


@pytest.mark.parametrize("name", list(REFERENCE_REQUESTS))
def test_reference_requests_round_trip_unchanged(name: str) -> None:
    payload = REFERENCE_REQUESTS[name]
    assert round_trip(payload) == payload


def test_the_all_fields_request_round_trips_without_its_null() -> None:
    expected = {k: v for k, v in ALL_FIELDS_REQUEST.items() if v is not None}
    assert round_trip(ALL_FIELDS_REQUEST) == expected
    assert "top_logprobs" not in round_trip(ALL_FIELDS_REQUEST)


@pytest.mark.parametrize("choice", TOOL_CHOICES, ids=["auto", "required", "none", "function"])
def test_every_reference_tool_choice_round_trips(choice: Any) -> None:
    payload = {**TOOL_REQUEST, "tool_choice": choice}
    assert round_trip(payload) == payload


@pytest.mark.parametrize(
    "message", [IMAGE_MESSAGE, {"role": "user", "content": [BASE64_IMAGE_PART]}]
)
def test_reference_image_messages_round_trip(message: dict[str, Any]) -> None:
    payload = {"model": "gpt-4.1", "messages": [message]}
    assert round_trip(payload) == payload


def test_validation_leaves_the_callers_payload_as_it_was() -> None:
    payload = copy.deepcopy(MULTI_TURN_REQUEST)
    round_trip(payload)
    assert payload == MULTI_TURN_REQUEST


def test_a_request_serializes_only_the_fields_that_were_set() -> None:
    request = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}])
    assert request.to_dict() == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_top_level_nulls_are_dropped() -> None:
    request = ChatCompletionRequest.model_validate(
        {**SIMPLE_REQUEST, "temperature": None, "seed": None, "tools": None}
    )
    data = request.to_dict()
    assert "temperature" not in data
    assert "seed" not in data
    assert "tools" not in data
    assert None not in data.values()


def test_unknown_request_fields_pass_through_untouched() -> None:
    extra = {
        "top_k": 40,
        "repetition_penalty": 1.1,
        "chat_template_kwargs": {"enable_thinking": False, "nested": [1, "two", None]},
        "reasoning_effort": "low",
    }
    data = ChatCompletionRequest.model_validate({**SIMPLE_REQUEST, **extra}).to_dict()
    assert data == {**SIMPLE_REQUEST, **extra}


def test_unknown_message_fields_pass_through() -> None:
    message = {"role": "user", "content": "hi", "name": "alice", "x_custom": {"a": 1}}
    payload = {"model": "m", "messages": [message]}
    assert round_trip(payload) == payload


def test_a_request_built_from_model_classes_keeps_roles_and_types() -> None:
    request = ChatCompletionRequest(
        model="gpt-4.1",
        messages=[
            SystemMessage(content="be brief"),
            DeveloperMessage(content="use metric units"),
            UserMessage(
                content=[
                    TextPart(text="what is this?"),
                    ImageURLPart(image_url=ImageURL(url="https://example.com/a.png", detail="low")),
                ]
            ),
            AssistantMessage(
                tool_calls=[
                    ToolCall(id="call_1", function=FunctionCall(name="f", arguments="{}")),
                ]
            ),
            ToolMessage(tool_call_id="call_1", content="42"),
            AssistantMessage(refusal="I can't help with that."),
        ],
        tools=[
            ToolDefinition(function=FunctionDefinition(name="f", parameters={"type": "object"}))
        ],
        tool_choice=NamedToolChoice(function={"name": "f"}),
    )
    assert request.to_dict() == {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "use metric units"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/a.png", "detail": "low"},
                    },
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            {"role": "assistant", "refusal": "I can't help with that."},
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
    }


def test_response_format_json_schema_is_sent_under_the_key_schema() -> None:
    data = round_trip(JSON_SCHEMA_REQUEST)
    assert "schema" in data["response_format"]["json_schema"]
    assert "schema_" not in data["response_format"]["json_schema"]


# ---------------------------------------------------------------------------------------------
# Messages


@pytest.mark.parametrize(
    "message",
    [
        SYSTEM_MESSAGE,
        {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
        {"role": "developer", "content": "follow the house style"},
        USER_MESSAGE,
        IMAGE_MESSAGE,
        ASSISTANT_MESSAGE,
        ASSISTANT_TOOL_CALL_MESSAGE,
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        TOOL_MESSAGE,
    ],
    ids=[
        "system",
        "system-parts",
        "developer",
        "user",
        "user-image",
        "assistant",
        "assistant-tool-calls",
        "assistant-refusal",
        "tool",
    ],
)
def test_every_message_shape_of_the_reference_is_accepted(message: dict[str, Any]) -> None:
    payload = {"model": "gpt-4.1", "messages": [message]}
    assert round_trip(payload) == payload


@pytest.mark.parametrize("detail", ["low", "high", "auto"])
def test_image_detail_accepts_low_high_auto(detail: str) -> None:
    part = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": detail}}
    payload = {"model": "m", "messages": [{"role": "user", "content": [part]}]}
    assert round_trip(payload) == payload


@pytest.mark.parametrize(
    ("message", "where"),
    [
        ({"role": "user"}, "content"),
        ({"role": "user", "content": 5}, "content"),
        ({"role": "user", "content": []}, "at least 1 item"),
        ({"role": "system", "content": []}, "at least 1 item"),
        ({"role": "wizard", "content": "hi"}, "wizard"),
        ({"content": "hi"}, "role"),
        ({"role": "assistant", "content": None}, "tool_calls"),
        ({"role": "tool", "content": "x"}, "tool_call_id"),
        ({"role": "user", "content": [{"type": "video", "video": "x"}]}, "video"),
        ({"role": "user", "content": [{"type": "text"}]}, "text"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, "url"),
        (
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "max"}}],
            },
            "detail",
        ),
        ({"role": "system", "content": [BASE64_IMAGE_PART]}, "image_url"),
        (
            {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]},
            "id",
        ),
    ],
    ids=[
        "no-content",
        "number-content",
        "empty-parts",
        "empty-system-parts",
        "unknown-role",
        "no-role",
        "empty-assistant",
        "tool-without-id",
        "unknown-part",
        "text-part-without-text",
        "image-without-url",
        "bad-detail",
        "image-in-system",
        "tool-call-without-id",
    ],
)
def test_malformed_messages_are_rejected(message: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({"model": "m", "messages": [message]})
    assert where in str(info.value)


# ---------------------------------------------------------------------------------------------
# Responses


@pytest.mark.parametrize("name", list(REFERENCE_RESPONSES))
def test_reference_responses_round_trip_unchanged(name: str) -> None:
    payload = REFERENCE_RESPONSES[name]
    completion = ChatCompletion.model_validate_json(json.dumps(payload))
    assert completion.to_dict() == payload


def test_reference_chat_response_fields_are_typed() -> None:
    completion = ChatCompletion.model_validate(CHAT_RESPONSE)
    assert completion.content == CHAT_RESPONSE["choices"][0]["message"]["content"]
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 67
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.system_fingerprint == "fp_a1b2c3d4e5"


def test_reference_tool_call_arguments_parse_as_json() -> None:
    completion = ChatCompletion.model_validate(PARALLEL_TOOL_CALLS_RESPONSE)
    calls = completion.choices[0].message.tool_calls or []
    assert [json.loads(call.function.arguments)["location"] for call in calls] == [
        "Beijing, China",
        "Shanghai, China",
    ]


def test_reference_json_mode_content_is_json() -> None:
    completion = ChatCompletion.model_validate(
        {"choices": [{"message": {"role": "assistant", "content": JSON_MODE_CONTENT}}]}
    )
    assert json.loads(completion.content or "") == {"name": "张三", "age": 28, "city": "上海"}


def test_reference_logprobs_are_typed() -> None:
    completion = ChatCompletion.model_validate(LOGPROBS_RESPONSE)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    first = logprobs.content[0]
    assert (first.token, first.logprob, bytes(first.bytes or []).decode()) == ("蓝", -0.0023, "蓝")
    assert [top.token for top in first.top_logprobs] == ["蓝", "天", "深"]


@pytest.mark.parametrize("index", range(len(STREAM_CHUNKS)))
def test_reference_stream_chunks_round_trip(index: int) -> None:
    payload = STREAM_CHUNKS[index]
    assert ChatCompletionChunk.model_validate_json(json.dumps(payload)).to_dict() == payload


@pytest.mark.parametrize("index", range(len(TOOL_STREAM_CHUNKS)))
def test_reference_tool_stream_chunks_round_trip(index: int) -> None:
    payload = TOOL_STREAM_CHUNKS[index]
    assert ChatCompletionChunk.model_validate(payload).to_dict() == payload


def test_reference_error_body_round_trips() -> None:
    body = ErrorBody.model_validate(ERROR_BODY)
    assert body.error.code == "context_length_exceeded"
    assert body.error.param == "messages"
    assert body.to_dict() == ERROR_BODY


def test_responses_keep_unknown_fields_at_every_level() -> None:
    payload = copy.deepcopy(CHAT_RESPONSE)
    payload["service_tier"] = "default"
    payload["prompt_logprobs"] = None
    payload["choices"][0]["message"]["reasoning_content"] = "thinking…"
    payload["choices"][0]["stop_reason"] = 128009
    payload["usage"]["prompt_tokens_details"]["image_tokens"] = 85
    payload["x_server"] = {"queue_ms": 3}
    completion = ChatCompletion.model_validate(payload)
    assert completion.to_dict() == payload
    assert completion.choices[0].message.to_dict()["reasoning_content"] == "thinking…"


@pytest.mark.parametrize("reason", ["eos", "end_turn", "function_call", "max_tokens", "abort"])
def test_unknown_finish_reasons_are_kept(reason: str) -> None:
    payload = copy.deepcopy(CHAT_RESPONSE)
    payload["choices"][0]["finish_reason"] = reason
    assert ChatCompletion.model_validate(payload).choices[0].finish_reason == reason


def test_a_chunk_with_choices_null_is_valid() -> None:
    chunk = ChatCompletionChunk.model_validate(
        {"id": "x", "choices": None, "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    )
    assert chunk.choices is None
    assert chunk.usage is not None and chunk.usage.prompt_tokens == 1


def test_a_response_without_choices_has_no_content() -> None:
    assert ChatCompletion.model_validate({"id": "x"}).content is None


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("moderation", "flagged"),
        ("metadata", ["a", "b"]),
        ("audio", "not-an-object"),
        ("annotations", [{"type": "url_citation", "url_citation": {"title": "no url"}}]),
        ("tool_calls", [{"id": "t1", "type": "computer_use", "computer_use": {"x": 1}}]),
    ],
)
def test_a_reply_is_kept_whatever_shape_a_newer_part_comes_in(where: str, value: Any) -> None:
    payload = copy.deepcopy(CHAT_RESPONSE)
    if where in ("moderation", "metadata"):
        payload[where] = value
    else:
        payload["choices"][0]["message"][where] = value
    completion = ChatCompletion.model_validate_json(json.dumps(payload))
    assert completion.to_dict() == payload
    assert completion.content == CHAT_RESPONSE["choices"][0]["message"]["content"]
