"""A reasoning model's thinking, apart from its answer: ``reasoning_content``/``reasoning`` fields
or a leading ``<think>…</think>`` block in the content (DeepSeek-R1, Qwen3 on any server).

The thinking is shown, counted and kept on the Reply, but never sent back in the next request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REASONING_FIELDS", "reasoning_of", "split_think"]

#: Message (and delta) fields in which servers send the model's reasoning.
REASONING_FIELDS = ("reasoning_content", "reasoning")

_OPEN = re.compile(r"\A\s*<think>", re.IGNORECASE)
_CLOSE = re.compile(r"</think>[ \t]*\n?", re.IGNORECASE)


def split_think(text: str | None) -> tuple[str | None, str | None]:
    """``(thinking, answer)`` of a content that may start with a ``<think>`` block.

    An unclosed block (a stream still thinking, or cut short) is all thinking and no answer
    yet. Text without a leading block is returned as it is, with no thinking.
    """
    if not text:
        return None, text
    opened = _OPEN.match(text)
    if opened is None:
        return None, text
    rest = text[opened.end() :]
    closed = _CLOSE.search(rest)
    if closed is None:
        return rest.strip("\n"), ""
    return rest[: closed.start()].strip("\n"), rest[closed.end() :].lstrip("\n")


def reasoning_of(message: Any) -> str | None:
    """The reasoning of an assistant message (a ChatCompletionMessage or a delta, or a dict)."""
    if isinstance(message, Mapping):
        fields: Mapping[str, Any] = message
        content = message.get("content")
    else:
        fields = getattr(message, "__pydantic_extra__", None) or {}
        content = getattr(message, "content", None)
    for name in REASONING_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
    thinking, _ = split_think(content if isinstance(content, str) else None)
    return thinking or None
