"""nbchat.mcp("NAME"): the tools of configured servers, started on first use and kept; names
that are unknown or disabled are one-line errors; nothing is started that was not named; every
server is closed at exit."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

import nbchat
from nbchat.mcpclient import registry
from nbchat.mcpclient.errors import MCPConfigError
from nbchat.mcpclient.server import _children

pytest.importorskip("mcp")
TIME = shutil.which("mcp-server-time")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": {
                        "command": TIME or "mcp-server-time",
                        "args": ["--local-timezone", "UTC"],
                    },
                    "never": {"command": sys.executable, "args": ["-c", "open('/tmp/x','w')"]},
                    "off": {"command": "whatever", "disabled": True},
                }
            }
        )
    )
    yield path
    registry.close_all()


@pytest.mark.skipif(TIME is None, reason="mcp-server-time is not installed")
def test_mcp_returns_the_named_servers_tools_and_starts_nothing_else(config):
    before = set(_children())  # another test's local model server may be running
    tools = nbchat.mcp("time", config=config)
    assert [tool.name for tool in tools] == ["time__get_current_time", "time__convert_time"]
    started = [s for s in registry.servers(config) if s.state == "running"]
    assert [s.name for s in started] == ["time"]
    # The same server is used again, not started twice.
    pid = registry.server("time", config).pid
    nbchat.mcp("time", config=config)
    assert registry.server("time", config).pid == pid
    registry.close_all()
    assert set(_children()) <= before


def test_unknown_and_disabled_names_are_one_line_errors_naming_the_file(config):
    with pytest.raises(
        MCPConfigError, match=r"no MCP server 'nope' in .*mcp\.json \(it names: time, never, off\)"
    ):
        nbchat.mcp("nope", config=config)
    with pytest.raises(MCPConfigError, match="MCP server 'off' is \"disabled\""):
        nbchat.mcp("off", config=config)
    with pytest.raises(MCPConfigError, match="name the MCP servers"):
        nbchat.mcp(config=config)
    assert all(s.state == "not started" for s in registry.servers(config))


def test_all_means_every_enabled_server(config):
    assert registry.resolve_names(["all"], config) == ["time", "never"]
    assert registry.resolve_names(["time", "all"], config) == ["time", "never"]


@pytest.mark.skipif(TIME is None, reason="mcp-server-time is not installed")
def test_a_changed_entry_starts_the_server_again_with_it(config):
    nbchat.mcp("time", config=config)
    first = registry.server("time", config)
    data = json.loads(config.read_text())
    data["mcpServers"]["time"]["args"] = ["--local-timezone", "Europe/Paris"]
    config.write_text(json.dumps(data))
    again = registry.server("time", config)
    assert again is not first and first.state == "stopped"
    assert again.entry.args == ("--local-timezone", "Europe/Paris")


@pytest.mark.skipif(TIME is None, reason="mcp-server-time is not installed")
def test_a_process_that_exits_leaves_no_server_running(config):
    import os
    import subprocess
    import time
    from pathlib import Path

    code = (
        "import nbchat\n"
        "from nbchat.mcpclient import registry\n"
        f"nbchat.mcp('time', config={str(config)!r})\n"
        f"print(registry.server('time', {str(config)!r}).pid, flush=True)\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "zombie" in status.read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the server (pid {pid}) outlived its kernel")
