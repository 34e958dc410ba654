from __future__ import annotations

import pandas as pd
import pytest

from nbchat import RequestValidationError
from nbchat.convert.rows import RowTemplate, as_prompt, row_source


def test_a_dataframe_is_read_by_position_with_its_index_and_columns():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=["p", "q"])
    source = row_source(frame)
    assert len(source) == 2 and source.frame
    assert source.row(1) == {"a": 2, "b": "y"}
    assert list(source.index) == ["p", "q"]
    assert source.columns == ["a", "b"]


def test_a_series_a_list_and_a_generator_are_rows_too():
    series = row_source(pd.Series(["u", "v"], index=[3, 4]))
    assert series.frame and series.row(0) == "u" and list(series.index) == [3, 4]
    assert row_source([{"a": 1}]).row(0) == {"a": 1}
    generated = row_source(x for x in "ab")
    assert len(generated) == 2 and generated.namespace(1) == {"row": "b"}


def test_a_row_named_row_wins_over_the_whole_row():
    source = row_source([{"row": 5, "a": 1}])
    assert source.namespace(0)["row"] == 5


def test_duplicate_columns_strings_and_dicts_are_refused():
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(RequestValidationError, match="duplicate columns: a"):
        row_source(frame)
    with pytest.raises(RequestValidationError, match="not str"):
        row_source("text")
    with pytest.raises(RequestValidationError, match="not dict"):
        row_source({"a": [1]})
    with pytest.raises(RequestValidationError, match="not int"):
        row_source(3)


def test_a_template_fills_expressions_and_keeps_json_and_fences():
    template = RowTemplate('{name!r} {n:03d} {{literal}} {"k": 1}\n```\n{name}\n```')
    assert template.fill({"name": "x", "n": 7}) == "'x' 007 {literal} {\"k\": 1}\n```\n{name}\n```"


def test_a_fallback_answers_names_that_are_not_columns():
    template = RowTemplate("{text} in {lang}", fallback={"lang": "French", "text": "shadowed"})
    assert template.fill({"text": "Hi"}) == "Hi in French"


def test_check_names_the_missing_column_and_the_columns_there_are():
    source = row_source(pd.DataFrame({"text": ["a"], "lang": ["en"]}))
    with pytest.raises(RequestValidationError) as info:
        RowTemplate("{txt}").check(source)
    assert str(info.value) == (
        "The prompt names {txt}, which is not a column: the rows have the columns text, lang. "
        "Write {{txt}} to keep the braces."
    )
    assert info.value.field == "prompt"


def test_check_tries_one_row_of_each_shape():
    source = row_source([{"a": 1}, {"a": 2}, {"b": 3}])
    with pytest.raises(RequestValidationError, match=r"\{a\}, which is not a column \(row 2\)"):
        RowTemplate("{a}").check(source)


def test_other_failures_in_a_template_say_which_row():
    source = row_source([{"a": None}])
    with pytest.raises(RequestValidationError, match=r"row 0.*AttributeError"):
        RowTemplate("{a.upper()}").check(source)


def test_no_interpolation_sends_the_text_as_written():
    template = RowTemplate("{missing}", enabled=False)
    template.check(row_source([{"a": 1}]))
    assert template.fill({"a": 1}) == "{missing}"


def test_a_prompt_is_a_template_or_a_function():
    assert isinstance(as_prompt("x {a}"), RowTemplate)
    assert as_prompt(len) is len
    with pytest.raises(RequestValidationError, match="prompt must be"):
        as_prompt(42)


def test_a_template_fills_missing_values_as_empty_text_and_counts_them():
    source = row_source(pd.DataFrame({"text": ["a", None, "c"], "n": [1.0, float("nan"), None]}))
    template = RowTemplate("{text}/{n:g}")
    assert [template.fill(source.namespace(i)) for i in range(3)] == ["a/1", "/", "c/"]
    assert template.missing(source) == {"text": 1, "n": 2}
    assert RowTemplate("{text}", enabled=False).missing(source) == {}
