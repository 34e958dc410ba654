from __future__ import annotations

import dataclasses

import pytest

from nbchat import Chat, RequestValidationError
from nbchat.conversation.prompt import OPTIONS, Prompt
from tests.fakeserver import FakeServer


def test_of_sorts_keywords_into_options_and_request_fields():
    prompt = Prompt.of("Hi", model="m", temperature=0.2, stream=False, tools=[print], json=True)
    assert prompt.content == "Hi" and prompt.model == "m" and prompt.stream is False
    assert prompt.tools == (print,) and prompt.json is True
    assert dict(prompt.fields) == {"temperature": 0.2}
    assert prompt.request_fields == {"temperature": 0.2, "model": "m"}


def test_a_prompt_is_frozen_all_the_way_down():
    fields = {"temperature": 0.2}
    images = ["a.png"]
    prompt = Prompt(content=[{"type": "text", "text": "x"}], fields=fields, images=images)
    fields["temperature"] = 1.0
    images.append("b.png")
    assert prompt.fields["temperature"] == 0.2 and prompt.images == ("a.png",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prompt.model = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        prompt.fields["seed"] = 1  # type: ignore[index]


def test_with_replaces_options_and_adds_fields_and_none_removes_a_field():
    base = Prompt.of("Hi", temperature=0.2, seed=1)
    changed = base.with_(seed=None, max_tokens=5, cache=True)
    assert dict(changed.fields) == {"temperature": 0.2, "seed": None, "max_tokens": 5}
    assert changed.cache is True and base.cache is None


def test_every_option_is_a_field_of_the_dataclass_and_not_a_request_field():
    names = {f.name for f in dataclasses.fields(Prompt)}
    assert names - {"fields"} == OPTIONS
    assert "temperature" not in OPTIONS and "model" in OPTIONS


def test_a_bad_round_limit_is_refused_in_one_line():
    with pytest.raises(RequestValidationError, match="max_rounds must be a whole number"):
        Prompt(max_rounds=-1)


def test_send_takes_a_prompt_and_keeps_its_options_unless_overridden():
    server = FakeServer().reply("one").reply("two")
    chat = Chat("fake-model", client=server.client())
    prompt = Prompt.of("Hi", stream=False, temperature=0.1)
    chat.send(prompt)
    chat.send(prompt, temperature=0.9)
    assert "stream" not in server.requests[0] and server.requests[0]["temperature"] == 0.1
    assert server.requests[1]["temperature"] == 0.9


def test_prepare_send_and_a_prompts_messages_build_the_same_request():
    server = FakeServer().reply("ok")
    chat = Chat("fake-model", client=server.client(), stream=False)
    prompt = Prompt(
        messages=({"role": "user", "content": "earlier"}, {"role": "assistant", "content": "a"}),
        content="now",
        fields={"seed": 3},
    )
    prepared = chat.prepare(prompt)
    reply = chat.send(prompt)
    assert reply.prepared == prepared and server.requests[0] == prepared.body
    assert [m["content"] for m in chat.messages] == ["earlier", "a", "now", "ok"]
