from __future__ import annotations

import copy
from typing import Any

import pytest

from nbchat.protocol.exceptions import NbchatError
from nbchat.protocol.schema import (
    SchemaError,
    StrictSchemaError,
    accepts_null,
    drop_optional_nulls,
    merged,
    nullable,
    resolve_ref,
    strict_schema,
)
from nbchat.protocol.validation import Validator
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


# ---------------------------------------------------------------------------------------------
# Meaning: validity under the strict schema equals validity under the original after the undo

ADDRESS = obj({"street": {"type": "string"}, "zip": {"type": "string"}}, required=["street"])
CAT = obj({"kind": {"const": "cat"}, "lives": {"type": "integer", "minimum": 1}}, required=["kind"])
DOG = obj({"kind": {"const": "dog"}, "bark": {"type": "string"}}, required=["kind"])

# (schema, replies a strict-mode model could write: every declared property present, nothing
# undeclared). Each list holds valid and invalid replies.
MEANING = {
    "optional-scalars": (
        obj({"name": {"type": "string"}, "age": {"type": "integer"}}, required=["name"]),
        [
            {"name": "a", "age": None},
            {"name": "a", "age": 3},
            {"name": None, "age": 3},
            {"name": "a", "age": "3"},
        ],
    ),
    "optional-const-and-enums": (
        obj(
            {
                "c": {"type": "string", "const": "x"},
                "e": {"type": ["string", "integer"], "enum": ["x", 1]},
                "u": {"enum": ["a", "b"]},
            }
        ),
        [
            {"c": None, "e": None, "u": None},
            {"c": "x", "e": 1, "u": "a"},
            {"c": "y", "e": None, "u": None},
            {"c": None, "e": 2, "u": None},
            {"c": None, "e": None, "u": "z"},
        ],
    ),
    "optional-not": (
        obj({"a": {"type": "string", "not": {"const": "no"}}}),
        [{"a": None}, {"a": "yes"}, {"a": "no"}],
    ),
    "optional-reference-and-nullable-definition": (
        obj(
            {"home": {"$ref": "#/$defs/Address"}, "note": {"$ref": "#/$defs/Note"}},
            **{"$defs": {"Address": ADDRESS, "Note": {"type": ["string", "null"]}}},
        ),
        [
            {"home": None, "note": None},
            {"home": {"street": "a", "zip": None}, "note": "n"},
            {"home": {"street": None, "zip": None}, "note": None},
            {"home": {"street": "a", "zip": 5}, "note": None},
        ],
    ),
    "reference-with-siblings": (
        obj(
            {"age": {"$ref": "#/$defs/Age", "maximum": 150, "description": "years"}},
            required=["age"],
            **{"$defs": {"Age": {"type": "integer", "minimum": 0}}},
        ),
        [{"age": 30}, {"age": -1}, {"age": 200}, {"age": None}],
    ),
    "any-of-object-shapes": (
        obj({"pet": {"anyOf": [CAT, DOG]}}, required=["pet"]),
        [
            {"pet": {"kind": "cat", "lives": None}},
            {"pet": {"kind": "dog", "bark": None}},
            {"pet": {"kind": "dog", "bark": "woof"}},
            {"pet": {"kind": "cat", "lives": 0}},
            {"pet": {"kind": "cow", "bark": None}},
        ],
    ),
    "disjoint-one-of": (
        obj(
            {"pet": {"oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]}},
            **{"$defs": {"Cat": CAT, "Dog": DOG}},
        ),
        [
            {"pet": None},
            {"pet": {"kind": "cat", "lives": 9}},
            {"pet": {"kind": "dog", "bark": None}},
            {"pet": {"kind": "dog", "bark": 1}},
        ],
    ),
    "optional-unions": (
        obj(
            {
                "a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "b": {"type": ["string", "integer"]},
                "c": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
            required=["c"],
        ),
        [
            {"a": None, "b": None, "c": None},
            {"a": 1, "b": "x", "c": "y"},
            {"a": [], "b": None, "c": None},
            {"a": None, "b": 1.5, "c": None},
        ],
    ),
    "arrays-of-objects": (
        obj(
            {
                "rows": {"type": "array", "items": ADDRESS, "minItems": 1},
                "pair": {"type": "array", "prefixItems": [ADDRESS, {"type": "integer"}]},
            },
            required=["rows"],
        ),
        [
            {"rows": [{"street": "a", "zip": None}], "pair": None},
            {"rows": [{"street": "a", "zip": None}], "pair": [{"street": "b", "zip": None}, 1]},
            {"rows": [], "pair": None},
            {"rows": [{"street": "a", "zip": None}, {"street": 1, "zip": None}], "pair": None},
            {"rows": [{"street": "a", "zip": None}], "pair": [{"street": None, "zip": None}, 1]},
        ],
    ),
    "recursive-root-reference": (
        {
            "$defs": {
                "Node": obj(
                    {
                        "value": {"type": "integer"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    },
                    required=["value"],
                )
            },
            "$ref": "#/$defs/Node",
        },
        [
            {"value": 1, "children": None},
            {"value": 1, "children": [{"value": 2, "children": None}]},
            {"value": 1, "children": [{"value": None, "children": None}]},
            {
                "value": 1,
                "children": [{"value": 2, "children": [{"value": "x", "children": None}]}],
            },
        ],
    ),
    "nested-optional-object-and-format": (
        obj(
            {
                "meta": obj(
                    {"when": {"type": "string", "format": "date-time"}, "by": {"type": "string"}},
                    required=["by"],
                )
            }
        ),
        [
            {"meta": None},
            {"meta": {"when": None, "by": "me"}},
            {"meta": {"when": "2024-01-01T00:00:00Z", "by": "me"}},
            {"meta": {"when": "soon", "by": "me"}},
            {"meta": {"when": None, "by": None}},
        ],
    ),
}


@pytest.mark.parametrize("case", MEANING, ids=list(MEANING))
def test_the_strict_schema_and_the_undo_keep_the_meaning_of_the_original(case: str) -> None:
    original, replies = MEANING[case]
    strict = Validator(strict_schema(original))
    plain = Validator(original)
    outcomes = []
    for reply in replies:
        read_back = drop_optional_nulls(reply, plain)
        assert strict.is_valid(reply) == plain.is_valid(read_back), reply
        outcomes.append(plain.is_valid(read_back))
    assert True in outcomes and False in outcomes, "each case needs valid and invalid replies"


def test_the_undo_gives_back_what_the_user_would_have_written() -> None:
    original, _ = MEANING["any-of-object-shapes"]
    plain = Validator(original)
    assert drop_optional_nulls({"pet": {"kind": "dog", "bark": None}}, plain) == {
        "pet": {"kind": "dog"}
    }
    schema, _ = MEANING["optional-reference-and-nullable-definition"]
    # Note accepts null, so its null is the user's value and stays.
    assert drop_optional_nulls({"home": None, "note": None}, Validator(schema)) == {"note": None}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            obj({"a": {"allOf": [ADDRESS, obj({"b": {"type": "string"}})]}}, required=["a"]),
            r"\$\.a names its properties in more than one place \(allOf, allOf\)",
        ),
        (
            obj(
                {"a": {"$ref": "#/$defs/A", "properties": {"y": {"type": "string"}}}},
                required=["a"],
                **{"$defs": {"A": ADDRESS}},
            ),
            r"\$\.a names its properties in more than one place \(properties, \$ref\)",
        ),
        (
            obj({"k": {"type": "string"}}, anyOf=[CAT, DOG]),
            r"the top level names its properties in more than one place \(properties, anyOf\)",
        ),
        (
            {"$defs": {"N": ADDRESS}, "$ref": "#/$defs/N", "properties": {"w": {}}},
            "the top level refers to '#/\\$defs/N' and adds keywords that cannot be merged",
        ),
        (
            obj(
                {"a": {"$ref": "#/$defs/A", "anyOf": [{"type": "object"}]}},
                **{"$defs": {"A": ADDRESS}},
            ),
            r"\$\.a has both \$ref and anyOf",
        ),
    ],
    ids=[
        "all-of-objects",
        "ref-beside-properties",
        "properties-beside-any-of",
        "root-ref",
        "ref-any-of",
    ],
)
def test_what_strict_mode_cannot_close_without_changing_the_meaning_is_refused(
    schema: dict[str, Any], message: str
) -> None:
    with pytest.raises(StrictSchemaError, match=message):
        strict_schema(schema)


def test_an_object_of_object_branches_is_left_open_for_its_branches_to_close() -> None:
    schema = {"type": "object", "anyOf": [CAT, DOG]}
    result = strict_schema(schema)
    assert "additionalProperties" not in result
    assert [branch["additionalProperties"] for branch in result["anyOf"]] == [False, False]


def test_a_root_reference_with_annotations_beside_it_is_written_out() -> None:
    schema = {"$defs": {"A": ADDRESS}, "$ref": "#/$defs/A", "description": "an address"}
    result = strict_schema(schema)
    assert result["description"] == "an address"
    assert result["required"] == ["street", "zip"]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": []},
        {"type": "object", "properties": {"a": 5}},
        obj({"a": {"type": "strnig"}}),
        obj({"a": {"$ref": "#/$defs/Missing"}}),
    ],
    ids=["properties-list", "property-not-a-schema", "misspelt-type", "dangling-nested-ref"],
)
def test_a_schema_jsonschema_cannot_use_is_a_schema_error_not_a_crash(schema: Any) -> None:
    with pytest.raises(StrictSchemaError) as info:
        strict_schema(schema)
    assert isinstance(info.value, SchemaError)
    assert isinstance(info.value, NbchatError)
    assert "\n" not in str(info.value)


def test_strict_schema_error_is_an_nbchat_value_error() -> None:
    assert issubclass(StrictSchemaError, SchemaError)
    assert issubclass(StrictSchemaError, NbchatError)
    assert issubclass(StrictSchemaError, ValueError)


# ---------------------------------------------------------------------------------------------
# The shared helpers


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"type": "integer"}, {"type": ["integer", "null"]}),
        ({"type": ["string", "integer"]}, {"type": ["string", "integer", "null"]}),
        (
            {"type": "string", "enum": ["a"], "description": "d"},
            {"type": ["string", "null"], "enum": ["a", None], "description": "d"},
        ),
        (
            {"type": "string", "const": "x", "description": "d"},
            {"description": "d", "anyOf": [{"type": "string", "const": "x"}, {"type": "null"}]},
        ),
        ({"$ref": "#/$defs/A"}, {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}),
        (
            {"anyOf": [{"type": "string"}], "description": "d"},
            {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "d"},
        ),
        ({"enum": ["a"]}, {"anyOf": [{"enum": ["a"]}, {"type": "null"}]}),
    ],
    ids=["type", "type-list", "enum", "const", "ref", "any-of", "enum-without-type"],
)
def test_nullable_writes_null_in_without_changing_the_rest(
    node: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = nullable(node)
    assert result == expected
    # Exactly the node's values and null, checked by jsonschema on a few samples.
    defs = {"$defs": {"A": {"type": "integer"}}}
    before = Validator({**node, **defs})
    after = Validator({**result, **defs})
    for sample in [None, "a", "x", 1, 2.5, [], {}]:
        assert after.is_valid(sample) == (sample is None or before.is_valid(sample)), sample


def test_accepts_null_is_answered_by_the_validator_for_every_keyword() -> None:
    schema = {
        "$defs": {"N": {"type": ["integer", "null"]}},
        "properties": {
            "ref": {"$ref": "#/$defs/N"},
            "all": {"allOf": [{"type": ["string", "null"]}, {"not": {"type": "null"}}]},
            "const": {"const": None},
            "any": {},
            "typed_keywords": {"minLength": 3},
        },
    }
    checked = Validator(schema)
    props = schema["properties"]
    assert accepts_null(props["ref"], checked)
    assert not accepts_null(props["all"], checked)
    assert accepts_null(props["const"], checked)
    assert accepts_null(props["any"], checked)
    assert accepts_null(props["typed_keywords"], checked)


def test_resolve_ref_takes_one_step() -> None:
    schema = {"$defs": {"A": {"$ref": "#/$defs/B", "minimum": 1}, "B": {"type": "integer"}}}
    checked = Validator(schema)
    assert resolve_ref({"$ref": "#/$defs/A"}, checked) == {"$ref": "#/$defs/B", "minimum": 1}
    with pytest.raises(SchemaError, match="does not define"):
        resolve_ref({"$ref": "#/$defs/C"}, checked)


@pytest.mark.parametrize(
    ("target", "siblings", "expected"),
    [
        ({"type": "integer"}, {"description": "d"}, {"type": "integer", "description": "d"}),
        (
            {"type": "integer", "description": "t"},
            {"description": "s"},
            {"type": "integer", "description": "s"},
        ),
        ({"type": "integer"}, {"maximum": 3}, {"type": "integer", "maximum": 3}),
        ({"type": "integer"}, {"type": "string"}, None),
        ({"properties": {"a": {}}}, {"additionalProperties": False}, None),
        ({"items": {"type": "string"}}, {"prefixItems": [{}]}, None),
    ],
    ids=["annotation", "annotation-wins", "disjoint", "clash", "split-group", "split-items"],
)
def test_merged_is_a_flat_merge_only_where_it_means_both(
    target: dict[str, Any], siblings: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    assert merged(target, siblings) == expected


def test_the_undo_leaves_its_input_and_unknown_keys_alone() -> None:
    schema = obj({"a": {"type": "string"}, "b": ADDRESS})
    reply = {"a": None, "b": {"street": "s", "zip": None}, "extra": None}
    before = copy.deepcopy(reply)
    assert drop_optional_nulls(reply, Validator(schema)) == {"b": {"street": "s"}, "extra": None}
    assert reply == before
