from __future__ import annotations

from nbchat.convert import tools
from nbchat.convert.toolerrors import ToolArgumentsError, ToolDefinitionError
from nbchat.protocol.exceptions import NbchatError


def test_tool_errors_are_nbchat_errors_of_the_matching_builtin_kind() -> None:
    assert issubclass(ToolDefinitionError, NbchatError)
    assert issubclass(ToolDefinitionError, TypeError)
    assert issubclass(ToolArgumentsError, NbchatError)
    assert issubclass(ToolArgumentsError, ValueError)
    # The Tool module offers the same classes, not copies.
    assert tools.ToolDefinitionError is ToolDefinitionError
    assert tools.ToolArgumentsError is ToolArgumentsError


def test_arguments_error_carries_the_tool_and_the_details() -> None:
    error = ToolArgumentsError("bad", tool_name="f", errors=[{"loc": ("x",)}])
    assert (error.message, error.tool_name, error.errors) == ("bad", "f", [{"loc": ("x",)}])
    assert ToolArgumentsError("bad", tool_name="f").errors == []
