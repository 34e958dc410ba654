"""End to end against the real local model server (llama.cpp with SmolLM2-135M), as a user
with no API key gets it: through nbchat's default endpoint, conversations and the magic.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import nbchat
from nbchat.conversation import endpoint as _endpoint
from nbchat.conversation import sessions as _sessions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("llama_cpp", reason="needs nbchat[local]")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OPENAI_API_KEY", raising=False)
        mp.delenv("OPENAI_BASE_URL", raising=False)
        mp.setattr(_endpoint, "_announced", True)
        client = _endpoint.default_client()
    assert client.profile.local
    return client


def chat(client, **settings) -> nbchat.Chat:
    settings.setdefault("max_tokens", 24)
    settings.setdefault("temperature", 0)
    settings.setdefault("seed", 1)
    return nbchat.Chat(client=client, **settings)


def test_plain_chat(client):
    reply = chat(client, stream=False).send("Say hello in one short sentence.")
    completion = reply.completion
    assert completion.content.strip()
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_streaming_counts_tokens_and_matches_the_footer(client):
    reply = chat(client).send("Count from one to five.")
    assert reply.content.strip()
    assert reply.output_chunks > 1
    assert reply.time_to_first_token is not None
    assert "stream_options" not in reply.request
    bundle, metadata = reply._repr_mimebundle_()
    assert metadata["nbchat"]["model"] == reply.completion.model
    assert f"~{reply.output_chunks} completion tokens" in bundle["text/plain"]


def test_logprobs_with_top_alternatives_streamed_and_not(client):
    for stream in (False, True):
        reply = chat(client, stream=stream).send("Name a colour.", logprobs=True, top_logprobs=3)
        tokens = reply.completion.choices[0].logprobs.content
        assert tokens, f"no logprobs (stream={stream})"
        assert all(len(token.top_logprobs) == 3 for token in tokens)
        assert all(token.logprob <= 0 for token in tokens)
        frame = nbchat.logprobs_frame(reply.completion)
        assert len(frame) == len(tokens)


def test_json_with_a_schema_is_parsed_into_the_model(client):
    class Person(BaseModel):
        name: str
        age: int

    reply = chat(client, max_tokens=60).send(
        "Zhang San is 28 years old. Reply with his name and age as JSON.", schema=Person
    )
    assert isinstance(reply.parsed, Person)
    assert "response_format json_schema was sent as json_object with the schema." in reply.notes


def test_forced_tool_call_runs_through_the_tool_loop(client):
    seen = []

    def get_weather(location: str) -> dict:
        """Current weather of a city."""
        seen.append(location)
        return {"temperature": 28, "condition": "sunny"}

    conversation = chat(client, max_tokens=40)
    reply = conversation.send(
        "What is the weather in Beijing?",
        tools=[get_weather],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert len(seen) == 1 and isinstance(seen[0], str)
    assert reply.tool_results[0].ok
    roles = [message["role"] for message in conversation.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert conversation.messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("stream", [False, True])
def test_context_length_exceeded_is_a_bad_request_with_its_code(client, stream):
    too_long = "word " * 5000
    conversation = chat(client, stream=stream)
    with pytest.raises(nbchat.BadRequestError) as info:
        conversation.send(too_long)
    assert info.value.code == "context_length_exceeded"
    assert info.value.status_code == 400
    assert conversation.messages == []


def test_interrupted_stream_keeps_the_partial_reply(client):
    class StopAfter(nbchat.ChatListener):
        def __init__(self):
            self.count = 0

        def on_chunk(self, chunk, stream):
            self.count += 1
            if self.count == 4:
                raise KeyboardInterrupt

    conversation = chat(client, max_tokens=60)
    with pytest.raises(KeyboardInterrupt):
        conversation.send("Tell me a long story about a cat.", listener=StopAfter())
    assert conversation.messages[0] == {
        "role": "user",
        "content": "Tell me a long story about a cat.",
    }
    assert conversation.interrupted == [1]
    assert conversation.messages[1]["content"]
    # The server is still usable after the cut.
    assert chat(client).send("Say yes.").content


def test_two_conversations_in_one_kernel_stay_apart(client, monkeypatch):
    monkeypatch.setattr(_sessions, "_sessions", {})
    first, second = nbchat.session("first"), nbchat.session("second")
    for conversation in (first, second):
        conversation.client = client
        conversation.settings.update(max_tokens=12, temperature=0, seed=1)
    first.send("My name is Ada.")
    second.send("My name is Bob.")
    first.send("What is my name?")
    assert [m["content"] for m in first.messages if m["role"] == "user"] == [
        "My name is Ada.",
        "What is my name?",
    ]
    assert [m["content"] for m in second.messages if m["role"] == "user"] == ["My name is Bob."]
    assert len(first.messages) == 4 and len(second.messages) == 2


def test_max_history_tokens_keeps_a_long_conversation_within_the_window(client):
    conversation = chat(client, stream=False)
    for i in range(4):
        conversation.add({"role": "user", "content": f"Note {i}: " + "the sky is blue. " * 120})
        conversation.add({"role": "assistant", "content": "Noted."})
    with pytest.raises(nbchat.BadRequestError) as info:
        conversation.send("What colour is the sky?")
    assert info.value.code == "context_length_exceeded"
    conversation.max_history_tokens = 1200
    with pytest.warns(UserWarning, match="oldest exchanges"):
        reply = conversation.send("What colour is the sky?")
    assert reply.completion.usage.prompt_tokens < 2048
    assert any("oldest exchanges" in note for note in reply.notes)
    assert len(conversation.messages) == 8 + 2
