"""The MCP configuration: a JSON file with an ``mcpServers`` object, the format Claude Desktop,
VS Code and notebook-intelligence read, and where it lives.

Each entry is a stdio server (``command``, ``args``, ``env``, ``cwd``) or a Streamable HTTP
server (``url``, ``headers``), with an optional ``timeout`` (seconds per call) and
``"disabled": true``. ``"${env:NAME}"`` inside a value is replaced by that environment variable
when the server starts, so no secret needs to sit in the file. Header and env values are never
shown: an entry's repr and ``describe()`` name the variables and headers only.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MCPConfigError

__all__ = [
    "DEFAULT_TIMEOUT",
    "Resolved",
    "ServerEntry",
    "config_path",
    "configure",
    "default_path",
    "default_timeout",
    "load_config",
]

#: Seconds a tool call may take when neither the entry nor ``%config Chat.mcp_timeout`` says.
DEFAULT_TIMEOUT = 60.0

_ENV = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
_KNOWN_KEYS = {"command", "args", "env", "cwd", "url", "headers", "type", "timeout", "disabled"}
_HTTP_TYPES = ("http", "streamable-http", "streamable_http", "streamableHttp")


@dataclass
class _Settings:
    config: str = ""
    timeout: float = DEFAULT_TIMEOUT


_settings = _Settings()
_lock = threading.Lock()


def configure(*, config: str | None = None, timeout: float | None = None) -> None:
    """What ``%config Chat.mcp_config`` / ``Chat.mcp_timeout`` chose, for this process."""
    with _lock:
        if config is not None:
            _settings.config = config
        if timeout is not None:
            if not (isinstance(timeout, int | float) and timeout > 0 and math.isfinite(timeout)):
                raise MCPConfigError("the MCP time-out must be a positive number of seconds")
            _settings.timeout = float(timeout)


def default_path() -> Path:
    """``mcp.json`` in the platform's user config directory (platformdirs)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("nbchat", appauthor=False)) / "mcp.json"


def config_path() -> Path:
    """The file in use: ``Chat.mcp_config``, else ``$NBCHAT_MCP_CONFIG``, else the default."""
    chosen = (_settings.config or os.environ.get("NBCHAT_MCP_CONFIG", "")).strip()
    return Path(chosen).expanduser() if chosen else default_path()


def default_timeout() -> float:
    return _settings.timeout


@dataclass(frozen=True)
class Resolved:
    """An entry with its ``${env:NAME}`` values filled in, ready to start; ``secrets`` are the
    values no message may show (every env and header value, every value read from the
    environment)."""

    command: str | None
    args: tuple[str, ...]
    env: dict[str, str] = field(repr=False)
    cwd: str | None
    url: str | None
    headers: dict[str, str] = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class ServerEntry:
    """One server of the ``mcpServers`` object, as written (values not yet filled in)."""

    name: str
    source: Path
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float | None = None
    disabled: bool = False

    @property
    def transport(self) -> str:
        """``"stdio"`` or ``"http"`` (Streamable HTTP)."""
        return "stdio" if self.command is not None else "http"

    def describe(self) -> str:
        """One line for ``%chat mcp``: the command or URL, env and header names, no values."""
        from ..convert.redact import hide_secrets

        if self.command is not None:
            text = "stdio: " + " ".join([self.command, *self.args])
        else:
            text = "http: " + _url_without_values(self.url or "")
        text = hide_secrets(text)
        if self.env:
            text += f"; env {', '.join(sorted(self.env))}"
        if self.headers:
            text += f"; headers {', '.join(sorted(self.headers))}"
        return text

    def resolve(self, environ: Mapping[str, str] | None = None) -> Resolved:
        """The entry with ``${env:NAME}`` filled in; an unset variable is an MCPConfigError."""
        environ = os.environ if environ is None else environ
        secrets: list[str] = []

        def fill(value: str) -> str:
            def replace(match: re.Match[str]) -> str:
                inner = match.group(1)
                name = _ENV_NAME.fullmatch(inner)
                if name is None:
                    raise MCPConfigError(
                        f"{self.source}: server {self.name!r}: ${{{inner}}} is not supported; "
                        "use ${env:NAME} to read an environment variable"
                    )
                found = environ.get(name.group(1))
                if found is None:
                    raise MCPConfigError(
                        f"{self.source}: server {self.name!r} reads the environment variable "
                        f"{name.group(1)}, which is not set"
                    )
                secrets.append(found)
                return found

            return _ENV.sub(replace, value)

        env = {key: fill(value) for key, value in self.env.items()}
        headers = {key: fill(value) for key, value in self.headers.items()}
        secrets += [*env.values(), *headers.values()]
        return Resolved(
            command=fill(self.command) if self.command is not None else None,
            args=tuple(fill(arg) for arg in self.args),
            env=env,
            cwd=fill(self.cwd) if self.cwd is not None else None,
            url=fill(self.url) if self.url is not None else None,
            headers=headers,
            secrets=tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)),
        )


def load_config(path: Path) -> dict[str, ServerEntry]:
    """The servers of the file at ``path``, by name; every mistake is a one-line MCPConfigError
    naming the file (and the server)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MCPConfigError(
            f'no MCP configuration at {path}: write one with an "mcpServers" object, or point '
            "%config Chat.mcp_config (or $NBCHAT_MCP_CONFIG) at yours"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MCPConfigError(f"cannot read the MCP configuration {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MCPConfigError(
            f"{path} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise MCPConfigError(f'{path} names no "mcpServers" object')
    return {str(name): _entry(path, str(name), value) for name, value in servers.items()}


def _entry(path: Path, name: str, value: Any) -> ServerEntry:
    where = f"{path}: server {name!r}"
    if not name.strip():
        raise MCPConfigError(f"{path}: a server has an empty name")
    if not isinstance(value, dict):
        raise MCPConfigError(f"{where} must be an object")
    unknown = sorted(set(value) - _KNOWN_KEYS)
    if unknown:
        raise MCPConfigError(f"{where} has keys nbchat does not know: {', '.join(unknown)}")
    kind = value.get("type")
    command, url = value.get("command"), value.get("url")
    if kind in ("sse",):
        raise MCPConfigError(
            f"{where} uses the SSE transport, which nbchat does not speak: give the server's "
            "Streamable HTTP URL"
        )
    if kind is not None and kind != "stdio" and kind not in _HTTP_TYPES:
        raise MCPConfigError(f"{where}: type must be stdio or http, not {kind!r}")
    if command is None and url is None:
        raise MCPConfigError(
            f'{where} has neither "command" (a stdio server) nor "url" (a Streamable HTTP server)'
        )
    if command is not None and url is not None:
        raise MCPConfigError(f'{where} has both "command" and "url": give one')
    if command is not None and not (isinstance(command, str) and command.strip()):
        raise MCPConfigError(f'{where}: "command" must be a non-empty string')
    if url is not None and not (
        isinstance(url, str) and url.strip().lower().startswith(("http://", "https://", "${"))
    ):
        raise MCPConfigError(f'{where}: "url" must be an http:// or https:// URL')
    if (kind == "stdio" and command is None) or (kind in _HTTP_TYPES and url is None):
        raise MCPConfigError(f"{where}: type {kind} does not go with the keys given")
    args = value.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise MCPConfigError(f'{where}: "args" must be a list of strings')
    env = _strings(value.get("env", {}), where, "env")
    headers = _strings(value.get("headers", {}), where, "headers")
    if command is None and env:
        raise MCPConfigError(f'{where}: "env" is for stdio servers; an HTTP server takes "headers"')
    if url is not None and value.get("cwd") is not None:
        raise MCPConfigError(f'{where}: "cwd" is for stdio servers')
    cwd = value.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise MCPConfigError(f'{where}: "cwd" must be a string')
    timeout = value.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not (timeout > 0 and math.isfinite(timeout))
    ):
        raise MCPConfigError(f'{where}: "timeout" must be a positive number of seconds')
    disabled = value.get("disabled", False)
    if not isinstance(disabled, bool):
        raise MCPConfigError(f'{where}: "disabled" must be true or false')
    return ServerEntry(
        name=name,
        source=path,
        command=command,
        args=tuple(args),
        env=env,
        cwd=cwd,
        url=url,
        headers=headers,
        timeout=float(timeout) if timeout is not None else None,
        disabled=disabled,
    )


def _strings(value: Any, where: str, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        # The values are never quoted back: they may be secrets.
        raise MCPConfigError(f'{where}: "{key}" must be an object of string values')
    return dict(value)


def _url_without_values(url: str) -> str:
    """The URL with its user info and query values left out (either may be a credential)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that cannot be read)"
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    query = "&".join(f"{part.split('=', 1)[0]}=…" for part in parts.query.split("&") if part)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
