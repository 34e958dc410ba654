"""Each tool of an MCP server as an nbchat ``Tool``: a name valid for the API and unique
(``time__get_current_time``), the server's description and schema, and a call through the
server's session whose result becomes the tool message (``results.py``).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterable
from typing import Any

from ..convert.schematool import SchemaTool
from ..convert.toolerrors import ToolDefinitionError
from .results import tool_output
from .server import Server

__all__ = ["MCPToolNote", "server_tools", "tool_name"]

_BAD = re.compile(r"[^a-zA-Z0-9_-]")
_MAX = 64


class MCPToolNote(UserWarning):
    """A tool of an MCP server that is left out: its schema is one the API cannot take."""


def tool_name(server: str, tool: str, taken: Iterable[str] = ()) -> str:
    """``server__tool`` made valid for the API (``^[a-zA-Z0-9_-]{1,64}$``) and unlike ``taken``."""
    name = f"{_BAD.sub('_', server)}__{_BAD.sub('_', tool)}"
    if len(name) > _MAX:
        digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:8]
        name = f"{name[: _MAX - 9]}_{digest}"
    used = set(taken)
    base, number = name, 2
    while name in used:
        suffix = f"_{number}"
        name = base[: _MAX - len(suffix)] + suffix
        number += 1
    return name


def server_tools(server: Server, taken: Iterable[str] = ()) -> list[SchemaTool]:
    """The server's tools as nbchat Tools (it starts if need be); a tool whose schema the API
    cannot take is left out with an MCPToolNote naming it."""
    names = set(taken)
    made: list[SchemaTool] = []
    for listed in server.tools():
        name = tool_name(server.name, listed.name, names)
        try:
            made.append(
                SchemaTool(
                    _caller(server, listed.name),
                    name=name,
                    parameters=listed.input_schema,
                    description=listed.description or listed.title or "",
                )
            )
        except ToolDefinitionError as exc:
            warnings.warn(
                f"MCP server {server.name!r}: tool {listed.name!r} is left out: {exc}",
                MCPToolNote,
                stacklevel=2,
            )
            continue
        names.add(name)
    return made


def _caller(server: Server, tool: str) -> Any:
    def call(arguments: dict[str, Any]) -> Any:
        return tool_output(server.call(tool, arguments))

    call.__name__ = tool
    call.__qualname__ = f"{server.name}.{tool}"
    call.mcp_server = server.name  # type: ignore[attr-defined]
    return call
