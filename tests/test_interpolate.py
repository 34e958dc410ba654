from __future__ import annotations

import pytest

from nbchat.convert.interpolate import InterpolationError, interpolate

NS = {"x": 3, "name": "Bob", "items": [1, 2], "price": 2.5}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi {name}", "hi Bob"),
        ("{len(items)} items", "2 items"),
        ("{items[0]}", "1"),
        ("{price:.2f}", "2.50"),
        ("{name!r}", "'Bob'"),
        ("{{name}}", "{name}"),
        ("{{name}} and {name}", "{name} and Bob"),
        ('{"a": 1}', '{"a": 1}'),
        ('{"x":1}', '{"x":1}'),
        ('{"a": {"b": 2}}', '{"a": {"b": 2}}'),
        ('{ "k": {x} }', '{ "k": 3 }'),
        ("{}", "{}"),
        ("{1, 2}", "{1, 2}"),
        ("a { x } b", "a { x } b"),
        ("def f(): return {k: v for k, v in d}", "def f(): return {k: v for k, v in d}"),
        ("a }} b", "a }} b"),
        ("unclosed {x", "unclosed {x"),
    ],
)
def test_braces_hold_expressions_or_stay_as_written(text, expected):
    assert interpolate(text, NS) == expected


def test_fenced_code_is_left_alone():
    text = "Value {x}\n```python\nprint(f'{x}')\n```\nand ~~~\n~~~\n{x} again\n~~~\nend {x}"
    assert interpolate(text, NS) == (
        "Value 3\n```python\nprint(f'{x}')\n```\nand ~~~\n~~~\n{x} again\n~~~\nend 3"
    )


def test_undefined_name_names_it_and_says_how_to_keep_braces():
    with pytest.raises(InterpolationError) as info:
        interpolate("use {missing_var}", NS)
    message = str(info.value)
    assert "missing_var" in message
    assert "{{missing_var}}" in message
    assert "--no-interpolate" in message
    assert "\n" not in message


def test_failing_expression_is_reported_with_its_error():
    with pytest.raises(InterpolationError, match="ZeroDivisionError"):
        interpolate("{x / 0}", NS)


def test_bad_format_spec_is_an_error_not_a_crash():
    with pytest.raises(InterpolationError, match="format"):
        interpolate("{name:d}", NS)


def test_assignment_expressions_do_not_leak_into_the_namespace():
    namespace = {"x": 1}
    assert interpolate("{(y := x + 4)}", namespace) == "5"
    assert "y" not in namespace


def test_a_generator_in_braces_is_code_by_the_same_rule_as_a_name():
    # Undefined names fail alike, whether alone or in a comprehension.
    for text in ("{nosuch}", "{x for x in nosuch}"):
        with pytest.raises(InterpolationError, match="NameError: name 'nosuch'"):
            interpolate(text, {})
    with pytest.raises(InterpolationError, match=r"makes a generator.*\{\[x for x in y\]\}"):
        interpolate("{x for x in y}", {"y": [1, 2]})
    assert interpolate("{[x for x in y]} {{x for x in y}}", {"y": [1, 2]}) == (
        "[1, 2] {x for x in y}"
    )
    # Braces that are not code in any reading stay as written.
    assert interpolate("{see below} {x for}", {}) == "{see below} {x for}"


def test_missing_values_are_empty_text_when_asked_and_each_is_reported():
    import math

    import pandas as pd

    seen: list[str] = []
    namespace = {"a": None, "b": math.nan, "c": pd.NA, "d": pd.NaT, "e": 0}
    text = interpolate("[{a}|{b:.2f}|{c}|{d}|{e}]", namespace, on_missing=seen.append)
    assert text == "[||||0]"
    assert seen == ["a", "b", "c", "d"]
    # Without the hook (a cell's prompt), values are written as Python writes them.
    assert interpolate("{a} {b}", namespace) == "None nan"
