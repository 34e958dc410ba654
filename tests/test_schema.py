from __future__ import annotations

import copy
from typing import Any

import pytest

from nbchat.protocol.schema import StrictSchemaError, strict_schema
from tests.reference import PERSON_INFO_FORMAT, WEATHER_TOOL

# The reference's get_weather parameters and person_info schema: already strict.
WEATHER_PARAMETERS = WEATHER_TOOL["function"]["parameters"]
PERSON_SCHEMA = PERSON_INFO_FORMAT["json_schema"]["schema"]


def obj(properties: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **rest}


@pytest.mark.parametrize("schema", [WEATHER_PARAMETERS, PERSON_SCHEMA], ids=["weather", "person"])
def test_reference_schemas_are_already_strict_and_come_back_equal(schema: dict) -> None:
    assert strict_schema(schema) == schema


def test_every_property_becomes_required_and_optional_ones_nullable() -> None:
    schema = obj(
        {
            "city": {"type": "string"},
            "days": {"type": "integer", "default": 3},
            "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        required=["city"],
    )
    assert strict_schema(schema) == obj(
        {
            "city": {"type": "string"},
            "days": {"type": ["integer", "null"]},
            "units": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", None]},
        },
        required=["city", "days", "units"],
        additionalProperties=False,
    )


def test_an_optional_field_that_already_allows_null_is_left_alone() -> None:
    union = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    listed = {"type": ["integer", "null"]}
    result = strict_schema(obj({"a": union, "b": listed}))
    assert result["properties"] == {"a": union, "b": listed}
    assert result["required"] == ["a", "b"]


def test_optional_unions_and_type_lists_gain_null() -> None:
    result = strict_schema(
        obj(
            {
                "a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "b": {"type": ["string", "integer"]},
            }
        )
    )
    assert result["properties"]["a"] == {
        "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]
    }
    assert result["properties"]["b"] == {"type": ["string", "integer", "null"]}


def test_an_optional_reference_becomes_a_union_with_null() -> None:
    schema = obj(
        {"home": {"$ref": "#/$defs/Address"}},
        **{"$defs": {"Address": obj({"street": {"type": "string"}}, required=["street"])}},
    )
    result = strict_schema(schema)
    assert result["properties"]["home"] == {
        "anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]
    }
    assert result["$defs"]["Address"]["additionalProperties"] is False


def test_a_reference_with_siblings_is_wrapped_so_the_description_stays() -> None:
    schema = obj(
        {"home": {"$ref": "#/$defs/A", "description": "where they live"}},
        required=["home"],
        **{"$defs": {"A": obj({"x": {"type": "string"}}, required=["x"])}},
    )
    home = strict_schema(schema)["properties"]["home"]
    assert home == {"description": "where they live", "anyOf": [{"$ref": "#/$defs/A"}]}


def test_one_of_becomes_any_of() -> None:
    schema = obj({"v": {"oneOf": [{"type": "string"}, {"type": "number"}]}}, required=["v"])
    assert strict_schema(schema)["properties"]["v"] == {
        "anyOf": [{"type": "string"}, {"type": "number"}]
    }


def test_titles_and_defaults_are_dropped_but_a_field_called_title_survives() -> None:
    schema = obj(
        {"title": {"type": "string", "title": "Title", "default": "x"}},
        title="Book",
        required=["title"],
    )
    assert strict_schema(schema) == obj(
        {"title": {"type": "string"}}, required=["title"], additionalProperties=False
    )


def test_nested_objects_everywhere_are_made_strict() -> None:
    inner = obj({"x": {"type": "string"}})
    schema = obj(
        {
            "items": {"type": "array", "items": inner},
            "either": {"anyOf": [inner, {"type": "string"}]},
            "pair": {"type": "array", "prefixItems": [inner, {"type": "integer"}]},
            "ref": {"$ref": "#/$defs/Inner"},
        },
        required=["items", "either", "pair", "ref"],
        **{"$defs": {"Inner": inner}},
    )
    result = strict_schema(schema)
    strict_inner = obj(
        {"x": {"type": ["string", "null"]}}, required=["x"], additionalProperties=False
    )
    assert result["properties"]["items"]["items"] == strict_inner
    assert result["properties"]["either"]["anyOf"][0] == strict_inner
    assert result["properties"]["pair"]["prefixItems"][0] == strict_inner
    assert result["$defs"]["Inner"] == strict_inner


def test_a_tool_without_parameters_is_strict_as_an_empty_object() -> None:
    assert strict_schema({"type": "object", "properties": {}}) == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "object"}, "the top level"),
        (obj({"a": {"type": "string"}}, additionalProperties=True), "the top level"),
        (obj({"tags": {"type": "object", "additionalProperties": {"type": "string"}}}), "$.tags"),
        (obj({"rows": {"type": "array", "items": {"type": "object"}}}), "$.rows[]"),
    ],
    ids=["bare-object", "additional-true", "dict-of-strings", "list-of-dicts"],
)
def test_a_free_form_object_cannot_be_strict_and_the_error_says_where(
    schema: dict[str, Any], where: str
) -> None:
    with pytest.raises(StrictSchemaError) as info:
        strict_schema(schema)
    message = str(info.value)
    assert message.startswith(where)
    assert "free-form object" in message
    assert "\n" not in message


def test_the_input_schema_is_left_as_it_was() -> None:
    schema = obj({"a": {"type": "string", "title": "A"}, "b": {"$ref": "#/$defs/B"}}, title="T")
    schema["$defs"] = {"B": obj({"c": {"type": "integer"}})}
    before = copy.deepcopy(schema)
    strict_schema(schema)
    assert schema == before


def test_a_non_dict_schema_is_refused() -> None:
    with pytest.raises(StrictSchemaError, match="must be a dict, not list"):
        strict_schema([{"type": "string"}])  # type: ignore[arg-type]


def test_a_root_reference_is_written_out_and_definitions_kept() -> None:
    node = obj({"next": {"$ref": "#/$defs/Node"}, "value": {"type": "integer"}}, required=["value"])
    result = strict_schema({"$defs": {"Node": node}, "$ref": "#/$defs/Node"})
    assert "$ref" not in result
    assert result["type"] == "object"
    assert result["required"] == ["next", "value"]
    assert result["$defs"]["Node"]["additionalProperties"] is False


def test_a_dangling_root_reference_is_reported() -> None:
    with pytest.raises(StrictSchemaError, match="does not define"):
        strict_schema({"$ref": "#/$defs/Nowhere"})


def test_strict_schema_writes_a_root_ref_out_and_keeps_the_input():
    schema = {
        "$defs": {"A": {"title": "A", "type": "object", "properties": {"x": {"type": "integer"}}}},
        "$ref": "#/$defs/A",
    }
    strict = strict_schema(schema)
    assert {k: v for k, v in strict.items() if k != "$defs"} == {
        "type": "object",
        "properties": {"x": {"type": ["integer", "null"]}},
        "required": ["x"],
        "additionalProperties": False,
    }
    assert schema == {
        "$defs": {"A": {"title": "A", "type": "object", "properties": {"x": {"type": "integer"}}}},
        "$ref": "#/$defs/A",
    }


def test_strict_schema_reports_a_dangling_root_ref():
    with pytest.raises(StrictSchemaError, match="the top level refers to '#/\\$defs/Missing'"):
        strict_schema({"$defs": {}, "$ref": "#/$defs/Missing"})
