"""nbchat's protocol types held to OpenAI's OpenAPI description of the Chat Completions API.

The cases come from the vendored specification itself (``tests/openapi/chat_completions.json``,
with its source commit), so a later version of the API is one file swap: every property of the
request present, absent, null where nullable, at and past its boundaries, each enum value and
one outside them; every property of a reply, a chunk and the stored completions' lists kept;
a reply streamed the way the API streams it accumulated back whole.

Where nbchat reads the specification more strictly or more loosely, on purpose:

- a tag with a single value (``type: "text"``, a tool call's ``type``) may be left out: it is
  filled in, and the body sent has it;
- a file part needs ``file_data`` or ``file_id`` (the specification requires neither);
- ``tool_choice`` (a named tool, ``allowed_tools`` entries) must name tools of the request,
  ``function_call`` one of its ``functions``; ``metadata`` keeps to the 16 pairs, 64-character
  keys and 512-character values its description states;
- ``additionalProperties: false`` is not enforced: unknown fields pass through for servers
  that add some (a custom voice, ``{"id": …}``, excepted);
- replies take any shape of a newer part (moderation, spoken audio, an annotation or a tool
  call of a kind not listed) without refusing the reply.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import BaseModel

from nbchat.protocol.exceptions import RequestValidationError
from nbchat.protocol.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionDeleted,
    ChatCompletionList,
    ChatCompletionRequest,
    CustomToolCall,
    StoredMessageList,
    ToolCall,
    URLCitationAnnotation,
)
from nbchat.transport.accumulate import ChatCompletionAccumulator
from nbchat.transport.client import validate_request
from tests.openapispec import (
    every_branch,
    request_cases,
    resolve,
    sample,
    schema,
    spec,
    stream_of,
)

_AUDIO = {"voice": "alloy", "format": "wav"}


def _tool_for(kind: str, name: str) -> dict[str, Any]:
    if kind == "custom":
        return {"type": "custom", "custom": {"name": name}}
    return {"type": "function", "function": {"name": name}}


def context(payload: dict[str, Any]) -> dict[str, Any]:
    """What the rules across fields need for ``payload``'s fields (each rule is tested on its
    own below): added only where the payload lacks it."""
    out = copy.deepcopy(payload)

    def need(key: str, value: Any) -> None:
        if key not in out:
            out[key] = value

    if out.get("top_logprobs") is not None:
        need("logprobs", True)
    if out.get("stream_options") is not None:
        need("stream", True)
    if out.get("audio") is not None:
        need("modalities", ["text", "audio"])
    if isinstance(out.get("modalities"), list) and "audio" in out["modalities"]:
        need("audio", _AUDIO)
    if out.get("parallel_tool_calls") is not None:
        need("tools", [_tool_for("function", "x")])
    choice = out.get("tool_choice")
    if choice is not None and choice != "none":
        tools: list[dict[str, Any]] = []
        if isinstance(choice, dict):
            if choice.get("type") in ("function", "custom"):
                body = choice.get(choice["type"])
                if isinstance(body, dict) and isinstance(body.get("name"), str):
                    tools.append(_tool_for(choice["type"], body["name"]))
            allowed = choice.get("allowed_tools")
            if isinstance(allowed, dict) and isinstance(allowed.get("tools"), list):
                # The specification's entries are any objects; nbchat checks they name tools.
                allowed["tools"] = [
                    _tool_for("function", "x") if entry == {} or entry == {"1": {}} else entry
                    for entry in allowed["tools"]
                ]
        need("tools", tools or [_tool_for("function", "x")])
    call = out.get("function_call")
    if call is not None and call != "none":
        name = call.get("name") if isinstance(call, dict) else "x"
        need("functions", [{"name": name if isinstance(name, str) else "x"}])
    return out


CASES = list(request_cases(context))


def test_the_specification_is_the_vendored_file_with_its_source() -> None:
    source = spec()["x-nbchat-source"]
    assert source["repository"] == "https://github.com/openai/openai-openapi"
    assert len(source["commit"]) == 40
    assert source["commit"] in source["url"]
    assert "/chat/completions" in spec()["paths"]


def test_the_cases_cover_every_request_property() -> None:
    # One swap of the file brings new properties into the cases below by itself.
    properties = set(schema("CreateChatCompletionRequest")["properties"])
    covered = {case.label.split(" ")[0].split(".")[0].split("[")[0] for case in CASES}
    assert properties <= covered
    assert len(CASES) > 400


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_each_request_property_present_absent_and_at_its_boundaries(case: Any) -> None:
    if case.filled is not None:
        # A tag with one possible value: given or not, the body sent has it.
        try:
            body = validate_request(case.payload)
        except RequestValidationError as exc:
            assert exc.field == case.field
        else:
            assert body == json.loads(json.dumps(case.filled))
        return
    if case.field is None:
        body = validate_request(case.payload)
        # What was given is what is sent (top-level nulls are left out).
        expected = {k: v for k, v in case.payload.items() if v is not None}
        assert body == json.loads(json.dumps(expected))
        return
    with pytest.raises(RequestValidationError) as info:
        validate_request(case.payload)
    message = str(info.value)
    assert "\n" not in message and message.startswith("Invalid request: ")
    assert info.value.field is not None
    # The field named is the property at fault (or, for a value of a union, its container).
    assert case.field == info.value.field or case.field.startswith(info.value.field + ".")
    assert info.value.field in message


def _extras(value: Any, where: str = "") -> list[str]:
    """Where a validated model kept a field it does not declare (passed through, unmodelled)."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{where}.{key}" for key in value.__pydantic_extra__ or {}]
        for key in type(value).model_fields:
            found += _extras(getattr(value, key), f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _extras(item, f"{where}.{i}")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _extras(item, f"{where}.{key}")
    return found


REQUESTS = list(every_branch(schema("CreateChatCompletionRequest")))


def coherent(payload: dict[str, Any]) -> dict[str, Any]:
    """A request with every property made to agree with itself: audio asked for with the
    audio modality, each kind of tool that tool_choice may name among the tools."""
    out = copy.deepcopy(payload)
    if "audio" in out:
        out["modalities"] = ["text", "audio"]
    kinds = {tool["type"] for tool in out.get("tools", [])}
    out["tools"] = out.get("tools", []) + [
        _tool_for(kind, "x") for kind in ("function", "custom") if kind not in kinds
    ]
    return context(out)


@pytest.mark.parametrize("number", range(len(REQUESTS)))
def test_every_property_of_every_kind_of_request_is_modelled(number: int) -> None:
    payload = coherent(REQUESTS[number])
    request = ChatCompletionRequest.model_validate(payload)
    assert _extras(request) == []
    assert request.to_dict() == json.loads(json.dumps(payload))


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"audio": _AUDIO}, "audio"),
        ({"audio": _AUDIO, "modalities": ["text"]}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {
                "tool_choice": {"type": "function", "function": {"name": "g"}},
                "tools": [_tool_for("function", "f")],
            },
            "tool_choice",
        ),
        (
            {
                "tool_choice": {"type": "custom", "custom": {"name": "f"}},
                "tools": [_tool_for("function", "f")],
            },
            "tool_choice",
        ),
        (
            {
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {"mode": "auto", "tools": [_tool_for("custom", "g")]},
                },
                "tools": [_tool_for("function", "f")],
            },
            "tool_choice",
        ),
        ({"function_call": "auto"}, "function_call"),
        ({"function_call": {"name": "g"}, "functions": [{"name": "f"}]}, "function_call"),
    ],
    ids=[
        "top_logprobs-without-logprobs",
        "stream_options-without-stream",
        "audio-without-modalities",
        "audio-with-text-only",
        "audio-modality-without-audio",
        "parallel_tool_calls-without-tools",
        "tool_choice-without-tools",
        "named-function-not-a-tool",
        "named-custom-tool-that-is-a-function",
        "allowed-tool-not-a-tool",
        "function_call-without-functions",
        "function_call-not-a-function",
    ],
)
def test_the_rules_across_fields_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        validate_request({"model": "m", "messages": [{"role": "user", "content": "x"}], **payload})
    assert info.value.field == field
    assert str(info.value).startswith(f"Invalid request: {field} ")


# ---------------------------------------------------------------------------------------------
# Replies, chunks and the stored completions' lists


def _round_trips(model: type[BaseModel], payload: Any) -> BaseModel:
    parsed = model.model_validate_json(json.dumps(payload))
    assert parsed.to_dict() == payload  # type: ignore[attr-defined]
    assert _extras(parsed) == []
    return parsed


REPLIES = list(every_branch(schema("CreateChatCompletionResponse")))
CHUNKS = list(every_branch(schema("CreateChatCompletionStreamResponse")))


@pytest.mark.parametrize("number", range(len(REPLIES)))
def test_every_property_of_every_kind_of_reply_is_kept_and_modelled(number: int) -> None:
    _round_trips(ChatCompletion, REPLIES[number])


def test_the_replies_hold_a_custom_tool_call_and_a_url_citation() -> None:
    kinds: set[type] = set()
    for payload in REPLIES:
        message = ChatCompletion.model_validate(payload).choices[0].message
        kinds |= {type(call) for call in message.tool_calls or ()}
        kinds |= {type(note) for note in message.annotations or ()}
    assert {ToolCall, CustomToolCall, URLCitationAnnotation} <= kinds


@pytest.mark.parametrize(
    "key", list(resolve(schema("ChatCompletionResponseMessage"))["properties"])
)
def test_a_reply_without_each_optional_message_property_is_kept(key: str) -> None:
    payload = copy.deepcopy(REPLIES[0])
    del payload["choices"][0]["message"][key]
    assert ChatCompletion.model_validate(payload).to_dict() == payload


@pytest.mark.parametrize("number", range(len(CHUNKS)))
def test_every_property_of_every_kind_of_chunk_is_kept_and_modelled(number: int) -> None:
    _round_trips(ChatCompletionChunk, CHUNKS[number])


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("ChatCompletionList", ChatCompletionList),
        ("ChatCompletionMessageList", StoredMessageList),
        ("ChatCompletionDeleted", ChatCompletionDeleted),
    ],
)
def test_the_stored_completions_lists_are_kept_and_modelled(name: str, model: type) -> None:
    for payload in every_branch(schema(name)):
        _round_trips(model, payload)


@pytest.mark.parametrize("number", range(len(REPLIES)))
def test_a_reply_streamed_the_way_the_api_streams_it_accumulates_back_whole(number: int) -> None:
    reply = copy.deepcopy(REPLIES[number])
    reply.pop("metadata")  # set on stored completions, never streamed
    accumulator = ChatCompletionAccumulator()
    chunks = stream_of(reply)
    for chunk in chunks:
        accumulator.handle_chunk(ChatCompletionChunk.model_validate_json(json.dumps(chunk)))
    snapshot = accumulator.snapshot().to_dict()
    assert all("obfuscation" in chunk for chunk in chunks)
    assert "obfuscation" not in snapshot
    assert snapshot == reply


def test_a_full_reply_sample_is_valid_json_of_every_required_property() -> None:
    # The samples are the specification's: each required property of a reply is in them.
    required = resolve(schema("CreateChatCompletionResponse"))["required"]
    assert set(required) <= set(sample(schema("CreateChatCompletionResponse")))
