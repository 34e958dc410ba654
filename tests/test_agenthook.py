"""conversation/agenthook.py: how send(agent=True) gets the notebook's tools and approval."""

from __future__ import annotations

import pytest

from nbchat.conversation import agenthook
from nbchat.protocol.exceptions import RequestValidationError


@pytest.fixture
def kit(monkeypatch):
    """A stand-in kit installed for the test; the real one is put back after it."""
    asked: list[dict] = []

    def make(**options):
        asked.append(options)
        return ["read_cells", "run_python"], "approve"

    monkeypatch.setattr(agenthook, "_kit", None)
    agenthook.install(make)
    return asked


def mine(call):
    return call


def test_options_without_agent_pass_as_they_are(kit):
    options = {"tools": [mine]}
    assert agenthook.with_agent(options) is options
    assert kit == []


def test_agent_false_is_dropped_and_adds_nothing(kit):
    assert agenthook.with_agent({"agent": False, "tools": [mine]}) == {"tools": [mine]}
    assert kit == []


def test_agent_true_adds_the_notebook_tools_after_the_users_and_their_approval(kit):
    options = {"agent": True, "tools": [mine]}
    out = agenthook.with_agent(options)
    assert out == {"tools": [mine, "read_cells", "run_python"], "confirm": "approve"}
    assert options == {"agent": True, "tools": [mine]}  # the caller's dict is left alone
    assert kit == [{}]


def test_a_confirm_the_user_gave_wins_over_the_agents(kit):
    out = agenthook.with_agent({"agent": True, "confirm": "ask me"})
    assert out["confirm"] == "ask me" and out["tools"] == ["read_cells", "run_python"]


def test_without_a_kit_agent_true_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(agenthook, "_kit", None)
    with pytest.raises(RequestValidationError, match="agent=True needs nbchat's notebook tools"):
        agenthook.with_agent({"agent": True})


def test_importing_nbchat_installs_the_notebook_kit():
    import nbchat  # noqa: F401  the package root installs it

    assert agenthook._kit is not None
