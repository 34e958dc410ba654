from __future__ import annotations

import json

import httpx
import pytest
from IPython.core.error import UsageError

import nbchat
from nbchat import Chat, Client
from nbchat.render.bundles import reply_bundle
from nbchat.store import replay
from nbchat.store.replay import Cassette, Interaction
from tests import storeutil
from tests.fakeserver import SECRET, FakeServer
from tests.storeutil import stored

fresh_store = storeutil.fresh_store
store_shell = storeutil.store_shell


@pytest.fixture
def tape(fresh_store, tmp_path, monkeypatch):
    path = tmp_path / "cassettes" / "demo.json"
    monkeypatch.setenv("NBCHAT_CASSETTE", str(path))
    return path


def mode(monkeypatch, name: str) -> None:
    monkeypatch.setenv("NBCHAT_REPLAY", name)
    replay._cassettes.clear()  # a new process, as far as the cassette knows


def offline_client() -> Client:
    """A client whose every request fails the test: replay must not touch the network."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a request was sent in replay mode: {request.url}")

    return Client(
        api_key=SECRET, base_url="http://fake.test/v1", transport=httpx.MockTransport(refuse)
    )


def test_record_then_replay_offline(fresh_store, tape, monkeypatch):
    mode(monkeypatch, "record")
    server = FakeServer().reply("Paris is the capital of France.").reply("About 2.1 million.")
    chat = Chat("fake-model", client=server.client())
    recorded = [chat.send("Capital of France?").content, chat.send("Population?").content]
    data = json.loads(tape.read_text())
    assert data["nbchat_cassette"] == 1 and len(data["interactions"]) == 2
    assert all("headers" not in i for i in data["interactions"])
    assert SECRET not in tape.read_text() and "Bearer" not in tape.read_text()

    mode(monkeypatch, "replay")
    chat = Chat("fake-model", client=offline_client())
    first = chat.send("Capital of France?")
    second = chat.send("Population?", stream=False)
    assert [first.content, second.content] == recorded
    assert first.cached and first.origin.source == "replay"
    assert first.origin.where == str(tape)
    assert "replayed from a cassette" in reply_bundle(first)["text/plain"]
    assert [r.source for r in stored(fresh_store)] == ["server"] * 2 + ["replay"] * 2


def test_a_request_missing_from_the_cassette_is_a_clear_error_and_nothing_is_sent(
    tape, monkeypatch
):
    mode(monkeypatch, "record")
    Chat("fake-model", client=FakeServer().reply("hi").client()).send("Hello there")
    mode(monkeypatch, "replay")
    chat = Chat("fake-model", client=offline_client())
    with pytest.raises(nbchat.ReplayMissError) as caught:
        chat.send("Something never recorded")
    message = str(caught.value)
    assert "'Something never recorded'" in message and str(tape) in message
    assert "NBCHAT_REPLAY=auto" in message
    assert caught.value.key and caught.value.cassette == str(tape)
    assert chat.messages == []


def test_a_miss_names_the_fields_that_differ_from_the_nearest_recording(tape, monkeypatch):
    mode(monkeypatch, "record")
    Chat("fake-model", client=FakeServer().reply("hi").client()).send("Hello", temperature=0.1)
    mode(monkeypatch, "replay")
    with pytest.raises(nbchat.ReplayMissError, match="differs in temperature"):
        Chat("fake-model", client=offline_client()).send("Hello", temperature=0.7)


def test_auto_replays_what_it_has_and_records_the_rest(tape, monkeypatch):
    mode(monkeypatch, "record")
    Chat("fake-model", client=FakeServer().reply("old").client()).send("a")
    mode(monkeypatch, "auto")
    server = FakeServer().reply("new")
    chat = Chat("fake-model", client=server.client())
    assert chat.send("a").content == "old"
    chat.reset()
    assert chat.send("b").content == "new"
    assert len(server.requests) == 1
    keys = [
        i["request"]["messages"][-1]["content"]
        for i in json.loads(tape.read_text())["interactions"]
    ]
    assert keys == ["a", "b"]


def test_a_repeated_request_plays_its_recordings_in_order(tape, monkeypatch):
    mode(monkeypatch, "record")
    server = FakeServer().reply("first").reply("second")
    chat = Chat("fake-model", client=server.client(), temperature=1.0)
    for _ in range(2):
        chat.reset()
        chat.send("Tell me a joke")
    mode(monkeypatch, "replay")
    chat = Chat("fake-model", client=offline_client(), temperature=1.0)
    replies = []
    for _ in range(3):
        chat.reset()
        replies.append(chat.send("Tell me a joke").content)
    assert replies == ["first", "second", "second"]


def test_recording_again_replaces_an_earlier_runs_entry(tape, monkeypatch):
    mode(monkeypatch, "record")
    Chat("fake-model", client=FakeServer().reply("v1").client()).send("q")
    mode(monkeypatch, "record")
    Chat("fake-model", client=FakeServer().reply("v2").client()).send("q")
    interactions = json.loads(tape.read_text())["interactions"]
    assert [i["response"]["choices"][0]["message"]["content"] for i in interactions] == ["v2"]


def test_a_recorded_error_replays_as_the_same_error(tape, monkeypatch):
    mode(monkeypatch, "record")
    server = FakeServer().error(400, "too long", code="context_length_exceeded")
    with pytest.raises(nbchat.BadRequestError):
        Chat("fake-model", client=server.client()).send("q")
    mode(monkeypatch, "replay")
    with pytest.raises(nbchat.BadRequestError) as caught:
        Chat("fake-model", client=offline_client()).send("q")
    assert caught.value.code == "context_length_exceeded" and caught.value.status_code == 400


def test_replay_settings_are_checked_before_anything_is_sent(fresh_store, monkeypatch):
    server = FakeServer()
    chat = Chat("fake-model", client=server.client())
    monkeypatch.setenv("NBCHAT_REPLAY", "playback")
    with pytest.raises(nbchat.RequestValidationError, match="NBCHAT_REPLAY='playback'"):
        chat.send("q")
    monkeypatch.setenv("NBCHAT_REPLAY", "replay")
    monkeypatch.delenv("NBCHAT_CASSETTE", raising=False)
    with pytest.raises(nbchat.RequestValidationError, match="needs NBCHAT_CASSETTE"):
        chat.send("q")
    assert server.requests == [] and chat.messages == []


def test_an_unreadable_cassette_is_a_clear_error(tape, monkeypatch):
    tape.parent.mkdir(parents=True)
    tape.write_text("{not json")
    mode(monkeypatch, "replay")
    with pytest.raises(nbchat.RequestValidationError, match="not a cassette nbchat can read"):
        Chat("fake-model", client=offline_client()).send("q")


def test_a_cache_hit_is_written_to_the_cassette_when_recording(tape, monkeypatch):
    server = FakeServer().reply("cached answer")
    chat = Chat("fake-model", client=server.client(), cache=True)
    chat.send("q")
    chat.reset()
    mode(monkeypatch, "record")
    assert chat.send("q").cached
    mode(monkeypatch, "replay")
    assert Chat("fake-model", client=offline_client()).send("q").content == "cached answer"


def test_cassettes_keep_images_short(tmp_path):
    tape = Cassette(tmp_path / "c.json")
    url = "data:image/png;base64," + "A" * 5000
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
        ]
    }
    tape.add(Interaction(key="k", request=body, response={"choices": []}))
    text = (tmp_path / "c.json").read_text()
    assert "A" * 500 not in text and "5,022 characters" in text
    assert Cassette(tmp_path / "c.json").take("k").response == {"choices": []}


def test_a_miss_in_a_cell_is_a_one_line_usage_error_naming_the_prompt(
    store_shell, tape, monkeypatch
):
    mode(monkeypatch, "replay")
    with pytest.raises(UsageError, match="'Why is the sky blue\\?'"):
        store_shell.run_cell_magic("chat", "", "Why is the sky blue?\n")
    assert store_shell.server.requests == []
