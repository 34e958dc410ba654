"""The hooks a front end implements to watch a reply form: request, chunks, completion, tools.

The conversation calls them; renderers (the live view, the panel) override the ones they need.
"""

from __future__ import annotations

from typing import Any

from .types import ChatCompletion, ChatCompletionChunk

__all__ = ["ChatListener"]


class ChatListener:
    """Hooks a renderer can override to watch a reply form. Every hook is optional."""

    def on_request(self, body: dict[str, Any]) -> None:
        """A request is about to be sent (the body as sent, without credentials)."""

    def on_chunk(self, chunk: ChatCompletionChunk, stream: Any) -> None:
        """A streamed chunk arrived; ``stream.completion`` is the snapshot so far."""

    def on_completion(self, completion: ChatCompletion) -> None:
        """One request finished (a tool loop makes several)."""

    def on_tool_results(self, results: list[Any]) -> None:
        """Tool calls of the last completion ran; these are their results."""
