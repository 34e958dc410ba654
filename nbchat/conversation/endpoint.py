"""Which server requests go to: the one answer that Chat, the magics, the panel and config share.

``resolve()`` reads the settings and the environment into an ``Endpoint`` without any request;
``Endpoint.client()`` makes its client, starting nbchat's local model server when none is set.

A configured endpoint (a base_url setting, OPENAI_BASE_URL, or a key alone, which means
OpenAI) always wins; with none, the local model server of ``nbchat.local`` is started or reused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol.exceptions import NbchatError
from ..transport.client import DEFAULT_BASE_URL, Client
from ..transport.profiles import detect_profile

__all__ = ["Endpoint", "default_client", "replayed_model", "replaying", "resolve"]

LOCAL_KIND = "llama-cpp-python"

_announced = False


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: which URL, which key variable, local or not, which kind of server.

    ``base_url`` is None for nbchat's local model server (its port is known once it runs).
    ``source`` says where the URL came from. The key itself is never shown in a repr.
    """

    base_url: str | None
    api_key_env: str = "OPENAI_API_KEY"
    api_key: str | None = field(default=None, repr=False)
    #: The kind the user configured (``"vllm"``…); None lets the client detect it.
    server: str | None = None
    source: str = "local"

    @property
    def local(self) -> bool:
        return self.base_url is None

    @property
    def kind(self) -> str:
        """The server kind: as configured, else what the URL suggests (no request is made)."""
        if self.server:
            return self.server
        if self.base_url is None:
            return LOCAL_KIND
        return detect_profile(self.base_url).kind

    def describe(self) -> str:
        """The endpoint in words, for ``%chat config``: the URL and where it came from."""
        from ..transport.urls import without_credentials

        if self.base_url is None:
            return "local model server (no key or base URL set)"
        if self.source == "default":
            return f"{self.base_url} (the default, since a key is set)"
        # Credentials in a URL are sent as a header, never shown.
        return f"{without_credentials(self.base_url)} (from {self.source})"

    def describe_key(self) -> str:
        """Where the key comes from; never the key itself."""
        return f"set in ${self.api_key_env} (hidden)" if self.api_key else "not set"

    def client(
        self,
        *,
        timeout: float | None = None,
        max_retries: int = 2,
        announce: Callable[[str], None] | None = None,
    ) -> Client:
        """A client for this endpoint; for the local server, started (or reused) first."""
        options: dict[str, Any] = {"max_retries": max_retries}
        if timeout is not None:
            options["timeout"] = timeout
        if self.base_url is not None:
            return Client(
                api_key=self.api_key, base_url=self.base_url, server=self.server, **options
            )
        offline = _replay_client(options)
        if offline is not None:
            return offline
        return _local_client(options, self.api_key_env, announce or _print_once)


def resolve(
    *,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    server: str | None = None,
) -> Endpoint:
    """The endpoint the settings and the environment name, read now (nothing is started).

    ``base_url`` (a setting) wins over ``OPENAI_BASE_URL``; a key in ``api_key_env`` with no
    URL means OpenAI; neither means the local model server. ``server`` names the kind.
    """
    key = os.environ.get(api_key_env) or None
    server = server or None
    if base_url:
        return Endpoint(base_url, api_key_env, key, server, source="the base_url setting")
    env_url = os.environ.get("OPENAI_BASE_URL")
    if env_url:
        return Endpoint(env_url, api_key_env, key, server, source="$OPENAI_BASE_URL")
    if key:
        return Endpoint(DEFAULT_BASE_URL, api_key_env, key, server, source="default")
    # A configured kind describes a configured server, not nbchat's own.
    return Endpoint(None, api_key_env)


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
    endpoint = resolve(base_url=base_url, api_key_env=api_key_env, server=server)
    return endpoint.client(timeout=timeout, max_retries=max_retries, announce=announce)


def replaying() -> Any:
    """What the cassette being replayed (NBCHAT_REPLAY=replay or auto) was recorded against —
    a ``store.replay.Recorded`` with its base URL, server kind and model — or None."""
    from ..store import config
    from ..store.replay import cassette, recorded_endpoint

    try:
        mode, path = config.replay()
        if mode not in ("replay", "auto") or path is None:
            return None
        return recorded_endpoint(cassette(path))
    except NbchatError:
        return None  # an unreadable cassette is reported where a request meets it


def replayed_model() -> str | None:
    """The model a replayed cassette's requests named: a request that names none takes it,
    so replaying never asks a server which models it has."""
    recorded = replaying()
    return None if recorded is None else recorded.model


def _replay_client(options: dict[str, Any]) -> Client | None:
    """With NBCHAT_REPLAY=replay and no endpoint set: a client for the cassette's endpoint,
    which builds its requests and sends nothing (every answer comes from the cassette), so
    the local model server is not started."""
    from ..store import config

    if config.replay()[0] != "replay":
        return None
    recorded = replaying()
    if recorded is None:
        return None
    where = (recorded.endpoint or "").split(" ")
    if recorded.server == LOCAL_KIND or where[0].startswith("local:"):
        from ..local.adapt import profile

        return Client(
            api_key="",
            base_url=recorded.base_url or "http://127.0.0.1:8080/v1",
            server=profile(recorded.model or "local"),
            **options,
        )
    # The endpoint as the recordings' keys name it: its URL, a configured kind, the
    # organisation and project (so the requests built now have the same keys).
    named = dict(part.split("=", 1) for part in where[1:] if "=" in part)
    headers = {
        header: named[header.lower()]
        for header in ("OpenAI-Organization", "OpenAI-Project")
        if header.lower() in named
    }
    return Client(
        api_key="",
        base_url=where[0] or recorded.base_url,
        server=named.get("server"),
        headers=headers,
        **options,
    )


def _local_client(
    options: dict[str, Any], api_key_env: str, announce: Callable[[str], None]
) -> Client:
    try:
        from .. import local
    except ImportError as exc:  # pragma: no cover - the module ships with nbchat
        raise NbchatError(str(exc)) from None
    server = local.start()
    client = server.client(**options)
    global _announced
    if not _announced:
        _announced = True
        announce(
            f"nbchat: no {api_key_env} or OPENAI_BASE_URL is set, so replies come from the "
            f"local model {server.model} at {server.base_url}. To use another server, set "
            f"OPENAI_BASE_URL (and {api_key_env}) or %config Chat.base_url = '...'."
        )
    return client


def _print_once(message: str) -> None:
    from ..render.wrap import terminal_width, wrap

    # stdout: it is information, and notebooks show stderr as if something had failed.
    print(wrap(message, terminal_width(sys.stdout)), file=sys.stdout)
