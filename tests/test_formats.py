from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel

from nbchat.convert.formats import Target, response_format_for, schema_of
from nbchat.protocol.schema import SchemaError, StrictSchemaError
from tests.structured_models import Address, Node, Person, Team


def walk(node: Any, path: str = "$"):
    """Every schema dict in a schema, with its path."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def assert_strict(schema: dict[str, Any]) -> None:
    for path, node in walk(schema):
        if node.get("type") == "object" or (
            isinstance(node.get("type"), list) and "object" in node["type"]
        ):
            assert node["additionalProperties"] is False, path
            assert sorted(node["required"]) == sorted(node["properties"]), path
        if "$ref" in node:
            assert len(node) == 1, f"{path} has a $ref with siblings"
        assert "default" not in node or path.endswith(".properties"), path


# ---------------------------------------------------------------------------------------------
# response_format_for


def test_json_mode_is_json_object():
    assert response_format_for(json=True) == {"type": "json_object"}


def test_neither_schema_nor_json_is_an_error():
    with pytest.raises(ValueError, match="needs a schema or model, or json=True"):
        response_format_for()


def test_the_references_person_info_schema():
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "city": {"type": "string"},
        },
    }
    assert response_format_for(schema, name="person_info") == {
        "type": "json_schema",
        "json_schema": {
            "name": "person_info",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": ["string", "null"]},
                    "age": {"type": ["integer", "null"]},
                    "city": {"type": ["string", "null"]},
                },
                "required": ["name", "age", "city"],
                "additionalProperties": False,
            },
        },
    }
    assert schema["properties"]["name"] == {"type": "string"}, "the input is left as it was"


def test_a_pydantic_model_gives_a_strict_schema_named_after_it():
    fmt = response_format_for(Person)
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Person"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert_strict(schema)
    props = schema["properties"]
    assert schema["required"] == ["name", "age", "colour", "work", "home", "tags", "kind"]
    assert props["name"] == {"description": "full name", "type": "string"}
    assert props["age"] == {"type": ["integer", "null"]}
    assert props["colour"] == {"anyOf": [{"$ref": "#/$defs/Colour"}, {"type": "null"}]}
    assert schema["$defs"]["Colour"] == {"enum": ["red", "blue"], "type": "string"}
    assert props["work"] == {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]}
    assert props["tags"] == {"items": {"type": "string"}, "type": ["array", "null"]}
    assert props["kind"] == {"enum": ["staff", "guest", None], "type": ["string", "null"]}
    # Strict mode rejects $ref + siblings: a one-branch anyOf keeps the description.
    assert props["home"] == {
        "description": "where they live",
        "anyOf": [{"$ref": "#/$defs/Address"}],
    }
    assert schema["$defs"]["Address"]["properties"]["zip"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}]
    }
    assert schema["$defs"]["Address"]["required"] == ["city", "zip"]


def test_nested_lists_of_models_are_strict_all_the_way_down():
    schema = response_format_for(Team)["json_schema"]["schema"]
    assert_strict(schema)
    assert schema["properties"]["people"] == {
        "items": {"$ref": "#/$defs/Person"},
        "type": "array",
    }
    assert schema["$defs"]["Person"]["additionalProperties"] is False


def test_a_recursive_model_gets_an_object_root():
    schema = response_format_for(Node)["json_schema"]["schema"]
    assert schema["type"] == "object"
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert "Node" in schema["$defs"]
    assert_strict(schema)


def test_a_list_type_is_wrapped_in_an_object():
    fmt = response_format_for(list[Address])
    schema = fmt["json_schema"]["schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["items"]
    assert schema["properties"]["items"] == {"items": {"$ref": "#/$defs/Address"}, "type": "array"}
    assert "Address" in schema["$defs"]
    assert fmt["json_schema"]["name"] == "list"


def test_a_scalar_type_is_wrapped_as_value():
    schema = schema_of(int)
    assert schema == {
        "type": "object",
        "properties": {"value": {"type": "integer"}},
        "required": ["value"],
        "additionalProperties": False,
    }


def test_a_dataclass_is_accepted():
    @dataclasses.dataclass
    class Point:
        x: int
        y: int = 0

    fmt = response_format_for(Point)
    assert fmt["json_schema"]["name"] == "Point"
    assert fmt["json_schema"]["schema"]["required"] == ["x", "y"]


def test_names_are_made_valid_for_the_api():
    schema = {"type": "object", "properties": {"t": {"type": "number"}}}
    fmt = response_format_for(schema, name="my schema: v2!")
    assert fmt["json_schema"]["name"] == "my_schema_v2"
    titled = {"title": "Weather Report", "type": "object", "properties": {"t": {"type": "number"}}}
    assert response_format_for(titled)["json_schema"]["name"] == "Weather_Report"


def test_a_free_form_dict_cannot_be_strict_but_can_be_sent_non_strict():
    class Loose(BaseModel):
        counts: dict[str, int]

    with pytest.raises(StrictSchemaError, match="free-form object"):
        response_format_for(Loose)
    fmt = response_format_for(Loose, strict=False)
    assert fmt["json_schema"]["strict"] is False
    assert fmt["json_schema"]["schema"]["properties"]["counts"]["additionalProperties"] == {
        "type": "integer"
    }


def test_a_model_instance_is_refused_with_a_hint():
    with pytest.raises(StrictSchemaError, match="pass the model class Address, not an instance"):
        response_format_for(Address(city="x"))


def test_a_type_pydantic_cannot_describe_is_an_error():
    class Opaque:
        pass

    with pytest.raises(StrictSchemaError, match="cannot make a JSON schema of Opaque") as info:
        response_format_for(Opaque)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("strict", [True, False])
def test_a_dict_schema_jsonschema_cannot_use_is_refused_before_anything_is_sent(
    strict: bool,
) -> None:
    with pytest.raises(SchemaError, match=r"\$\.properties\.price\.type: 'nmber' is not valid"):
        response_format_for({"properties": {"price": {"type": "nmber"}}}, strict=strict)
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(5000):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(SchemaError, match="nested too deeply"):
        response_format_for(deep, strict=strict)


def test_the_target_remembers_how_to_read_the_reply_back() -> None:
    target = Target(list[Address])
    assert target.wrap_key == "items"
    assert target.adapter is not None and target.model is None
    assert Target(Person).model is Person
    assert Target({"type": "string"}).wrap_key == "value"
    assert Target({"$defs": {"A": {"type": "array"}}, "$ref": "#/$defs/A"}).wrap_key == "items"
    assert Target({"properties": {"a": {}}}).wrap_key is None
    assert Target({"type": "object"}, name="x y").name == "x_y"
