"""conversation/rounds.py: one request of a send, through the door and on the wire.

What a reply says of its streams (pieces of output, time to the first) is read from the door's
watch of each request, so it is tested here on both sides, across tool rounds and cut streams.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import nbchat
from nbchat import Chat
from nbchat.protocol.exceptions import IncompleteStreamError
from nbchat.store.cache import has_output
from tests import storeutil
from tests.fakeserver import FakeServer

fresh_store = storeutil.fresh_store


class Counting(nbchat.ChatListener):
    """Counts the chunks that carry output, as a user's listener would see them."""

    def __init__(self) -> None:
        self.output = 0

    def on_chunk(self, chunk, stream):
        self.output += has_output(chunk)


def send(chat: Chat, how: str, content: str, **options):
    if how == "send":
        return chat.send(content, **options)
    return asyncio.run(chat.asend(content, **options))


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.parametrize("how", ["send", "asend"])
def test_a_streamed_reply_counts_its_pieces_and_its_first_token(how, fresh_store):
    server = FakeServer(piece=2).reply("abcdef")
    chat = Chat("fake-model", client=server.client())
    started = time.perf_counter()
    reply = send(chat, how, "go")
    elapsed = time.perf_counter() - started
    assert reply.output_chunks == 3  # "ab", "cd", "ef": the role chunk carries no output
    assert reply.time_to_first_token is not None
    assert 0 <= reply.time_to_first_token <= elapsed


@pytest.mark.parametrize("how", ["send", "asend"])
def test_the_rounds_of_a_tool_loop_add_up(how, fresh_store):
    server = FakeServer(piece=2)
    server.reply(None, tool_calls=[{"name": "add", "arguments": {"a": 1, "b": 2}}])
    server.reply("three")
    chat = Chat("fake-model", client=server.client())
    listener = Counting()
    reply = send(chat, how, "1+2?", tools=[add], listener=listener)
    assert len(reply.completions) == 2
    assert reply.output_chunks == listener.output > 3  # the call's fragments and the text
    assert reply.content == "three"


@pytest.mark.parametrize("how", ["send", "asend"])
def test_a_cut_stream_counts_what_arrived(how, fresh_store):
    server = FakeServer(piece=2).reply("abcdefgh", cut_after=3)
    chat = Chat("fake-model", client=server.client())
    with pytest.raises(IncompleteStreamError):
        send(chat, how, "go")
    reply = chat.last_reply
    assert reply.interrupted
    assert reply.output_chunks == 2  # "ab" and "cd" came before the cut
    assert reply.time_to_first_token is not None


@pytest.mark.parametrize("how", ["send", "asend"])
def test_a_reply_not_streamed_has_no_pieces(how, fresh_store):
    server = FakeServer().reply("whole")
    chat = Chat("fake-model", client=server.client(), stream=False)
    reply = send(chat, how, "go")
    assert reply.content == "whole"
    assert reply.output_chunks == 0
    assert reply.time_to_first_token is None


@pytest.mark.parametrize("how", ["send", "asend"])
def test_a_cached_reply_counts_no_new_pieces(how, fresh_store):
    server = FakeServer(piece=2).reply("abcdef")
    first = send(Chat("fake-model", client=server.client()), how, "go", cache=True)
    again = send(Chat("fake-model", client=server.client()), how, "go", cache=True)
    assert first.output_chunks == 3
    assert len(server.requests) == 1  # the second came from the store
    assert again.content == "abcdef" and again.output_chunks == 0
