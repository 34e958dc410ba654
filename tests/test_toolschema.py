from __future__ import annotations

import enum
from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel, Field, create_model

from nbchat.convert.toolerrors import ToolDefinitionError
from nbchat.convert.toolschema import choose_strict, model_schema
from nbchat.protocol.validation import Validator


class Size(enum.Enum):
    S = "s"
    L = "l"


class Point(BaseModel):
    """A point."""

    x: int
    y: int = 0


def _schema(**fields: Any) -> dict[str, Any]:
    return model_schema(create_model("args", **fields), "f", {})


def test_a_described_reference_is_written_out_with_its_description() -> None:
    schema = _schema(where=(Point, Field(description="the spot")))
    assert schema["properties"]["where"] == {
        "description": "the spot",
        "properties": {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}},
        "required": ["x"],
        "type": "object",
    }
    assert "$defs" not in schema, "nothing refers to Point any more"


def test_an_enum_default_beside_its_reference_is_merged_in() -> None:
    schema = _schema(size=(Size, Size.L))
    assert schema["properties"]["size"] == {"type": "string", "enum": ["s", "l"], "default": "l"}


def test_optional_types_become_type_lists_only_where_that_keeps_the_meaning() -> None:
    schema = _schema(n=(Optional[int], None), mode=(Optional[Literal["fast"]], None))  # noqa: UP045
    props = schema["properties"]
    assert props["n"] == {"type": ["integer", "null"], "default": None}
    # A const cannot share a type list with null: that would reject null.
    assert props["mode"] == {
        "anyOf": [{"const": "fast", "type": "string"}, {"type": "null"}],
        "default": None,
    }
    checked = Validator(schema)
    for value in ({"n": None, "mode": None}, {"n": 1, "mode": "fast"}):
        assert checked.is_valid(value)
    assert not checked.is_valid({"mode": "slow"})


def test_titles_and_the_top_level_description_are_left_out() -> None:
    schema = model_schema(Point, "point", {"x": "across"})
    assert "title" not in schema and "description" not in schema
    assert schema["properties"]["x"] == {"type": "integer", "description": "across"}


def test_choose_strict_picks_strict_when_the_schema_allows_it() -> None:
    base = _schema(x=(int, ...), y=(int, 1))
    schema, strict = choose_strict(base, None, "f")
    assert strict is True
    assert schema["required"] == ["x", "y"]
    assert schema["properties"]["y"] == {"type": ["integer", "null"]}
    plain, strict = choose_strict(base, False, "f")
    assert (plain, strict) == (base, False)
    assert plain is not base


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"counts": (dict[str, int], ...)}, "free-form object"),
        ({"anything": (Any, ...)}, "$.anything accepts any value"),
    ],
    ids=["free-form-dict", "any"],
)
def test_a_schema_strict_mode_cannot_express_falls_back_or_fails_when_asked(
    fields: dict[str, Any], problem: str
) -> None:
    base = _schema(**fields)
    assert choose_strict(base, None, "f") == (base, False)
    with pytest.raises(ToolDefinitionError, match="f cannot be strict: ") as info:
        choose_strict(base, True, "f")
    assert problem in str(info.value)
