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
