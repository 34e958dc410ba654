"""PreparedRequest: the exact HTTP request a send puts on the wire, built before it is sent.

Dry runs, ``--raw``, the cache key and the panel all read this one object; credentials in its
headers are masked, so it can be shown, logged or stored as it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..protocol.exceptions import MASK

__all__ = ["MASK", "PreparedRequest"]


@dataclass(frozen=True)
class PreparedRequest:
    """Method, URL, headers (credentials masked) and the JSON body, exactly as they will be sent.

    ``notes`` say how the request was fitted to the server (a field dropped, a format swapped).
    ``endpoint`` names who answers (``Client.endpoint``): part of the key, so that one server's
    reply is never served as another's.
    """

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    notes: tuple[str, ...] = ()
    endpoint: str = ""
    #: Per-call options that are not part of the body (timeout, extra headers).
    options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def key(self) -> str:
        """A hash of the endpoint and the canonical body: the same request to the same server,
        streamed or not, has the same key (the cache's and a cassette's)."""
        known = self.__dict__.get("_key")
        if known is not None:
            return known
        canonical = {k: v for k, v in self.body.items() if k not in ("stream", "stream_options")}
        if self.endpoint:
            canonical = {"endpoint": self.endpoint, "body": canonical}
        text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        key = hashlib.sha256(text.encode()).hexdigest()
        # Frozen, so the key never changes: worked out once (a map reads it several times).
        object.__setattr__(self, "_key", key)
        return key

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "headers": dict(self.headers),
            "body": json.loads(json.dumps(self.body)),
        }
