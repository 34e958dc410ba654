"""Keeping a request within ``Chat.max_history_tokens``: the oldest exchanges are left out of
what is sent (they stay in the conversation), never the system prompt or the latest exchange.

An exchange is a user message and all that answered it — assistant messages, tool calls and
their results — so a tool call is never sent without its results, nor a result without its call.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..convert.tokenbudget import message_tokens

__all__ = ["Trim", "fit_history", "trim_history"]

_INSTRUCTIONS = ("system", "developer")


@dataclass(frozen=True)
class Trim:
    """What trimming kept and left out, with the estimated tokens before and after."""

    messages: list[dict[str, Any]]
    dropped: list[dict[str, Any]] = field(default_factory=list)
    exchanges: int = 0
    tokens_before: int = 0
    tokens_after: int = 0
    limit: int | None = None

    @property
    def note(self) -> str | None:
        """The visible note for a reply or a dry run; None when nothing needed to change."""
        if self.limit is None or self.tokens_before <= self.limit:
            return None
        parts = []
        if self.dropped:
            what = (
                "the oldest exchange"
                if self.exchanges == 1
                else f"the {self.exchanges} oldest exchanges"
            )
            parts.append(
                f"Left out {what} ({len(self.dropped)} messages, "
                f"~{self.tokens_before - self.tokens_after:,} tokens) to keep the request within "
                f"max_history_tokens ({self.limit:,}); the conversation keeps them."
            )
        if self.tokens_after > self.limit:
            parts.append(
                f"The request is still ~{self.tokens_after:,} tokens, over max_history_tokens "
                f"({self.limit:,}): the system prompt and the latest exchange are never left out."
            )
        return " ".join(parts)


def trim_history(messages: Sequence[dict[str, Any]], max_tokens: int | None) -> Trim:
    """Leave out the oldest exchanges until the messages' estimated tokens fit ``max_tokens``.

    None or 0 means no limit. Leading system/developer messages and the last exchange are
    always kept; system messages inside the history are kept too.
    """
    messages = list(messages)
    sizes = [message_tokens(message) for message in messages]
    total = sum(sizes)
    if not max_tokens or total <= max_tokens:
        return Trim(messages, tokens_before=total, tokens_after=total, limit=max_tokens or None)
    start = 0
    while start < len(messages) and messages[start].get("role") in _INSTRUCTIONS:
        start += 1
    # Exchanges start at each user message; anything before the first one is an exchange too.
    bounds = [i for i in range(start, len(messages)) if messages[i].get("role") == "user"]
    if not bounds or bounds[0] != start:
        bounds.insert(0, start)
    dropped: set[int] = set()
    kept_tokens = total
    exchanges = 0
    for first, end in itertools.pairwise(bounds):
        if kept_tokens <= max_tokens:
            break
        exchanges += 1
        for i in range(first, end):
            if messages[i].get("role") not in _INSTRUCTIONS:
                dropped.add(i)
                kept_tokens -= sizes[i]
    return Trim(
        [message for i, message in enumerate(messages) if i not in dropped],
        [message for i, message in enumerate(messages) if i in dropped],
        exchanges,
        total,
        kept_tokens,
        max_tokens,
    )


def fit_history(
    messages: list[dict[str, Any]], max_tokens: int | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """``(messages to send, notes)``: :func:`trim_history` in the form a request builder takes."""
    if not max_tokens:
        # No limit: nothing to count (every request of nbchat.map passes here).
        return list(messages), []
    trim = trim_history(messages, max_tokens)
    note = trim.note
    return trim.messages, [note] if note else []
