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
    """

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    notes: tuple[str, ...] = ()
    #: Per-call options that are not part of the body (timeout, extra headers).
    options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def key(self) -> str:
        """A hash of the canonical body: the same request, streamed or not, has the same key."""
        canonical = {k: v for k, v in self.body.items() if k not in ("stream", "stream_options")}
        text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "headers": dict(self.headers),
            "body": json.loads(json.dumps(self.body)),
        }
