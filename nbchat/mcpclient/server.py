"""One MCP server and its session: started on first use, kept for the kernel, closed at exit.

The session lives in one task on nbchat's MCP loop (``loop.py``), which opens the transport
(a child process over stdio, or Streamable HTTP), lists the tools, then waits to be closed, so
the SDK's task groups are entered and left in the same task. Calls come from other tasks on
that loop. A server that fails to start, breaks off a call or answers too late is an
MCPServerError naming it, in one line, with none of its header or env values; after a broken
call the session is closed and the next use starts the server again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import threading
from typing import Any

from .config import Resolved, ServerEntry, default_timeout
from .errors import MCPServerError, MCPTimeoutError
from .loop import LoopThread, shared_loop

__all__ = ["Server"]

#: Seconds ``close()`` waits for a session to end (the SDK itself gives a stdio server 2 s to
#: exit after its stdin closes, then 2 s after SIGTERM, then kills it).
CLOSE_TIMEOUT = 10.0
_STDERR_TAIL = 4096
_MASK = "****"


class Server:
    """A configured server: ``tools()`` starts it if need be; ``call()``; ``close()``."""

    def __init__(self, entry: ServerEntry, *, loop: LoopThread | None = None) -> None:
        self.entry = entry
        self._loop = loop or shared_loop()
        self._lock = threading.RLock()
        self._session: Any = None
        self._closing: asyncio.Event | None = None
        self._task: Any = None
        self._listing: list[Any] | None = None
        self._secrets: tuple[str, ...] = ()
        self._stderr: Any = None
        # Set when the session's task has left every context (its process is gone).
        self._ended = threading.Event()
        #: "not started", "running", "stopped", or "failed: <one line>".
        self.state = "not started"
        #: The child process of a stdio server while it runs (for tests and ``%chat mcp``).
        self.pid: int | None = None

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def timeout(self) -> float:
        """Seconds a call may take: the entry's ``timeout``, else ``Chat.mcp_timeout``."""
        return self.entry.timeout if self.entry.timeout is not None else default_timeout()

    def __repr__(self) -> str:
        return f"Server({self.name!r}, {self.state})"

    # -- lifecycle ----------------------------------------------------------------------------

    def tools(self) -> list[Any]:
        """The server's tools (the SDK's ``Tool`` objects), starting the server if need be."""
        with self._lock:
            if self._listing is None or not self._alive():
                self._start()
            assert self._listing is not None
            return list(self._listing)

    def restart(self) -> list[Any]:
        with self._lock:
            self.close()
            return self.tools()

    def close(self) -> None:
        """End the session (a stdio server's process with it); waits at most CLOSE_TIMEOUT."""
        with self._lock:
            task, closing, ended = self._task, self._closing, self._ended
            started = self._listing is not None
            self._task = self._closing = self._session = None
            self._listing = None
            if task is None:
                return
            if self._loop.running:
                if started and closing is not None:
                    # The session ends itself, leaving the SDK's contexts in their own task.
                    self._loop.loop().call_soon_threadsafe(closing.set)
                    ended.wait(CLOSE_TIMEOUT)
                if not ended.is_set():
                    # Still starting (or stuck): cancelled, the SDK's shutdown still runs.
                    task.cancel()
                    ended.wait(CLOSE_TIMEOUT)
            if self.state == "running":
                self.state = "stopped"
            self.pid = None
            self._close_stderr()

    def _alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def _start(self) -> None:
        self.close()
        resolved = self.entry.resolve()
        self._secrets = resolved.secrets
        _log_guard.add(resolved.secrets)
        loop = self._loop.loop()
        self._ended = threading.Event()
        started: asyncio.Future[list[Any]] = asyncio.run_coroutine_threadsafe(
            _make_future(), loop
        ).result()
        self._task = self._loop.submit(self._serve(resolved, started, self._ended))
        wait = self.timeout
        try:
            listing = asyncio.run_coroutine_threadsafe(_wait_for(started, wait), loop).result(
                wait + CLOSE_TIMEOUT
            )
        except KeyboardInterrupt:
            self.close()
            self.state = "stopped"
            raise
        except BaseException as exc:
            error = self._error("did not start", exc, f"within {wait:g} s")
            self.close()
            self.state = f"failed: {error}"
            raise error from None
        self._listing = listing
        self.state = "running"

    async def _serve(
        self, resolved: Resolved, started: asyncio.Future[list[Any]], ended: threading.Event
    ) -> None:
        from mcp import Client

        self._closing = asyncio.Event()
        try:
            async with contextlib.AsyncExitStack() as stack:
                transport = await self._transport(resolved, stack)
                client = await stack.enter_async_context(Client(transport))
                self._session = client
                listing = await _list_tools(client)
                if not started.done():
                    started.set_result(listing)
                await self._closing.wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._session = None
            ended.set()

    async def _transport(self, resolved: Resolved, stack: contextlib.AsyncExitStack) -> Any:
        if resolved.command is not None:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            # Open for the server's life (its stderr), closed by close(): no with-block fits.
            self._stderr = tempfile.TemporaryFile(  # noqa: SIM115
                mode="w+", encoding="utf-8", errors="replace"
            )
            params = StdioServerParameters(
                command=resolved.command,
                args=list(resolved.args),
                env=resolved.env or None,
                cwd=resolved.cwd,
            )
            return _Watched(stdio_client(params, errlog=self._stderr), self)
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = await stack.enter_async_context(
            create_mcp_http_client(headers=resolved.headers or None)
        )
        assert resolved.url is not None
        return streamable_http_client(resolved.url, http_client=http)

    # -- calls --------------------------------------------------------------------------------

    def call(self, tool: str, arguments: dict[str, Any], timeout: float | None = None) -> Any:
        """The SDK's ``CallToolResult`` of one call; an MCPServerError if the server fails."""
        self.tools()
        session = self._session
        if session is None:
            raise MCPServerError(f"MCP server {self.name!r} is not running", server=self.name)
        limit = self.timeout if timeout is None else timeout

        async def call() -> Any:
            with _fail_after(limit):
                return await session.call_tool(tool, arguments)

        try:
            return self._loop.run(call(), limit + CLOSE_TIMEOUT)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            timed_out = _is_timeout(exc)
            error = self._error(f"failed during {tool}", exc, f"within {limit:g} s")
            if not timed_out and not self._alive():
                self.state = f"failed: {error}"
            if not timed_out:
                # A broken session is not used again: the next call starts the server anew.
                self.close()
                if not self.state.startswith("failed"):
                    self.state = f"failed: {error}"
            raise error from None

    # -- errors -------------------------------------------------------------------------------

    def _error(self, what: str, exc: BaseException, limit: str) -> MCPServerError:
        """One line naming the server, with no secret in it."""
        if _is_timeout(exc):
            verb = "did not answer" if what.startswith("failed during") else what
            tool = what.removeprefix("failed during ")
            text = (
                f"MCP server {self.name!r} did not answer {tool} {limit}"
                if verb == "did not answer"
                else f"MCP server {self.name!r} did not start {limit}"
            )
            return MCPTimeoutError(self.mask(text), server=self.name)
        detail = _describe(exc)
        tail = self._stderr_tail()
        text = f"MCP server {self.name!r} {what}: {detail}"
        if tail and tail not in detail:
            text += f" (its last words: {tail})"
        return MCPServerError(self.mask(text), server=self.name)

    def mask(self, text: str) -> str:
        """``text`` with every header and env value of this server masked."""
        from ..convert.redact import hide_secrets

        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return hide_secrets(text)

    def _stderr_tail(self) -> str:
        handle = self._stderr
        if handle is None:
            return ""
        try:
            handle.flush()
            fd = handle.fileno()
            size = os.fstat(fd).st_size
            # pread: the child shares the file offset, which must not move under it.
            data = os.pread(fd, _STDERR_TAIL, max(0, size - _STDERR_TAIL))
        except (OSError, ValueError):
            return ""
        lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
        lines = [line for line in lines if line]
        return lines[-1][:300] if lines else ""

    def _close_stderr(self) -> None:
        handle, self._stderr = self._stderr, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()


class _Watched:
    """A stdio transport that notes the child's pid once it started (``Server.pid``)."""

    def __init__(self, inner: Any, server: Server) -> None:
        self._inner = inner
        self._server = server
        self._before: set[int] = set()

    async def __aenter__(self) -> Any:
        self._before = set(_children())
        streams = await self._inner.__aenter__()
        new = [pid for pid in _children() if pid not in self._before]
        self._server.pid = new[0] if len(new) == 1 else None
        return streams

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)


class _LogGuard(logging.Filter):
    """Masks the servers' header and env values in what the SDK and its HTTP client log (a URL
    with a token in its query, logged at INFO by httpx2 on every request)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secrets: tuple[str, ...]) -> None:
        if not secrets:
            return
        with self._lock:
            self.secrets.update(secrets)
            names = ["httpx", "httpx2", "mcp"] + [
                name
                for name in list(logging.root.manager.loggerDict)
                if name.startswith(("httpx", "mcp.", "httpcore"))
            ]
            for name in names:
                logger = logging.getLogger(name)
                if self not in logger.filters:
                    logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        masked = text
        for secret in sorted(self.secrets, key=len, reverse=True):
            masked = masked.replace(secret, _MASK)
        if masked != text:
            record.msg, record.args = masked, ()
        return True


_log_guard = _LogGuard()


def _children() -> list[int]:
    """This process's child pids (Linux: /proc; elsewhere none are known)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{os.getpid()}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as handle:
                found += [int(pid) for pid in handle.read().split()]
        except OSError:
            continue
    return found


async def _make_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


async def _wait_for(future: asyncio.Future[Any], seconds: float) -> Any:
    return await asyncio.wait_for(asyncio.shield(future), seconds)


async def _list_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(100):  # a server whose pages never end cannot hang the start
        page = await client.list_tools(cursor=cursor)
        tools += list(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _fail_after(seconds: float) -> Any:
    import anyio

    return anyio.fail_after(seconds)


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return True
    nested: list[BaseException] = list(getattr(exc, "exceptions", None) or ())
    return bool(nested) and all(_is_timeout(e) for e in nested)


def _describe(exc: BaseException) -> str:
    """One line for an exception, looking inside task groups' exception groups."""
    nested: list[BaseException] = list(getattr(exc, "exceptions", None) or ())
    while len(nested) == 1 and getattr(nested[0], "exceptions", None):
        nested = list(getattr(nested[0], "exceptions", None) or ())
    if nested:
        exc = nested[0]
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"the command {exc.filename!r} was not found"
    code = getattr(getattr(exc, "error", None), "code", None)
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if code is not None:
        return f"{first} (MCP error {code})" if first else f"MCP error {code}"
    name = type(exc).__name__
    if name in ("ClosedResourceError", "EndOfStream", "BrokenResourceError"):
        return "the connection closed (the server stopped?)"
    return f"{name}: {first}" if first else name
