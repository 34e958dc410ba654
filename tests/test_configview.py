from __future__ import annotations

import pytest

from nbchat.conversation import sessions as _sessions
from nbchat.local import default_model_path
from nbchat.notebook.configview import config_bundle
from nbchat.notebook.settings import Chat as ChatSettings
from nbchat.store import config as store_config
from tests.fakeserver import SECRET


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NBCHAT_STORE", "NBCHAT_BUDGET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_sessions, "_clients", {})
    monkeypatch.setattr(store_config, "settings", store_config.Settings())
    monkeypatch.setattr(store_config, "default_path", lambda: tmp_path / "default.db")


def rows(settings: ChatSettings) -> dict[str, str]:
    text = config_bundle(settings)["text/plain"]
    return dict(line.split(": ", 1) for line in text.splitlines())


def test_the_local_model_is_named_and_a_model_setting_it_overrules_is_said():
    local = default_model_path().stem
    settings = ChatSettings()
    assert rows(settings)["model"] == f"{local} (nbchat's local model)"
    settings.model = "gpt-4.1"
    assert rows(settings)["model"] == (
        f"{local} (nbchat's local model; Chat.model 'gpt-4.1' is not used while no key or "
        "base URL is set)"
    )


def test_a_remote_model_is_the_setting_or_says_how_it_is_found(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    settings = ChatSettings()
    assert rows(settings)["model"].startswith("not set: the server's model if /models lists")
    settings.model = "gpt-4.1-mini"
    assert rows(settings)["model"] == "gpt-4.1-mini"
    settings.model = ""
    settings.base_url = "http://127.0.0.1:9/v1"
    _sessions.client_for(settings).profile.remember_model("served-one")
    assert rows(settings)["model"] == "served-one (the server's default)"


def test_the_store_is_its_path_and_where_it_came_from(monkeypatch, tmp_path):
    settings = ChatSettings()
    assert rows(settings)["store"] == f"{tmp_path / 'default.db'} (from the default)"
    monkeypatch.setenv("NBCHAT_STORE", str(tmp_path / "env.db"))
    assert rows(settings)["store"] == f"{tmp_path / 'env.db'} (from $NBCHAT_STORE)"
    settings.store = "off"
    assert rows(settings)["store"] == "off (from the store setting): no exchanges are kept"


def test_the_budget_is_the_effective_limit(monkeypatch):
    settings = ChatSettings()
    assert rows(settings)["budget"] == "none (no limit)"
    monkeypatch.setenv("NBCHAT_BUDGET", "2.5")
    assert rows(settings)["budget"] == "$2.50 (from $NBCHAT_BUDGET)"
    settings.budget = 1.0
    assert rows(settings)["budget"] == "$1.00 (from the budget setting)"


def test_no_row_is_an_empty_string_and_the_key_never_shows(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    text = config_bundle(ChatSettings(model="m"))["text/plain"]
    assert "model: m" in text and SECRET not in text
    for name in ("model", "store", "budget", "base_url"):
        assert f"{name}: ''" not in text
