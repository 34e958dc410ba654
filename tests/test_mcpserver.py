"""MCP servers for real: mcp-server-time (PyPI) over stdio and a Streamable HTTP server written
with the SDK's MCPServer on loopback. They start on first use, answer calls, fail in one line
naming the server, time out, and leave no process behind when closed."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from nbchat.mcpclient.config import ServerEntry
from nbchat.mcpclient.errors import MCPServerError, MCPTimeoutError
from nbchat.mcpclient.server import Server, _children

pytest.importorskip("mcp")
TIME = shutil.which("mcp-server-time")
needs_time = pytest.mark.skipif(TIME is None, reason="mcp-server-time is not installed")


@pytest.fixture
def before():
    """The children this process had before the test (another test's local model server…)."""
    return set(_children())


def entry(name: str = "time", **options) -> ServerEntry:
    return ServerEntry(name=name, source=Path("mcp.json"), **options)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


@needs_time
def test_the_time_server_starts_on_first_use_answers_and_leaves_no_child_when_closed():
    server = Server(entry(command=TIME, args=("--local-timezone", "UTC")))
    assert server.state == "not started" and server.pid is None
    names = [tool.name for tool in server.tools()]
    assert names == ["get_current_time", "convert_time"]
    assert server.state == "running" and server.pid in _children()
    result = server.call("get_current_time", {"timezone": "Asia/Tokyo"})
    assert result.structured_content["timezone"] == "Asia/Tokyo"
    pid = server.pid
    server.close()
    assert server.state == "stopped"
    assert pid not in _children() and not alive(pid)


@needs_time
def test_restart_starts_a_new_process():
    server = Server(entry(command=TIME))
    server.tools()
    first = server.pid
    server.restart()
    assert server.pid not in (None, first) and not alive(first)
    server.close()


def test_a_command_that_does_not_exist_is_one_line_naming_the_server():
    server = Server(entry("ghost", command="no-such-mcp-server-here"))
    with pytest.raises(MCPServerError) as caught:
        server.tools()
    text = str(caught.value)
    assert text == (
        "MCP server 'ghost' did not start: the command 'no-such-mcp-server-here' was not found"
    )
    assert server.state.startswith("failed:")


def test_a_server_that_dies_at_start_says_its_last_words_without_secrets(before):
    code = "import os, sys; print('cannot log in with', os.environ['TOKEN'], file=sys.stderr)"
    server = Server(
        entry("dies", command=sys.executable, args=("-c", code), env={"TOKEN": "${env:DIES_TOKEN}"})
    )
    os.environ["DIES_TOKEN"] = "very-secret-token-value"
    try:
        with pytest.raises(MCPServerError) as caught:
            server.tools()
    finally:
        del os.environ["DIES_TOKEN"]
    text = str(caught.value)
    assert "MCP server 'dies' did not start" in text and "cannot log in with" in text
    assert "very-secret-token-value" not in text and "****" in text
    assert set(_children()) <= before


def test_a_server_that_hangs_at_start_times_out_and_is_killed(before):
    code = "import time; time.sleep(60)"
    server = Server(entry("hangs", command=sys.executable, args=("-c", code), timeout=1))
    started = time.monotonic()
    with pytest.raises(MCPTimeoutError, match="MCP server 'hangs' did not start within 1 s"):
        server.tools()
    assert time.monotonic() - started < 15
    assert set(_children()) <= before


CRASHER = """
import os
from mcp.server.mcpserver import MCPServer
server = MCPServer("crasher", log_level="CRITICAL")
@server.tool()
def crash() -> str:
    '''Ends the process.'''
    os._exit(3)
@server.tool()
def ok() -> str:
    '''Answers.'''
    return "fine"
server.run("stdio")
"""


def test_a_server_that_crashes_mid_call_is_an_error_and_starts_again_next_time(tmp_path, before):
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    server = Server(entry("crasher", command=sys.executable, args=(str(script),), timeout=20))
    assert server.call("ok", {}).content[0].text == "fine"
    with pytest.raises(MCPServerError) as caught:
        server.call("crash", {})
    assert "MCP server 'crasher' failed during crash" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert server.call("ok", {}).content[0].text == "fine"  # started again
    server.close()
    assert set(_children()) <= before


def test_streamable_http_server_answers_with_its_headers_and_times_out_a_slow_call(monkeypatch):
    from tests.mcphttp import HTTPServer

    monkeypatch.setenv("LOOP_TOKEN", "loop-token-0123456789")
    with HTTPServer() as url:
        server = Server(
            entry("loop", url=url, headers={"Authorization": "Bearer ${env:LOOP_TOKEN}"}, timeout=1)
        )
        assert "add" in [tool.name for tool in server.tools()]
        assert server.call("add", {"a": 2, "b": 3}).content[0].text == "5"
        said = server.call("whoami", {}).content[0].text
        assert said == "authorization of 28 characters, ends '6789'"
        with pytest.raises(
            MCPTimeoutError, match="MCP server 'loop' did not answer slow within 1 s"
        ):
            server.call("slow", {"seconds": 5})
        assert server.call("add", {"a": 1, "b": 1}).content[0].text == "2"  # still usable
        server.close()


def test_an_http_server_that_is_not_there_is_one_line_without_the_token(monkeypatch):
    monkeypatch.setenv("GONE_TOKEN", "gone-token-abcdef123")
    server = Server(
        entry(
            "gone",
            url="http://127.0.0.1:9/mcp?key=${env:GONE_TOKEN}",
            headers={"Authorization": "Bearer ${env:GONE_TOKEN}"},
            timeout=5,
        )
    )
    with pytest.raises(MCPServerError) as caught:
        server.tools()
    text = str(caught.value)
    assert text.startswith("MCP server 'gone' did not start") and "gone-token" not in text


def test_the_sdk_and_its_http_client_never_log_a_secret(monkeypatch, caplog):
    import logging

    from tests.mcphttp import HTTPServer

    monkeypatch.setenv("LOG_TOKEN", "log-token-0123456789")
    caplog.set_level(logging.DEBUG)
    with HTTPServer() as url:
        server = Server(
            entry(
                "logged",
                url=url + "?key=${env:LOG_TOKEN}",
                headers={"Authorization": "Bearer ${env:LOG_TOKEN}"},
            )
        )
        assert server.call("add", {"a": 1, "b": 2}).content[0].text == "3"
        server.close()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP Request" in logged  # httpx2 did log the requests
    assert "log-token-0123456789" not in logged and "****" in logged
