"""conversation/sessions.py: named conversations shared by cells and panels, and their clients."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nbchat.conversation import sessions


@pytest.fixture(autouse=True)
def _own_sessions(monkeypatch):
    monkeypatch.setattr(sessions, "_sessions", {})
    monkeypatch.setattr(sessions, "_clients", {})
    monkeypatch.setenv("SESSIONS_TEST_KEY", "sk-sessions-0123456789")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def settings(**changes):
    values = {
        "base_url": "http://one.test/v1",
        "api_key_env": "SESSIONS_TEST_KEY",
        "server": "auto",
        "timeout": 30.0,
        "max_retries": 2,
    }
    return SimpleNamespace(**{**values, **changes})


def test_a_name_is_the_same_conversation_until_asked_for_anew():
    first = sessions.session("notes")
    assert sessions.session("notes") is first
    assert first.name == "notes"
    fresh = sessions.session("notes", new=True)
    assert fresh is not first and sessions.session("notes") is fresh
    sessions.session()
    assert sessions.names() == ["notes", "default"]


def test_one_client_per_endpoint_and_settings_reused():
    client = sessions.client_for(settings())
    assert sessions.client_for(settings()) is client
    assert sessions.known_client(settings()) is client
    assert client.base_url.startswith("http://one.test/v1")
    assert client.max_retries == 2
    assert sessions.client_for(settings(base_url="http://two.test/v1")) is not client
    assert sessions.client_for(settings(max_retries=5)) is not client


def test_known_client_starts_nothing():
    assert sessions.known_client(settings()) is None
    assert sessions._clients == {}


def test_a_kind_the_user_names_is_the_clients_kind_auto_is_detection():
    named = sessions.client_for(settings(server="vllm"))
    assert named.profile.kind == "vllm"
    detected = sessions.client_for(settings(base_url="http://three.test/v1"))
    assert detected.profile.kind == "generic"  # nothing in the URL says which server it is
