from __future__ import annotations

import json

import httpx
import pytest

import nbchat
from nbchat import Chat, ChatListener, RateLimitError
from nbchat.protocol.exceptions import IncompleteStreamError
from tests.fakeserver import SECRET, FakeServer, streaming_client
from tests.reference import MULTI_TURN_REQUEST


def make_chat(server: FakeServer, **kwargs) -> Chat:
    return Chat("fake-model", client=server.client(), **kwargs)


def test_send_appends_user_and_assistant_messages():
    server = FakeServer().reply("Paris.")
    chat = make_chat(server, system="Be brief.")
    reply = chat.send("Capital of France?")
    assert reply.content == "Paris."
    assert chat.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    assert nbchat.last is reply
    assert nbchat.last.usage is reply.completion.usage and nbchat.last.model == "fake-model"


def test_streamed_and_unstreamed_replies_are_the_same_completion():
    server = FakeServer().reply("same words here").reply("same words here")
    streamed = make_chat(server).send("a")
    plain = make_chat(server, stream=False).send("a")
    assert streamed.completion.choices == plain.completion.choices
    assert streamed.completion.usage == plain.completion.usage
    assert server.requests[0]["stream_options"] == {"include_usage": True}
    assert "stream" not in server.requests[1]


def test_settings_are_sent_and_overrides_win_for_one_call():
    server = FakeServer().reply("a").reply("b")
    chat = make_chat(server, temperature=0.2, max_tokens=20)
    chat.send("x", temperature=1.5)
    assert server.last["temperature"] == 1.5
    assert server.last["max_tokens"] == 20
    chat.send("y", max_tokens=None)
    assert server.last["temperature"] == 0.2
    assert "max_tokens" not in server.last


def test_failed_call_leaves_history_exactly_as_it_was():
    server = FakeServer().reply("one").error(429, "slow down", type="rate_limit_error")
    chat = make_chat(server)
    chat.send("first")
    before = chat.messages
    with pytest.raises(RateLimitError):
        chat.send("second")
    assert chat.messages == before


def test_invalid_request_leaves_history_and_sends_nothing():
    server = FakeServer()
    chat = make_chat(server)
    with pytest.raises(nbchat.RequestValidationError, match="temperature"):
        chat.send("x", temperature=9)
    assert chat.messages == []
    assert server.requests == []


def test_stream_cut_short_keeps_the_partial_reply_marked():
    server = FakeServer(piece=2).reply("abcdefgh", cut_after=3)
    chat = make_chat(server)
    with pytest.raises(IncompleteStreamError):
        chat.send("go")
    assert chat.messages[-1] == {"role": "assistant", "content": "abcd"}
    assert chat.interrupted == [1]
    assert chat.last_reply.interrupted


def test_stream_cut_before_any_text_leaves_no_trace():
    server = FakeServer().reply("abc", cut_after=1)
    chat = make_chat(server)
    with pytest.raises(IncompleteStreamError):
        chat.send("go")
    assert chat.messages == []


def test_listener_sees_request_chunks_and_completion():
    seen = {"request": None, "chunks": 0, "completions": 0}

    class Watch(ChatListener):
        def on_request(self, body):
            seen["request"] = body

        def on_chunk(self, chunk, stream):
            seen["chunks"] += 1

        def on_completion(self, completion):
            seen["completions"] += 1

    server = FakeServer(piece=1).reply("abc")
    make_chat(server).send("x", listener=Watch())
    assert seen["request"]["messages"][-1]["content"] == "x"
    assert seen["chunks"] >= 3
    assert seen["completions"] == 1


def test_undo_and_reset_keep_the_system_prompt():
    server = FakeServer().reply("a").reply("b")
    chat = make_chat(server, system="sys")
    chat.send("one")
    chat.send("two")
    dropped = chat.undo()
    assert [m["content"] for m in dropped] == ["two", "b"]
    chat.reset()
    assert chat.messages == [{"role": "system", "content": "sys"}]
    assert chat.undo() == []


def test_json_round_trip_keeps_messages_settings_and_marks():
    server = FakeServer(piece=2).reply("abcdef", cut_after=3)
    chat = make_chat(server, temperature=0.3)
    with pytest.raises(IncompleteStreamError):
        chat.send("hi")
    text = chat.to_json()
    assert SECRET not in text
    again = Chat.from_json(text)
    assert again.messages == chat.messages
    assert again.settings == chat.settings
    assert again.interrupted == chat.interrupted


def test_from_json_rejects_what_is_not_a_conversation():
    with pytest.raises(ValueError, match="Not a saved conversation"):
        Chat.from_json("[1, 2]")
    with pytest.raises(ValueError, match="Invalid message"):
        Chat.from_json('{"messages": [{"role": "robot", "content": "x"}]}')


def test_server_refusing_stream_options_is_asked_again_without_them():
    server = FakeServer().error(400, "Unknown field stream_options", param="stream_options")
    server.reply("ok")
    chat = make_chat(server)
    reply = chat.send("x")
    assert reply.content == "ok"
    assert "stream_options" not in server.requests[1]
    assert chat.client.profile.supports("stream_usage") is False


def test_no_model_anywhere_is_a_clear_error():
    chat = Chat(client=FakeServer().client())
    with pytest.raises(nbchat.RequestValidationError, match="No model"):
        chat.send("x")


def test_request_body_is_validated_without_sending():
    server = FakeServer()
    chat = make_chat(server, seed=3)
    body = chat.request_body("hello", stream=True)
    assert body["seed"] == 3
    assert body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert server.requests == []
    assert chat.messages == []


def test_messages_are_copies_the_caller_cannot_corrupt():
    server = FakeServer().reply("a")
    chat = make_chat(server)
    chat.send("x")
    chat.messages[0]["content"] = "changed"
    assert chat.messages[0]["content"] == "x"


def test_interrupt_during_stream_keeps_partial(monkeypatch):
    def events():
        yield b'data: {"choices":[{"index":0,"delta":{"content":"par"}}]}\n\n'
        yield b'data: {"choices":[{"index":0,"delta":{"content":"tial"}}]}\n\n'
        raise KeyboardInterrupt

    client = streaming_client(events)
    chat = Chat("m", client=client)
    with pytest.raises(KeyboardInterrupt):
        chat.send("go")
    assert chat.messages[-1] == {"role": "assistant", "content": "partial"}
    assert chat.interrupted == [1]


# -- the tool loop ------------------------------------------------------------------------------


def get_weather(location: str, units: str | None = None) -> dict:
    """获取指定城市的当前天气信息。"""
    return {"Beijing": {"temp": 28, "condition": "晴"}, "Shanghai": {"temp": 32}}[location]


def test_reference_multi_turn_tool_conversation_is_replayed_message_by_message():
    server = FakeServer()
    server.reply(
        None,
        tool_calls=[
            {"id": "call_001", "name": "get_weather", "arguments": '{"location":"Beijing"}'}
        ],
    )
    server.reply("北京今天晴天,气温28°C。")
    server.reply(
        None,
        tool_calls=[
            {"id": "call_002", "name": "get_weather", "arguments": '{"location":"Shanghai"}'}
        ],
    )
    server.reply("上海32°C。")
    chat = make_chat(server, system="你是一个专业助手。", stream=False)
    chat.send("北京今天天气?", tools=[get_weather])
    chat.send("那上海呢?", tools=[get_weather])
    # The reference's history, with the tool results as this get_weather's values serialize.
    history = MULTI_TURN_REQUEST["messages"]
    assert chat.messages == [
        *history[:3],
        {"role": "tool", "tool_call_id": "call_001", "content": '{"temp":28,"condition":"晴"}'},
        *history[4:7],
        {"role": "tool", "tool_call_id": "call_002", "content": '{"temp":32}'},
        {"role": "assistant", "content": "上海32°C。"},
    ]
    # Each request carried the history so far and the tool definition.
    assert [len(r["messages"]) for r in server.requests] == [2, 4, 6, 8]
    assert server.requests[1]["messages"][3]["tool_call_id"] == "call_001"
    assert server.requests[0]["tools"][0]["function"]["name"] == "get_weather"


def test_parallel_calls_all_run_and_are_all_answered_before_the_next_request():
    server = FakeServer()
    server.reply(
        None,
        tool_calls=[
            {"id": "call_001", "name": "get_weather", "arguments": {"location": "Beijing"}},
            {"id": "call_002", "name": "get_weather", "arguments": {"location": "Shanghai"}},
        ],
    )
    server.reply("both")
    reply = make_chat(server).send("天气?", tools=[get_weather])
    tool_messages = [m for m in server.requests[1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_001", "call_002"]
    assert reply.content == "both"
    assert [r.ok for r in reply.tool_results] == [True, True]


def test_streamed_tool_call_fragments_are_assembled_and_run():
    server = FakeServer()
    server.reply(
        None,
        tool_calls=[
            {"id": "call_abc", "name": "get_weather", "arguments": {"location": "Beijing"}}
        ],
    )
    server.reply("done")
    reply = make_chat(server).send("x", tools=[get_weather])
    assert reply.tool_results[0].value == {"temp": 28, "condition": "晴"}
    assert server.requests[0]["stream"] is True


def test_unknown_tool_bad_arguments_and_raising_tool_are_answered_as_errors():
    calls = []

    def boom(x: int) -> int:
        """Always fails."""
        calls.append(x)
        raise RuntimeError("kaput")

    server = FakeServer()
    server.reply(
        None,
        tool_calls=[
            {"id": "a", "name": "rm_rf", "arguments": {}},
            {"id": "b", "name": "boom", "arguments": "{not json"},
            {"id": "c", "name": "boom", "arguments": {"x": "NaN-ish"}},
            {"id": "d", "name": "boom", "arguments": {"x": 1}},
        ],
    )
    server.reply("sorry")
    reply = make_chat(server).send("x", tools=[boom])
    answers = {
        m["tool_call_id"]: m["content"]
        for m in server.requests[1]["messages"]
        if m["role"] == "tool"
    }
    assert "rm_rf" in answers["a"] and "error" in answers["a"]
    assert "error" in answers["b"] and "error" in answers["c"]
    assert "RuntimeError" in answers["d"] and "kaput" in answers["d"]
    assert calls == [1]
    assert [r.ok for r in reply.tool_results] == [False, False, False, False]


def test_round_cap_stops_the_loop_with_a_note_and_a_well_formed_history():
    server = FakeServer()
    for i in range(3):
        server.reply(
            None,
            tool_calls=[
                {"id": f"c{i}", "name": "get_weather", "arguments": {"location": "Beijing"}}
            ],
        )
    chat = make_chat(server)
    reply = chat.send("loop", tools=[get_weather], max_rounds=2)
    assert len(server.requests) == 3
    assert "Stopped after 2 rounds" in reply.notes[0]
    roles = [m["role"] for m in chat.messages]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]


def test_forced_tool_choice_applies_to_the_first_round_only():
    server = FakeServer()
    server.reply(
        None, tool_calls=[{"id": "c", "name": "get_weather", "arguments": {"location": "Beijing"}}]
    )
    server.reply("final")
    make_chat(server).send(
        "x",
        tools=[get_weather],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert server.requests[0]["tool_choice"]["function"]["name"] == "get_weather"
    assert server.requests[1]["tool_choice"] == "auto"


def test_confirmation_no_is_sent_back_and_yes_runs():
    ran = []

    def delete_file(path: str) -> str:
        """Delete a file."""
        ran.append(path)
        return "deleted"

    server = FakeServer()
    server.reply(None, tool_calls=[{"id": "c1", "name": "delete_file", "arguments": {"path": "a"}}])
    server.reply("ok")
    server.reply(None, tool_calls=[{"id": "c2", "name": "delete_file", "arguments": {"path": "b"}}])
    server.reply("ok")
    chat = make_chat(server)
    chat.send("rm a", tools=[delete_file], confirm=lambda tool, args: "no")
    declined = next(m for m in server.requests[1]["messages"] if m["role"] == "tool")
    assert "declined" in declined["content"]
    assert ran == []
    chat.send("rm b", tools=[delete_file], confirm=lambda tool, args: "yes")
    assert ran == ["b"]


def test_failure_mid_loop_leaves_history_as_before_the_call():
    server = FakeServer()
    server.reply(
        None, tool_calls=[{"id": "c", "name": "get_weather", "arguments": {"location": "Beijing"}}]
    )
    server.error(500, "boom", type="api_error")
    chat = make_chat(server)
    with pytest.raises(nbchat.InternalServerError):
        chat.send("x", tools=[get_weather])
    assert chat.messages == []


def test_send_with_a_schema_returns_the_validated_instance():
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    server = FakeServer().reply('{"name": "Paris", "population": 2100000}')
    reply = make_chat(server).send("A city", schema=City)
    assert reply.parsed == City(name="Paris", population=2100000)
    assert reply.value == reply.parsed
    assert server.last["response_format"]["json_schema"]["name"] == "City"


def test_schema_mismatch_raises_with_the_reply_attached_and_keeps_history():
    from nbchat.convert.parsing import StructuredOutputError

    server = FakeServer().reply('{"name": "Paris"}')
    chat = make_chat(server)
    with pytest.raises(StructuredOutputError) as info:
        chat.send(
            "A city",
            schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        )
    assert info.value.reply.content == '{"name": "Paris"}'
    assert len(chat.messages) == 2


def test_ctrl_c_in_a_tool_keeps_a_well_formed_history():
    def slow(x: int) -> int:
        """Takes long."""
        raise KeyboardInterrupt

    server = FakeServer()
    server.reply(None, tool_calls=[{"id": "c1", "name": "slow", "arguments": {"x": 1}}])
    chat = make_chat(server)
    with pytest.raises(KeyboardInterrupt):
        chat.send("go", tools=[slow])
    roles = [m["role"] for m in chat.messages]
    assert roles == ["user", "assistant", "tool"]
    assert chat.messages[2]["tool_call_id"] == "c1"
    assert "interrupt" in chat.messages[2]["content"].lower()
    assert chat.last_reply.interrupted


def test_stream_options_setting_is_honoured_when_streaming_and_dropped_when_not():
    server = FakeServer().reply("a").reply("b")
    chat = make_chat(server, stream_options={"include_usage": False})
    chat.send("streamed")
    assert server.requests[0]["stream_options"] == {"include_usage": False}
    chat.send("whole", stream=False)
    assert "stream_options" not in server.requests[1]


def _models_server(models: list[str]) -> tuple[nbchat.Client, list[str]]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": m} for m in models]})
        body = json.loads(request.content)
        message = {"role": "assistant", "content": body["model"]}
        return httpx.Response(200, json={"choices": [{"message": message}]})

    client = nbchat.Client(base_url="http://one.test/v1", transport=httpx.MockTransport(handle))
    return client, seen


def test_a_server_with_one_model_supplies_it_when_none_is_set():
    client, seen = _models_server(["llama3.2"])
    chat = Chat(client=client, stream=False)
    assert chat.send("hi").content == "llama3.2"
    chat.send("again")
    assert seen.count("GET /v1/models") == 1


def test_a_server_with_many_models_gets_a_clear_error_listing_them():
    client, _ = _models_server(["a", "b", "c"])
    with pytest.raises(nbchat.RequestValidationError, match=r"lists 3: a, b, c"):
        Chat(client=client, stream=False).send("hi")


# -- one request path: what prepare() shows is what send() puts on the wire ----------------------


def _weather(location: str) -> str:
    """Current weather of a city."""
    return f"sunny in {location}"


_CITY_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["name", "population"],
}


def _image():
    from PIL import Image

    return Image.new("RGB", (64, 48), "red")


_MATRIX = {
    "plain": {},
    "tools": {"tools": [_weather]},
    "forced tool": {"tools": [_weather], "tool_choice": "auto"},
    "schema": {"schema": _CITY_SCHEMA},
    "json": {"json": True},
    "logprobs": {"logprobs": True, "top_logprobs": 3},
    "image": {"images": [_image()], "detail": "low"},
    "data": {"data": [{"a": 1, "b": [1, 2, 3]}]},
    "stop": {"stop": ["\n\n", "END"], "max_tokens": 30},
    "logit bias": {"logit_bias": {"50256": -100}, "seed": 7, "temperature": 0.3},
    "settings": {"top_p": 0.9, "presence_penalty": 0.5, "frequency_penalty": 0.1, "user": "u1"},
}


def _profiled_client(server: FakeServer, profile: str):
    from nbchat.local.adapt import profile as local_profile
    from nbchat.transport.profiles import configured_profile

    if profile == "local":
        return server.client(server=local_profile("smollm2"))
    return server.client(server=configured_profile(profile))


@pytest.mark.parametrize("profile", ["generic", "local", "ollama", "lmstudio", "azure"])
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "unstreamed"])
@pytest.mark.parametrize("case", list(_MATRIX))
def test_the_dry_run_body_is_the_body_on_the_wire(case, stream, profile):
    options = _MATRIX[case]
    if profile == "local" and case == "image":
        pytest.skip("the local server refuses images before sending (tested below)")
    dry = FakeServer()
    prepared = Chat(
        "fake-model", client=_profiled_client(dry, profile), system="Be brief."
    ).prepare("Weather in Paris?", stream=stream, **options)
    assert dry.requests == []  # nothing was sent
    wire = FakeServer()
    if options.get("schema") or options.get("json"):
        wire.reply('{"name": "Paris", "population": 2100000}')
    else:
        wire.reply("It is sunny.")
    chat = Chat("fake-model", client=_profiled_client(wire, profile), system="Be brief.")
    chat.send("Weather in Paris?", stream=stream, **options)
    assert wire.requests[0] == json.loads(json.dumps(prepared.body))
    assert prepared.method == "POST"
    assert prepared.url.startswith("http://fake.test/v1/chat/completions")


def test_prepare_shows_the_url_and_masked_headers_and_changes_nothing():
    server = FakeServer()
    chat = Chat("fake-model", client=server.client(), system="s")
    prepared = chat.prepare("hello", stream=True)
    assert prepared.url == "http://fake.test/v1/chat/completions"
    assert prepared.headers["Authorization"] == "Bearer ••••••••"
    assert SECRET not in json.dumps(prepared.to_dict())
    assert prepared.body["stream"] is True
    assert prepared.body["stream_options"] == {"include_usage": True}
    assert chat.messages == [{"role": "system", "content": "s"}]
    assert server.requests == []


def test_prepare_refuses_what_the_server_cannot_take_as_send_would():
    from nbchat import RequestValidationError

    server = FakeServer()
    chat = Chat("fake-model", client=_profiled_client(server, "local"))
    with pytest.raises(RequestValidationError, match=r"text only|image"):
        chat.prepare("What is this?", images=[_image()])
    with pytest.raises(RequestValidationError, match=r"text only|image"):
        chat.send("What is this?", images=[_image()])
    assert server.requests == [] and chat.messages == []


def test_adaptation_notes_reach_the_prepared_request_and_the_reply():
    server = FakeServer().reply('{"name": "Paris", "population": 2}')
    chat = Chat("fake-model", client=_profiled_client(server, "lmstudio"))
    prepared = chat.prepare("x", json=True, stream=False)
    assert prepared.body["response_format"]["type"] == "json_schema"
    assert any("json_object" in note for note in prepared.notes)
    reply = chat.send("x", json=True, stream=False)
    assert reply.notes == list(prepared.notes)
    assert reply.prepared == prepared


def test_a_refused_feature_is_learned_once_per_endpoint_with_a_note():
    server = FakeServer()
    server.error(400, "logprobs are not supported by this model", param="logprobs")
    server.reply("one").reply("two")
    client = server.client()
    first = Chat("fake-model", client=client, stream=False)
    reply = first.send("a", logprobs=True, top_logprobs=2)
    assert reply.content == "one"
    assert "logprobs" in server.requests[0] and "logprobs" not in server.requests[1]
    assert any("logprobs" in note for note in reply.notes)
    assert client.profile.supports("logprobs") is False
    # Another conversation on the same endpoint does not ask again.
    second = Chat("fake-model", client=client, stream=False).send("b", logprobs=True)
    assert "logprobs" not in server.requests[2]
    assert second.content == "two"


def test_a_refusal_that_no_fallback_can_meet_fails_the_call_and_is_remembered():
    server = FakeServer().error(400, "This model does not support tools", param="tools")
    client = server.client()
    chat = Chat("fake-model", client=client, stream=False)
    with pytest.raises(nbchat.BadRequestError):
        chat.send("a", tools=[_weather])
    assert chat.messages == []
    assert client.profile.supports("tools") is False
    with pytest.raises(nbchat.RequestValidationError, match="tool calling is unsupported"):
        chat.prepare("a", tools=[_weather])
    assert len(server.requests) == 1


def test_stream_usage_is_learned_from_a_stream_that_reports_it():
    server = FakeServer().reply("hi")
    client = server.client()
    assert client.profile.supports("stream_usage") is None
    Chat("fake-model", client=client).send("x")
    assert client.profile.supports("stream_usage") is True


def test_sends_to_one_conversation_never_interleave():
    import threading
    import time

    inside = []
    order = []

    class Slow(ChatListener):
        def on_request(self, body):
            inside.append(1)
            assert len(inside) == 1, "two sends of one conversation ran at once"
            time.sleep(0.05)

        def on_completion(self, completion):
            order.append(completion.content)
            inside.pop()

    server = FakeServer().reply("first").reply("second")
    chat = make_chat(server, stream=False)
    worker = threading.Thread(target=lambda: chat.send("a", listener=Slow()))
    worker.start()
    time.sleep(0.01)
    chat.send("b", listener=Slow())
    worker.join()
    assert order == ["first", "second"]
    assert [m["content"] for m in chat.messages] == ["a", "first", "b", "second"]


def test_a_tool_name_as_tool_choice_forces_that_tool():
    server = FakeServer()
    chat = make_chat(server)
    prepared = chat.prepare("w?", tools=[_weather], tool_choice="_weather")
    assert prepared.body["tool_choice"] == {"type": "function", "function": {"name": "_weather"}}
    with pytest.raises(nbchat.RequestValidationError, match="'nope' is not one of the tools"):
        chat.prepare("w?", tools=[_weather], tool_choice="nope")


@pytest.mark.parametrize(
    "message",
    [
        {"content": "<think>\n2 plus 2\n</think>\n\nFour."},
        {"content": "Four.", "reasoning_content": "2 plus 2"},
        {"content": "Four.", "reasoning": "2 plus 2"},
    ],
    ids=["think-tag", "reasoning_content", "reasoning"],
)
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "unstreamed"])
def test_reasoning_is_on_the_reply_and_kept_out_of_the_next_request(message, stream):
    completion = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "r1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }

    def handle(request):
        body = json.loads(request.content)
        seen.append(body)
        if body.get("stream"):
            chunk = {k: completion[k] for k in ("id", "created", "model")}
            chunk["object"] = "chat.completion.chunk"
            delta = {"role": "assistant", **message}
            text = delta.pop("content")
            events = [
                {**chunk, "choices": [{"index": 0, "delta": delta}]},
                *(
                    {**chunk, "choices": [{"index": 0, "delta": {"content": text[i : i + 4]}}]}
                    for i in range(0, len(text), 4)
                ),
                {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            ]
            data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            return httpx.Response(200, content=data.encode())
        return httpx.Response(200, json=completion)

    seen: list = []
    client = nbchat.Client(
        api_key="k", base_url="http://r.test/v1", transport=httpx.MockTransport(handle)
    )
    chat = Chat("r1", client=client, stream=stream)
    reply = chat.send("2+2?")
    assert reply.reasoning == "2 plus 2"
    assert reply.content == "Four."
    chat.send("And 3+3?")
    sent = seen[1]["messages"][1]
    assert sent == {"role": "assistant", "content": "Four."}


def test_notes_are_warnings_in_plain_python_and_not_with_a_listener():
    from nbchat.conversation.chat import NbchatNote

    server = FakeServer().reply("ok").reply("ok")
    client = server.client(server="ollama")
    with pytest.warns(NbchatNote, match="logit_bias is not supported by ollama"):
        Chat("m", client=client).send("x", logit_bias={"1": 2})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Chat("m", client=client).send("x", logit_bias={"1": 2}, listener=ChatListener())


def test_every_reply_records_how_it_was_obtained_and_to_json_keeps_it():
    server = FakeServer().reply("Paris.", model="fake-model-2024-08-06")
    chat = make_chat(server, seed=3, temperature=0.2)
    reply = chat.send("Capital?")
    meta = reply.metadata
    assert meta["request_hash"] == reply.prepared.key
    assert meta["model"] == "fake-model-2024-08-06"
    assert meta["seed"] == 3 and meta["temperature"] == 0.2
    assert meta["usage"]["total_tokens"] == 15
    assert meta["version"] == nbchat.__version__
    assert meta["server"] == "generic"
    assert set(meta) == {
        "request_hash",
        "model",
        "system_fingerprint",
        "seed",
        "temperature",
        "usage",
        "latency",
        "version",
        "server",
    }
    # A dated snapshot of the model asked for is the same model: no note.
    assert reply.notes == []
    saved = Chat.from_json(chat.to_json())
    assert saved.metadata == {1: meta} == chat.metadata


@pytest.mark.parametrize(
    ("asked", "answered", "noted"),
    [
        ("gpt-4.1", "gpt-4.1-2025-04-14", False),
        ("gpt-4.1", "gpt-4.1", False),
        ("gpt-4.1", "gpt-4o-mini-2024-07-18", True),
        ("llama3", "llama3:latest", False),
        ("openai/gpt-4o", "gpt-4o", False),
    ],
)
def test_another_model_answering_is_noted(asked, answered, noted):
    server = FakeServer().reply("hi", model=answered)
    reply = Chat(asked, client=server.client()).send("x")
    assert any(f"{answered} answered; {asked} was asked for" in n for n in reply.notes) is noted


def test_the_local_model_answering_for_another_model_is_noted():
    server = FakeServer().reply("hi", model="gpt-4.1")  # the local server echoes the id sent
    chat = Chat("gpt-4.1", client=_profiled_client(server, "local"))
    reply = chat.send("x", listener=ChatListener())
    assert any("The local model smollm2 answered, not gpt-4.1" in n for n in reply.notes)


# ---------------------------------------------------------------------------------------------
# The newer parts of the API in a conversation


@nbchat.tool(custom=True)
def shout(text: str) -> str:
    """Say it loud."""
    return text.upper()


@pytest.mark.parametrize("stream", [True, False])
def test_a_custom_tool_call_runs_in_the_loop_and_is_answered(stream: bool):
    server = FakeServer()
    server.reply(None, custom_calls=[{"id": "c1", "name": "shout", "input": "hello there"}])
    server.reply("Done.")
    chat = make_chat(server, stream=stream)
    reply = chat.send("Shout it", tools=[shout], tool_choice="shout")
    assert reply.content == "Done."
    empty = "" if stream else None  # a stream sends its content as "" first
    first, second = server.requests
    assert first["tools"] == [
        {"type": "custom", "custom": {"name": "shout", "description": "Say it loud."}}
    ]
    assert first["tool_choice"] == {"type": "custom", "custom": {"name": "shout"}}
    assert second["tool_choice"] == "auto"
    assert chat.messages[1:3] == [
        {
            "role": "assistant",
            "content": empty,
            "tool_calls": [
                {"id": "c1", "type": "custom", "custom": {"name": "shout", "input": "hello there"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "HELLO THERE"},
    ]
    assert [r.content for r in reply.tool_results] == ["HELLO THERE"]


def test_allowed_tools_limit_the_model_and_stay_after_the_first_round():
    server = FakeServer()
    server.reply(None, custom_calls=[{"id": "c1", "name": "shout", "input": "x"}]).reply("ok")

    def other(x: int) -> int:
        """Another tool."""
        return x

    make_chat(server).send(
        "go", tools=[shout, other], allowed_tools=["shout"], tool_choice="required"
    )
    allowed = {"type": "custom", "custom": {"name": "shout"}}
    assert server.requests[0]["tool_choice"] == {
        "type": "allowed_tools",
        "allowed_tools": {"mode": "required", "tools": [allowed]},
    }
    assert server.requests[1]["tool_choice"]["allowed_tools"]["mode"] == "auto"
    assert "allowed_tools" not in server.requests[0]  # not a field of the request


def test_a_spoken_reply_goes_back_by_its_audio_id():
    import base64

    server = FakeServer()
    pcm = base64.b64encode(b"\x01\x00" * 480).decode()
    audio = {"id": "audio_1", "data": pcm, "transcript": "Hi there", "expires_at": 1}
    server.reply(None, audio=audio).reply("Again")
    chat = make_chat(server)
    voice = {"voice": "alloy", "format": "pcm16"}
    reply = chat.send("Say hi", modalities=["text", "audio"], audio=voice)
    assert reply.audio.transcript == "Hi there"
    assert reply.audio.data == b"\x01\x00" * 480 and reply.audio.wav.startswith(b"RIFF")
    assert chat.messages[-1] == {"role": "assistant", "audio": {"id": "audio_1"}}
    chat.send("Once more", modalities=["text", "audio"], audio=voice)
    assert server.last["messages"][1] == chat.messages[1]


def test_citations_are_numbered_on_the_reply():
    server = FakeServer()
    note = {
        "type": "url_citation",
        "url_citation": {
            "url": "https://a.example",
            "title": "A",
            "start_index": 0,
            "end_index": 4,
        },
    }
    server.reply("Rain today.", annotations=[note])
    reply = make_chat(server).send("Weather?", web_search_options={})
    assert [(c.number, c.url, c.text) for c in reply.citations] == [
        (1, "https://a.example", "Rain")
    ]
    assert server.last["web_search_options"] == {}


def test_recordings_and_files_become_parts_of_the_message(tmp_path):
    from nbchat.convert.audio import wav_from_pcm16

    server = FakeServer().reply("heard")
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4 x")
    make_chat(server).send(
        "What is this?", recordings=[wav_from_pcm16(b"\x00\x00" * 10)], files=[pdf]
    )
    kinds = [part["type"] for part in server.last["messages"][-1]["content"]]
    assert kinds == ["text", "input_audio", "file"]


def test_a_reply_with_a_kind_of_call_nbchat_does_not_know_is_kept_and_answered():
    server = FakeServer()
    completion = {
        "id": "x",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "w1", "type": "web_search", "web_search": {"q": "x"}}],
                },
            }
        ],
    }
    server._replies.append(("ok", completion, None))
    server.reply("fine")
    chat = make_chat(server, stream=False)
    reply = chat.send("go", tools=[shout])
    assert reply.completion.choices[0].message.tool_calls[0].type == "web_search"
    assert "'web_search' tool call, which nbchat cannot run" in reply.notes[0]
    assert reply.tool_results == [] and len(server.requests) == 1
    assert chat.messages[-1] == {"role": "user", "content": "go"}  # nothing to send back
    chat.send("and now?")
    assert server.last["messages"][-1] == {"role": "user", "content": "and now?"}
