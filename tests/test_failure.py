from __future__ import annotations

import pytest

from nbchat import Chat, NbchatError
from nbchat.conversation.sessions import session
from nbchat.protocol.exceptions import IncompleteStreamError
from tests import storeutil
from tests.fakeserver import FakeServer

store_shell = storeutil.store_shell
fresh_store = storeutil.fresh_store

SLOW_DOWN = {"status": 429, "message": "Slow down.", "type": "rate_limit_error", "code": "rate"}


def _error(server: FakeServer) -> None:
    args = dict(SLOW_DOWN)
    server.error(args.pop("status"), args.pop("message"), **args)


def test_a_429_fails_a_cell_an_each_row_and_a_compare_column_in_the_same_words(store_shell):
    _error(store_shell.server)
    failed = store_shell.run_cell("%%chat\nHello")
    said_by_cell = str(failed.error_in_exec)
    _error(store_shell.server)
    store_shell.user_ns["rows"] = [{"x": 1}]
    store_shell.run_cell_magic("chat", "--each rows -o out --concurrency 1", "Say {x}")
    said_by_row = store_shell.user_ns["out"][0]["error"]
    _error(store_shell.server)
    store_shell.server.reply("fine")
    compared = store_shell.run_cell("%%chat --compare a,b\nHello")
    said_by_column = str(compared.error_in_exec).split(": ", 1)[1]
    assert said_by_cell == said_by_row == said_by_column
    assert said_by_cell == "RateLimitError (429, rate): Slow down."


def test_a_json_cell_cut_off_says_its_reply_is_kept_and_how_to_drop_it(store_shell):
    store_shell.server.reply('{"name": "Par', finish_reason="length")
    failed = store_shell.run_cell("%%chat --json --max-tokens 5\nA city as JSON")
    message = str(failed.error_in_exec)
    assert type(failed.error_in_exec).__name__ == "ChatCellError"
    assert message.startswith("StructuredOutputError")
    assert message.endswith("the reply is kept in the conversation (%chat undo drops it)")
    assert [m["role"] for m in session().messages] == ["user", "assistant"]
    store_shell.run_line_magic("chat", "undo")
    assert session().messages == []


def test_an_error_carries_what_arrived_set_by_the_conversation():
    cut = FakeServer().reply("a partial answer", cut_after=2)
    with pytest.raises(IncompleteStreamError) as caught:
        Chat("fake-model", client=cut.client()).send("go")
    assert caught.value.reply is not None and caught.value.reply.interrupted
    assert caught.value.reply.content
    refused = FakeServer()
    _error(refused)
    with pytest.raises(NbchatError) as failed:
        Chat("fake-model", client=refused.client()).send("go")
    assert failed.value.reply is not None and failed.value.reply.completions == []
    bad = FakeServer().reply("not json")
    with pytest.raises(NbchatError) as invalid:
        Chat("fake-model", client=bad.client()).send("go", json=True)
    assert invalid.value.reply.content == "not json"
