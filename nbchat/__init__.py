"""nbchat: chat models in Jupyter, for any OpenAI-compatible server.

``%load_ext nbchat`` registers the ``%%chat`` magics; ``nbchat.Client`` is the HTTP client and
``nbchat.Chat`` a conversation. Names load on first use so that loading the extension is quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the private module that defines it.
_EXPORTS = {
    "Client": "_client",
    "AsyncClient": "_client",
    "DEFAULT_BASE_URL": "_client",
    "ChatStream": "_streaming",
    "AsyncChatStream": "_streaming",
    "ChatCompletion": "_types",
    "ChatCompletionChunk": "_types",
    "ChatCompletionRequest": "_types",
    "Chat": "_chat",
    "ChatListener": "_chat",
    "Reply": "_chat",
    "session": "_sessions",
    "tool": "_tools",
    "as_tool": "_tools",
    "Tool": "_tools",
    "ToolArgumentsError": "_tools",
    "ToolDefinitionError": "_tools",
    "ToolPolicy": "_toolrun",
    "ToolResult": "_toolrun",
    "ToolRunInterrupted": "_toolrun",
    "run_tool_calls": "_toolrun",
    "arun_tool_calls": "_toolrun",
    "DataBlock": "_data",
    "DataError": "_data",
    "data_block": "_data",
    "ImageError": "_images",
    "ImagePart": "_images",
    "estimate_image_tokens": "_images",
    "image_part": "_images",
    "LogprobsError": "_logprobs",
    "logprobs_frame": "_logprobs",
    "logprobs_html": "_logprobs",
    "logprobs_summary": "_logprobs",
    "StructuredOutputError": "_structured",
    "parse_reply": "_structured",
    "response_format_for": "_structured",
    "to_frame": "_structured",
    "panel": "_panel",
    "ChatPanel": "_panel",
    "explore": "_explorer",
    "NbchatError": "_exceptions",
    "RequestValidationError": "_exceptions",
    "APIError": "_exceptions",
    "APIConnectionError": "_exceptions",
    "APITimeoutError": "_exceptions",
    "APIResponseValidationError": "_exceptions",
    "IncompleteStreamError": "_exceptions",
    "APIStatusError": "_exceptions",
    "BadRequestError": "_exceptions",
    "AuthenticationError": "_exceptions",
    "PermissionDeniedError": "_exceptions",
    "NotFoundError": "_exceptions",
    "ConflictError": "_exceptions",
    "UnprocessableEntityError": "_exceptions",
    "RateLimitError": "_exceptions",
    "InternalServerError": "_exceptions",
    "ServiceUnavailableError": "_exceptions",
}

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Chat",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatListener",
    "ChatPanel",
    "ChatStream",
    "Client",
    "ConflictError",
    "DataBlock",
    "DataError",
    "ImageError",
    "ImagePart",
    "IncompleteStreamError",
    "InternalServerError",
    "LogprobsError",
    "NbchatError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Reply",
    "RequestValidationError",
    "ServiceUnavailableError",
    "StructuredOutputError",
    "Tool",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolPolicy",
    "ToolResult",
    "ToolRunInterrupted",
    "UnprocessableEntityError",
    "__version__",
    "arun_tool_calls",
    "as_tool",
    "data_block",
    "estimate_image_tokens",
    "explore",
    "image_part",
    "last",
    "load_ipython_extension",
    "logprobs_frame",
    "logprobs_html",
    "logprobs_summary",
    "panel",
    "parse_reply",
    "response_format_for",
    "run_tool_calls",
    "session",
    "to_frame",
    "tool",
    "unload_ipython_extension",
]

#: The last ChatCompletion any conversation received (None before the first).
last: Any = None


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbchat' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nbchat.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbchat``: register the magics and the ``Chat`` settings."""
    from ._extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from ._extension import unload

    unload(ipython)


if TYPE_CHECKING:
    from ._chat import Chat, ChatListener, Reply
    from ._client import DEFAULT_BASE_URL, AsyncClient, Client
    from ._data import DataBlock, DataError, data_block
    from ._exceptions import (
        APIConnectionError,
        APIError,
        APIResponseValidationError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ConflictError,
        IncompleteStreamError,
        InternalServerError,
        NbchatError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        RequestValidationError,
        ServiceUnavailableError,
        UnprocessableEntityError,
    )
    from ._explorer import explore
    from ._images import ImageError, ImagePart, estimate_image_tokens, image_part
    from ._logprobs import LogprobsError, logprobs_frame, logprobs_html, logprobs_summary
    from ._panel import ChatPanel, panel
    from ._sessions import session
    from ._streaming import AsyncChatStream, ChatStream
    from ._structured import StructuredOutputError, parse_reply, response_format_for, to_frame
    from ._toolrun import (
        ToolPolicy,
        ToolResult,
        ToolRunInterrupted,
        arun_tool_calls,
        run_tool_calls,
    )
    from ._tools import Tool, ToolArgumentsError, ToolDefinitionError, as_tool, tool
    from ._types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
