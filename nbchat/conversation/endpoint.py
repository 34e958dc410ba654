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

from ..protocol.exceptions import NbchatError
from ..transport.client import Client
from ..transport.profiles import ServerProfile, configured_profile

__all__ = ["default_client", "local_profile"]

_announced = False


def default_client(
    *,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    timeout: float | None = None,
    max_retries: int = 2,
    server: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> Client:
    """The client for the configured endpoint, or for the local model server.

    ``server`` names the configured endpoint's kind (detected from its URL when None).
    """
    key = os.environ.get(api_key_env) or None
    base = base_url or os.environ.get("OPENAI_BASE_URL") or None
    options: dict[str, Any] = {"max_retries": max_retries}
    if timeout is not None:
        options["timeout"] = timeout
    if base or key:
        return Client(api_key=key, base_url=base, server=server or "auto", **options)
    return _local_client(options, announce or _print_once)


def _local_client(options: dict[str, Any], announce: Callable[[str], None]) -> Client:
    try:
        from .. import local
    except ImportError as exc:  # pragma: no cover - the module ships with nbchat
        raise NbchatError(str(exc)) from None
    server = local.start()
    # A transport of our own: httpx would otherwise send loopback requests to HTTP_PROXY.
    client = Client(
        api_key="",
        base_url=server.base_url,
        transport=httpx.HTTPTransport(),
        server=local_profile(server.model),
        **options,
    )
    global _announced
    if not _announced:
        _announced = True
        announce(
            f"nbchat: no OPENAI_API_KEY or OPENAI_BASE_URL is set, so replies come from the "
            f"local model {server.model} at {server.base_url}. To use another server, set "
            "OPENAI_BASE_URL (and OPENAI_API_KEY) or %config Chat.base_url = '...'."
        )
    return client


def local_profile(model: str | None) -> ServerProfile:
    """The profile of nbchat's own local server: what it lacks is adapted by ``nbchat.local``."""
    from .. import local

    return configured_profile(
        "llama-cpp-python",
        default_model=model,
        local=True,
        adapter=local.adapt_request,
        explain_broken_stream=local.explain_broken_stream,
        # Measured on the local server: see the table in nbchat.local's adaptation module.
        features={"logprobs": True, "tools": True},
        context_window=local.DEFAULT_CONTEXT,
        source="requests sent to nbchat's local server (llama-cpp-python 0.3.36, SmolLM2-135M)",
    )


def _print_once(message: str) -> None:
    # stdout: it is information, and notebooks show stderr as if something had failed.
    print(message, file=sys.stdout)
