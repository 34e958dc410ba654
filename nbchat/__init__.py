"""nbchat: chat models in Jupyter, for any OpenAI-compatible server.

``%load_ext nbchat`` registers the ``%%chat`` magics; ``nbchat.Client`` is the HTTP client and
``nbchat.Chat`` a conversation. Names load on first use so that loading the extension is quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# Public name -> the private module that defines it.
_EXPORTS = {
    "Client": "transport.client",
    "AsyncClient": "transport.client",
    "DEFAULT_BASE_URL": "transport.client",
    "ChatStream": "transport.streaming",
    "AsyncChatStream": "transport.streaming",
    "ChatCompletion": "protocol.types",
    "ChatCompletionChunk": "protocol.types",
    "ChatCompletionRequest": "protocol.types",
    "Chat": "conversation.chat",
    "ChatListener": "protocol.listener",
    "Reply": "conversation.chat",
    "session": "conversation.sessions",
    "log": "store.log",
    "tool_log": "store.log",
    "tool": "convert.tools",
    "as_tool": "convert.tools",
    "Tool": "convert.tools",
    "Prompt": "conversation.prompt",
    "ToolArgumentsError": "convert.toolerrors",
    "ToolDefinitionError": "convert.toolerrors",
    "ToolPolicy": "conversation.toolrun",
    "ToolResult": "conversation.toolrun",
    "ToolRunInterrupted": "conversation.toolrun",
    "run_tool_calls": "conversation.toolrun",
    "Decision": "conversation.toolrun",
    "ToolOutput": "convert.tooloutput",
    "mcp": "mcpclient.registry",
    "MCPConfigError": "mcpclient.errors",
    "MCPServerError": "mcpclient.errors",
    "MCPTimeoutError": "mcpclient.errors",
    "MCPToolError": "mcpclient.errors",
    "arun_tool_calls": "conversation.toolrun",
    "DataBlock": "convert.data",
    "DataError": "convert.data",
    "data_block": "convert.data",
    "AudioError": "convert.audio",
    "audio_part": "convert.audio",
    "FileInputError": "convert.files",
    "file_part": "convert.files",
    "StoredCompletionsUnsupportedError": "transport.stored",
    "UnsupportedFeatureError": "transport.profiles",
    "ImageError": "convert.images",
    "ImagePart": "convert.images",
    "estimate_image_tokens": "convert.images",
    "image_part": "convert.images",
    "LogprobsError": "render.logprobs",
    "logprobs_frame": "render.logprobs",
    "logprobs_html": "render.logprobs",
    "logprobs_summary": "render.logprobs",
    "StructuredOutputError": "convert.parsing",
    "parse_reply": "convert.parsing",
    "response_format_for": "convert.formats",
    "to_frame": "convert.frames",
    "panel": "notebook.panel",
    "ChatPanel": "notebook.panel",
    "explore": "notebook.explorer",
    "NbchatError": "protocol.exceptions",
    "RequestValidationError": "protocol.exceptions",
    "BudgetExceededError": "protocol.exceptions",
    "ReplayMissError": "protocol.exceptions",
    "CassetteError": "store.replay",
    "APIError": "protocol.exceptions",
    "APIConnectionError": "protocol.exceptions",
    "APITimeoutError": "protocol.exceptions",
    "APIResponseValidationError": "protocol.exceptions",
    "IncompleteStreamError": "protocol.exceptions",
    "ResponseDecodingError": "protocol.exceptions",
    "ResponseTooLargeError": "protocol.exceptions",
    "APIStatusError": "protocol.exceptions",
    "BadRequestError": "protocol.exceptions",
    "AuthenticationError": "protocol.exceptions",
    "PermissionDeniedError": "protocol.exceptions",
    "NotFoundError": "protocol.exceptions",
    "ConflictError": "protocol.exceptions",
    "UnprocessableEntityError": "protocol.exceptions",
    "RateLimitError": "protocol.exceptions",
    "InternalServerError": "protocol.exceptions",
    "ServiceUnavailableError": "protocol.exceptions",
    "map": "notebook.mapview",
    "amap": "notebook.mapview",
    "compare": "notebook.compareview",
    "batch_file": "conversation.batchjob",
    "read_batch_output": "conversation.batchjob",
}

# Names that are not in the table: the version, the last reply, the extension's entry points.
_OWN = ("__version__", "last", "load_ipython_extension", "unload_ipython_extension")

# Derived once from the table: a name is public exactly when it is exported.
__all__ = sorted([*_EXPORTS, *_OWN])


def __getattr__(name: str) -> Any:
    if name == "last":
        # The last Reply any conversation produced (None before the first); it reads as its
        # final ChatCompletion too (``nbchat.last.usage``, ``.choices``).
        from .conversation import chat

        return chat.last_completion
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbchat' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nbchat.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | {"last"})


def _agent_kit(**options: Any) -> Any:
    """``Chat.send(agent=True)``'s tools and approval, from the notebook layer (see agenthook)."""
    from .notebook.agent import kit

    return kit(**options)


def _install_agent_kit() -> None:
    from .conversation import agenthook

    agenthook.install(_agent_kit)


_install_agent_kit()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbchat``: register the magics and the ``Chat`` settings."""
    from .notebook.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .notebook.extension import unload

    unload(ipython)


if TYPE_CHECKING:
    from .conversation.batchjob import batch_file, read_batch_output
    from .conversation.chat import Chat, Reply
    from .conversation.prompt import Prompt
    from .conversation.sessions import session
    from .conversation.toolrun import (
        Decision,
        ToolPolicy,
        ToolResult,
        ToolRunInterrupted,
        arun_tool_calls,
        run_tool_calls,
    )
    from .convert.audio import AudioError, audio_part
    from .convert.data import DataBlock, DataError, data_block
    from .convert.files import FileInputError, file_part
    from .convert.formats import response_format_for
    from .convert.frames import to_frame
    from .convert.images import ImageError, ImagePart, estimate_image_tokens, image_part
    from .convert.parsing import StructuredOutputError, parse_reply
    from .convert.toolerrors import ToolArgumentsError, ToolDefinitionError
    from .convert.tooloutput import ToolOutput
    from .convert.tools import Tool, as_tool, tool
    from .mcpclient.errors import MCPConfigError, MCPServerError, MCPTimeoutError, MCPToolError
    from .mcpclient.registry import mcp
    from .notebook.compareview import compare
    from .notebook.explorer import explore
    from .notebook.mapview import amap, map
    from .notebook.panel import ChatPanel, panel
    from .protocol.exceptions import (
        APIConnectionError,
        APIError,
        APIResponseValidationError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        BudgetExceededError,
        ConflictError,
        IncompleteStreamError,
        InternalServerError,
        NbchatError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ReplayMissError,
        RequestValidationError,
        ResponseDecodingError,
        ResponseTooLargeError,
        ServiceUnavailableError,
        UnprocessableEntityError,
    )
    from .protocol.listener import ChatListener
    from .protocol.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
    from .render.logprobs import LogprobsError, logprobs_frame, logprobs_html, logprobs_summary
    from .store.log import log, tool_log
    from .store.replay import CassetteError
    from .transport.client import DEFAULT_BASE_URL, AsyncClient, Client
    from .transport.profiles import UnsupportedFeatureError
    from .transport.stored import StoredCompletionsUnsupportedError
    from .transport.streaming import AsyncChatStream, ChatStream
