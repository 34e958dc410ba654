from __future__ import annotations

import json

import httpx
import pytest
from IPython.core.error import UsageError

import nbchat
from nbchat import Chat, Client
from nbchat.render.bundles import reply_bundle
from nbchat.store import replay
from nbchat.store.replay import Cassette, CassetteError, Interaction
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
    reply = {"choices": [{"index": 0, "message": {"content": "a red dot"}}]}
    tape.add(Interaction(key="k", request=body, response=reply))
    text = (tmp_path / "c.json").read_text()
    assert "A" * 500 not in text and "5,022 characters" in text
    assert Cassette(tmp_path / "c.json").take("k").response == reply


def test_a_miss_in_a_cell_is_a_one_line_usage_error_naming_the_prompt(
    store_shell, tape, monkeypatch
):
    mode(monkeypatch, "replay")
    with pytest.raises(UsageError, match="'Why is the sky blue\\?'"):
        store_shell.run_cell_magic("chat", "", "Why is the sky blue?\n")
    assert store_shell.server.requests == []


# -- hand-edited cassettes ------------------------------------------------------------------------


def _entry(mutate):
    def edit(data):
        good = data["interactions"][0]
        bad = json.loads(json.dumps(good))
        mutate(bad)
        # Entry 1 is the one edited; entry 0 is another request's, untouched.
        data["interactions"] = [{**good, "key": "another request"}, bad]

    return edit


def _reply(mutate):
    return _entry(lambda entry: mutate(entry["response"]))


def _choice(mutate):
    return _reply(lambda response: mutate(response["choices"][0]))


def _as_error(error):
    def mutate(entry):
        del entry["response"]
        entry["error"] = error

    return _entry(mutate)


def _set(**fields):
    return lambda value: value.update(fields)


def _drop(name):
    return lambda value: value.pop(name)


# name -> (how the file is edited: raw text, or a function of its JSON; what the error says)
HAND_EDITS = {
    "not JSON": ("{not json", "not JSON"),
    "not UTF-8": (b"\xff\xfe{}", "not UTF-8 text (invalid start byte at byte 0)"),
    "an array at the top": ("[]", "the file holds a list, not a cassette's object"),
    "a string at the top": ('"tape"', 'the file holds a string "tape"'),
    "no interactions": ('{"nbchat_cassette": 1}', "no 'interactions' list"),
    "interactions an object": (_set(interactions={}), "interactions is an object, not a list"),
    "format a string": (_set(nbchat_cassette="one"), 'nbchat_cassette is "one"'),
    "a newer format": (_set(nbchat_cassette=2), "made by a newer nbchat (format 2)"),
    "entry a string": (lambda d: d["interactions"].append("q"), 'it is a string "q"'),
    "entry a list": (lambda d: d["interactions"].append([]), "it is a list, not an object"),
    "key missing": (_entry(_drop("key")), "key is missing"),
    "key a number": (_entry(_set(key=7)), "key is the number 7, not a string"),
    "recorded missing": (_entry(_drop("recorded")), "recorded is missing"),
    "recorded not a date": (_entry(_set(recorded="today")), 'recorded is "today", not an ISO'),
    "request a string": (_entry(_set(request="q")), 'request is a string "q", not an object'),
    "response a string": (_entry(_set(response="hi")), 'response is a string "hi", not an obj'),
    "response a list": (_entry(_set(response=[])), "response is a list, not an object"),
    "response null": (_entry(_set(response=None)), "neither of response and error"),
    "response and error": (_entry(_set(error={"status": 500})), "both of response and error"),
    "choices a string": (_reply(_set(choices="hi")), 'response.choices is a string "hi"'),
    "choices missing": (_reply(_drop("choices")), "response.choices is missing"),
    "choices empty": (_reply(_set(choices=[])), "response.choices is empty"),
    "a choice a string": (
        _reply(_set(choices=["hi"])),
        'response.choices.0 is "hi": input should be a valid dictionary',
    ),
    "message null": (
        _choice(_set(message=None)),
        "response.choices.0.message is null: input should be a valid dictionary",
    ),
    "message a string": (_choice(_set(message="hi")), 'response.choices.0.message is "hi"'),
    "content a number": (
        _choice(lambda c: c["message"].update(content=5)),
        "response.choices.0.message.content is 5: input should be a valid string",
    ),
    "tool_calls a string": (
        _choice(lambda c: c["message"].update(tool_calls="f")),
        'response.choices.0.message.tool_calls is "f"',
    ),
    "finish_reason a number": (_choice(_set(finish_reason=1)), "finish_reason is 1"),
    "usage of strings": (
        _reply(_set(usage={"prompt_tokens": "many", "completion_tokens": "few"})),
        'response.usage.prompt_tokens is "many": input should be a valid integer',
    ),
    "usage a string": (_reply(_set(usage="lots")), 'response.usage is "lots"'),
    "model a number": (_entry(_set(model=4)), "model is the number 4, not a string"),
    "latency a string": (_entry(_set(latency="fast")), 'latency is "fast", not a number'),
    "cost below zero": (_entry(_set(cost=-1)), "cost is -1, not a number of 0 or more"),
    "error.status a word": (
        _as_error({"status": "teapot", "body": {}}),
        'error.status is a string "teapot", not a whole number',
    ),
    "error.status missing": (_as_error({"body": {}}), "error.status is missing"),
    "error.status not an error": (_as_error({"status": 200}), "error.status is 200, not an HTTP"),
    "error a string": (_entry(lambda e: e.update(response=None, error="boom")), "error is a str"),
}
# Edits of the file as a whole: no entry is named.
_WHOLE = {"interactions an object", "format a string", "a newer format"}


@pytest.mark.parametrize("edit", HAND_EDITS, ids=list(HAND_EDITS))
def test_a_hand_edited_cassette_is_a_one_line_error_naming_the_file_and_the_entry(
    tape, monkeypatch, edit
):
    mode(monkeypatch, "record")
    Chat("fake-model", client=FakeServer().reply("hi").client()).send("q")
    key = json.loads(tape.read_text())["interactions"][0]["key"]
    how, says = HAND_EDITS[edit]
    if isinstance(how, bytes):
        tape.write_bytes(how)
    elif isinstance(how, str):
        tape.write_text(how)
    else:
        data = json.loads(tape.read_text())
        how(data)
        tape.write_text(json.dumps(data))
    mode(monkeypatch, "replay")
    chat = Chat("fake-model", client=offline_client())
    with pytest.raises(CassetteError) as caught:
        chat.send("q")
    message = str(caught.value)
    assert "\n" not in message and says in message, message
    assert message.startswith(f"NBCHAT_CASSETTE={tape} is not a cassette nbchat can read: ")
    assert caught.value.cassette == str(tape) and chat.messages == []
    assert isinstance(caught.value, nbchat.RequestValidationError)
    if callable(how) and edit not in _WHOLE:
        assert caught.value.entry == 1 and ": entry 1" in message
        if caught.value.key is not None:
            assert caught.value.key == key
            assert f"entry 1 (key {key[:12]}…): " in message
    else:
        assert caught.value.entry is None and "entry" not in message


def test_a_hand_edited_cassette_fails_a_cell_in_one_line(store_shell, tape, monkeypatch):
    tape.parent.mkdir(parents=True)
    tape.write_text('{"interactions": [{"key": "k1", "recorded": "2025-01-01", "response": "x"}]}')
    mode(monkeypatch, "replay")
    with pytest.raises(UsageError) as caught:
        store_shell.run_cell_magic("chat", "", "q\n")
    assert str(caught.value) == (
        f"NBCHAT_CASSETTE={tape} is not a cassette nbchat can read: entry 0 (key k1): "
        'response is a string "x", not an object'
    )
    assert store_shell.server.requests == []


def test_a_recorded_errors_status_is_checked_where_it_is_read():
    recorded = Interaction(key="k", request={}, error={"status": "418"})
    with pytest.raises(CassetteError, match=r'error\.status is a string "418"'):
        recorded.error_status()
    assert Interaction(key="k", request={}, error={"status": 429}).error_status() == 429
    bad = Interaction(key="k", request={}, response={"choices": "x"})
    with pytest.raises(CassetteError, match=r"entry \(key k\) cannot be read: response\.choices"):
        bad.completion()
    with pytest.raises(CassetteError, match="it is a list, not an object"):
        Interaction.from_dict([])


def test_the_cassette_writer_masks_the_secrets_it_is_given(tmp_path):
    tape = Cassette(tmp_path / "c.json")
    secrets = Client(
        base_url="http://bob:hunter2-pw@x.test/v1", headers={"x-api-key": "hdr-0123456789"}
    ).secrets
    reply = {"choices": [{"index": 0, "message": {"content": "hunter2-pw and hdr-0123456789"}}]}
    tape.add(
        Interaction(key="k", request={"messages": [{"content": "hdr-0123456789"}]}, response=reply),
        secrets=secrets,
    )
    tape.add(
        Interaction(key="e", request={}, error={"status": 401, "body": {"m": "hunter2-pw"}}),
        secrets=secrets,
    )
    text = (tmp_path / "c.json").read_text()
    assert "hunter2-pw" not in text and "hdr-0123456789" not in text
    played = Cassette(tmp_path / "c.json").take("k")
    assert played.response["choices"][0]["message"]["content"] == "•••••••• and ••••••••"
    assert Cassette(tmp_path / "c.json").take("e").error == {
        "status": 401,
        "body": {"m": "••••••••"},
    }


def test_an_entry_of_the_wrong_shape_is_found_as_the_file_loads_whatever_is_asked(
    tape, monkeypatch
):
    # Replies are validated when played; the shape of every entry, and a recorded error's
    # status, as the file loads.
    tape.parent.mkdir(parents=True)
    entry = {"key": "other-request", "recorded": "2025-05-01T00:00:00+00:00"}
    tape.write_text(json.dumps({"interactions": [{**entry, "error": {"status": "teapot"}}]}))
    mode(monkeypatch, "replay")
    with pytest.raises(CassetteError, match=r"entry 0 \(key other-request\): error\.status is a"):
        Chat("fake-model", client=offline_client()).send("q")
    tape.write_text(json.dumps({"interactions": [{**entry, "response": {"choices": "x"}}]}))
    mode(monkeypatch, "replay")
    with pytest.raises(nbchat.ReplayMissError):
        Chat("fake-model", client=offline_client()).send("q")
