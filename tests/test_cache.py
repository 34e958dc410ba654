from __future__ import annotations

import warnings

import pytest

import nbchat
from nbchat import Chat, ChatListener
from nbchat.protocol.types import ChatCompletion
from nbchat.render.bundles import reply_bundle
from nbchat.render.live import LiveView
from nbchat.store import cache, config
from nbchat.store.cache import chunks_of, play
from nbchat.transport.accumulate import ChatCompletionAccumulator
from tests import storeutil
from tests.fakeserver import SECRET, FakeServer
from tests.storeutil import stored

fresh_store = storeutil.fresh_store


@nbchat.tool
def lookup(city: str) -> str:
    """Look a city up."""
    return city.upper()


def accumulate(completion: ChatCompletion) -> ChatCompletion:
    accumulator = ChatCompletionAccumulator()
    for chunk in chunks_of(completion):
        accumulator.handle_chunk(chunk)
    return accumulator.snapshot()


COMPLETIONS = {
    "text": {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A longer reply, in several words."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    },
    "tool calls": {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x": 1, "y": "a long value"}'},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "g", "arguments": "{}"},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    },
    "refusal and reasoning": {
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": "I can't help with that.",
                    "reasoning_content": "thinking it over",
                },
                "finish_reason": "stop",
            }
        ],
    },
    "logprobs and two choices": {
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": "Yes no"},
                "logprobs": {
                    "content": [
                        {
                            "token": "Yes",
                            "logprob": -0.1,
                            "bytes": [89, 101, 115],
                            "top_logprobs": [{"token": "No", "logprob": -2.3}],
                        },
                        {"token": " no", "logprob": -0.5, "top_logprobs": []},
                    ]
                },
                "finish_reason": "length",
            }
            for i in range(2)
        ]
    },
}


@pytest.mark.parametrize("name", list(COMPLETIONS))
def test_chunks_accumulate_back_to_the_stored_completion(name):
    completion = ChatCompletion.model_validate(
        {"id": "c", "created": 7, "model": "m", **COMPLETIONS[name]}
    )
    again = accumulate(completion)
    assert again.model_dump(exclude_none=True) == completion.model_dump(exclude_none=True)
    assert len(list(chunks_of(completion))) > 2


def test_a_long_reply_replays_in_many_chunks_within_the_time_cap(monkeypatch):
    text = "word " * 2000
    completion = ChatCompletion.model_validate(
        {"choices": [{"message": {"content": text}, "finish_reason": "stop"}]}
    )
    seen = []

    class Listener(ChatListener):
        def on_chunk(self, chunk, stream):
            seen.append(stream.completion.content)

    slept = []
    monkeypatch.setattr(cache.time, "sleep", slept.append)
    assert play(completion, stream=True, listener=Listener()) is completion
    assert len(seen) > 100 and seen[-1] == text
    assert sum(slept) <= cache.MAX_REPLAY_SECONDS + 1e-9


def server_and_chat(replies: int = 6, **chat_options) -> tuple[FakeServer, Chat]:
    server = FakeServer()
    for i in range(replies):
        server.reply(f"reply {i}")
    return server, Chat("fake-model", client=server.client(), cache=True, **chat_options)


def test_a_repeated_request_is_answered_from_the_store(fresh_store):
    server, chat = server_and_chat()
    first = chat.send("Capital of France?")
    chat.reset()
    second = chat.send("Capital of France?")
    assert len(server.requests) == 1
    assert second.content == first.content == "reply 0"
    assert (first.cached, second.cached) == (False, True)
    assert second.origin.source == "cache"
    assert second.origin.time == stored(fresh_store)[0].time
    assert chat.messages[-1] == {"role": "assistant", "content": "reply 0"}
    footer = reply_bundle(second)["text/plain"].splitlines()[-1]
    assert "cached: reply of" in footer and "nothing billed" in footer
    assert "first token" not in footer and "tokens/s" not in footer


def test_streamed_and_unstreamed_requests_share_an_entry(fresh_store):
    server, chat = server_and_chat()
    chat.send("hi")  # streamed: stream and stream_options in the body
    chat.reset()
    plain = chat.send("hi", stream=False)
    assert plain.cached and len(server.requests) == 1
    assert "stream" in server.requests[0] and "stream" not in plain.request


def test_a_cached_stream_is_shown_like_a_live_one(fresh_store):
    server, chat = server_and_chat()
    chat.send("Tell me a story")
    chat.reset()
    shown = []
    chunks = []

    class Counting(LiveView):
        def on_chunk(self, chunk, stream):
            chunks.append(chunk)
            super().on_chunk(chunk, stream)

    view = Counting(mode="live", display=lambda bundle, **_: shown.append(bundle) or _Handle(shown))
    reply = chat.send("Tell me a story", listener=view)
    view.finish(reply)
    assert reply.cached and len(server.requests) == 1
    assert len(chunks) >= 3  # role, text, finish: a stream, not one block
    # Replayed pieces are not the server's tokens: no "~N completion tokens (counted)".
    assert reply.output_chunks == 0
    assert "counted" not in shown[-1]["text/plain"]
    assert shown and "reply 0" in shown[-1]["text/plain"]
    assert "cached" in shown[-1]["text/plain"]


class _Handle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, bundle, raw=True, metadata=None):
        self.shown.append(bundle)


BASE = {"temperature": 0.2}
CHANGES = [
    ("model", {"model": "other-model"}),
    ("temperature", {"temperature": 0.9}),
    ("top_p", {"top_p": 0.5}),
    ("max_tokens", {"max_tokens": 50}),
    ("max_completion_tokens", {"max_completion_tokens": 60}),
    ("n", {"n": 2}),
    ("stop", {"stop": "END"}),
    ("presence_penalty", {"presence_penalty": 0.5}),
    ("frequency_penalty", {"frequency_penalty": 0.5}),
    ("logit_bias", {"logit_bias": {"50256": -100}}),
    ("seed", {"seed": 7}),
    ("user", {"user": "someone"}),
    ("logprobs", {"logprobs": True}),
    ("top_logprobs", {"logprobs": True, "top_logprobs": 3}),
    ("response_format", {"response_format": {"type": "json_object"}}),
    ("store", {"store": True}),
    ("metadata", {"metadata": {"run": "2"}}),
    ("a field the server adds", {"reasoning_effort": "low"}),
    ("tools", {"tools": [lookup]}),
    ("messages: the prompt", {"content": "Capital of Spain?"}),
    ("messages: the system prompt", {"system": "Be terse."}),
]


@pytest.mark.parametrize(("field", "change"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_request_field_is_part_of_the_key(fresh_store, field, change):
    server, chat = server_and_chat()
    change = dict(change)
    content = change.pop("content", "Capital of France?")
    system = change.pop("system", None)
    chat.send("Capital of France?", **BASE)
    chat.reset()
    assert chat.send("Capital of France?", **BASE).cached  # the same request: a hit
    chat.reset()
    if system:
        chat.system = system
    changed = chat.send(content, **{**BASE, **change})
    assert not changed.cached, field
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("tool_choice", {"tool_choice": "none"}),
        ("parallel_tool_calls", {"parallel_tool_calls": False}),
    ],
)
def test_tool_settings_are_part_of_the_key(fresh_store, field, change):
    server, chat = server_and_chat()
    chat.send("Find Paris", tools=[lookup])
    chat.reset()
    assert chat.send("Find Paris", tools=[lookup]).cached
    chat.reset()
    assert not chat.send("Find Paris", tools=[lookup], **change).cached
    assert len(server.requests) == 2


def test_the_cache_is_opt_in_and_can_be_bypassed_per_call(fresh_store):
    server = FakeServer().reply("a").reply("b").reply("c").reply("d")
    chat = Chat("fake-model", client=server.client())
    chat.send("q")
    chat.reset()
    assert not chat.send("q").cached  # off by default
    chat.reset()
    assert chat.send("q", cache=True).cached
    chat.reset()
    config.configure(cache=True)  # %config Chat.cache = True
    assert chat.send("q").cached
    chat.reset()
    assert not chat.send("q", cache=False).cached  # --no-cache
    chat.cache = False
    chat.reset()
    assert not chat.send("q").cached  # the conversation's choice wins over the setting
    assert len(server.requests) == 4


def test_errors_and_interrupted_replies_are_never_served_from_the_cache(fresh_store):
    server = FakeServer(piece=2).error(500, "down").reply("abcdefgh", cut_after=3).reply("whole")
    chat = Chat("fake-model", client=server.client(), cache=True)
    with pytest.raises(nbchat.InternalServerError):
        chat.send("q")
    with pytest.raises(nbchat.IncompleteStreamError):
        chat.send("q")
    chat.reset()
    assert chat.send("q").content == "whole"
    assert len(server.requests) == 3


def test_a_cached_tool_loop_runs_the_tools_again(fresh_store):
    calls = []

    @nbchat.tool
    def record(text: str) -> str:
        """Record a text."""
        calls.append(text)
        return "ok"

    server = (
        FakeServer()
        .reply(None, tool_calls=[{"name": "record", "arguments": {"text": "hi"}}])
        .reply("done")
    )
    chat = Chat("fake-model", client=server.client(), cache=True)
    chat.send("Record hi", tools=[record])
    chat.reset()
    again = chat.send("Record hi", tools=[record])
    assert again.cached and again.content == "done"
    assert calls == ["hi", "hi"]
    assert len(server.requests) == 2


def test_a_reply_partly_cached_is_not_cached(fresh_store):
    runs = []

    @nbchat.tool
    def counter() -> int:
        """Count the calls."""
        runs.append(1)
        return len(runs)

    call = [{"name": "counter", "arguments": {}}]
    server = FakeServer().reply(None, tool_calls=call).reply("one").reply("two")
    chat = Chat("fake-model", client=server.client(), cache=True)
    chat.send("count", tools=[counter])
    chat.reset()
    # Round one comes from the cache; the tool answers differently, so round two is sent.
    reply = chat.send("count", tools=[counter])
    assert reply.content == "two"
    assert not reply.cached
    assert [r.source for r in stored(fresh_store)] == ["server", "server", "cache", "server"]


def test_with_the_store_off_the_cache_warns_once_and_sends(fresh_store, monkeypatch):
    monkeypatch.setenv("NBCHAT_STORE", "off")
    server, chat = server_and_chat()
    with pytest.warns(UserWarning, match="needs the store") as caught:
        chat.send("q")
        chat.reset()
        assert not chat.send("q").cached
    assert len(caught) == 1
    assert len(server.requests) == 2


def test_a_cached_reply_costs_nothing_and_remembers_what_it_cost(fresh_store):
    import httpx

    from nbchat import Client

    usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    server = FakeServer().reply("hi", model="gpt-4.1-mini", usage=usage)
    client = Client(
        api_key="sk-x",
        base_url="https://api.openai.com/v1",
        transport=httpx.MockTransport(server.handle),
    )
    chat = Chat("gpt-4.1-mini", client=client, cache=True)
    live = chat.send("hi")
    chat.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = chat.send("hi")
    assert live.cost > 0 and again.cost == 0.0
    assert again.origin.cost == live.cost
    assert [r.source for r in stored(fresh_store)] == ["server", "cache"]


def test_a_reply_is_never_served_as_another_servers_answer(fresh_store):
    import httpx

    from nbchat import Client

    server = FakeServer().reply("from a").reply("from b").reply("from a's other project")

    def client(url: str, key: str = SECRET, **headers: str) -> Client:
        return Client(
            api_key=key, base_url=url, transport=httpx.MockTransport(server.handle), headers=headers
        )

    ask = {"cache": True, "stream": False}
    first = Chat("m", client=client("http://a.test/v1")).send("Hi", **ask)
    other_server = Chat("m", client=client("http://b.test/v1")).send("Hi", **ask)
    other_project = Chat("m", client=client("http://a.test/v1", **{"OpenAI-Project": "p2"}))
    third = other_project.send("Hi", **ask)
    assert [r.content for r in (first, other_server, third)] == [
        "from a",
        "from b",
        "from a's other project",
    ]
    assert not (first.cached or other_server.cached or third.cached)
    # Another key for the same server is the same endpoint: the key is not part of the key.
    again = Chat("m", client=client("http://a.test/v1", key="sk-another")).send("Hi", **ask)
    assert again.cached and again.content == "from a"
    assert len(server.requests) == 3
    assert SECRET not in first.prepared.endpoint and "a.test" in first.prepared.endpoint


def test_a_cached_reply_of_every_kind_the_specification_lists_replays_whole():
    # Custom tool calls, spoken replies, citations, the deprecated function_call, moderation:
    # the chunks a cached reply is replayed as accumulate back to the reply.
    from tests.openapispec import every_branch, schema

    for payload in every_branch(schema("CreateChatCompletionResponse")):
        payload.pop("metadata")  # a stored completion's labels are not streamed
        completion = ChatCompletion.model_validate(payload)
        assert accumulate(completion).to_dict() == completion.to_dict()


def test_an_unknown_kind_of_call_replays_as_it_came():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "w1", "type": "web_search", "web_search": {"q": "x"}}],
    }
    completion = ChatCompletion.model_validate(
        {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    )
    assert (
        accumulate(completion).choices[0].message.tool_calls[0].to_dict()
        == (message["tool_calls"][0])
    )
