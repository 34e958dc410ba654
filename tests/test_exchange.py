from __future__ import annotations

import json
import sqlite3
import warnings

import httpx
import pytest

import nbchat
from nbchat import Chat, Client
from nbchat.protocol.exceptions import IncompleteStreamError, RateLimitError
from nbchat.render.bundles import reply_bundle
from nbchat.store import config, db
from nbchat.store.db import StoreWarning
from nbchat.transport.profiles import profile_for
from tests import storeutil
from tests.fakeserver import SECRET, FakeServer
from tests.storeutil import stored

USAGE = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}

fresh_store = storeutil.fresh_store


def openai_client(server: FakeServer, **options) -> Client:
    """The fake server behind the OpenAI profile, so replies are priced."""
    client = Client(
        api_key=SECRET,
        base_url="https://api.openai.com/v1",
        transport=httpx.MockTransport(server.handle),
        max_retries=0,
        **options,
    )
    client.retry_wait = lambda seconds: None
    return client


def test_every_exchange_is_kept_with_usage_latency_models_server_and_cost(fresh_store, monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/analysis.ipynb")
    server = FakeServer().reply("Paris.", model="gpt-4.1-mini-2025-04-14", usage=USAGE)
    chat = Chat("gpt-4.1-mini", client=openai_client(server), name="geo")
    reply = chat.send("Capital of France?", temperature=0.2)
    (row,) = stored(fresh_store)
    assert row.request == reply.prepared.body
    assert row.response["choices"][0]["message"]["content"] == "Paris."
    assert (row.model_requested, row.model) == ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14")
    assert (row.server, row.session, row.notebook) == ("openai", "geo", "/home/me/analysis.ipynb")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (1000, 200, 1200)
    assert (row.source, row.status, row.finish_reason, row.stream) == ("server", "ok", "stop", True)
    assert row.latency > 0 and row.time_to_first_token is not None
    assert row.key == reply.prepared.key
    assert row.url == "https://api.openai.com/v1/chat/completions"
    assert row.cost == reply.cost and reply.cost > 0
    assert reply.cached is False


def test_the_footer_shows_the_cost_and_says_price_unknown_for_a_local_server(fresh_store):
    server = FakeServer().reply("Paris.", model="gpt-4.1-mini", usage=USAGE).reply("Hi")
    priced = Chat("gpt-4.1-mini", client=openai_client(server)).send("Capital?")
    assert f"· ${priced.cost:.5f}".rstrip("0") in reply_bundle(priced)["text/plain"]
    local = Client(
        api_key="",
        base_url="http://127.0.0.1:9/v1",
        transport=httpx.MockTransport(server.handle),
        server=profile_for("llama-cpp-python", local=True),
    )
    reply = Chat("smollm2", client=local).send("Hi")
    assert reply.cost is None
    footer = reply_bundle(reply)["text/plain"].splitlines()[-1]
    assert footer.endswith("· price unknown")
    assert "$0" not in footer


def test_a_failed_request_is_kept_as_an_error_and_history_is_unchanged(fresh_store):
    server = FakeServer().error(429, "slow down", type="rate_limit_error", code="rate_limit")
    chat = Chat("fake-model", client=server.client())
    with pytest.raises(RateLimitError):
        chat.send("x")
    assert chat.messages == []
    (row,) = stored(fresh_store)
    assert row.status == "error" and row.response is None
    assert row.error["type"] == "RateLimitError" and row.error["status"] == 429
    assert row.error["code"] == "rate_limit"


def test_a_stream_cut_short_is_kept_as_interrupted_with_its_partial_reply(fresh_store):
    server = FakeServer(piece=2).reply("abcdefgh", cut_after=3)
    with pytest.raises(IncompleteStreamError):
        Chat("fake-model", client=server.client()).send("go")
    (row,) = stored(fresh_store)
    assert row.status == "interrupted"
    assert row.response["choices"][0]["message"]["content"] == "abcd"


def test_a_tool_loop_keeps_every_round_and_sums_the_cost(fresh_store):
    @nbchat.tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    server = (
        FakeServer()
        .reply(
            None,
            tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}],
            model="gpt-4.1-mini",
            usage=USAGE,
        )
        .reply("5", model="gpt-4.1-mini", usage=USAGE)
    )
    chat = Chat("gpt-4.1-mini", client=openai_client(server))
    reply = chat.send("2+3?", tools=[add])
    rows = stored(fresh_store)
    assert [r.finish_reason for r in rows] == ["tool_calls", "stop"]
    assert rows[0].cost > 0 and rows[1].cost > 0
    assert reply.cost == pytest.approx(rows[0].cost + rows[1].cost)


def test_no_credential_is_ever_stored(fresh_store, tmp_path, monkeypatch):
    cassette = tmp_path / "cassette.json"
    monkeypatch.setenv("NBCHAT_REPLAY", "record")
    monkeypatch.setenv("NBCHAT_CASSETTE", str(cassette))
    server = FakeServer()
    server.reply(f"I was told {SECRET}.").error(401, f"Incorrect API key provided: {SECRET}")
    client = Client(
        api_key=SECRET,
        base_url="https://alice:hunter2-password@gateway.example.com/v1?api-key=QUERYSECRET1",
        transport=httpx.MockTransport(server.handle),
        max_retries=0,
    )
    chat = Chat("fake-model", client=client)
    chat.send("hello")
    with pytest.raises(nbchat.AuthenticationError):
        chat.send("again")
    rows = stored(fresh_store)
    assert len(rows) == 2
    conn = sqlite3.connect(fresh_store)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    files = [fresh_store, cassette, *fresh_store.parent.glob("nbchat.db-*")]
    for path in files:
        data = path.read_bytes()
        for secret in (SECRET, "Bearer", "hunter2-password", "alice", "QUERYSECRET1"):
            assert secret.encode() not in data, (path.name, secret)
    assert "gateway.example.com" in rows[0].url and "api-key=" in rows[0].url
    assert len(server.requests) == 2


def _echoing_server():
    """A server that echoes every credential it was sent: in a reply, then in an error body."""
    import base64
    from urllib.parse import quote

    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        auth = request.headers["authorization"]
        token = auth.removeprefix("Basic ")
        user, _, password = base64.b64decode(token).decode().partition(":")
        header = request.headers["api-key"]
        echo = (
            f"Authorization: {auth}; token {token}; user {user} password {password}; "
            f"encoded {quote(password, safe='')}; api-key {header}; "
            f"as JSON text {json.dumps({'p': password})}"
        )
        if len(seen) == 1:
            reply = {
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": "echo",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": echo},
                        "finish_reason": "stop",
                    }
                ],
            }
            return httpx.Response(200, json=reply)
        return httpx.Response(400, json={"error": {"message": echo, "type": "invalid_request"}})

    return handle, seen


URL_PASSWORD = 'pa/ss"wörd@42'  # a slash, a quote, a non-ASCII letter and an "@": every escape


def test_every_credential_a_server_echoes_is_masked_in_the_store_and_the_cassette(
    fresh_store, tmp_path, monkeypatch
):
    import base64
    from urllib.parse import quote

    cassette = tmp_path / "cassette.json"
    monkeypatch.setenv("NBCHAT_REPLAY", "record")
    monkeypatch.setenv("NBCHAT_CASSETTE", str(cassette))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    handle, seen = _echoing_server()
    client = Client(
        base_url=f"http://bob:{quote(URL_PASSWORD, safe='')}@echo.test/v1",
        headers={"api-key": "header-key-0123456789"},
        transport=httpx.MockTransport(handle),
        max_retries=0,
    )
    chat = Chat("echo", client=client)
    reply = chat.send("hello")
    with pytest.raises(nbchat.BadRequestError):
        chat.send("again")
    assert URL_PASSWORD in reply.content  # the server did echo them
    token = base64.b64encode(f"bob:{URL_PASSWORD}".encode()).decode()
    assert seen[0].headers["authorization"] == f"Basic {token}"
    conn = sqlite3.connect(fresh_store)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    files = [fresh_store, cassette, *fresh_store.parent.glob("nbchat.db-*")]
    forms = [
        URL_PASSWORD,
        quote(URL_PASSWORD, safe=""),
        json.dumps(URL_PASSWORD)[1:-1],
        json.dumps(URL_PASSWORD, ensure_ascii=False)[1:-1],
        token,
        "header-key-0123456789",
    ]
    for path in files:
        data = path.read_bytes()
        for secret in forms:
            assert secret.encode() not in data, (path.name, secret)
    rows = stored(fresh_store)
    assert [row.status for row in rows] == ["ok", "error"]
    assert "user bob password" in rows[0].response["choices"][0]["message"]["content"]
    recorded = json.loads(cassette.read_text())["interactions"]
    assert "Authorization: Basic" in recorded[0]["response"]["choices"][0]["message"]["content"]
    assert "api-key" in recorded[1]["error"]["body"]["error"]["message"]


def test_with_the_store_off_nothing_is_written_and_chatting_works(fresh_store, monkeypatch):
    monkeypatch.setenv("NBCHAT_STORE", "off")
    server = FakeServer().reply("hi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Chat("fake-model", client=server.client()).send("x").content == "hi"
    assert not fresh_store.exists()
    assert db._stores == {}


def test_a_corrupt_store_is_one_warning_and_chatting_still_works(fresh_store):
    fresh_store.write_bytes(b"garbage " * 512)
    server = FakeServer().reply("one").reply("two")
    chat = Chat("fake-model", client=server.client(), cache=True)
    with pytest.warns(StoreWarning) as caught:
        assert chat.send("a").content == "one"
        assert chat.send("b").content == "two"
    assert len(caught) == 1
    assert "not a readable SQLite database" in str(caught[0].message)
    assert len(chat.messages) == 4


def test_a_locked_store_does_not_hold_up_a_reply(fresh_store):
    db.open_store(fresh_store).close()
    db._stores.clear()
    db.open_store(fresh_store).busy_timeout = 0.05
    holder = sqlite3.connect(fresh_store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    server = FakeServer().reply("one").reply("two")
    chat = Chat("fake-model", client=server.client())
    with pytest.warns(StoreWarning, match="locked") as caught:
        assert chat.send("a").content == "one"
        assert chat.send("b").content == "two"
        assert db.open_store(fresh_store).flush(timeout=0.3) is False
    assert len(caught) == 1
    holder.execute("ROLLBACK")
    holder.close()
    assert [r.response["choices"][0]["message"]["content"] for r in stored(fresh_store)] == [
        "one",
        "two",
    ]


def test_the_store_setting_wins_over_the_environment(fresh_store, tmp_path):
    elsewhere = tmp_path / "chosen.db"
    config.configure(store=str(elsewhere))
    FakeServer().reply("hi")
    server = FakeServer().reply("hi")
    Chat("fake-model", client=server.client()).send("x")
    assert len(stored(elsewhere)) == 1
    assert not fresh_store.exists()


def test_stored_requests_are_the_bodies_sent(fresh_store):
    server = FakeServer().reply("hi")
    Chat("fake-model", client=server.client(), stream=False).send("x", seed=3)
    (row,) = stored(fresh_store)
    assert row.request == server.requests[0]
    assert json.dumps(row.request)  # plain JSON


def test_a_request_sent_again_without_stream_options_is_kept_as_sent(fresh_store):
    server = FakeServer().error(400, "stream_options is not supported", param="stream_options")
    server.reply("counted")
    chat = Chat("fake-model", client=server.client())
    reply = chat.send("x")
    (row,) = stored(fresh_store)  # one exchange: the refusal is how the request was fitted
    assert "stream_options" in server.requests[0]
    assert row.status == "ok" and "stream_options" not in row.request
    assert row.request == reply.prepared.body == server.requests[1]


def test_a_stream_without_usage_keeps_the_tokens_nbchat_counted(fresh_store):
    server = FakeServer(piece=4).reply("one two three four five six seven")
    local = Client(
        api_key="",
        base_url="http://127.0.0.1:1/v1",
        transport=httpx.MockTransport(server.handle),
        server=profile_for("llama-cpp-python", local=True),
    )
    reply = Chat("smollm2", client=local, stream=True).send("count")
    assert reply.completion.usage is None
    [row] = stored(fresh_store)
    assert row.completion_tokens is None
    assert row.counted_tokens == reply.output_chunks > 1
    # A server that reports usage leaves nothing counted.
    openai = openai_client(FakeServer().reply("fine", usage=USAGE))
    Chat("gpt-4.1-mini", client=openai, stream=True).send("q")
    assert stored(fresh_store)[-1].counted_tokens is None
