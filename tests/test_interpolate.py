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
