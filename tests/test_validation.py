from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from nbchat.protocol.exceptions import NbchatError
from nbchat.protocol.validation import MAX_ERRORS, SchemaError, Validator, json_path

_ROOT = Path(__file__).resolve().parent.parent

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
def test_the_validator_accepts_and_rejects(schema: Any, value: Any, valid: bool) -> None:
    checked = Validator(schema)
    assert (checked.errors(value) == []) is valid
    assert checked.is_valid(value) is valid


def test_each_error_names_the_json_path_of_the_bad_value() -> None:
    schema = {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {"price": {"type": "number"}}},
            }
        },
    }
    errors = Validator(schema).errors({"items": [{"price": 1}, {"price": 2}, {"price": "3"}]})
    assert errors == ["$.items[2].price: '3' is not of type 'number'"]


def test_the_closest_branch_of_a_failed_any_of_is_reported() -> None:
    schema = {
        "properties": {"zip": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]}}
    }
    assert Validator(schema).errors({"zip": "1234567"}) == ["$.zip: '1234567' is too long"]


def test_keys_that_are_not_identifiers_are_quoted_in_paths() -> None:
    assert (
        json_path(["a", 0, "my key", "名字", 'say "hi"']) == '$.a[0]["my key"].名字["say \\"hi\\""]'
    )
    assert json_path([]) == "$"


def test_known_formats_are_checked() -> None:
    checked = Validator(
        {
            "type": "object",
            "properties": {
                "when": {"type": "string", "format": "date-time"},
                "mail": {"type": "string", "format": "email"},
                "site": {"type": "string", "format": "uri"},
                "mood": {"type": "string", "format": "not-a-known-format"},
            },
        }
    )
    good = {"when": "2024-05-01T12:00:00Z", "mail": "a@b.c", "site": "https://x.org/", "mood": "?"}
    assert checked.errors(good) == []
    bad = {"when": "yesterday", "mail": "nobody", "site": "not a uri", "mood": "?"}
    assert checked.errors(bad) == [
        "$.when: 'yesterday' is not a 'date-time'",
        "$.mail: 'nobody' is not a 'email'",
        "$.site: 'not a uri' is not a 'uri'",
    ]


def test_at_most_ten_errors_are_listed() -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    errors = Validator(schema).errors(list(range(50)))
    assert len(errors) == MAX_ERRORS == 10
    assert errors[0] == "$[0]: 0 is not of type 'string'"


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": []}, "$.properties: [] is not of type 'object'"),
        ({"type": "strnig"}, "$.type: 'strnig' is not valid under any of the given schemas"),
        ({"minimum": "3"}, "$.minimum: '3' is not of type 'number'"),
        ({"type": "string", "pattern": "(unclosed"}, "$.pattern: '(unclosed' is not a 'regex'"),
        ({"required": "name"}, "$.required: 'name' is not of type 'array'"),
    ],
    ids=["properties-list", "misspelt-type", "string-bound", "bad-regex", "required-string"],
)
def test_a_schema_the_library_cannot_use_is_a_one_line_schema_error(
    schema: dict[str, Any], message: str
) -> None:
    with pytest.raises(SchemaError) as info:
        Validator(schema)
    assert str(info.value) == f"not a valid JSON schema: {message}"
    assert isinstance(info.value, NbchatError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("schema", [[{"type": "string"}], "string", None, 3])
def test_a_schema_that_is_not_a_dict_is_refused(schema: Any) -> None:
    with pytest.raises(SchemaError, match="a JSON schema must be a dict, not"):
        Validator(schema)


def test_a_dangling_ref_is_a_schema_error_naming_where_it_is() -> None:
    with pytest.raises(SchemaError, match="the top level refers to '#/\\$defs/Nope'"):
        Validator({"$ref": "#/$defs/Nope"})
    nested = {"properties": {"a": {"items": {"$ref": "#/$defs/Gone"}}}}
    with pytest.raises(SchemaError, match=r"\$\.properties\.a\.items refers to '#/\$defs/Gone'"):
        Validator(nested)


def test_a_remote_ref_is_never_fetched() -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a reference was fetched")

    with pytest.MonkeyPatch.context() as patch:
        import urllib.request

        patch.setattr(urllib.request, "urlopen", no_network)
        with pytest.raises(SchemaError, match="which this schema does not define"):
            Validator({"$ref": "https://example.com/schema.json"})


def test_references_resolve_within_the_schema_from_any_part_of_it() -> None:
    schema = {
        "$defs": {"Id": {"type": "integer", "minimum": 1}},
        "properties": {"id": {"$ref": "#/$defs/Id"}, "name~/x": {"type": "string"}},
    }
    checked = Validator(schema)
    part = schema["properties"]["id"]
    assert checked.is_valid(3, at=part)
    assert not checked.is_valid(0, at=part)
    assert not checked.is_valid(None, at=part)
    assert checked.lookup("#/properties/name~0~1x") == {"type": "string"}
    with pytest.raises(SchemaError, match="does not define"):
        checked.lookup("#/$defs/Other")


def test_a_nested_id_is_a_new_base_for_references_inside_it() -> None:
    schema = {
        "$id": "https://example.com/root.json",
        "properties": {
            "part": {
                "$id": "https://example.com/part.json",
                "$defs": {"N": {"type": "integer"}},
                "$ref": "#/$defs/N",
            }
        },
    }
    checked = Validator(schema)
    assert checked.errors({"part": "x"}) == ["$.part: 'x' is not of type 'integer'"]


def test_the_dialect_a_schema_declares_is_honoured() -> None:
    # Draft 7's tuple form of items; under 2020-12 items must be one schema.
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "items": [{"type": "integer"}, {"type": "string"}],
    }
    assert Validator(draft7).errors([1, "a"]) == []
    assert Validator(draft7).errors(["a", 1]) == [
        "$[0]: 'a' is not of type 'integer'",
        "$[1]: 1 is not of type 'string'",
    ]
    with pytest.raises(SchemaError):
        Validator({k: v for k, v in draft7.items() if k != "$schema"})


def test_boolean_schemas_are_schemas() -> None:
    assert Validator(True).errors({"anything": 1}) == []
    assert Validator(False).errors(1) == ["$: False schema does not allow 1"]


def test_a_value_nested_too_deeply_is_an_error_not_a_crash() -> None:
    schema = {"$defs": {"N": {"items": {"$ref": "#/$defs/N"}}}, "$ref": "#/$defs/N"}
    value: list[Any] = []
    for _ in range(sys.getrecursionlimit()):
        value = [value]
    checked = Validator(schema)
    assert checked.errors(value) == ["$: the value is nested too deeply to check"]
    assert checked.is_valid(value) is False


def test_a_failure_inside_the_library_is_a_schema_error() -> None:
    # float("inf") / 0.1 overflows inside jsonschema's multipleOf.
    checked = Validator({"multipleOf": 0.1})
    with pytest.raises(SchemaError, match="could not be applied: OverflowError"):
        checked.errors(float("inf"))
    with pytest.raises(SchemaError, match="could not be applied: OverflowError"):
        checked.is_valid(float("inf"))


def test_a_dialect_that_is_not_a_string_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match=r"\$schema must be a string, not int"):
        Validator({"$schema": 5})


def test_an_unknown_dialect_reads_as_draft_2020_12() -> None:
    checked = Validator({"$schema": "https://example.com/my-dialect", "prefixItems": [{}]})
    assert checked.errors([1]) == []


def test_a_schema_nested_too_deeply_for_the_library_is_a_schema_error() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(sys.getrecursionlimit()):
        deep = {"properties": {"a": deep}}
    with pytest.raises(SchemaError, match="not a usable JSON schema: "):
        Validator(deep)


def test_jsonschema_is_imported_only_when_a_schema_is_checked():
    # Importing jsonschema loads every optional format checker installed (Jupyter's
    # rfc3987-syntax builds a Lark grammar: a second and more): a request without a schema must
    # not pay for it, the first cell of every kernel included.
    import subprocess

    script = (
        "import sys, nbchat\n"
        "chat = nbchat.Chat('m', client=nbchat.Client(api_key='sk-x', base_url='http://x.test/v1'))\n"
        "chat.prepare('hello')\n"
        "assert 'jsonschema' not in sys.modules, 'a plain request imported jsonschema'\n"
        "from nbchat.protocol.validation import Validator\n"
        "assert Validator({'type': 'integer'}).errors('a')\n"
        "assert 'jsonschema' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=str(_ROOT), timeout=120)
