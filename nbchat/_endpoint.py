"""Which server a conversation talks to when the caller gave no client.

A configured endpoint (OPENAI_BASE_URL, OPENAI_API_KEY or a base_url setting) always wins;
with none, the local model server of ``nbchat.local`` is started or reused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import httpx

from ._client import Client
from ._exceptions import NbchatError

__all__ = ["LocalServerClient", "default_client"]

_announced = False


class LocalServerClient(Client):
    """A Client for nbchat's local server: knows its model and adapts what it lacks."""

    default_model: str | None = None
    # The server ignores stream_options: the footer counts streamed tokens instead.
    include_usage = False

    def adapt_request(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        from .local import adapt_request

        return adapt_request(body)

    def explain_broken_stream(self, body: dict[str, Any]) -> Exception | None:
        """The real error behind a stream the server dropped before its first chunk."""
        from .local import explain_broken_stream

        return explain_broken_stream(self, body)


def default_client(
    *,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    timeout: float | None = None,
    max_retries: int = 2,
    announce: Callable[[str], None] | None = None,
) -> Client:
    """The client for the configured endpoint, or for the local model server."""
    key = os.environ.get(api_key_env) or None
    base = base_url or os.environ.get("OPENAI_BASE_URL") or None
    options: dict[str, Any] = {"max_retries": max_retries}
    if timeout is not None:
        options["timeout"] = timeout
    if base or key:
        return Client(api_key=key, base_url=base, **options)
    return _local_client(options, announce or _print_once)


def _local_client(options: dict[str, Any], announce: Callable[[str], None]) -> Client:
    try:
        from . import local
    except ImportError as exc:  # pragma: no cover - the module ships with nbchat
        raise NbchatError(str(exc)) from None
    server = local.start()
    # A transport of our own: httpx would otherwise send loopback requests to HTTP_PROXY.
    client = LocalServerClient(
        api_key="", base_url=server.base_url, transport=httpx.HTTPTransport(), **options
    )
    client.default_model = server.model
    global _announced
    if not _announced:
        _announced = True
        announce(
            f"nbchat: no OPENAI_API_KEY or OPENAI_BASE_URL is set, so replies come from the "
            f"local model {server.model} at {server.base_url}. To use another server, set "
            "OPENAI_BASE_URL (and OPENAI_API_KEY) or %config Chat.base_url = '...'."
        )
    return client


def _print_once(message: str) -> None:
    # stdout: it is information, and notebooks show stderr as if something had failed.
    print(message, file=sys.stdout)
