"""The footer's words on where a reply came from and what it cost.

"$0.0012" or "price unknown" for a reply a server sent; "cached: reply of 2025-05-12 10:03 ·
nothing billed" for one the response cache or a cassette gave back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..store.prices import dollars

__all__ = ["footer_parts"]


def footer_parts(reply: Any) -> list[str]:
    """Footer parts from ``reply.cached``, ``reply.origin`` and ``reply.cost``."""
    if not getattr(reply, "cached", False):
        return [dollars(getattr(reply, "cost", None))]
    origin = getattr(reply, "origin", None)
    how = "replayed from a cassette" if getattr(origin, "source", "") == "replay" else "cached"
    when = getattr(origin, "time", None)
    parts = [f"{how}: reply of {_when(when)}" if isinstance(when, datetime) else how]
    then = getattr(origin, "cost", None)
    parts.append("nothing billed" + (f" (it cost {dollars(then)})" if then else ""))
    return parts


def _when(moment: datetime) -> str:
    # The reader's clock: local time, to the minute.
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
