"""The errors of MCP servers: a configuration nbchat cannot use, a server that fails, a tool
that reports an error. Their messages never hold a header or environment value.
"""

from __future__ import annotations

from ..protocol.exceptions import NbchatError

__all__ = ["MCPConfigError", "MCPServerError", "MCPTimeoutError", "MCPToolError"]


class MCPConfigError(NbchatError, ValueError):
    """The MCP configuration file, or one server's entry in it, cannot be used."""


class MCPServerError(NbchatError):
    """An MCP server failed to start, stopped, or broke off a call; ``server`` names it."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


class MCPTimeoutError(MCPServerError):
    """An MCP server did not answer (start or call) within its time-out."""


class MCPToolError(NbchatError):
    """An MCP tool answered with ``isError``: the model is told the tool's own message."""
