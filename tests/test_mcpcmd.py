"""``%chat mcp`` (servers, state, tools), ``%chat mcp NAME`` (parameters), ``%chat mcp restart
NAME``, and ``%%chat --mcp NAME``: a model calling the time server for real."""

from __future__ import annotations

import json
import shutil

import pytest
from IPython.core.error import UsageError

from nbchat.mcpclient import registry
from tests.test_magics import shell  # noqa: F401  (the fixture)

TIME = shutil.which("mcp-server-time")
needs_time = pytest.mark.skipif(TIME is None, reason="mcp-server-time is not installed")


@pytest.fixture
def ip(shell, tmp_path, monkeypatch):  # noqa: F811
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": {
                        "command": TIME or "mcp-server-time",
                        "args": ["--local-timezone", "UTC"],
                    },
                    "docs": {
                        "url": "https://docs.example/mcp",
                        "headers": {"Authorization": "Bearer sk-literal-secret-in-file"},
                    },
                }
            }
        )
    )
    shell.run_line_magic("config", f"Chat.mcp_config = {str(path)!r}")
    shell.mcp_path = path
    yield shell
    registry.close_all()


def shown(ip) -> str:
    return "\n".join(
        o["data"].get("text/html", "") + o["data"].get("text/plain", "")
        for o in ip.publisher.outputs
    )


def test_chat_mcp_lists_servers_with_their_state_and_never_a_header_value(ip):
    ip.run_line_magic("chat", "mcp")
    text = shown(ip)
    assert "time" in text and "not started" in text and "headers Authorization" in text
    assert "sk-literal-secret-in-file" not in text


@needs_time
def test_chat_mcp_name_starts_it_and_shows_tools_with_parameters(ip):
    ip.run_line_magic("chat", "mcp time")
    text = shown(ip)
    assert "time__get_current_time" in text and "timezone" in text and "required" in text
    ip.publisher.outputs.clear()
    ip.run_line_magic("chat", "mcp")
    assert "running" in shown(ip) and "time__convert_time" in shown(ip)
    pid = registry.server("time").pid
    ip.run_line_magic("chat", "mcp restart time")
    assert registry.server("time").pid != pid


def test_unknown_server_and_bad_files_are_usage_errors(ip, tmp_path):
    with pytest.raises(UsageError, match="no MCP server 'nope'"):
        ip.run_line_magic("chat", "mcp nope")
    with pytest.raises(UsageError, match="--mcp: no MCP server 'nope'"):
        ip.run_cell_magic("chat", "--mcp nope", "hi")
    bad = tmp_path / "bad.json"
    bad.write_text("{]")
    ip.run_line_magic("config", f"Chat.mcp_config = {str(bad)!r}")
    with pytest.raises(UsageError, match=r"bad\.json is not JSON"):
        ip.run_cell_magic("chat", "--mcp time", "hi")
    assert ip.server.requests == []  # nothing was sent


@needs_time
def test_a_cell_with_mcp_offers_the_tools_and_the_model_calls_the_real_server(ip):
    ip.server.reply(
        None,
        tool_calls=[
            {"id": "c1", "name": "time__get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}
        ],
    )
    ip.server.reply("It is evening in Tokyo.")
    ip.run_cell_magic("chat", "--mcp time", "Time in Tokyo?")
    first, second = ip.server.requests
    assert [t["function"]["name"] for t in first["tools"]] == [
        "time__get_current_time",
        "time__convert_time",
    ]
    answer = next(m for m in second["messages"] if m["role"] == "tool")["content"]
    assert '"timezone": "Asia/Tokyo"' in answer and '"datetime"' in answer


@needs_time
def test_a_failing_mcp_call_is_a_tool_error_the_model_sees_and_the_conversation_goes_on(ip):
    ip.server.reply(
        None,
        tool_calls=[
            {"id": "c1", "name": "time__get_current_time", "arguments": {"timezone": "Mars/Base"}}
        ],
    )
    ip.server.reply("That is not a time zone.")
    ip.run_cell_magic("chat", "--mcp time", "Time on Mars?")
    answer = next(m for m in ip.server.requests[1]["messages"] if m["role"] == "tool")["content"]
    assert answer.startswith('{"error":"MCPToolError:') and "Mars/Base" in answer


def test_mcp_with_each_is_refused(ip):
    ip.user_ns["rows"] = [{"x": 1}]
    with pytest.raises(UsageError, match="--mcp"):
        ip.run_cell_magic("chat", "--each rows --mcp time", "{x}")
