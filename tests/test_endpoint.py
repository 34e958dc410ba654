from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from nbchat.conversation import endpoint as _endpoint
from nbchat.conversation import sessions as _sessions
from nbchat.conversation.endpoint import Endpoint, default_client, resolve
from nbchat.local import LocalServer
from tests import storeutil

SECRET = "sk-proj-ENDPOINTSECRET0123456789"
fresh_store = storeutil.fresh_store


@pytest.fixture(autouse=True)
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MY_KEY"):
        monkeypatch.delenv(name, raising=False)


class FakeLocalServer:
    """What nbchat.local.start() returns, without a process: its client() is the real one."""

    base_url = "http://127.0.0.1:5555/v1"
    model = "smollm2"
    n_ctx = 2048
    client = LocalServer.client


@pytest.fixture
def local_server(monkeypatch: pytest.MonkeyPatch) -> list[FakeLocalServer]:
    import nbchat.local as local

    started: list[FakeLocalServer] = []

    def start(*args: object, **kwargs: object) -> FakeLocalServer:
        started.append(FakeLocalServer())
        return started[-1]

    monkeypatch.setattr(local, "start", start)
    monkeypatch.setattr(_endpoint, "_announced", True)
    return started


# ---------------------------------------------------------------------------------------------
# resolve(): which endpoint


def test_nothing_configured_means_the_local_server() -> None:
    endpoint = resolve()
    assert endpoint.local and endpoint.base_url is None
    assert endpoint.kind == "llama-cpp-python"
    assert endpoint.describe() == "local model server (no key or base URL set)"
    assert endpoint.describe_key() == "not set"


def test_a_key_alone_means_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", SECRET)
    endpoint = resolve(api_key_env="MY_KEY")
    assert (endpoint.base_url, endpoint.api_key, endpoint.kind) == (
        "https://api.openai.com/v1",
        SECRET,
        "openai",
    )
    assert not endpoint.local
    assert endpoint.describe_key() == "set in $MY_KEY (hidden)"
    # Another variable holds no key: the key is read from the one the settings name.
    assert resolve().local


def test_the_base_url_setting_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    from_env = resolve()
    assert from_env.base_url == "http://127.0.0.1:9/v1"
    assert from_env.describe() == "http://127.0.0.1:9/v1 (from $OPENAI_BASE_URL)"
    assert not from_env.local and from_env.api_key is None
    chosen = resolve(base_url="https://openrouter.ai/api/v1")
    assert chosen.base_url == "https://openrouter.ai/api/v1"
    assert chosen.describe().endswith("(from the base_url setting)")
    assert chosen.kind == "openrouter"
    # An empty setting (the traitlet's default) is no setting.
    assert resolve(base_url="").base_url == "http://127.0.0.1:9/v1"


def test_a_configured_kind_beats_detection_but_not_for_the_local_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gpu-box:8000/v1")
    assert resolve().kind == "generic"
    assert resolve(server="vllm").kind == "vllm"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert resolve(server="vllm").kind == "llama-cpp-python"


def test_the_key_never_shows_in_the_endpoints_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    endpoint = resolve()
    assert SECRET not in repr(endpoint) and SECRET not in str(endpoint)
    assert SECRET not in endpoint.describe() + endpoint.describe_key()


def test_endpoints_are_equal_when_url_key_and_kind_are() -> None:
    one = Endpoint("http://a/v1", api_key="k", source="$OPENAI_BASE_URL")
    assert one == Endpoint("http://a/v1", api_key="k", source="$OPENAI_BASE_URL")
    assert one != Endpoint("http://a/v1", api_key="other", source="$OPENAI_BASE_URL")
    assert len({one, Endpoint("http://a/v1", api_key="k", source="$OPENAI_BASE_URL")}) == 1


# ---------------------------------------------------------------------------------------------
# Endpoint.client(): its client


def test_a_configured_endpoint_gets_a_client_with_its_url_key_and_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with resolve(base_url="http://gpu-box:8000/v1", server="vllm").client(max_retries=5) as client:
        assert client.base_url == "http://gpu-box:8000/v1"
        assert client.api_key == SECRET
        assert client.profile.kind == "vllm" and not client.profile.local
        assert client.max_retries == 5


def test_configured_base_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    client = default_client()
    assert client.base_url == "http://127.0.0.1:9/v1"
    assert not client.profile.local


def test_api_key_alone_means_the_default_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-xyz")
    client = default_client(api_key_env="MY_KEY")
    assert client.base_url == "https://api.openai.com/v1"
    assert client.api_key == "sk-xyz"
    assert client.profile.kind == "openai"


def test_nothing_configured_starts_the_local_server_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, local_server: list[FakeLocalServer]
) -> None:
    monkeypatch.setattr(_endpoint, "_announced", False)
    said: list[str] = []
    first = default_client(announce=said.append)
    default_client(announce=said.append)
    assert first.profile.local and first.profile.kind == "llama-cpp-python"
    assert first.base_url == "http://127.0.0.1:5555/v1"
    assert first.default_model == "smollm2"
    assert first.api_key in ("", None)
    assert len(local_server) == 2
    assert len(said) == 1
    assert "smollm2" in said[0] and "OPENAI_BASE_URL" in said[0]


def test_the_announcement_names_the_key_variable_the_settings_use(
    monkeypatch: pytest.MonkeyPatch, local_server: list[FakeLocalServer]
) -> None:
    monkeypatch.setattr(_endpoint, "_announced", False)
    said: list[str] = []
    default_client(api_key_env="MY_KEY", announce=said.append)
    assert "no MY_KEY or OPENAI_BASE_URL is set" in said[0]


# ---------------------------------------------------------------------------------------------
# One resolution for every caller: Chat, the magics and panel (client_for), %chat config


def _settings(**changes: object) -> SimpleNamespace:
    fields: dict[str, object] = {
        "base_url": "",
        "api_key_env": "OPENAI_API_KEY",
        "timeout": 30.0,
        "max_retries": 1,
    }
    fields.update(changes)
    return SimpleNamespace(**fields)


@pytest.fixture
def no_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sessions, "_clients", {})


def test_client_for_reuses_one_client_per_endpoint(
    monkeypatch: pytest.MonkeyPatch, no_clients: None
) -> None:
    settings = _settings(base_url="http://127.0.0.1:9/v1")
    first = _sessions.client_for(settings)
    assert _sessions.client_for(settings) is first
    assert (first.base_url, first.timeout, first.max_retries) == (
        "http://127.0.0.1:9/v1",
        30.0,
        1,
    )
    # A key set later is a different endpoint: it takes effect at once.
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    keyed = _sessions.client_for(settings)
    assert keyed is not first and keyed.api_key == SECRET


def test_client_for_honours_a_server_setting(no_clients: None) -> None:
    plain = _sessions.client_for(_settings(base_url="http://gpu-box:8000/v1"))
    vllm = _sessions.client_for(_settings(base_url="http://gpu-box:8000/v1", server="vllm"))
    assert plain.profile.kind == "generic" and vllm.profile.kind == "vllm"


def test_client_for_and_config_agree_on_the_endpoint(
    monkeypatch: pytest.MonkeyPatch, no_clients: None, local_server: list[FakeLocalServer]
) -> None:
    from nbchat.notebook.configview import config_bundle
    from nbchat.notebook.settings import Chat as ChatSettings

    settings = ChatSettings()
    local_client = _sessions.client_for(settings)
    assert local_client.profile.local
    assert "endpoint: local model server" in config_bundle(settings)["text/plain"]

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    settings.base_url = "http://127.0.0.1:9/v1"
    text = config_bundle(settings)["text/plain"]
    assert _sessions.client_for(settings).base_url == "http://127.0.0.1:9/v1"
    assert "endpoint: http://127.0.0.1:9/v1 (from the base_url setting)" in text
    assert "api key: set in $OPENAI_API_KEY (hidden)" in text
    assert SECRET not in text


# ---------------------------------------------------------------------------------------------
# Replaying: the cassette's endpoint and model, and no connection at all


def test_replaying_with_nothing_set_builds_the_cassettes_requests_and_connects_nowhere(
    local_server: list[FakeLocalServer], tmp_path, monkeypatch: pytest.MonkeyPatch, fresh_store
) -> None:
    from nbchat import Chat
    from nbchat.store import replay
    from tests.fakeserver import FakeServer

    tape = tmp_path / "tape.json"
    monkeypatch.setenv("NBCHAT_CASSETTE", str(tape))
    monkeypatch.setenv("NBCHAT_REPLAY", "record")
    server = FakeServer().reply("Recorded answer.")
    Chat("recorded-model", client=server.client(headers={"OpenAI-Project": "proj_1"})).send("Hello")
    monkeypatch.setenv("NBCHAT_REPLAY", "replay")
    replay._cassettes.clear()
    client = default_client()
    assert client.base_url == "http://fake.test/v1" and client.api_key == ""
    # No model given, and none asked of any server: the one the cassette's requests named.
    reply = Chat(client=client).send("Hello")
    assert reply.content == "Recorded answer." and reply.cached
    assert reply.request["model"] == "recorded-model"
    assert len(server.requests) == 1  # the recording; nothing since
    assert local_server == []  # and the local model server was never started


def test_replaying_a_local_servers_cassette_starts_no_local_server(
    local_server: list[FakeLocalServer], tmp_path, monkeypatch: pytest.MonkeyPatch, fresh_store
) -> None:
    from nbchat import Chat
    from nbchat.store import replay
    from tests.fakeserver import FakeServer

    tape = tmp_path / "tape.json"
    monkeypatch.setenv("NBCHAT_CASSETTE", str(tape))
    monkeypatch.setenv("NBCHAT_REPLAY", "record")
    server = FakeServer().reply("Local answer.")
    recording = FakeLocalServer().client(transport=httpx.MockTransport(server.handle))
    Chat(client=recording).send("Hi")
    monkeypatch.setenv("NBCHAT_REPLAY", "replay")
    replay._cassettes.clear()
    reply = Chat(client=default_client()).send("Hi")
    assert reply.content == "Local answer." and reply.cached
    assert local_server == []
