"""transport/seams.py: the Protocols the layers above hold clients to.

mypy checks the classes against them statically; these tests check the runtime side: both
clients are endpoints, each sends the way its Protocol says (blocking or awaitable), and a
stand-in that lacks what an endpoint must say is not taken for one.
"""

from __future__ import annotations

import inspect

import pytest

from nbchat import AsyncClient, Client
from nbchat.transport.seams import AsyncSender, Endpoint, SyncSender


@pytest.mark.parametrize("kind", [Client, AsyncClient])
def test_both_clients_are_endpoints_with_an_identity_and_their_secrets(kind):
    client = kind(api_key="sk-seam-0123456789", base_url="http://seam.test/v1")
    assert isinstance(client, Endpoint)
    assert client.endpoint  # the cache key's part: the server, never the key
    assert "sk-seam-0123456789" not in client.endpoint
    assert "sk-seam-0123456789" in client.secrets


@pytest.mark.parametrize(
    ("kind", "protocol", "awaitable"),
    [(Client, SyncSender, False), (AsyncClient, AsyncSender, True)],
)
def test_each_client_sends_the_way_its_protocol_says(kind, protocol, awaitable):
    for name in ("send_completion", "models"):
        declared = inspect.iscoroutinefunction(getattr(protocol, name))
        actual = inspect.iscoroutinefunction(getattr(kind, name))
        assert declared is awaitable and actual is awaitable, name
    for name in ("send_stream", "build_request"):
        assert callable(getattr(kind, name))
        assert not inspect.iscoroutinefunction(getattr(kind, name)), name


def test_a_stand_in_without_secrets_is_not_an_endpoint():
    class Partial:
        profile = None
        endpoint = "http://seam.test/v1"

    class Whole(Partial):
        secrets = ()

    assert not isinstance(Partial(), Endpoint)
    assert isinstance(Whole(), Endpoint)
