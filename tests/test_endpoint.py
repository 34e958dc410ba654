from __future__ import annotations

from types import SimpleNamespace

from nbchat.conversation import endpoint as _endpoint
from nbchat.conversation.endpoint import default_client


def test_configured_base_url_wins(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    client = default_client()
    assert client.base_url == "http://127.0.0.1:9/v1"
    assert not client.profile.local


def test_api_key_alone_means_the_default_endpoint(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("MY_KEY", "sk-xyz")
    client = default_client(api_key_env="MY_KEY")
    assert client.base_url == "https://api.openai.com/v1"
    assert client.api_key == "sk-xyz"


def test_nothing_configured_starts_the_local_server_and_says_so_once(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    import nbchat.local as local

    fake = SimpleNamespace(base_url="http://127.0.0.1:5555/v1", model="smollm2")
    monkeypatch.setattr(local, "start", lambda *a, **k: fake)
    monkeypatch.setattr(_endpoint, "_announced", False)
    said = []
    first = default_client(announce=said.append)
    default_client(announce=said.append)
    assert first.profile.local
    assert first.base_url == "http://127.0.0.1:5555/v1"
    assert first.default_model == "smollm2"
    assert len(said) == 1
    assert "smollm2" in said[0] and "OPENAI_BASE_URL" in said[0]
