"""One exchange as the store keeps it, and the scrubbing that keeps credentials out of it.

Headers are never kept (they carry the key); URLs lose their user info and the values of
query parameters that look like credentials; every credential the client holds
(``Client.secrets``: the key, a base URL's password and Basic token, credential headers, in
each form a server could echo them) is masked wherever it appears.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from ..protocol.types import ChatCompletion
from ..transport.prepared import MASK

__all__ = ["Exchange", "ToolCallRecord", "clean_url", "scrub"]

# Query parameters whose values are credentials (Azure's api-key, signed URLs, tokens).
_SECRET_WORDS = ("key", "token", "secret", "sig", "pass", "auth", "cred")


@dataclass
class Exchange:
    """A request and what came of it: the response or the error, usage, time, cost."""

    request: dict[str, Any]
    key: str
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    session: str | None = None
    notebook: str | None = None
    #: The model the request asked for, and the one the server said answered.
    model_requested: str | None = None
    model: str | None = None
    #: The server profile's kind (openai, llama-cpp-python, …) and the URL, credentials removed.
    server: str | None = None
    url: str | None = None
    stream: bool = False
    #: Who answered: "server", "cache" (the store) or "replay" (a cassette).
    source: str = "server"
    #: "ok", "error" or "interrupted" (a stream cut short; ``response`` holds the partial reply).
    status: str = "ok"
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    #: Completion tokens nbchat counted (one a streamed piece) when the server sent no usage.
    counted_tokens: int | None = None
    finish_reason: str | None = None
    latency: float | None = None
    time_to_first_token: float | None = None
    #: US dollars billed; None when the price is unknown (local servers, unknown models).
    cost: float | None = None
    #: The row's id once stored.
    id: int | None = None

    def take_usage(self, completion: ChatCompletion, *, counted: int = 0) -> None:
        """Copy the model, usage and finish reason out of a completion; ``counted``: the
        streamed pieces of output, kept as ``counted_tokens`` when the server sent no usage."""
        self.response = completion.to_dict()
        self.model = completion.model or None
        reasons = [c.finish_reason for c in completion.choices if c.finish_reason]
        self.finish_reason = ",".join(dict.fromkeys(reasons)) or None
        usage = completion.usage
        if usage is None:
            self.counted_tokens = counted or None
            return
        self.prompt_tokens = usage.prompt_tokens
        self.completion_tokens = usage.completion_tokens
        self.total_tokens = usage.total_tokens
        if usage.prompt_tokens_details is not None:
            self.cached_tokens = usage.prompt_tokens_details.cached_tokens
        if usage.completion_tokens_details is not None:
            self.reasoning_tokens = usage.completion_tokens_details.reasoning_tokens

    def completion(self) -> ChatCompletion | None:
        if self.response is None:
            return None
        return ChatCompletion.model_validate(self.response)


@dataclass
class ToolCallRecord:
    """One tool call a reply asked for and what became of it: run, declined, refused, stopped.

    ``key`` is the request key of the exchange whose reply made the call; the store links the
    row to that exchange (``exchange_id``: the latest exchange with that key and session when
    it is written, unless given). ``content`` is what the model was told.
    """

    key: str
    name: str
    call_id: str | None = None
    session: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    arguments: Any = None
    #: "ok", "error" or "declined" (ToolResult.status).
    status: str = "ok"
    #: How it was allowed or not: "not asked", "approved by user", "approved by --yes",
    #: "declined by user", "refused: nobody can answer", "stopped by user"…
    approval: str | None = None
    error: str | None = None
    content: str | None = None
    duration: float | None = None
    exchange_id: int | None = None
    #: The row's id once stored.
    id: int | None = None


@functools.lru_cache(maxsize=256)
def clean_url(url: str | None) -> str | None:
    """``url`` without user info and with credential-like query values masked."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    netloc = host + (f":{parts.port}" if parts.port else "")
    query = "&".join(
        f"{quote(name)}={MASK if _secret(name) else quote(value)}"
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _secret(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_WORDS)


def scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` (str or JSON-like) with every secret replaced by a mask.

    ``secrets`` is what the client says it holds, ``client.secrets``; a secret inside another
    is masked whole (longest first), and values under 4 characters are left alone.
    """
    secrets, plain = _ordered(tuple(secrets))
    if not secrets:
        return value
    if plain and isinstance(value, dict | list):
        # Most values hold no secret (every map row's request, say): one look at the JSON
        # text, in C, instead of a walk over every string. Exact for secrets that JSON writes
        # as they are; the others are looked for string by string.
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = None
        if text is not None and not any(secret in text for secret in secrets):
            return value
    return _scrub(value, secrets)


@functools.lru_cache(maxsize=64)
def _ordered(secrets: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """The secrets worth masking, longest first, and whether JSON writes each as it is (a
    client's secrets are the same tuple for every request: worked out once)."""
    kept = tuple(sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True))
    return kept, all(_plain(secret) for secret in kept)


def _plain(secret: str) -> bool:
    """True when JSON writes ``secret`` as it is (no quote, backslash or control character)."""
    return json.dumps(secret, ensure_ascii=False)[1:-1] == secret


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, secrets) for v in value]
    return value
