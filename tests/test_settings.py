"""notebook/settings.py: the defaults of every %%chat cell, as traitlets settings."""

from __future__ import annotations

import pytest
from traitlets import TraitError
from traitlets.config import Config

from nbchat.notebook.settings import Chat
from nbchat.store import config as store_config
from nbchat.transport.kinds import KINDS


@pytest.fixture(autouse=True)
def _keep_store_settings(monkeypatch):
    # The store's settings follow Chat's: each test's changes are undone after it.
    for name in ("store", "cache", "budget"):
        monkeypatch.setattr(store_config.settings, name, getattr(store_config.settings, name))


def test_the_defaults_a_cell_starts_from():
    chat = Chat()
    assert (chat.model, chat.base_url, chat.server, chat.api_key_env) == (
        "",
        "",
        "auto",
        "OPENAI_API_KEY",
    )
    assert chat.stream is True and chat.display == "auto"
    assert (chat.max_retries, chat.max_tool_rounds, chat.mcp_timeout) == (2, 8, 60.0)
    assert chat.temperature is None and chat.max_tokens is None and chat.budget is None


def test_a_profile_or_config_sets_them():
    config = Config()
    config.Chat.model = "gpt-4.1-mini"
    config.Chat.max_tokens = "256"  # CInt: what %config gives as text is taken
    chat = Chat(config=config)
    assert chat.model == "gpt-4.1-mini" and chat.max_tokens == 256


def test_server_takes_every_known_kind_and_nothing_else():
    chat = Chat()
    for kind in KINDS:
        chat.server = kind
    with pytest.raises(TraitError):
        chat.server = "tgi"


@pytest.mark.parametrize("value", [-1.0, float("nan")])
def test_a_budget_below_zero_or_not_a_number_is_refused(value):
    with pytest.raises(TraitError, match=r"Chat\.budget must be 0 or more US dollars"):
        Chat().budget = value


@pytest.mark.parametrize("value", [0.0, -5.0, float("inf")])
def test_an_mcp_timeout_must_be_a_positive_number_of_seconds(value):
    with pytest.raises(TraitError, match=r"Chat\.mcp_timeout must be a positive number"):
        Chat().mcp_timeout = value


def test_store_cache_and_budget_reach_the_store(tmp_path):
    chat = Chat()
    chat.store = str(tmp_path / "cells.db")
    chat.cache = True
    chat.budget = 2.5
    assert store_config.store_path() == tmp_path / "cells.db"
    assert store_config.cache_default() is True
    assert store_config.budget() == 2.5


def test_the_api_key_is_never_a_setting():
    names = set(Chat.class_trait_names())
    assert not {name for name in names if "key" in name} - {"api_key_env"}
