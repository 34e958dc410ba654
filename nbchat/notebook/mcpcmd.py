"""``%chat mcp`` (the configured MCP servers, their state and tools), ``%chat mcp NAME`` (one
server's tools with their parameters), ``%chat mcp restart NAME``; ``--mcp NAME`` of a cell.

Small on purpose, since the magic imports it when the extension loads. What a server says of
its tools is outside text: rendered by the one renderer; our table escapes everything else.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

__all__ = ["apply_settings", "cell_tools", "run", "wants"]


def wants(words: list[str]) -> bool:
    """``%chat mcp``, ``%chat mcp NAME``, ``%chat mcp restart NAME``: not a prompt."""
    if not words or words[0] != "mcp":
        return False
    return len(words) <= 2 or (len(words) == 3 and words[1] == "restart")


def apply_settings(settings: Any) -> None:
    """Pass ``Chat.mcp_config`` and ``Chat.mcp_timeout`` on to the MCP layer."""
    from ..mcpclient.config import configure

    configure(config=settings.mcp_config, timeout=settings.mcp_timeout)


def cell_tools(settings: Any, names: list[str] | None) -> list[Any]:
    """The tools of the servers a cell names with ``--mcp`` (each started on first use)."""
    if not names:
        return []
    apply_settings(settings)
    from ..mcpclient.errors import MCPConfigError, MCPServerError
    from ..mcpclient.registry import mcp

    try:
        return mcp(*names)
    except ModuleNotFoundError as exc:
        raise UsageError(_missing(exc)) from None
    except (MCPConfigError, MCPServerError) as exc:
        raise UsageError(f"--mcp: {exc}") from None


def run(shell: Any, settings: Any, words: list[str]) -> None:
    from IPython.display import display

    apply_settings(settings)
    from ..mcpclient.errors import MCPConfigError, MCPServerError

    try:
        if len(words) == 1:
            bundle = _servers_bundle()
        elif words[1] == "restart":
            bundle = _server_bundle(words[2], restart=True)
        else:
            bundle = _server_bundle(words[1])
    except ModuleNotFoundError as exc:
        raise UsageError(_missing(exc)) from None
    except (MCPConfigError, MCPServerError) as exc:
        raise UsageError(str(exc)) from None
    display(bundle, raw=True)


def _missing(exc: ModuleNotFoundError) -> str:
    if (exc.name or "").split(".")[0] in ("mcp", "mcp_types"):
        return "MCP servers need the mcp extra: pip install 'nbchat[mcp]'"
    return str(exc)


def _servers_bundle() -> dict[str, str]:
    from ..mcpclient.config import config_path
    from ..mcpclient.registry import entries, server
    from ..render.markdown import escape, html_bundle, inline_code

    path = config_path()
    found = entries(path)
    title = f"MCP servers in {path}"
    if not found:
        return html_bundle(f"<strong>{escape(title)}</strong>: none", f"{title}: none")
    rows_html, rows_text = [], [title]
    for name, entry in found.items():
        state = "disabled" if entry.disabled else server(name, path).state
        tools = ""
        tools_text = ""
        if state == "running":
            named = _named(name, server(name, path).tools())
            tools = "<br>".join(_tool_line_html(called, tool) for called, tool in named)
            tools_text = "".join(f"\n    {_tool_line_text(called, tool)}" for called, tool in named)
        elif not entry.disabled:
            tools = escape(f"%chat mcp {name} starts it and lists its tools")
        rows_html.append(
            f"<tr><td>{inline_code(name)}</td><td>{escape(entry.describe())}</td>"
            f"<td>{escape(state)}</td><td>{tools}</td></tr>"
        )
        rows_text.append(f"  {name} [{state}] {entry.describe()}{tools_text}")
    head = "".join(f"<th style='text-align:left'>{h}</th>" for h in ("server", "how", "state"))
    table = (
        f"<strong>{escape(title)}</strong><table><tr>{head}"
        f"<th style='text-align:left'>tools</th></tr>{''.join(rows_html)}</table>"
    )
    return html_bundle(table, "\n".join(rows_text))


def _server_bundle(name: str, *, restart: bool = False) -> dict[str, str]:
    from ..mcpclient.registry import resolve_names, server
    from ..render.markdown import escape, html_bundle, inline_code, render_inline

    resolve_names([name])
    found = server(name)
    listing = found.restart() if restart else found.tools()
    what = "restarted" if restart else found.state
    title = f"MCP server {name} ({what}): {len(listing)} tools"
    parts = [f"<strong>{escape(title)}</strong>"]
    text = [title]
    for called, tool in _named(name, listing):
        parts.append(
            f"<div style='margin-top:0.5em'>{inline_code(called)} — "
            f"{render_inline(_first_line(tool.description))}</div>"
        )
        text.append(f"  {called}: {_first_line(tool.description)}")
        rows = []
        for param, spec, required in _parameters(tool.input_schema):
            kind = _kind(spec)
            described = _first_line(spec.get("description") if isinstance(spec, dict) else "")
            rows.append(
                f"<tr><td>{inline_code(param)}</td><td>{escape(kind)}</td>"
                f"<td>{'required' if required else 'optional'}</td>"
                f"<td>{render_inline(described)}</td></tr>"
            )
            text.append(
                f"      {param} ({kind}, {'required' if required else 'optional'}) {described}"
            )
        if rows:
            parts.append(f"<table style='margin-left:1.5em'>{''.join(rows)}</table>")
    return html_bundle("".join(parts), "\n".join(text))


def _named(server: str, listing: list[Any]) -> list[tuple[str, Any]]:
    """Each tool with the name the model sees (``time__get_current_time``)."""
    from ..mcpclient.tools import tool_name

    taken: list[str] = []
    for tool in listing:
        taken.append(tool_name(server, tool.name, taken))
    return list(zip(taken, listing, strict=True))


def _tool_line_html(called: str, tool: Any) -> str:
    from ..render.markdown import inline_code, render_inline

    return f"{inline_code(called)} {render_inline(_first_line(tool.description))}"


def _tool_line_text(called: str, tool: Any) -> str:
    return f"{called}: {_first_line(tool.description)}"


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= 160 else line[:159] + "…"


def _parameters(schema: Any) -> list[tuple[str, Any, bool]]:
    if not isinstance(schema, dict):
        return []
    required = set(schema.get("required") or ())
    properties = schema.get("properties") or {}
    return [(str(name), spec, name in required) for name, spec in properties.items()]


def _kind(spec: Any) -> str:
    if not isinstance(spec, dict):
        return "any"
    kind = spec.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind:
        return str(kind)
    if "enum" in spec:
        return "one of " + ", ".join(repr(v) for v in spec["enum"][:6])
    if "anyOf" in spec:
        return " | ".join(_kind(option) for option in spec["anyOf"])
    return "any"
