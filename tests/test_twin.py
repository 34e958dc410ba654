from __future__ import annotations

import asyncio

import httpx
import pytest

from nbchat import AsyncClient, Client, NbchatError
from nbchat.transport import twin as twin_module
from nbchat.transport.twin import around_retry_waits, async_twin, async_twins, watch_responses
from tests.fakeserver import SECRET
from tests.loopserver import completion


def test_the_twin_talks_to_the_same_endpoint_with_the_same_key_headers_and_profile():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json=completion("m", "hi"))

    client = Client(
        api_key=SECRET,
        base_url="http://fake.test/v1",
        transport=httpx.MockTransport(handler),
        headers={"X-Team": "data"},
        max_retries=5,
        timeout=12.0,
        server="vllm",
    )
    twin = async_twin(client, connections=8)
    assert isinstance(twin, AsyncClient)
    assert (twin.base_url, twin.max_retries, twin.timeout) == ("http://fake.test/v1", 5, 12.0)
    assert twin.profile is client.profile  # what one learns, the other knows

    async def main():
        async with twin:
            return await twin.create(model="m", messages=[{"role": "user", "content": "x"}])

    assert asyncio.run(main()).content == "hi"
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"
    assert seen[0].headers["x-team"] == "data"
    assert SECRET not in repr(twin)


def test_the_twin_keeps_the_clients_size_limits():
    client = Client(
        api_key="k",
        base_url="http://x/v1",
        transport=httpx.MockTransport(lambda request: httpx.Response(200)),
        max_response_bytes=1000,
        max_stream_bytes=2000,
        max_event_bytes=300,
        max_file_bytes=None,
    )
    twin = async_twin(client, connections=2)
    limits = (twin.max_response_bytes, twin.max_stream_bytes, twin.max_event_bytes)
    assert limits == (1000, 2000, 300)
    assert twin.max_file_bytes is None


def test_a_real_transport_gets_a_pool_as_large_as_the_work():
    client = Client(api_key="k", base_url="http://127.0.0.1:9/v1", transport=httpx.HTTPTransport())
    twin = async_twin(client, connections=64)
    assert twin.transport is None  # its own, made for the async side
    assert twin.limits == httpx.Limits(max_connections=64, max_keepalive_connections=64)


def test_with_aiohttp_one_twin_holds_every_connection(monkeypatch):
    monkeypatch.setattr(twin_module, "available", lambda: True)
    client = Client(api_key="k", base_url="http://127.0.0.1:9/v1")
    (twin,) = async_twins(client, connections=128)
    assert twin.limits.max_connections == 128


def test_without_aiohttp_twins_share_the_connections_in_pools_of_at_most_eight(monkeypatch):
    monkeypatch.setattr(twin_module, "available", lambda: False)
    client = Client(api_key="k", base_url="http://127.0.0.1:9/v1", transport=httpx.HTTPTransport())
    for connections, expected in ((1, [1]), (8, [8]), (20, [7, 7, 7]), (128, [8] * 16)):
        twins = async_twins(client, connections=connections)
        assert [t.limits.max_connections for t in twins] == expected
        assert all(t.profile is client.profile for t in twins)


def test_a_transport_serving_both_kinds_is_shared_by_one_twin():
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    client = Client(api_key="k", base_url="http://x/v1", transport=transport)
    (twin,) = async_twins(client, connections=32)
    assert twin.transport is transport


def test_a_transport_that_cannot_serve_async_requests_is_a_clear_error():
    class SyncOnly(httpx.BaseTransport):
        def handle_request(self, request):
            return httpx.Response(200)

    client = Client(api_key="k", base_url="http://x/v1", transport=SyncOnly())
    with pytest.raises(NbchatError, match=r"pass client=nbchat\.AsyncClient"):
        async_twin(client, connections=2)


def scripted(*answers: httpx.Response) -> AsyncClient:
    """An AsyncClient whose server gives these answers in turn, retrying once."""
    queue = list(answers)
    return AsyncClient(
        api_key="k",
        base_url="http://x/v1",
        transport=httpx.MockTransport(lambda request: queue.pop(0)),
        max_retries=1,
    )


def test_watch_responses_sees_every_response_retries_included_and_then_stops():
    client = scripted(
        httpx.Response(429, json={"error": {"message": "slow"}}, headers={"retry-after": "0"}),
        httpx.Response(200, json=completion("m", "ok")),
        httpx.Response(200, json=completion("m", "ok")),
    )
    statuses = []

    async def hook(response):
        statuses.append(response.status_code)

    async def main():
        with watch_responses(client, hook):
            await client.create(model="m", messages=[{"role": "user", "content": "x"}])
        await client.create(model="m", messages=[{"role": "user", "content": "x"}])
        await client.aclose()

    asyncio.run(main())
    assert statuses == [429, 200]


def test_around_retry_waits_routes_the_waits_before_retries_and_then_restores_the_client():
    client = scripted(
        httpx.Response(429, json={"error": {"message": "slow"}}, headers={"retry-after-ms": "7"}),
        httpx.Response(200, json=completion("m", "ok")),
        httpx.Response(500, json={"error": {"message": "boom"}}, headers={"retry-after-ms": "9"}),
        httpx.Response(200, json=completion("m", "ok")),
    )
    slept, routed = [], []

    async def fake_sleep(seconds):
        slept.append(seconds)

    client.retry_wait = fake_sleep

    async def around(wait, seconds):
        routed.append(seconds)
        await wait(seconds)  # the client's own wait, still called

    async def main():
        with around_retry_waits(client, around), around_retry_waits(client, around):
            await client.create(model="m", messages=[{"role": "user", "content": "x"}])
        await client.create(model="m", messages=[{"role": "user", "content": "x"}])
        await client.aclose()

    asyncio.run(main())
    assert routed == [0.007]  # once, though entered twice; not after the block
    assert slept == [0.007, 0.009]
    assert client.retry_wait is fake_sleep


def test_the_twin_carries_a_base_urls_credentials(monkeypatch):
    # A Client("http://user:pass@host") sends them as a Basic header; its twins must too, or a
    # map through it goes out unauthenticated.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    seen = []

    def handler(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=completion("m", "hi"))

    client = Client(base_url="http://bob:pw@fake.test/v1", transport=httpx.MockTransport(handler))
    twin = async_twin(client, connections=2)

    async def main():
        async with twin:
            return await twin.create(model="m", messages=[{"role": "user", "content": "x"}])

    asyncio.run(main())
    assert seen == ["Basic Ym9iOnB3"] and "pw" not in repr(twin)
