"""What nbchat knows about the server behind a client: its kind, its model, what it supports.

A ``ServerProfile`` is chosen by configuration (``Client(server="vllm")``) or detected, and it
is the one place where a request is fitted to a server (``adapt``) and where facts learned by
trying (usage in streams, json_schema…) are remembered for the endpoint.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client

__all__ = ["FEATURES", "KINDS", "Adapter", "ServerProfile", "detect_profile", "profile_for"]

#: Every server kind nbchat has a profile for.
KINDS = (
    "openai",
    "azure",
    "llama-cpp-python",
    "llama-server",
    "vllm",
    "ollama",
    "lmstudio",
    "openrouter",
    "generic",
)

#: What a profile may know a server supports (True), lacks (False) or not know yet (None).
FEATURES = (
    "stream_usage",  # a usage chunk at the end of a stream when stream_options asks for it
    "json_schema",  # response_format {"type": "json_schema"}
    "json_object",  # response_format {"type": "json_object"}
    "logprobs",
    "tools",
    "vision",  # image_url content parts
    "n",  # several choices per request
    "developer_role",  # messages with role "developer"
)

#: ``(body) -> (new body, notes)``; raises RequestValidationError for what cannot be served.
Adapter = Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[str]]]
#: ``(client, body) -> the real error behind a stream the server dropped, or None``.
Explainer = Callable[["Client", Mapping[str, Any]], Exception | None]


@dataclass
class ServerProfile:
    """One server's differences from the protocol reference, and what was learned about it.

    ``features`` holds what is known in advance; ``learn()`` records what a request found out
    (shared by every conversation that talks to this endpoint, under a lock).
    """

    kind: str = "generic"
    default_model: str | None = None
    context_window: int | None = None
    features: dict[str, bool | None] = field(default_factory=dict)
    #: Request fields the server rejects or ignores: dropped before sending, with a note.
    drops: tuple[str, ...] = ()
    #: A server on this machine (no price; a note says when it answered for another model).
    local: bool = False
    adapter: Adapter | None = None
    explain_broken_stream: Explainer | None = None
    #: How the key is sent: ``"bearer"`` (Authorization: Bearer KEY) or ``"api-key"`` (Azure).
    auth: str = "bearer"
    #: Query parameters every request carries (Azure's ``api-version``).
    query: dict[str, str] = field(default_factory=dict)
    #: Where the differences written here come from.
    source: str = ""
    _learned: dict[str, bool] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown server kind {self.kind!r}; one of: {', '.join(KINDS)}")

    def supports(self, feature: str) -> bool | None:
        """True, False, or None when neither the profile nor a request has told yet."""
        with self._lock:
            if feature in self._learned:
                return self._learned[feature]
        return self.features.get(feature)

    def learn(self, feature: str, value: bool) -> None:
        with self._lock:
            self._learned[feature] = value

    @property
    def learned(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._learned)

    def remember_model(self, model: str) -> None:
        with self._lock:
            self.default_model = model

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        if not api_key:
            return {}
        if self.auth == "api-key":
            return {"api-key": api_key}
        return {"Authorization": f"Bearer {api_key}"}

    def adapt(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Fit a request body to this server: ``(new body, notes)``; ``body`` is not changed."""
        out = copy.deepcopy(dict(body))
        notes: list[str] = []
        for name in self.drops:
            if name in out:
                del out[name]
                notes.append(f"{name} is not supported by {self.kind}; it was left out.")
        if self.adapter is not None:
            out, more = self.adapter(out)
            notes += more
        return out, notes

    def with_(self, **changes: Any) -> ServerProfile:
        """A copy with ``changes``, learning nothing from this one."""
        return replace(self, _learned={}, _lock=threading.Lock(), **changes)


_KNOWN: dict[str, dict[str, Any]] = {
    "openai": {
        "features": dict.fromkeys(FEATURES, True),
        "source": "https://platform.openai.com/docs/api-reference/chat",
    },
    "generic": {"features": {}},
}


def profile_for(kind: str, **changes: Any) -> ServerProfile:
    """A fresh profile of ``kind`` with what nbchat knows about that kind of server."""
    if kind not in KINDS:
        raise ValueError(f"Unknown server kind {kind!r}; one of: {', '.join(KINDS)}")
    known = copy.deepcopy(_KNOWN.get(kind, {}))
    known.update(changes)
    return ServerProfile(kind=kind, **known)


def detect_profile(base_url: str) -> ServerProfile:
    """The profile a base URL suggests, without any request (hosts of known services)."""
    import httpx

    host = (httpx.URL(base_url).host or "").lower()
    if host == "api.openai.com":
        return profile_for("openai")
    if host.endswith("openrouter.ai"):
        return profile_for("openrouter")
    if host.endswith((".openai.azure.com", ".cognitiveservices.azure.com")):
        return profile_for("azure")
    return profile_for("generic")
