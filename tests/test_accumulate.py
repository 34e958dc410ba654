from __future__ import annotations

from typing import Any

from nbchat.protocol.types import ChatCompletion, ChatCompletionChunk
from nbchat.transport.accumulate import ChatCompletionAccumulator
from tests.reference import TOOL_STREAM_CHUNKS


def chunk(delta: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A chunk dict with one choice (index 0 unless given)."""
    choice: dict[str, Any] = {"index": fields.pop("index", 0), "delta": delta or {}}
    for key in ("finish_reason", "logprobs"):
        if key in fields:
            choice[key] = fields.pop(key)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1716936000,
        "model": "gpt-4.1",
        "choices": [choice],
        **fields,
    }


def accumulate(chunks: list[dict[str, Any]]) -> ChatCompletion:
    accumulator = ChatCompletionAccumulator()
    for data in chunks:
        accumulator.handle_chunk(ChatCompletionChunk.model_validate(data))
    return accumulator.snapshot()


def tool_delta(**call: Any) -> dict[str, Any]:
    return {"tool_calls": [call]}


def test_reference_tool_stream_merges_argument_fragments() -> None:
    completion = accumulate(TOOL_STREAM_CHUNKS)
    [call] = completion.choices[0].message.tool_calls or []
    assert call.id == "call_abc"
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"location":"Beijing"}'
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.content is None


def test_content_fragments_are_joined_in_order() -> None:
    completion = accumulate(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "秋"}),
            chunk({"content": "风"}),
            chunk({}, finish_reason="stop"),
        ]
    )
    message = completion.choices[0].message
    assert message.role == "assistant"
    assert message.content == "秋风"
    assert message.refusal is None
    assert completion.choices[0].finish_reason == "stop"


def test_refusal_fragments_are_joined() -> None:
    completion = accumulate(
        [
            chunk({"role": "assistant", "refusal": "I can't "}),
            chunk({"refusal": "help with that."}),
            chunk({}, finish_reason="stop"),
        ]
    )
    assert completion.choices[0].message.refusal == "I can't help with that."
    assert completion.choices[0].message.content is None


def test_parallel_tool_calls_are_merged_by_index_even_interleaved() -> None:
    completion = accumulate(
        [
            chunk(tool_delta(index=0, id="call_001", type="function", function={"name": "a"})),
            chunk(tool_delta(index=1, id="call_002", type="function", function={"name": "b"})),
            chunk(tool_delta(index=1, function={"arguments": '{"city": '})),
            chunk(tool_delta(index=0, function={"arguments": '{"city": '})),
            chunk(tool_delta(index=0, function={"arguments": '"Beijing"}'})),
            chunk(tool_delta(index=1, function={"arguments": '"Shanghai"}'})),
            chunk({}, finish_reason="tool_calls"),
        ]
    )
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_001", "a", '{"city": "Beijing"}'),
        ("call_002", "b", '{"city": "Shanghai"}'),
    ]


def test_an_id_and_name_repeated_in_every_chunk_are_not_doubled() -> None:
    fragments = ['{"q"', ": ", '"x"}']
    completion = accumulate(
        [
            chunk(
                tool_delta(
                    index=0,
                    id="call_9",
                    type="function",
                    function={"name": "search", "arguments": f},
                )
            )
            for f in fragments
        ]
        + [chunk({}, finish_reason="tool_calls")]
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.id == "call_9"
    assert call.function.name == "search"
    assert call.function.arguments == '{"q": "x"}'


def test_a_name_sent_in_fragments_is_joined() -> None:
    completion = accumulate(
        [
            chunk(tool_delta(index=0, id="c", function={"name": "get_"})),
            chunk(tool_delta(index=0, function={"name": "weather", "arguments": "{}"})),
        ]
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"


def test_a_server_that_omits_index_still_gets_one_call_per_id() -> None:
    completion = accumulate(
        [
            chunk(
                tool_delta(id="call_a", type="function", function={"name": "f", "arguments": ""})
            ),
            chunk(tool_delta(function={"arguments": '{"n": '})),
            chunk(tool_delta(function={"arguments": "1}"})),
            chunk(
                tool_delta(id="call_b", type="function", function={"name": "g", "arguments": "{"})
            ),
            chunk(tool_delta(id="call_b", function={"arguments": "}"})),
            chunk({}, finish_reason="tool_calls"),
        ]
    )
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "f", '{"n": 1}'),
        ("call_b", "g", "{}"),
    ]


def test_logprobs_are_appended_across_chunks() -> None:
    def token(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode()), "top_logprobs": []}

    completion = accumulate(
        [
            chunk({"content": "蓝"}, logprobs={"content": [token("蓝", -0.0023)]}),
            chunk({"content": "色"}, logprobs={"content": [token("色", -0.0001)]}),
            chunk({"refusal": "no"}, logprobs={"content": None, "refusal": [token("no", -1.0)]}),
            chunk({}, finish_reason="stop", logprobs=None),
        ]
    )
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None
    assert [(t.token, t.logprob, t.bytes) for t in logprobs.content or []] == [
        ("蓝", -0.0023, [232, 147, 157]),
        ("色", -0.0001, [232, 137, 178]),
    ]
    assert [t.token for t in logprobs.refusal or []] == ["no"]


def test_no_logprobs_in_the_stream_means_logprobs_none() -> None:
    completion = accumulate([chunk({"content": "x"}, logprobs=None, finish_reason="stop")])
    assert completion.choices[0].logprobs is None


def test_usage_comes_from_the_usage_only_chunk() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}
    completion = accumulate(
        [
            chunk({"content": "hi"}),
            chunk({}, finish_reason="stop"),
            {**chunk(), "choices": [], "usage": usage},
        ]
    )
    assert completion.usage is not None
    assert completion.usage.to_dict() == usage
    assert completion.choices[0].message.content == "hi"
    assert len(completion.choices) == 1


def test_chunks_with_choices_null_or_empty_are_tolerated() -> None:
    completion = accumulate(
        [{**chunk(), "choices": None}, {**chunk(), "choices": []}, chunk({"content": "a"})]
    )
    assert completion.choices[0].message.content == "a"


def test_n_above_one_gives_one_choice_per_index_in_order() -> None:
    completion = accumulate(
        [
            chunk({"content": "B1"}, index=1),
            chunk({"content": "A1"}, index=0),
            chunk({"content": "B2"}, index=1),
            chunk({"content": "A2"}, index=0),
            chunk({}, index=1, finish_reason="length"),
            chunk({}, index=0, finish_reason="stop"),
        ]
    )
    assert [(c.index, c.message.content, c.finish_reason) for c in completion.choices] == [
        (0, "A1A2", "stop"),
        (1, "B1B2", "length"),
    ]


def test_unknown_finish_reason_is_kept() -> None:
    completion = accumulate([chunk({"content": "x"}, finish_reason="eos_token")])
    assert completion.choices[0].finish_reason == "eos_token"


def test_unknown_delta_text_fields_are_joined_like_content() -> None:
    completion = accumulate(
        [
            chunk({"reasoning_content": "Let me "}),
            chunk({"reasoning_content": "think."}),
            chunk({"content": "42"}, finish_reason="stop"),
        ]
    )
    message = completion.choices[0].message
    assert message.content == "42"
    assert message.to_dict()["reasoning_content"] == "Let me think."


def test_header_fields_come_from_the_chunks() -> None:
    completion = accumulate(
        [
            {**chunk({"content": "x"}), "system_fingerprint": "fp_1", "service_tier": "default"},
            chunk({}, finish_reason="stop"),
        ]
    )
    assert (completion.id, completion.object, completion.created, completion.model) == (
        "chatcmpl-1",
        "chat.completion",
        1716936000,
        "gpt-4.1",
    )
    assert completion.system_fingerprint == "fp_1"
    assert completion.service_tier == "default"


def test_snapshot_leaves_out_optional_fields_the_stream_did_not_have() -> None:
    data = accumulate([chunk({"content": "x"}, finish_reason="stop")]).to_dict()
    assert "system_fingerprint" not in data
    assert "service_tier" not in data
    assert "usage" not in data


def test_finished_once_every_choice_has_a_finish_reason() -> None:
    accumulator = ChatCompletionAccumulator()
    assert not accumulator.finished
    accumulator.handle_chunk(ChatCompletionChunk.model_validate(chunk({"content": "a"}, index=0)))
    accumulator.handle_chunk(ChatCompletionChunk.model_validate(chunk({"content": "b"}, index=1)))
    accumulator.handle_chunk(
        ChatCompletionChunk.model_validate(chunk({}, index=0, finish_reason="stop"))
    )
    assert not accumulator.finished
    accumulator.handle_chunk(
        ChatCompletionChunk.model_validate(chunk({}, index=1, finish_reason="stop"))
    )
    assert accumulator.finished
    assert accumulator.chunks == 4


def test_snapshot_mid_stream_is_the_partial_answer_and_later_ones_grow() -> None:
    accumulator = ChatCompletionAccumulator()
    accumulator.handle_chunk(ChatCompletionChunk.model_validate(chunk({"content": "Hel"})))
    first = accumulator.snapshot()
    accumulator.handle_chunk(ChatCompletionChunk.model_validate(chunk({"content": "lo"})))
    assert first.choices[0].message.content == "Hel"
    assert first.choices[0].finish_reason is None
    assert accumulator.snapshot().choices[0].message.content == "Hello"


def test_a_server_that_numbers_every_call_zero_still_gets_one_call_per_id() -> None:
    completion = accumulate(
        [
            chunk(tool_delta(index=0, id="call_a", function={"name": "get_weather"})),
            chunk(tool_delta(index=0, function={"arguments": '{"city": "Beijing"}'})),
            chunk(tool_delta(index=0, id="call_b", function={"name": "get_weather"})),
            chunk(tool_delta(index=0, function={"arguments": '{"city": '})),
            chunk(tool_delta(index=0, function={"arguments": '"Shanghai"}'})),
            chunk({}, finish_reason="tool_calls"),
        ]
    )
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city": "Beijing"}'),
        ("call_b", "get_weather", '{"city": "Shanghai"}'),
    ]


# ---------------------------------------------------------------------------------------------
# The snapshot has the fields the stream sent: sent as null, kept as null; never sent, left out


def test_fields_sent_only_as_null_are_kept_as_null() -> None:
    data = accumulate(
        [
            {
                **chunk({"role": "assistant", "content": None, "refusal": None}, logprobs=None),
                "system_fingerprint": None,
                "usage": None,
            },
            {**chunk({"tool_calls": None}, logprobs=None, finish_reason="stop")},
        ]
    ).to_dict()
    assert data["system_fingerprint"] is None
    assert data["usage"] is None
    [choice] = data["choices"]
    assert choice["logprobs"] is None
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": None,
    }


def test_fields_never_sent_are_left_out() -> None:
    data = accumulate(
        [{"choices": [{"delta": {"content": "x"}}]}, {"choices": [{"finish_reason": "stop"}]}]
    ).to_dict()
    assert data == {
        "choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}]
    }


def test_a_value_wins_over_a_null_sent_before_or_after() -> None:
    completion = accumulate(
        [
            {**chunk({"content": None}), "system_fingerprint": None},
            {**chunk({"content": "a"}), "system_fingerprint": "fp_1"},
            {**chunk({}, finish_reason="stop"), "system_fingerprint": None},
        ]
    )
    assert completion.system_fingerprint == "fp_1"
    assert completion.content == "a"


def test_text_sent_as_empty_strings_only_is_empty_not_null() -> None:
    completion = accumulate([chunk({"role": "assistant", "content": ""}, finish_reason="stop")])
    assert completion.choices[0].message.content == ""


def test_unknown_fields_of_the_chunk_the_choice_and_a_tool_call_are_kept() -> None:
    data = accumulate(
        [
            {**chunk({"content": "a"}), "prompt_filter_results": None, "x_server": {"n": 1}},
            {
                **chunk(
                    {
                        "tool_calls": [
                            {"index": 0, "id": "c1", "function": {"name": "f"}, "extra": 1}
                        ]
                    }
                ),
                "x_server": {"n": 2},
            },
            {
                "choices": [
                    {"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": 128009}
                ],
                "timings": {"predicted_ms": 12.5},
            },
        ]
    ).to_dict()
    assert data["prompt_filter_results"] is None
    assert data["x_server"] == {"n": 2}  # the last value
    assert data["timings"] == {"predicted_ms": 12.5}
    assert data["choices"][0]["stop_reason"] == 128009
    assert data["choices"][0]["message"]["tool_calls"][0]["extra"] == 1


def test_has_choices_tells_a_stream_of_headers_only() -> None:
    accumulator = ChatCompletionAccumulator()
    accumulator.handle_chunk(ChatCompletionChunk.model_validate({**chunk(), "choices": []}))
    assert not accumulator.has_choices
    accumulator.handle_chunk(ChatCompletionChunk.model_validate(chunk({"content": "a"})))
    assert accumulator.has_choices


def _feed(*chunks: dict[str, Any]) -> ChatCompletion:
    accumulator = ChatCompletionAccumulator()
    for chunk in chunks:
        accumulator.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return accumulator.snapshot()


def _delta(delta: dict[str, Any], **chunk: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta}], **chunk}


def test_the_deprecated_function_call_keeps_its_name_once_and_joins_its_arguments():
    completion = _feed(
        _delta({"function_call": {"name": "get_weather", "arguments": ""}}),
        _delta({"function_call": {"name": "get_weather", "arguments": '{"city":'}}),
        _delta({"function_call": {"arguments": ' "Paris"}'}}),
    )
    call = completion.choices[0].message.function_call
    assert call is not None
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')


def test_obfuscation_padding_stays_out_of_the_completion():
    completion = _feed(
        _delta({"content": "Hi"}, obfuscation="xyz"),
        _delta({"content": "!"}, obfuscation="q"),
    )
    assert completion.content == "Hi!"
    assert "obfuscation" not in completion.to_dict()
    assert "obfuscation" not in json_of(completion)


def json_of(completion: ChatCompletion) -> str:
    import json

    return json.dumps(completion.to_dict())


def test_a_custom_tool_calls_input_is_joined_like_arguments():
    completion = _feed(
        _delta(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "c1",
                        "type": "custom",
                        "custom": {"name": "sql", "input": "SELECT"},
                    }
                ]
            }
        ),
        _delta({"tool_calls": [{"index": 0, "custom": {"input": " 1"}}]}),
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.to_dict() == {
        "id": "c1",
        "type": "custom",
        "custom": {"name": "sql", "input": "SELECT 1"},
    }


def test_audio_pieces_each_encoded_on_their_own_are_joined_as_bytes():
    import base64

    pieces = [b"\x01\x02\x03\x04\x05", b"\x06", b"\x07\x08"]
    completion = _feed(
        _delta({"audio": {"id": "a1", "expires_at": 99}}),
        *[_delta({"audio": {"data": base64.b64encode(p).decode()}}) for p in pieces],
        _delta({"audio": {"transcript": "He"}}),
        _delta({"audio": {"transcript": "llo"}}),
    )
    audio = completion.choices[0].message.audio
    assert audio is not None
    assert base64.b64decode(audio.data) == b"".join(pieces)
    assert (audio.id, audio.expires_at, audio.transcript) == ("a1", 99, "Hello")


def test_annotations_from_several_chunks_are_all_kept():
    note = {
        "type": "url_citation",
        "url_citation": {"url": "https://a", "title": "A", "start_index": 0, "end_index": 1},
    }
    completion = _feed(
        _delta({"content": "x", "annotations": [note]}),
        _delta(
            {
                "annotations": [
                    {**note, "url_citation": {**note["url_citation"], "url": "https://b"}}
                ]
            }
        ),
    )
    urls = [a.url_citation.url for a in completion.choices[0].message.annotations or []]
    assert urls == ["https://a", "https://b"]
