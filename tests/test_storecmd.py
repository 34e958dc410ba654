from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from nbchat.notebook.storecmd import wants
from nbchat.store import config
from tests import storeutil
from tests.storeutil import stored

fresh_store = storeutil.fresh_store
store_shell = storeutil.store_shell


def shown(shell) -> dict:
    return shell.publisher.outputs[-1]


def test_store_subcommands_are_told_from_prompts():
    assert wants(["log"]) and wants(["log", "5"]) and wants(["usage"])
    assert not wants(["log", "the", "results"]) and not wants(["log", "it"])
    assert not wants(["usage", "of", "numpy"]) and not wants([]) and not wants(["history"])


def test_chat_log_shows_the_last_exchanges_escaped(store_shell):
    server = store_shell.server
    server.reply("<script>alert(1)</script> **bold**").reply("second").reply("third")
    store_shell.run_line_magic("chat", "Say <b>hi</b>")
    store_shell.run_line_magic("chat", "again")
    store_shell.run_line_magic("chat", "once more")
    store_shell.run_line_magic("chat", "log")
    table = shown(store_shell)
    assert "Last 3 exchanges" in table["text/plain"]
    assert "&lt;script&gt;" in table["text/html"]
    assert "fake-model" in table["text/plain"] and "price unknown" in table["text/plain"]
    store_shell.run_line_magic("chat", "log 1")
    one = shown(store_shell)["text/plain"]
    assert "Last 1 exchange in" in one and "once more" in one and "again" not in one
    assert len(server.requests) == 3


def test_chat_log_followed_by_words_is_a_prompt(store_shell):
    store_shell.server.reply("sure")
    store_shell.run_line_magic("chat", "log the results please")
    assert store_shell.server.last["messages"][-1]["content"] == "log the results please"


def test_chat_usage_summarises_tokens_and_cost_with_the_budget(store_shell):
    store_shell.server.reply("a").reply("b")
    store_shell.run_line_magic("config", "Chat.budget = 3.5")
    with pytest.warns(UserWarning, match="price of fake-model is unknown"):
        store_shell.run_line_magic("chat", "one")
    store_shell.run_line_magic("chat", "--cache two")
    store_shell.run_line_magic("chat", "usage")
    text = shown(store_shell)["text/plain"]
    assert "Usage by day, session and model" in text
    assert "default" in text and "fake-model" in text and "price unknown" in text
    assert "Budget: $0 of $3.50 spent" in text
    assert (
        f"Store: {storeutil.db.open_store(config.store_path()).path}" in text or "Store: " in text
    )


def test_cache_options_and_setting_in_cells(store_shell):
    server = store_shell.server
    server.reply("live 1").reply("live 2").reply("live 3")
    store_shell.run_cell_magic("chat", "--new", "Question\n")
    store_shell.run_cell_magic("chat", "--new --cache", "Question\n")
    assert len(server.requests) == 1
    assert "cached: reply of" in shown(store_shell)["text/plain"]
    store_shell.run_line_magic("config", "Chat.cache = True")
    store_shell.run_cell_magic("chat", "--new", "Question\n")
    assert len(server.requests) == 1
    store_shell.run_cell_magic("chat", "--new --no-cache", "Question\n")
    assert len(server.requests) == 2
    assert [row.source for row in stored(config.store_path())] == [
        "server",
        "cache",
        "cache",
        "server",
    ]


def test_the_store_setting_moves_or_turns_off_the_store(store_shell, tmp_path):
    store_shell.server.reply("x").reply("y")
    target = tmp_path / "project.db"
    store_shell.run_line_magic("config", f"Chat.store = {str(target)!r}")
    store_shell.run_line_magic("chat", "hello")
    assert len(stored(target)) == 1
    store_shell.run_line_magic("config", "Chat.store = 'off'")
    store_shell.run_line_magic("chat", "again")
    assert len(stored(target)) == 1
    store_shell.run_line_magic("chat", "log")  # prints, shows nothing


def test_the_store_off_is_said_plainly(store_shell, capsys):
    store_shell.run_line_magic("config", "Chat.store = 'off'")
    store_shell.run_line_magic("chat", "usage")
    assert "The store is off" in capsys.readouterr().out


def test_chat_log_zero_is_a_usage_error(store_shell):
    with pytest.raises(UsageError, match="1 or more"):
        store_shell.run_line_magic("chat", "log 0")


# ---------------------------------------------------------------------------------------------
# %chat stored: the completions a server stored


@pytest.fixture
def stored_shell(store_shell, monkeypatch):
    """The store shell, talking to a server that keeps completions (tests/fakestore.py)."""
    from nbchat.conversation import sessions
    from tests.fakestore import FakeStore

    fake = FakeStore()
    client = fake.client()
    monkeypatch.setattr(sessions, "client_for", lambda settings: client)
    store_shell.run_line_magic("config", "Chat.base_url = 'http://store.test/v1'")
    store_shell.fake = fake
    yield store_shell
    store_shell.config.pop("Chat", None)


def test_stored_commands_are_told_from_prompts():
    from nbchat.notebook.magics import ChatMagics, split_options
    from nbchat.notebook.storecmd import stored_words

    parser = ChatMagics.chat.parser
    assert stored_words("stored", parser, split_options) == (["stored"], [])
    assert stored_words("stored list 5 -m gpt-5", parser, split_options) == (
        ["stored", "list", "5"],
        ["-m", "gpt-5"],
    )
    assert stored_words("stored show chatcmpl-1", parser, split_options)[0][2] == "chatcmpl-1"
    assert stored_words("stored procedures in SQL?", parser, split_options) is None
    assert stored_words("history", parser, split_options) is None
    with pytest.raises(UsageError, match="which stored completion"):
        stored_words("stored delete", parser, split_options)
    with pytest.raises(UsageError, match="N is how many"):
        stored_words("stored list 0", parser, split_options)


def test_chat_stored_lists_shows_and_deletes_what_the_server_kept(stored_shell, capsys):
    shell, fake = stored_shell, stored_shell.fake
    shell.run_line_magic("chat", "--store --metadata run=7 --no-stream Say <b>hi</b>")
    shell.run_line_magic("chat", "--store --no-stream second")
    [first, second] = fake.stored
    shell.run_line_magic("chat", "stored")
    table = shown(shell)
    assert "2 stored completions on the server" in table["text/plain"]
    assert first in table["text/plain"] and "run=7" in table["text/plain"]
    assert "&lt;b&gt;hi&lt;/b&gt;" in table["text/html"]  # escaped, never markup
    assert fake.calls[-1] == "GET /chat/completions?limit=20&order=desc"
    shell.run_line_magic("chat", "stored list --metadata run=7")
    assert "1 stored completion on the server" in shown(shell)["text/plain"]
    assert fake.calls[-1].endswith("metadata%5Brun%5D=7")
    shell.run_line_magic("chat", f"stored show {first}")
    page = shown(shell)
    assert f"Stored completion {first}" in page["text/plain"]
    assert "re: Say &lt;b&gt;hi&lt;/b&gt;" in page["text/html"]
    assert "[user] Say <b>hi</b>" in page["text/plain"]
    shell.run_line_magic("chat", f"stored delete {first}")
    assert f"Deleted stored completion {first}." in capsys.readouterr().out
    assert list(fake.stored) == [second]


def test_chat_stored_on_a_server_without_them_is_one_line(stored_shell):
    stored_shell.fake.supported = False
    with pytest.raises(UsageError, match="keeps no stored completions") as info:
        stored_shell.run_line_magic("chat", "stored list")
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match=r"keeps no stored completions \(learned"):
        stored_shell.run_line_magic("chat", "stored show chatcmpl-9")


def test_chat_stored_with_the_local_model_sends_nothing(store_shell, capsys):
    store_shell.run_line_magic("chat", "stored")
    assert "local model server keeps no stored completions" in capsys.readouterr().out
    assert store_shell.server.requests == []
