"""A Streamable HTTP MCP server written with the SDK's MCPServer (FastMCP in mcp 1.x), served by
uvicorn on 127.0.0.1 in a thread, for the tests: tools that add, show an image, fail, take too
long, answer too much, and say which Authorization header they got.

No ``from __future__ import annotations`` here: the SDK reads the tools' annotations at run time.
"""

import asyncio
import io
import socket
import threading
import time
from typing import Any


def build() -> Any:
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.mcpserver.utilities.types import Image
    from PIL import Image as PILImage

    server = MCPServer("loop-tools", log_level="CRITICAL")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def red_square() -> Image:
        """A 32×32 red square, as a PNG."""
        buffer = io.BytesIO()
        PILImage.new("RGB", (32, 32), (255, 0, 0)).save(buffer, "PNG")
        return Image(data=buffer.getvalue(), format="png")

    @server.tool()
    def fail(reason: str) -> str:
        """Always fails, saying why."""
        raise ToolError(f"it failed: {reason}")

    @server.tool()
    async def slow(seconds: float) -> str:
        """Answers after some seconds."""
        await asyncio.sleep(seconds)
        return "done"

    @server.tool()
    def big(chars: int) -> str:
        """A text of that many characters."""
        return "x" * chars

    @server.tool()
    def whoami(ctx: Context) -> str:
        """The Authorization header of the request, masked but its length."""
        headers = ctx.headers or {}
        token = headers.get("authorization", "")
        return f"authorization of {len(token)} characters, ends {token[-4:]!r}"

    @server.tool()
    def configure(options: dict[str, Any]) -> str:
        """Takes a free-form object (cannot be strict)."""
        return ",".join(sorted(options))

    return server


class HTTPServer:
    """``with HTTPServer() as url:`` the server's MCP endpoint, stopped at the end."""

    def __init__(self) -> None:
        self.port = _free_port()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> str:
        import uvicorn

        app = build().streamable_http_app(host="127.0.0.1")
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
