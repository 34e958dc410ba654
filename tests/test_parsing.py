from __future__ import annotations

import json
from typing import Any

import pytest

from nbchat.convert.formats import response_format_for
from nbchat.convert.parsing import StructuredOutputError, parse_reply
from nbchat.protocol.exceptions import NbchatError
from nbchat.protocol.schema import SchemaError
from nbchat.protocol.validation import Validator
from tests.structured_models import Address, Colour, Person, Team
from tests.test_schema import MEANING

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
        "$.age: -1 is less than the minimum of 0",
        "$.city: '杭州' is not one of ['上海', '北京']",
        "$: Additional properties are not allowed ('x' was unexpected)",
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
# Meaning: the wire schema and the reply check agree


def _obj(properties: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **rest}


@pytest.mark.parametrize("case", MEANING, ids=list(MEANING))
def test_a_reply_valid_on_the_wire_is_exactly_a_reply_parse_reply_accepts(case: str) -> None:
    original, replies = MEANING[case]
    wire = Validator(response_format_for(original)["json_schema"]["schema"])
    for reply in replies:
        try:
            parse_reply(json.dumps(reply), schema_or_model=original)
            accepted = True
        except StructuredOutputError as exc:
            assert exc.reason == "schema_mismatch"
            accepted = False
        assert wire.is_valid(reply) == accepted, reply


def test_an_overlapping_one_of_is_looser_on_the_wire_but_the_reply_is_held_to_it() -> None:
    schema = _obj({"n": {"oneOf": [{"type": "integer"}, {"minimum": 0}]}}, required=["n"])
    wire = response_format_for(schema)["json_schema"]["schema"]
    assert wire["properties"]["n"] == {"anyOf": [{"type": "integer"}, {"minimum": 0}]}
    assert Validator(wire).is_valid({"n": 3})
    with pytest.raises(StructuredOutputError) as info:
        parse_reply('{"n": 3}', schema_or_model=schema)
    assert info.value.errors[0].startswith("$.n: 3 is valid under each of")


# ---------------------------------------------------------------------------------------------
# What JSON cannot carry, and schemas that cannot be used


@pytest.mark.parametrize("reply", ['{"a": NaN}', '{"a": Infinity}', "[-Infinity]"])
def test_nan_and_infinity_are_not_json(reply: str) -> None:
    with pytest.raises(StructuredOutputError, match="is not a JSON number") as info:
        parse_reply(reply)
    assert info.value.reason == "invalid_json"


def test_a_number_too_large_for_a_float_is_named_by_its_path() -> None:
    schema = {"type": "object", "properties": {"items": {"type": "array"}}}
    with pytest.raises(StructuredOutputError) as info:
        parse_reply('{"items": [1, {"price": 1e999}]}', schema_or_model={**schema})
    assert info.value.reason == "invalid_json"
    assert "the number at $.items[1].price is too large for a float" in str(info.value)


def test_json_nested_too_deeply_is_invalid_json_not_a_crash() -> None:
    with pytest.raises(StructuredOutputError, match="nested too deeply") as info:
        parse_reply("[" * 100_000 + "]" * 100_000)
    assert info.value.reason == "invalid_json"


def test_a_dict_schema_the_library_cannot_use_is_a_schema_error_before_the_reply_is_read() -> None:
    with pytest.raises(SchemaError, match=r"\$\.properties\.a: 5 is not of type"):
        parse_reply("not even json", schema_or_model={"properties": {"a": 5}})


def test_formats_are_checked_in_dict_schema_replies() -> None:
    schema = {
        "type": "object",
        "properties": {"when": {"type": "string", "format": "date"}},
        "required": ["when"],
    }
    assert parse_reply('{"when": "2024-02-29"}', schema_or_model=schema) == {"when": "2024-02-29"}
    with pytest.raises(StructuredOutputError) as info:
        parse_reply('{"when": "2023-02-29"}', schema_or_model=schema)
    assert info.value.errors == ["$.when: '2023-02-29' is not a 'date'"]


def test_a_mismatch_deep_in_a_list_names_its_path() -> None:
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"price": {"type": "number", "minimum": 0}},
            "required": ["price"],
        },
    }
    reply = '{"items": [{"price": 1}, {"price": 2}, {"price": -3}]}'
    with pytest.raises(StructuredOutputError) as info:
        parse_reply(reply, schema_or_model=schema)
    assert info.value.errors == ["$.items[2].price: -3 is less than the minimum of 0"]
    assert str(info.value) == (
        "the reply does not match the schema: $.items[2].price: -3 is less than the minimum of 0"
    )


def test_a_pydantic_union_drops_the_nulls_of_the_branch_that_matches() -> None:
    from typing import Literal

    from pydantic import BaseModel

    class Cat(BaseModel):
        kind: Literal["cat"]
        lives: int = 9

    class Dog(BaseModel):
        kind: Literal["dog"]
        bark: str = "woof"

    class Home(BaseModel):
        pet: Cat | Dog

    home = parse_reply('{"pet": {"kind": "dog", "bark": null}}', schema_or_model=Home)
    assert home.pet == Dog(kind="dog")
    home = parse_reply('{"pet": {"kind": "cat", "lives": null}}', schema_or_model=Home)
    assert home.pet == Cat(kind="cat")


def test_importing_the_structured_output_modules_does_not_import_pandas():
    import subprocess
    import sys

    code = (
        "import sys, nbchat.convert.parsing, nbchat.convert.formats, nbchat.convert.frames\n"
        "print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
