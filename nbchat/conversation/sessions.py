"""Named conversations shared by the magics and the panel within one kernel, and their client.

``session("x")`` is the same Chat whether a cell says ``%%chat --session x`` or a panel does.
"""

from __future__ import annotations

from typing import Any

from .chat import Chat

__all__ = ["client_for", "forget", "names", "session"]

_sessions: dict[str, Chat] = {}
_clients: dict[tuple[Any, ...], Any] = {}


def session(name: str = "default", *, new: bool = False) -> Chat:
    """The conversation called ``name``, created empty if there is none (or if ``new``)."""
    chat = _sessions.get(name)
    if chat is None or new:
        chat = Chat(name=name)
        _sessions[name] = chat
    return chat


def names() -> list[str]:
    return list(_sessions)


def forget(name: str) -> None:
    _sessions.pop(name, None)


def known_client(settings: Any) -> Any:
    """The client ``client_for(settings)`` made already, or None (nothing is started)."""
    import os

    for key, client in _clients.items():
        if key[:2] == (settings.base_url, settings.api_key_env) and key[3] == os.environ.get(
            "OPENAI_BASE_URL"
        ):
            return client
    return None


def client_for(settings: Any) -> Any:
    """The client for the endpoint the settings name; one per distinct endpoint, reused."""
    import os

    from .endpoint import default_client

    # The environment is part of the key: setting OPENAI_API_KEY later takes effect at once.
    key = (
        settings.base_url,
        settings.api_key_env,
        hash(os.environ.get(settings.api_key_env)),
        os.environ.get("OPENAI_BASE_URL"),
        settings.timeout,
        settings.max_retries,
        getattr(settings, "server", "auto"),
    )
    client = _clients.get(key)
    if client is None:
        client = default_client(
            base_url=settings.base_url or None,
            api_key_env=settings.api_key_env,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            server=getattr(settings, "server", "auto"),
        )
        _clients[key] = client
    return client
