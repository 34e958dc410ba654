from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from nbchat import Chat
from nbchat.protocol.exceptions import NotFoundError, RequestValidationError
from nbchat.transport.stored import StoredCompletionsUnsupportedError
from tests.fakeserver import SECRET
from tests.fakestore import FakeStore


def _stored(store: FakeStore, count: int, **fields: Any) -> list[str]:
    client = store.client()
    ids = []
    for i in range(count):
        labels = {"run": str(i % 2)}
        ids.append(
            client.create(
                model="gpt-5",
                messages=[{"role": "user", "content": f"q{i}"}],
                store=True,
                metadata=labels,
                **fields,
            ).id
        )
    return ids


def test_a_list_pages_through_every_stored_completion() -> None:
    store = FakeStore()
    ids = _stored(store, 5)
    page = store.client().stored_completions.list(limit=2)
    assert [c.id for c in page.data] == ids[:2]
    assert page.has_more and page.last_id == ids[1]
    assert [c.id for c in page] == ids  # iterating goes on through the next pages
    assert "GET /chat/completions?limit=2&after=chatcmpl-004" in store.calls


def test_a_list_is_filtered_by_model_and_metadata_and_ordered() -> None:
    store = FakeStore()
    ids = _stored(store, 4)
    store.client().create(model="other", messages=[{"role": "user", "content": "x"}], store=True)
    page = store.client().stored_completions.list(
        model="gpt-5", metadata={"run": "1"}, order="desc"
    )
    assert [c.id for c in page.data] == [ids[3], ids[1]]
    assert store.calls[-1] == ("GET /chat/completions?order=desc&model=gpt-5&metadata%5Brun%5D=1")
    assert all(c.metadata == {"run": "1"} for c in page.data)


def test_retrieve_update_delete_and_messages() -> None:
    store = FakeStore()
    [first] = _stored(store, 1)
    stored = store.client().stored_completions
    assert stored.retrieve(first).content == "re: q0"
    assert stored.update(first, metadata={"label": "good"}).metadata == {"label": "good"}
    assert [m.content for m in stored.messages(first)] == ["q0"]
    deleted = stored.delete(first)
    assert (deleted.id, deleted.deleted) == (first, True)
    with pytest.raises(NotFoundError, match="No chat completion found"):
        stored.retrieve(first)


def test_a_completion_sent_with_store_and_metadata_is_found_by_its_labels() -> None:
    store = FakeStore()
    chat = Chat("gpt-5", client=store.client(), stream=False)
    reply = chat.send("hello", store=True, metadata={"notebook": "demo"})
    found = list(store.client().stored_completions.list(metadata={"notebook": "demo"}))
    assert [c.id for c in found] == [reply.completion.id]


def test_the_messages_of_a_long_request_are_paged() -> None:
    store = FakeStore()
    messages = [{"role": "user", "content": f"m{i}"} for i in range(5)]
    completion = store.client().create(model="gpt-5", messages=messages, store=True)
    page = store.client().stored_completions.messages(completion.id, limit=2)
    assert len(page) == 2 and page.has_more
    assert [m.content for m in page] == [f"m{i}" for i in range(5)]
    assert [m.id for m in page.data] == [f"{completion.id}-0", f"{completion.id}-1"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.list(limit=0), "limit"),
        (lambda s: s.list(limit=True), "limit"),
        (lambda s: s.list(order="newest"), "order"),
        (lambda s: s.list(metadata={str(i): "x" for i in range(17)}), "metadata"),
        (lambda s: s.list(metadata={"k": 5}), "metadata"),
        (lambda s: s.list(after=""), "after"),
        (lambda s: s.retrieve(""), "completion_id"),
        (lambda s: s.delete(None), "completion_id"),
        (lambda s: s.update("x", metadata=None), "metadata"),
        (lambda s: s.messages("x", limit=-1), "limit"),
    ],
    ids=[
        "limit-0",
        "limit-bool",
        "order",
        "17-pairs",
        "non-text-value",
        "empty-after",
        "empty-id",
        "no-id",
        "no-labels",
        "negative-limit",
    ],
)
def test_bad_arguments_are_one_line_and_nothing_is_sent(call: Any, field: str) -> None:
    store = FakeStore()
    with pytest.raises(RequestValidationError) as info:
        call(store.client().stored_completions)
    assert info.value.field == field
    assert "\n" not in str(info.value)
    assert store.calls == []


def test_an_id_is_one_path_segment_whatever_it_holds() -> None:
    store = FakeStore()
    with pytest.raises(NotFoundError):
        store.client().stored_completions.retrieve("../../files?x=1")
    assert store.calls == ["GET /chat/completions/..%2F..%2Ffiles%3Fx%3D1"]


def test_a_server_without_stored_completions_says_so_in_one_line_and_is_remembered() -> None:
    store = FakeStore(supported=False)
    client = store.client()
    with pytest.raises(StoredCompletionsUnsupportedError) as info:
        client.stored_completions.list()
    message = str(info.value)
    assert "\n" not in message
    assert "keeps no stored completions" in message and "405" in message
    assert client.profile.supports("stored_completions") is False
    with pytest.raises(StoredCompletionsUnsupportedError, match="learned"):
        client.stored_completions.retrieve("chatcmpl-1")
    assert store.calls == ["GET /chat/completions"]  # the second was refused before sending


def test_a_404_without_an_api_error_means_the_endpoint_is_missing() -> None:
    store = FakeStore(supported=False)
    with pytest.raises(StoredCompletionsUnsupportedError, match="404"):
        store.client().stored_completions.delete("chatcmpl-1")


def test_a_server_known_to_keep_none_is_not_asked() -> None:
    store = FakeStore()
    client = store.client(server="ollama")
    with pytest.raises(StoredCompletionsUnsupportedError, match="ollama"):
        client.stored_completions.list()
    assert store.calls == []


def test_the_key_is_in_no_error_of_the_stored_completions() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text=f"no route for key {SECRET}")

    from nbchat import Client

    client = Client(api_key=SECRET, base_url="http://x/v1", transport=httpx.MockTransport(echo))
    with pytest.raises(StoredCompletionsUnsupportedError) as info:
        client.stored_completions.list()
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.request.headers)


def test_an_unreadable_list_is_an_api_response_validation_error() -> None:
    from nbchat import Client
    from nbchat.protocol.exceptions import APIResponseValidationError

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": "many"})

    client = Client(api_key=SECRET, base_url="http://x/v1", transport=httpx.MockTransport(handler))
    with pytest.raises(APIResponseValidationError, match="data"):
        client.stored_completions.list()


def test_the_async_twin_offers_the_same_and_pages_alike() -> None:
    from nbchat.transport.stored import AsyncStoredCompletions, StoredCompletions

    public = {name for name in vars(StoredCompletions) if not name.startswith("_")}
    assert public == {name for name in vars(AsyncStoredCompletions) if not name.startswith("_")}
    store = FakeStore()
    ids = _stored(store, 3)

    async def main() -> list[str]:
        stored = store.async_client().stored_completions
        page = await stored.list(limit=2)
        seen = [c.id async for c in page]
        await stored.update(ids[0], metadata={"k": "v"})
        assert (await stored.retrieve(ids[0])).metadata == {"k": "v"}
        assert [m.content async for m in await stored.messages(ids[0])] == ["q0"]
        assert (await stored.delete(ids[0])).deleted
        return seen

    assert asyncio.run(main()) == ids


def test_stored_completions_over_real_http() -> None:
    store = FakeStore()
    from nbchat import Client

    with store.serve() as server:
        client = Client(api_key=SECRET, base_url=server.base_url, max_retries=0)
        created = client.create(
            model="gpt-5", messages=[{"role": "user", "content": "hi"}], store=True
        )
        page = client.stored_completions.list(metadata={})
        assert [c.id for c in page] == [created.id]
        assert client.stored_completions.delete(created.id).deleted
        client.close()
