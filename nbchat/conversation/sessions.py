"""Named conversations shared by the magics and the panel within one kernel, and their client.

``session("x")`` is the same Chat whether a cell says ``%%chat --session x`` or a panel does.
"""

from __future__ import annotations

from typing import Any

from ..transport.client import Client
from .chat import Chat
from .endpoint import resolve

__all__ = ["client_for", "names", "session"]

_sessions: dict[str, Chat] = {}
_clients: dict[tuple[Any, ...], Client] = {}


def session(name: str = "default", *, new: bool = False) -> Chat:
    """The conversation called ``name``, created empty if there is none (or if ``new``)."""
    chat = _sessions.get(name)
    if chat is None or new:
        chat = Chat(name=name)
        _sessions[name] = chat
    return chat


def names() -> list[str]:
    return list(_sessions)


def _server(settings: Any) -> str | None:
    server = getattr(settings, "server", None)
    return None if server in (None, "", "auto") else server


def known_client(settings: Any) -> Client | None:
    """The client ``client_for(settings)`` made already, or None (nothing is started)."""
    endpoint = resolve(
        base_url=settings.base_url, api_key_env=settings.api_key_env, server=_server(settings)
    )
    return _clients.get(_client_key(endpoint, settings))


def client_for(settings: Any) -> Client:
    """The client for the endpoint the settings name; one per distinct endpoint, reused."""
    endpoint = resolve(
        base_url=settings.base_url,
        api_key_env=settings.api_key_env,
        # %config Chat.server where the settings have it: a kind the user names beats detection.
        server=_server(settings),
    )
    # The environment is read each time: setting OPENAI_API_KEY later takes effect at once.
    key = _client_key(endpoint, settings)
    client = _clients.get(key)
    if client is None:
        client = endpoint.client(timeout=settings.timeout, max_retries=settings.max_retries)
        _clients[key] = client
    return client


def _client_key(endpoint: Any, settings: Any) -> tuple[Any, ...]:
    # Replaying with no endpoint set gets a client that never sends: not the one for later.
    from ..store.config import replay

    try:
        replayed = replay() if endpoint.local else None
    except Exception:
        replayed = None
    return (endpoint, settings.timeout, settings.max_retries, replayed)
