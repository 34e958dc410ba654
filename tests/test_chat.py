from __future__ import annotations

import httpx
import pytest

import nbchat
from nbchat import Chat, ChatListener, RateLimitError
from nbchat._exceptions import IncompleteStreamError
from tests.fakeserver import SECRET, FakeServer


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
    assert nbchat.last is reply.completion


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
    assert chat.client.include_usage is False


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

    client = nbchat.Client(
        api_key=SECRET,
        base_url="http://fake.test/v1",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=events())),
    )
    chat = Chat("m", client=client)
    with pytest.raises(KeyboardInterrupt):
        chat.send("go")
    assert chat.messages[-1] == {"role": "assistant", "content": "partial"}
    assert chat.interrupted == [1]
