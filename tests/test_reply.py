"""conversation/reply.py: what one send produced, read as its final completion too."""

from __future__ import annotations

import pytest

from nbchat.conversation.reply import Reply
from nbchat.protocol.types import ChatCompletion
from nbchat.transport.prepared import PreparedRequest


def completion(message: dict, **extra) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "m-2026",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            **extra,
        }
    )


def test_content_drops_a_leading_think_block_which_reasoning_gives():
    reply = Reply(completion({"role": "assistant", "content": "<think>hmm</think>Paris."}))
    assert reply.content == "Paris."
    assert reply.reasoning == "hmm"
    assert str(reply) == "Paris."
    assert reply.value == "Paris."


def test_value_is_the_parsed_object_when_there_is_one():
    reply = Reply(completion({"role": "assistant", "content": '{"a": 1}'}), parsed={"a": 1})
    assert reply.value == {"a": 1}


def test_a_reply_reads_as_its_final_completion_but_not_for_private_names():
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    reply = Reply(completion({"role": "assistant", "content": "hi"}, usage=usage))
    assert reply.usage.total_tokens == 5
    assert reply.model == "m-2026"
    assert reply.choices[0].finish_reason == "stop"
    with pytest.raises(AttributeError):
        reply._hidden  # noqa: B018
    with pytest.raises(AttributeError):
        reply.no_such_field  # noqa: B018


def test_a_reply_of_no_choices_has_no_reasoning_audio_or_citations():
    reply = Reply(ChatCompletion.model_validate({"id": "x", "model": "m", "choices": []}))
    assert reply.reasoning is None and reply.audio is None and reply.citations == []
    assert reply.content is None and str(reply) == ""


def test_citations_are_numbered_from_the_message_annotations():
    text = "Rain is likely tomorrow."
    annotation = {
        "type": "url_citation",
        "url_citation": {
            "url": "https://weather.example/today",
            "title": "Forecast",
            "start_index": 0,
            "end_index": len(text),
        },
    }
    reply = Reply(completion({"role": "assistant", "content": text, "annotations": [annotation]}))
    [cited] = reply.citations
    assert (cited.number, cited.title) == (1, "Forecast")
    assert cited.url == "https://weather.example/today"


def test_metadata_records_how_the_answer_came():
    prepared = PreparedRequest(
        method="POST",
        url="http://x.test/v1/chat/completions",
        headers={},
        body={"model": "m", "messages": [], "seed": 7, "temperature": 0.2},
    )
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    reply = Reply(
        completion({"role": "assistant", "content": "hi"}, usage=usage),
        request=prepared.body,
        prepared=prepared,
        elapsed=1.23456,
        server="vllm",
    )
    meta = reply.metadata
    assert meta["request_hash"] == prepared.key
    assert (meta["model"], meta["seed"], meta["temperature"]) == ("m-2026", 7, 0.2)
    assert meta["usage"]["total_tokens"] == 5
    assert meta["latency"] == 1.235 and meta["server"] == "vllm"
    assert Reply(completion({"role": "assistant", "content": ""})).metadata["latency"] is None
