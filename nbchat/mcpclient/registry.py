"""The kernel's MCP servers: read from the configuration file in use, each started on first use
and kept, all closed when the process exits (so no server process is ever left running).

``mcp("time")`` is ``nbchat.mcp``: the tools of the servers named. Only servers the user
configured and named are ever started.
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path
from typing import Any

from .config import ServerEntry, config_path, load_config
from .errors import MCPConfigError
from .loop import shared_loop
from .server import Server

__all__ = ["close_all", "entries", "mcp", "resolve_names", "restart", "server", "servers"]

_lock = threading.RLock()
_servers: dict[tuple[Path, str], Server] = {}
_configs: dict[Path, tuple[float, dict[str, ServerEntry]]] = {}


def entries(path: str | Path | None = None) -> dict[str, ServerEntry]:
    """The configured servers (re-read when the file changed)."""
    path = _path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = -1
    with _lock:
        cached = _configs.get(path)
        if cached is not None and cached[0] == stamp:
            return dict(cached[1])
        found = load_config(path)
        _configs[path] = (stamp, found)
        return dict(found)


def resolve_names(names: list[str] | tuple[str, ...], path: str | Path | None = None) -> list[str]:
    """The server names asked for, ``all`` being every enabled one; an unknown or disabled
    name is an MCPConfigError naming it and the file."""
    path = _path(path)
    known = entries(path)
    chosen: list[str] = []
    for name in names:
        if name == "all":
            picked = [n for n, entry in known.items() if not entry.disabled]
            if not picked:
                raise MCPConfigError(f"{path} has no enabled MCP server")
        elif name not in known:
            listed = ", ".join(known) or "none"
            raise MCPConfigError(f"no MCP server {name!r} in {path} (it names: {listed})")
        elif known[name].disabled:
            raise MCPConfigError(f'MCP server {name!r} is "disabled" in {path}')
        else:
            picked = [name]
        chosen += [n for n in picked if n not in chosen]
    return chosen


def server(name: str, path: str | Path | None = None) -> Server:
    """The Server for ``name`` (not started yet if it was never used)."""
    path = _path(path)
    entry = entries(path).get(name)
    if entry is None:
        resolve_names([name], path)  # raises the one-line error
        raise AssertionError(name)
    with _lock:
        current = _servers.get((path, name))
        if current is not None and current.entry != entry:
            # The file changed: the server starts again with its new entry.
            current.close()
            current = None
        if current is None:
            current = _servers[(path, name)] = Server(entry)
        return current


def servers(path: str | Path | None = None) -> list[Server]:
    """A Server for every configured name, started or not (for ``%chat mcp``)."""
    path = _path(path)
    return [server(name, path) for name in entries(path)]


def mcp(*names: str, config: str | Path | None = None) -> list[Any]:
    """The tools of the MCP servers ``names`` (``"all"``: every enabled one) as nbchat Tools,
    for ``chat.send(..., tools=nbchat.mcp("time"))``; each server starts on first use.

    ``config`` is the configuration file (default: ``%config Chat.mcp_config``, else
    ``$NBCHAT_MCP_CONFIG``, else ``mcp.json`` in the user config directory).
    """
    from .tools import server_tools

    if not names:
        raise MCPConfigError('name the MCP servers: nbchat.mcp("time"), or nbchat.mcp("all")')
    path = _path(config)
    tools: list[Any] = []
    for name in resolve_names(list(names), path):
        tools += server_tools(server(name, path), [tool.name for tool in tools])
    return tools


def _path(path: str | Path | None) -> Path:
    return Path(path).expanduser() if path is not None else config_path()


def restart(name: str, path: str | Path | None = None) -> Server:
    found = server(name, path)
    found.restart()
    return found


@atexit.register
def close_all() -> None:
    """Close every server and stop the MCP loop; bounded (each close waits at most 10 s)."""
    with _lock:
        running = list(_servers.values())
        _servers.clear()
    for item in running:
        try:
            item.close()
        except Exception:
            continue
    shared_loop().stop()
