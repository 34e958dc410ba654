"""A tool from a JSON schema and a function of the arguments dict (how MCP tools are made)."""

from __future__ import annotations

import pytest

from nbchat.convert.schematool import SchemaTool
from nbchat.convert.toolerrors import ToolArgumentsError, ToolDefinitionError
from nbchat.convert.tools import as_tool

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Args",
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
}


def make(**options):
    return SchemaTool(lambda arguments: arguments, name="forecast", parameters=SCHEMA, **options)


def test_the_schema_is_sent_strict_without_annotations_and_arguments_are_checked():
    tool = make(description="Weather ahead.")
    definition = tool.definition()["function"]
    assert definition["strict"] is True and "title" not in definition["parameters"]
    assert "$schema" not in definition["parameters"]
    assert tool.invoke(tool.validate('{"city": "Oslo", "days": null}')) == {"city": "Oslo"}
    with pytest.raises(ToolArgumentsError, match=r"invalid arguments for forecast: \$.days"):
        tool.validate('{"city": "Oslo", "days": 0}')
    assert tool(city="Rome") == {"city": "Rome"}


def test_replace_keeps_the_schema_and_as_tool_passes_it_through():
    tool = make()
    renamed = as_tool(tool, name="weather", confirm=True)
    assert isinstance(renamed, SchemaTool) and renamed.name == "weather" and renamed.confirm
    assert renamed.parameters == tool.parameters
    assert as_tool(tool) is tool


def test_schemas_that_cannot_be_parameters_are_definition_errors():
    with pytest.raises(ToolDefinitionError, match="must be an object schema"):
        SchemaTool(dict, name="x", parameters={"type": "array"})
    with pytest.raises(ToolDefinitionError, match="its schema cannot be used"):
        SchemaTool(dict, name="x", parameters={"type": "object", "properties": {"a": {"type": 5}}})
    with pytest.raises(ToolDefinitionError, match="is not allowed"):
        SchemaTool(dict, name="bad name", parameters=None)
    free = SchemaTool(
        dict, name="free", parameters={"type": "object", "additionalProperties": True}
    )
    assert free.strict is False
