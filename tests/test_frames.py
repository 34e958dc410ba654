from __future__ import annotations

import pandas as pd
import pytest

from nbchat.convert.frames import to_frame
from nbchat.convert.parsing import StructuredOutputError, parse_reply
from tests.structured_models import Address, Person, Team

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
