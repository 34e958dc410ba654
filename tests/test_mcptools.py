"""MCP tools as nbchat Tools: names valid for the API and unique, the server's description and
schema (strict where it can be), a schema the API cannot take left out with a note naming it."""

from __future__ import annotations

import re
import warnings
from types import SimpleNamespace

import pytest

from nbchat.convert.tooloutput import ToolOutput
from nbchat.mcpclient.tools import MCPToolNote, server_tools, tool_name

VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def test_names_are_server_then_tool_made_valid_and_unique():
    assert tool_name("time", "get_current_time") == "time__get_current_time"
    assert tool_name("my server", "read.file/v2") == "my_server__read_file_v2"
    long = tool_name("s" * 40, "t" * 40)
    assert VALID.match(long) and len(long) == 64
    assert long != tool_name("s" * 40, "t" * 39 + "u")
    taken = ["time__x"]
    assert tool_name("time", "x", taken) == "time__x_2"
    assert tool_name("time", "x", [*taken, "time__x_2"]) == "time__x_3"


class FakeServer:
    name = "fake"

    def __init__(self, listing, answers=None):
        self.listing = listing
        self.calls = []

    def tools(self):
        return self.listing

    def call(self, tool, arguments, timeout=None):
        self.calls.append((tool, arguments))
        text = SimpleNamespace(type="text", text=f"{tool} got {arguments}")
        return SimpleNamespace(content=[text], structured_content=None, is_error=False)


def listed(name, schema, description="Does a thing."):
    return SimpleNamespace(name=name, title=None, description=description, input_schema=schema)


def test_tools_carry_description_and_schema_strict_or_not_and_call_the_server():
    server = FakeServer(
        [
            listed("lookup", {"type": "object", "properties": {"q": {"type": "string"}}}),
            listed("free", {"type": "object", "properties": {"opts": {"type": "object"}}}),
        ]
    )
    lookup, free = server_tools(server)
    definition = lookup.definition()["function"]
    assert definition["name"] == "fake__lookup" and definition["description"] == "Does a thing."
    assert definition["strict"] is True
    assert definition["parameters"]["properties"]["q"] == {"type": ["string", "null"]}
    assert free.strict is False  # a free-form object cannot be strict
    output = lookup.invoke(lookup.validate('{"q": "tea"}'))
    assert isinstance(output, ToolOutput) and output.text == "lookup got {'q': 'tea'}"
    # Strict mode's null for an optional parameter means "not given".
    lookup.invoke(lookup.validate('{"q": null}'))
    assert server.calls[-1] == ("lookup", {})


def test_a_schema_the_api_cannot_take_is_left_out_with_a_note_naming_server_and_tool():
    server = FakeServer(
        [
            listed("ok", {"type": "object", "properties": {}}),
            listed("array", {"type": "array"}),
            listed("broken", {"type": "object", "properties": {"x": {"type": "wat"}}}),
        ]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tools = server_tools(server)
    assert [tool.name for tool in tools] == ["fake__ok"]
    notes = [str(w.message) for w in caught if issubclass(w.category, MCPToolNote)]
    assert any("MCP server 'fake': tool 'array' is left out" in note for note in notes)
    assert any("tool 'broken' is left out" in note for note in notes)


def test_names_already_taken_by_other_servers_are_avoided():
    server = FakeServer([listed("x", {"type": "object"})])
    assert [tool.name for tool in server_tools(server, ["fake__x"])] == ["fake__x_2"]


@pytest.mark.parametrize("arguments", ['{"q": 3}', '{"other": 1}', "[1]"])
def test_arguments_that_do_not_fit_the_schema_never_reach_the_server(arguments):
    from nbchat.conversation.toolrun import run_tool_calls

    server = FakeServer(
        [
            listed(
                "lookup",
                {
                    "type": "object",
                    "properties": {"q": {"type": "string"}},
                    "required": ["q"],
                    "additionalProperties": False,
                },
            )
        ]
    )
    tools = server_tools(server)
    call = {
        "id": "c",
        "type": "function",
        "function": {"name": "fake__lookup", "arguments": arguments},
    }
    result = run_tool_calls([call], tools)[0]
    assert not result.ok and server.calls == []
