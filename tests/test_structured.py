from __future__ import annotations

import dataclasses
import enum
import subprocess
import sys
from typing import Any, Literal

import pandas as pd
import pytest
from pydantic import BaseModel, Field

from nbchat.convert.structured import (
    StructuredOutputError,
    parse_reply,
    response_format_for,
    schema_of,
    to_frame,
    validate_json,
)
from nbchat.protocol.exceptions import NbchatError
from nbchat.protocol.schema import StrictSchemaError, strict_schema


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str
    zip: str | None = None


class Person(BaseModel):
    """A person."""

    name: str = Field(description="full name")
    age: int = 30
    colour: Colour = Colour.RED
    work: Address | None = None
    home: Address = Field(description="where they live")
    tags: list[str] = []
    kind: Literal["staff", "guest"] = "guest"


class Node(BaseModel):
    value: int
    children: list[Node] = []


class Team(BaseModel):
    people: list[Person]


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


# ---------------------------------------------------------------------------------------------
# parse_reply


def test_a_model_reply_becomes_an_instance():
    reply = (
        '{"name": "张三", "age": 28, "colour": "blue", "work": null,'
        ' "home": {"city": "上海", "zip": null}, "tags": ["a"], "kind": "staff"}'
    )
    person = parse_reply(reply, None, schema_or_model=Person)
    assert isinstance(person, Person)
    assert person.name == "张三"
    assert person.colour is Colour.BLUE
    assert person.home == Address(city="上海")
    assert person.work is None


def test_nulls_for_defaulted_fields_mean_the_default():
    reply = (
        '{"name": "a", "age": null, "colour": null, "work": null,'
        ' "home": {"city": "x", "zip": null}, "tags": null, "kind": null}'
    )
    person = parse_reply(reply, schema_or_model=Person)
    assert (person.age, person.colour, person.tags, person.kind) == (30, Colour.RED, [], "guest")


def test_nulls_are_dropped_inside_lists_of_nested_models():
    reply = (
        '{"people": [{"name": "a", "age": null, "colour": null, "work": null,'
        ' "home": {"city": "x", "zip": null}, "tags": null, "kind": null}]}'
    )
    team = parse_reply(reply, schema_or_model=Team)
    assert team.people[0].age == 30


def test_a_null_for_a_required_field_is_still_a_mismatch():
    reply = '{"name": null, "home": {"city": "x"}}'
    with pytest.raises(StructuredOutputError) as info:
        parse_reply(reply, schema_or_model=Person)
    assert info.value.reason == "schema_mismatch"
    assert info.value.errors[0].startswith("$.name:")
    assert info.value.raw == reply


def test_a_wrapped_list_is_unwrapped():
    reply = '{"items": [{"city": "a", "zip": null}, {"city": "b", "zip": "1"}]}'
    result = parse_reply(reply, schema_or_model=list[Address])
    assert result == [Address(city="a"), Address(city="b", zip="1")]


def test_a_wrapped_reply_without_its_key_is_a_mismatch():
    with pytest.raises(StructuredOutputError, match="expected an object with the key 'items'"):
        parse_reply("[]", schema_or_model=list[Address])


def test_without_a_schema_the_json_is_returned():
    assert parse_reply('{"name": "张三", "age": 28, "city": "上海"}') == {
        "name": "张三",
        "age": 28,
        "city": "上海",
    }


@pytest.mark.parametrize(
    "reply",
    [
        '```json\n{"a": 1}\n```',
        '```\n{"a": 1}\n```',
        '  ```JSON\n{"a": 1}```  ',
        '\n{"a": 1}\n',
    ],
)
def test_a_fenced_reply_is_accepted(reply):
    assert parse_reply(reply) == {"a": 1}


@pytest.mark.parametrize("reply", ['Here you go: {"a": 1}', '```json\n{"a": 1}\n``` done'])
def test_prose_around_the_json_is_invalid(reply):
    with pytest.raises(StructuredOutputError) as info:
        parse_reply(reply)
    assert info.value.reason == "invalid_json"


def test_invalid_json_says_where():
    with pytest.raises(StructuredOutputError, match=r"not valid JSON: .* at line 2 column") as info:
        parse_reply('{"a": 1,\n "b": }')
    assert info.value.reason == "invalid_json"
    assert info.value.raw == '{"a": 1,\n "b": }'
    assert "\n" not in str(info.value)


def test_json_cut_off_by_max_tokens_is_reported_as_truncated():
    with pytest.raises(StructuredOutputError, match="cut off at max_tokens") as info:
        parse_reply('{"a": [1, 2', finish_reason="length")
    assert info.value.reason == "truncated"


def test_a_refusal_is_an_error_even_with_content():
    with pytest.raises(StructuredOutputError, match="the model refused: I can't help") as info:
        parse_reply('{"a": 1}', "I can't help\nwith that.", schema_or_model=Address)
    assert info.value.reason == "refusal"
    assert info.value.raw == "I can't help\nwith that."
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [None, "", "   "])
def test_an_empty_reply_is_an_error(content):
    with pytest.raises(StructuredOutputError, match="empty") as info:
        parse_reply(content)
    assert info.value.reason == "empty"


def test_an_empty_reply_at_max_tokens_is_truncated():
    with pytest.raises(StructuredOutputError) as info:
        parse_reply(None, finish_reason="length")
    assert info.value.reason == "truncated"


def test_a_model_mismatch_lists_every_problem_with_paths():
    with pytest.raises(StructuredOutputError) as info:
        parse_reply('{"name": 5, "home": {"zip": 1}}', schema_or_model=Person)
    error = info.value
    assert error.reason == "schema_mismatch"
    assert "$.name: Input should be a valid string" in error.errors
    assert any(e.startswith("$.home.city:") for e in error.errors)
    assert str(error).startswith("the reply does not match the schema: ")
    assert f"(and {len(error.errors) - 1} more)" in str(error)


def test_a_dict_schema_reply_is_validated():
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "city": {"enum": ["上海", "北京"]},
        },
        "required": ["name", "age", "city"],
        "additionalProperties": False,
    }
    ok = parse_reply('{"name": "张三", "age": 28, "city": "上海"}', schema_or_model=schema)
    assert ok == {"name": "张三", "age": 28, "city": "上海"}
    with pytest.raises(StructuredOutputError) as info:
        parse_reply('{"name": "张三", "age": -1, "city": "杭州", "x": 1}', schema_or_model=schema)
    assert info.value.errors == [
        "$.age: -1 is less than 0",
        '$.city: "杭州" is not one of "上海", "北京"',
        "$: unexpected property 'x'",
    ]


def test_a_dict_schema_null_for_an_optional_property_is_dropped():
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "nick": {"type": "string"}},
        "required": ["name"],
    }
    assert parse_reply('{"name": "a", "nick": null}', schema_or_model=schema) == {"name": "a"}


def test_structured_output_error_is_an_nbchat_value_error():
    assert issubclass(StructuredOutputError, NbchatError)
    assert issubclass(StructuredOutputError, ValueError)


# ---------------------------------------------------------------------------------------------
# validate_json


CASES = [
    ({"type": "integer"}, 3, True),
    ({"type": "integer"}, 3.0, True),
    ({"type": "integer"}, 3.5, False),
    ({"type": "integer"}, True, False),
    ({"type": "number"}, False, False),
    ({"type": ["string", "null"]}, None, True),
    ({"type": "string", "minLength": 2, "maxLength": 3}, "abcd", False),
    ({"type": "string", "pattern": "^a+$"}, "aaa", True),
    ({"type": "string", "pattern": "^a+$"}, "ab", False),
    ({"enum": [1, "a", None]}, True, False),
    ({"enum": [1, "a", None]}, 1.0, True),
    ({"const": False}, 0, False),
    ({"type": "number", "exclusiveMaximum": 1}, 1, False),
    ({"type": "number", "multipleOf": 0.5}, 1.5, True),
    ({"type": "number", "multipleOf": 0.5}, 1.2, False),
    ({"type": "array", "items": {"type": "string"}, "minItems": 1}, [], False),
    ({"type": "array", "items": {"type": "string"}}, ["a", 1], False),
    ({"type": "array", "uniqueItems": True}, [1, 1.0], False),
    ({"type": "array", "uniqueItems": True}, [1, True], True),
    ({"prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False}, [1, "a"], True),
    ({"prefixItems": [{"type": "integer"}], "items": False}, [1, "a"], False),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 2, True),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, [], False),
    ({"oneOf": [{"type": "number"}, {"type": "integer"}]}, 2, False),
    ({"allOf": [{"minimum": 1}, {"maximum": 3}]}, 4, False),
    ({"not": {"type": "null"}}, None, False),
    (
        {
            "$defs": {"P": {"type": "object", "properties": {"a": {"$ref": "#/$defs/P"}}}},
            "$ref": "#/$defs/P",
        },
        {"a": {"a": {}}},
        True,
    ),
    (
        {"type": "object", "additionalProperties": {"type": "integer"}},
        {"x": 1, "y": "2"},
        False,
    ),
    ({"type": "object", "required": ["a"]}, {}, False),
]


@pytest.mark.parametrize(("schema", "value", "valid"), CASES)
def test_the_validator_accepts_and_rejects(schema, value, valid):
    assert (validate_json(value, schema) == []) is valid


@pytest.mark.parametrize(("schema", "value", "valid"), CASES)
def test_the_validator_agrees_with_jsonschema_where_it_is_installed(schema, value, valid):
    jsonschema = pytest.importorskip("jsonschema")
    checker = jsonschema.Draft202012Validator(schema)
    assert checker.is_valid(value) is valid


def test_a_dangling_ref_is_reported_not_raised():
    assert validate_json(1, {"$ref": "#/$defs/Nope"}) == [
        "$: the schema refers to '#/$defs/Nope', which is not defined"
    ]


def test_at_most_ten_errors_are_listed():
    schema = {"type": "array", "items": {"type": "string"}}
    assert len(validate_json(list(range(50)), schema)) == 10


# ---------------------------------------------------------------------------------------------
# to_frame


def test_a_list_of_records_becomes_a_frame():
    frame = to_frame([{"name": "a", "age": 1}, {"name": "b", "age": 2}])
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("list") == {"name": ["a", "b"], "age": [1, 2]}


def test_models_with_nested_objects_become_dotted_columns():
    frame = to_frame([Address(city="x", zip="1"), Address(city="y")])
    assert list(frame.columns) == ["city", "zip"]
    people = parse_reply(
        '{"items": [{"name": "a", "age": 1, "colour": "red", "work": null,'
        ' "home": {"city": "x", "zip": null}, "tags": [], "kind": "staff"}]}',
        schema_or_model=list[Person],
    )
    frame = to_frame(people)
    assert frame.loc[0, "home.city"] == "x"
    assert frame.loc[0, "colour"] == "red"


def test_a_wrapper_with_one_list_of_records_gives_those_records():
    team = Team(people=[Person(name="a", home=Address(city="x"))])
    assert to_frame(team)["name"].tolist() == ["a"]
    assert to_frame({"total": 2, "rows": [{"a": 1}, {"a": 2}]})["a"].tolist() == [1, 2]


def test_a_single_record_is_one_row_and_scalars_are_a_value_column():
    assert to_frame({"a": 1, "b": 2}).shape == (1, 2)
    assert to_frame([1, 2, 3])["value"].tolist() == [1, 2, 3]


def test_what_is_not_records_cannot_be_a_frame():
    with pytest.raises(StructuredOutputError, match="cannot make a table of a str") as info:
        to_frame("hello")
    assert info.value.reason == "not_records"


def test_importing_the_module_does_not_import_pandas():
    code = "import sys, nbchat.convert.structured\nprint('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
