"""The mcpServers configuration: what it accepts, one-line errors naming the file and server,
${env:NAME} values filled in, and no header or env value ever shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbchat.mcpclient import config
from nbchat.mcpclient.config import ServerEntry, config_path, default_path, load_config
from nbchat.mcpclient.errors import MCPConfigError


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_stdio_and_http_entries_are_read_with_their_options(tmp_path):
    path = write(
        tmp_path,
        {
            "mcpServers": {
                "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
                "docs": {
                    "type": "http",
                    "url": "https://docs.example/mcp",
                    "headers": {"Authorization": "Bearer ${env:DOCS_TOKEN}"},
                    "timeout": 5,
                },
                "old": {"command": "old-server", "disabled": True, "env": {"X": "1"}, "cwd": "/"},
            }
        },
    )
    servers = load_config(path)
    assert servers["time"].transport == "stdio" and servers["time"].args == (
        "--local-timezone",
        "UTC",
    )
    assert servers["docs"].transport == "http" and servers["docs"].timeout == 5.0
    assert servers["old"].disabled and servers["old"].cwd == "/"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "is not JSON: Expecting property name"),
        ({"servers": {}}, 'names no "mcpServers" object'),
        ([1, 2], 'names no "mcpServers" object'),
        ({"mcpServers": {"x": {}}}, "server 'x' has neither \"command\""),
        ({"mcpServers": {"x": "npx"}}, "server 'x' must be an object"),
        (
            {"mcpServers": {"x": {"command": "a", "url": "http://b"}}},
            'has both "command" and "url"',
        ),
        ({"mcpServers": {"x": {"url": "ftp://b"}}}, '"url" must be an http'),
        ({"mcpServers": {"x": {"url": "http://b", "type": "sse"}}}, "SSE transport"),
        ({"mcpServers": {"x": {"command": "a", "args": "b"}}}, '"args" must be a list'),
        ({"mcpServers": {"x": {"command": "a", "env": {"K": 1}}}}, '"env" must be an object'),
        ({"mcpServers": {"x": {"command": "a", "timeout": 0}}}, '"timeout" must be a positive'),
        ({"mcpServers": {"x": {"command": "a", "disabled": "yes"}}}, '"disabled" must be'),
        (
            {"mcpServers": {"x": {"command": "a", "comand": "b"}}},
            "keys nbchat does not know: comand",
        ),
        ({"mcpServers": {"x": {"url": "http://b", "env": {"K": "v"}}}}, '"env" is for stdio'),
    ],
)
def test_bad_configurations_are_one_line_errors_naming_file_and_server(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(MCPConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert message in text and str(path) in text and "\n" not in text


def test_a_missing_file_says_where_it_was_looked_for(tmp_path):
    with pytest.raises(MCPConfigError, match=r"no MCP configuration at .*nope\.json"):
        load_config(tmp_path / "nope.json")


def test_a_value_in_a_bad_entry_is_never_quoted_back(tmp_path):
    path = write(tmp_path, {"mcpServers": {"x": {"command": "a", "env": {"K": ["sk-secret-1"]}}}})
    with pytest.raises(MCPConfigError) as caught:
        load_config(path)
    assert "sk-secret-1" not in str(caught.value)


def test_env_values_are_filled_in_from_the_environment_and_counted_as_secrets():
    entry = ServerEntry(
        name="gh",
        source=Path("mcp.json"),
        url="https://api.example/mcp?key=${env:GH_KEY}",
        headers={"Authorization": "Bearer ${env:GH_TOKEN}"},
    )
    resolved = entry.resolve({"GH_TOKEN": "ghp_tokenvalue123", "GH_KEY": "k-12345"})
    assert resolved.headers == {"Authorization": "Bearer ghp_tokenvalue123"}
    assert resolved.url == "https://api.example/mcp?key=k-12345"
    assert "ghp_tokenvalue123" in resolved.secrets and "k-12345" in resolved.secrets
    assert "ghp_tokenvalue123" not in repr(resolved) and "ghp_" not in repr(entry)


def test_an_unset_variable_names_the_variable_not_a_value():
    entry = ServerEntry(name="gh", source=Path("m.json"), command="x", env={"T": "${env:NOPE}"})
    with pytest.raises(
        MCPConfigError, match="reads the environment variable NOPE, which is not set"
    ):
        entry.resolve({})
    other = ServerEntry(name="gh", source=Path("m.json"), command="x", args=("${input:tok}",))
    with pytest.raises(MCPConfigError, match=r"\$\{input:tok\} is not supported"):
        other.resolve({})


def test_describe_shows_names_of_env_and_headers_never_values():
    entry = ServerEntry(
        name="gh",
        source=Path("m.json"),
        url="https://user:pw@api.example/mcp?token=abc123",
        headers={"Authorization": "Bearer literal-secret-value"},
    )
    text = entry.describe()
    assert "Authorization" in text and "literal-secret-value" not in text
    assert "abc123" not in text and "pw" not in text and "token=…" in text


def test_the_file_in_use_is_the_setting_then_the_environment_then_the_default(monkeypatch):
    monkeypatch.setenv("NBCHAT_MCP_CONFIG", "/tmp/from-env.json")
    monkeypatch.setattr(config, "_settings", config._Settings())
    assert config_path() == Path("/tmp/from-env.json")
    config.configure(config="/tmp/from-setting.json")
    assert config_path() == Path("/tmp/from-setting.json")
    config.configure(config="")
    monkeypatch.delenv("NBCHAT_MCP_CONFIG")
    assert config_path() == default_path() and default_path().name == "mcp.json"
    with pytest.raises(MCPConfigError):
        config.configure(timeout=0)
