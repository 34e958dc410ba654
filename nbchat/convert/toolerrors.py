"""The errors of tools: a definition that cannot become a tool, and arguments that do not fit it.

Kept apart so the modules that build a tool (signature, schema) and the Tool itself share them.
"""

from __future__ import annotations

from typing import Any

from ..protocol.exceptions import NbchatError

__all__ = ["ToolArgumentsError", "ToolDefinitionError"]


class ToolDefinitionError(NbchatError, TypeError):
    """A function or class cannot become a tool (no type hint, a lambda, ``*args``, …)."""


class ToolArgumentsError(NbchatError, ValueError):
    """The arguments the model sent for a tool are not valid JSON or fail validation."""

    def __init__(
        self, message: str, *, tool_name: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.tool_name = tool_name
        self.errors = errors or []
