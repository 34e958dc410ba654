from __future__ import annotations

import pytest

from nbchat import Chat
from nbchat.conversation.trim import fit_history, trim_history
from nbchat.convert.tokenbudget import messages_tokens
from tests.fakeserver import FakeServer


def exchange(i: int, size: int = 400) -> list[dict]:
    return [
        {"role": "user", "content": f"question {i} " + "q" * size},
        {"role": "assistant", "content": f"answer {i} " + "a" * size},
    ]


def tool_exchange(i: int) -> list[dict]:
    return [
        {"role": "user", "content": f"add {i}" + " please" * 50},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"c{i}a",
                    "type": "function",
                    "function": {"name": "add", "arguments": "{}"},
                },
                {
                    "id": f"c{i}b",
                    "type": "function",
                    "function": {"name": "add", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": f"c{i}a", "content": "1" * 200},
        {"role": "tool", "tool_call_id": f"c{i}b", "content": "2" * 200},
        {"role": "assistant", "content": f"done {i}"},
    ]


SYSTEM = {"role": "system", "content": "You are terse."}


def test_no_limit_or_a_fitting_request_is_sent_as_it_is():
    messages = [SYSTEM, *exchange(1), *exchange(2)]
    for limit in (None, 0, 10_000):
        trim = trim_history(messages, limit)
        assert trim.messages == messages and trim.dropped == [] and trim.note is None
    assert fit_history(messages, None) == (messages, [])


def test_without_a_limit_nothing_is_counted_and_the_callers_list_is_not_handed_out(monkeypatch):
    def no_counting(message):
        raise AssertionError("counted tokens without a limit")

    monkeypatch.setattr("nbchat.conversation.trim.message_tokens", no_counting)
    messages = [SYSTEM, *exchange(1)]
    for limit in (None, 0):
        sent, notes = fit_history(messages, limit)
        assert sent == messages and sent is not messages and notes == []


def test_the_oldest_exchanges_go_first_never_the_system_prompt_or_the_latest():
    messages = [
        SYSTEM,
        *exchange(1),
        *exchange(2),
        *exchange(3),
        {"role": "user", "content": "now?"},
    ]
    limit = messages_tokens([SYSTEM, *exchange(3), messages[-1]]) + 5
    trim = trim_history(messages, limit)
    assert trim.messages == [SYSTEM, *exchange(3), messages[-1]]
    assert trim.dropped == [*exchange(1), *exchange(2)]
    assert trim.exchanges == 2
    assert trim.tokens_after <= limit < trim.tokens_before
    assert "Left out the 2 oldest exchanges (4 messages" in trim.note
    assert f"max_history_tokens ({limit:,})" in trim.note


def test_a_tool_call_is_never_sent_without_its_results():
    messages = [SYSTEM, *tool_exchange(1), *tool_exchange(2), *exchange(3)]
    for limit in range(50, messages_tokens(messages), 25):
        sent = trim_history(messages, limit).messages
        calls = {c["id"] for m in sent for c in m.get("tool_calls") or ()}
        answered = {m["tool_call_id"] for m in sent if m["role"] == "tool"}
        assert calls == answered, limit
        assert sent[0] == SYSTEM
        assert sent[1]["role"] == "user"
        assert sent[-2:] == exchange(3)


def test_still_over_after_trimming_says_so():
    messages = [SYSTEM, *exchange(1), {"role": "user", "content": "x" * 4000}]
    trim = trim_history(messages, 100)
    assert trim.messages == [SYSTEM, messages[-1]]
    assert "Left out the oldest exchange (2 messages" in trim.note
    assert "still ~" in trim.note and "never left out" in trim.note


@pytest.fixture
def server():
    return FakeServer()


def test_a_chat_sends_the_trimmed_history_with_a_note_and_keeps_all_of_it(server):
    chat = Chat("fake-model", client=server.client(), system="You are terse.", stream=False)
    for i in range(3):
        for message in exchange(i):
            chat.add(message)
    chat.max_history_tokens = 100
    server.reply("ok")
    with pytest.warns(UserWarning, match="Left out the 3 oldest exchanges"):
        reply = chat.send("latest")
    sent = server.last["messages"]
    assert sent == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "latest"},
    ]
    assert any("Left out the 3 oldest exchanges" in note for note in reply.notes)
    assert len(chat.messages) == 1 + 6 + 2
    assert chat.prepare("next").body["messages"][0]["role"] == "system"


def test_the_tool_rounds_of_the_exchange_being_sent_are_never_trimmed(server):
    chat = Chat("fake-model", client=server.client(), stream=False, max_history_tokens=120)
    for message in exchange(1):
        chat.add(message)

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    server.reply(None, tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}])
    server.reply("5")
    with pytest.warns(UserWarning):
        reply = chat.send("What is 2 + 3?", tools=[add])
    assert reply.content == "5"
    second = server.requests[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]
    assert second[0]["content"] == "What is 2 + 3?"
    assert second[2]["content"] == "5"
