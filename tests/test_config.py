from __future__ import annotations

from pathlib import Path

import pytest

from nbchat.protocol.exceptions import RequestValidationError
from nbchat.store import config
from tests import storeutil

fresh_store = storeutil.fresh_store


def test_the_store_is_the_setting_then_the_environment_then_the_user_data_directory(
    fresh_store, monkeypatch, tmp_path
):
    assert config.store_path() == fresh_store  # NBCHAT_STORE
    config.configure(store=str(tmp_path / "chosen.db"))
    assert config.store_path() == tmp_path / "chosen.db"
    config.configure(store="")
    monkeypatch.delenv("NBCHAT_STORE")
    default = config.store_path()
    assert default == config.default_path() and default.name == "nbchat.db"
    import platformdirs

    assert default.parent == Path(platformdirs.user_data_dir("nbchat", appauthor=False))


@pytest.mark.parametrize("value", ["off", "OFF", " none ", "0"])
def test_off_turns_the_store_off(fresh_store, monkeypatch, value):
    monkeypatch.setenv("NBCHAT_STORE", value)
    assert config.store_path() is None
    monkeypatch.setenv("NBCHAT_STORE", str(fresh_store))
    config.configure(store=value)
    assert config.store_path() is None


def test_a_path_with_a_tilde_is_expanded(fresh_store):
    config.configure(store="~/somewhere/nbchat.db")
    assert config.store_path() == Path.home() / "somewhere" / "nbchat.db"


def test_the_budget_setting_wins_over_the_environment(fresh_store, monkeypatch):
    monkeypatch.setenv("NBCHAT_BUDGET", "2.5")
    assert config.budget() == 2.5
    config.configure(budget=1)
    assert config.budget() == 1.0
    with pytest.raises(RequestValidationError, match="0 or more"):
        config.configure(budget=-1)
    with pytest.raises(RequestValidationError, match="0 or more"):
        config.configure(budget=float("nan"))


def test_replay_modes_and_cassette(fresh_store, monkeypatch, tmp_path):
    assert config.replay() == (None, None)
    monkeypatch.setenv("NBCHAT_REPLAY", "Replay")
    monkeypatch.setenv("NBCHAT_CASSETTE", str(tmp_path / "c.json"))
    assert config.replay() == ("replay", tmp_path / "c.json")
    monkeypatch.setenv("NBCHAT_REPLAY", "off")
    assert config.replay() == (None, None)


def test_configure_refuses_unknown_settings():
    with pytest.raises(TypeError, match="colour"):
        config.configure(colour="red")
