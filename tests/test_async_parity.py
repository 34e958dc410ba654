"""The sync and async sides of nbchat offer the same things and behave alike.

Each pair is walked by name (a method or argument on one side only fails), and the conversation's
behaviour is checked by running the same scripted exchanges through ``Chat.send`` and
``Chat.asend`` and comparing everything that is not a time.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import nbchat
from nbchat import Chat
from nbchat.conversation import toolrun
from nbchat.protocol.exceptions import IncompleteStreamError
from nbchat.transport import streaming
from tests import storeutil
from tests.fakeserver import SECRET, FakeServer

fresh_store = storeutil.fresh_store

# Names that differ by design: each side's protocols, and an async client's aclose().
_SYNC_ONLY = {"__enter__", "__exit__", "__iter__", "__next__"}
_ASYNC_ONLY = {"__aenter__", "__aexit__", "__aiter__", "__anext__"}


def _public(cls: type) -> set[str]:
    names = {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}
    # Closing: a Client's close() is an AsyncClient's aclose().
    return {"close" if name == "aclose" else name for name in names}


@pytest.mark.parametrize(
    ("sync", "async_"),
    [
        (nbchat.Client, nbchat.AsyncClient),
        (streaming.ChatStream, streaming.AsyncChatStream),
    ],
    ids=["client", "stream"],
)
def test_each_sync_class_and_its_async_twin_offer_the_same_methods(sync: type, async_: type):
    assert _public(sync) == _public(async_)
    assert any(hasattr(sync, name) for name in _SYNC_ONLY)
    assert any(hasattr(async_, name) for name in _ASYNC_ONLY)
    for name in _public(sync):
        one = getattr(sync, name)
        other = getattr(async_, "aclose" if name == "close" and hasattr(async_, "aclose") else name)
        if callable(one) and not isinstance(one, type):
            assert _parameters(one) == _parameters(other), name


def _parameters(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    signature = inspect.signature(function)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize(
    ("sync", "async_"),
    [
        (Chat.send, Chat.asend),
        (toolrun.run_tool_calls, toolrun.arun_tool_calls),
    ],
    ids=["send", "tool runs"],
)
def test_each_sync_function_and_its_async_twin_take_the_same_arguments(sync, async_):
    assert inspect.iscoroutinefunction(async_) and not inspect.iscoroutinefunction(sync)
    assert _parameters(sync) == _parameters(async_)


def test_amap_takes_every_argument_of_map(monkeypatch):
    seen: list[dict[str, Any]] = []
    # Both build their job from the same keywords: what map accepts, amap accepts.
    from nbchat.notebook import mapview

    original = mapview.job_of

    def spy(prompt, rows, given):
        seen.append({k: v for k, v in given.items() if k not in ("prompt", "rows")})
        raise RuntimeError("stop here")

    monkeypatch.setattr(mapview, "job_of", spy)
    arguments = {
        name: p.default
        for name, p in inspect.signature(nbchat.map).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    with pytest.raises(RuntimeError):
        nbchat.map("{x}", [], **arguments, temperature=0)
    with pytest.raises(RuntimeError):
        asyncio.run(nbchat.amap("{x}", [], **arguments, temperature=0))
    from_map = {**seen[0].pop("request_fields"), **seen[0]}
    from_map.pop("progress", None)
    seen[1].pop("progress", None)
    assert from_map == seen[1]
    assert original is not spy


# -- behaviour ------------------------------------------------------------------------------------


def get_weather(location: str) -> dict:
    """The weather in a city."""
    return {"Beijing": {"temp": 28}, "Paris": {"temp": 19}}[location]


async def aget_weather(location: str) -> dict:
    """The weather in a city."""
    await asyncio.sleep(0)
    return get_weather(location)


def _plain(server: FakeServer) -> dict[str, Any]:
    server.reply("Paris.")
    return {"content": "Capital of France?"}


def _tools(server: FakeServer) -> dict[str, Any]:
    server.reply(
        None, tool_calls=[{"id": "c1", "name": "get_weather", "arguments": {"location": "Paris"}}]
    )
    server.reply("19 degrees.")
    return {"content": "Weather?", "tools": [get_weather]}


def _async_tools(server: FakeServer) -> dict[str, Any]:
    options = _tools(server)
    options["tools"] = [nbchat.as_tool(aget_weather, name="get_weather")]
    return options


def _fallback(server: FakeServer) -> dict[str, Any]:
    server.error(400, "logprobs are not supported by this model", param="logprobs")
    server.reply("without logprobs")
    return {"content": "x", "logprobs": True, "top_logprobs": 2, "stream": False}


def _schema(server: FakeServer) -> dict[str, Any]:
    server.reply('{"city": "Paris"}')
    return {
        "content": "Where?",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    }


def _cut_short(server: FakeServer) -> dict[str, Any]:
    server.reply("a partial answer that the server cuts", cut_after=3)
    return {"content": "go"}


SCENARIOS = {
    "plain": _plain,
    "tools": _tools,
    "async tools": _async_tools,
    "fallback": _fallback,
    "schema": _schema,
    "cut short": _cut_short,
}


def _run(scenario: Callable[[FakeServer], dict[str, Any]], how: str) -> dict[str, Any]:
    server = FakeServer()
    options = scenario(server)
    client = server.client()
    chat = Chat("fake-model", client=client, name=f"parity-{how}")
    content = options.pop("content")
    error = None
    reply = None
    try:
        if how == "send":
            reply = chat.send(content, listener=nbchat.ChatListener(), **options)
        else:
            reply = asyncio.run(chat.asend(content, listener=nbchat.ChatListener(), **options))
    except Exception as exc:
        error = type(exc).__name__
        reply = chat.last_reply
    return {
        "error": error,
        "messages": chat.messages,
        "interrupted": chat.interrupted,
        "requests": server.requests,
        "content": reply.content if reply is not None else None,
        "parsed": reply.parsed if reply is not None else None,
        "notes": reply.notes if reply is not None else None,
        "tools": [r.to_dict() | {"duration": None} for r in reply.tool_results] if reply else [],
        "rounds": len(reply.completions) if reply is not None else None,
        "cost": reply.cost if reply is not None else None,
    }


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_send_and_asend_behave_alike(name: str, fresh_store):
    via_send = _run(SCENARIOS[name], "send")
    via_asend = _run(SCENARIOS[name], "asend")
    assert via_send == via_asend
    if name == "cut short":
        assert via_send["error"] == IncompleteStreamError.__name__ and via_send["interrupted"]


def test_send_and_asend_keep_the_same_rows_in_the_store(fresh_store):
    for how in ("send", "asend"):
        _run(_tools, how)
    rows = storeutil.stored(fresh_store)
    by_session: dict[str, list] = {}
    for row in rows:
        by_session.setdefault(row.session, []).append((row.key, row.status, row.request))
    assert len(by_session["parity-send"]) == 2
    assert by_session["parity-send"] == by_session["parity-asend"]


def test_asend_uses_an_async_client_given_as_it_is(fresh_store):
    server = FakeServer().reply("from the async client")
    client = nbchat.AsyncClient(
        api_key=SECRET, base_url="http://fake.test/v1", transport=httpx.MockTransport(server.handle)
    )
    chat = Chat("fake-model", client=client)
    reply = asyncio.run(chat.asend("Hi"))
    assert reply.content == "from the async client"
    with pytest.raises(nbchat.RequestValidationError, match="asend"):
        chat.send("Hi")
    assert json.loads(json.dumps(chat.messages))[-1]["content"] == "from the async client"
