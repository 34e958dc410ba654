"""The defaults of every ``%%chat`` cell, as traitlets settings.

``%config Chat.model = "gpt-4.1"`` or ``c.Chat.model = ...`` in an IPython profile; each cell
may override them. The API key is never a setting: it is read from the environment.
"""

from __future__ import annotations

from typing import Any

from traitlets import (
    Bool,
    CFloat,
    CInt,
    Dict,
    Enum,
    Float,
    Int,
    TraitError,
    Unicode,
    observe,
    validate,
)
from traitlets.config import Configurable

from ..transport.kinds import KINDS

__all__ = ["Chat"]


class Chat(Configurable):
    """Defaults for %%chat cells (shown by ``%chat config``)."""

    model = Unicode("", help="Model to use; empty means the server's default.").tag(config=True)
    base_url = Unicode(
        "", help="Server URL (…/v1). Empty: OPENAI_BASE_URL, else OpenAI or the local model."
    ).tag(config=True)
    server = Enum(
        ["auto", *KINDS],
        default_value="auto",
        help="The kind of server at base_url; auto: detected from its URL, /models and replies.",
    ).tag(config=True)
    api_key_env = Unicode(
        "OPENAI_API_KEY", help="Name of the environment variable that holds the API key."
    ).tag(config=True)
    system = Unicode("", help="System prompt for new conversations.").tag(config=True)
    temperature = CFloat(None, allow_none=True, help="Sampling temperature (0–2).").tag(config=True)
    max_tokens = CInt(None, allow_none=True, help="Maximum tokens in a reply.").tag(config=True)
    stream = Bool(True, help="Stream replies as they are generated.").tag(config=True)
    request = Dict(help="Other request fields sent with every request, e.g. {'seed': 1}.").tag(
        config=True
    )
    display = Enum(
        ["auto", "live", "final", "text"],
        default_value="auto",
        help="live: update the output in place while streaming; final: show only the "
        "finished reply (for frontends that cannot update outputs); text: plain text on "
        "stdout; auto: live in Jupyter, text in terminal IPython.",
    ).tag(config=True)
    updates_per_second = Float(20.0, help="Most live updates of the output per second.").tag(
        config=True
    )
    timeout = Float(600.0, help="Seconds to wait for a response.").tag(config=True)
    max_retries = Int(2, help="Retries for rate limits, overloads and lost connections.").tag(
        config=True
    )
    max_history_tokens = CInt(
        None,
        allow_none=True,
        help="Keep each request's messages within about this many tokens by leaving out the "
        "oldest exchanges (never the system prompt or the latest exchange); None: send all.",
    ).tag(config=True)
    max_tool_rounds = Int(8, help="Most rounds of tool calls in one cell.").tag(config=True)
    confirm_tools = Bool(False, help="Ask before running every tool the model calls.").tag(
        config=True
    )
    interpolate = Bool(True, help="Replace {expression} in prompts with its value.").tag(
        config=True
    )
    store = Unicode(
        "",
        help="Where every exchange is kept (SQLite): a file path, 'off', or empty for "
        "$NBCHAT_STORE, else the user data directory.",
    ).tag(config=True)
    cache = Bool(
        False, help="Answer a request sent before from the store (--cache/--no-cache per cell)."
    ).tag(config=True)
    budget = CFloat(
        None,
        allow_none=True,
        help="US dollars that may be spent across the store; a request that could pass it is "
        "refused before sending. None: $NBCHAT_BUDGET, else no limit.",
    ).tag(config=True)

    mcp_config = Unicode(
        "",
        help="The MCP configuration file (an mcpServers JSON object); empty for "
        "$NBCHAT_MCP_CONFIG, else mcp.json in the user config directory.",
    ).tag(config=True)
    mcp_timeout = Float(
        60.0, help="Seconds an MCP tool call may take unless its server's entry sets timeout."
    ).tag(config=True)

    @validate("mcp_timeout")
    def _timeout_in_seconds(self, proposal: Any) -> Any:
        value = proposal["value"]
        if not 0 < value < float("inf"):
            raise TraitError(
                f"Chat.mcp_timeout must be a positive number of seconds, not {value!r}"
            )
        return value

    @validate("budget")
    def _budget_in_dollars(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and not value >= 0:
            raise TraitError(f"Chat.budget must be 0 or more US dollars, not {value!r}")
        return value

    @observe("store", "cache", "budget")
    def _store_settings_changed(self, change: Any) -> None:
        from .storecmd import apply_settings

        apply_settings(self)
