from __future__ import annotations

import json
import linecache

import pytest

from nbchat.convert.tokenbudget import text_tokens
from nbchat.convert.traceback import error_report, is_library_path

CELLS: dict[str, int] = {}


def run_cell(number: int, source: str, namespace: dict) -> BaseException | None:
    """Run ``source`` as notebook cell ``number`` does: compiled under a cached file name."""
    name = f"<ipython-input-{number}-test>"
    CELLS[name] = number
    lines = [line + "\n" for line in source.splitlines()]
    linecache.cache[name] = (len(source), None, lines, name)
    try:
        exec(compile(source, name, "exec"), namespace)
    except BaseException as exc:
        return exc
    return None


def report(exc, **options):
    return error_report(exc, cell_of=CELLS.get, **options)


def test_user_frames_in_full_library_frames_collapsed_and_the_raising_frame_kept():
    namespace: dict = {"json": json}
    run_cell(1, "def load(text):\n    return json.loads(text)", namespace)
    exc = run_cell(2, "data = load('{')", namespace)
    result = report(exc)
    assert result.cell == 2
    text = result.traceback
    assert "  In [2], line 1\n    data = load('{')" in text
    assert "  In [1], line 2, in load\n    return json.loads(text)" in text
    assert "library frame" in text and "json/__init__.py (loads)" in text
    # The frame that raised is shown with its code: it says where the message comes from.
    last = text.splitlines()[-2:]
    assert last[0].startswith("  json/decoder.py, line ") and last[0].endswith(", in raw_decode")
    assert last[1] == "    obj, end = self.scan_once(s, idx)"
    assert result.exception.startswith("json.decoder.JSONDecodeError: Expecting property name")
    assert result.text().endswith(result.exception)
    assert result.locals == {"text": "{"}


def test_frames_before_the_first_cell_are_left_out():
    def runner():
        # Stands in for IPython's run_code: a library frame that runs the cell.
        return run_cell(3, "1 / 0", {})

    exc = run_cell(4, "x = 1", {})  # a clean run returns nothing
    assert exc is None
    exc = runner()
    assert [frame.where for frame in report(exc).frames] == ["In [3]"]
    assert report(exc).locals == {}


def test_a_chain_of_errors_names_where_each_came_from():
    source = (
        "def parse(v):\n"
        "    try:\n"
        "        return int(v)\n"
        "    except ValueError as err:\n"
        "        raise KeyError(v) from err\n"
        "parse('x')"
    )
    exc = run_cell(5, source, {})
    text = report(exc).text()
    assert text.startswith(
        "The error below was raised from: ValueError: invalid literal for int() with base 10: "
        "'x' (at In [5], line 3)"
    )
    assert text.endswith("KeyError: 'x'")


def test_a_syntax_error_names_its_cell_and_has_no_frames():
    try:
        compile("x = (1,\n", "<ipython-input-6-test>", "exec")
    except SyntaxError as exc:
        error = exc
    CELLS["<ipython-input-6-test>"] = 6
    result = report(error)
    assert result.cell == 6
    assert result.traceback == ""
    assert result.exception.startswith("  In [6], line 1")
    assert "SyntaxError" in result.exception


def test_deep_recursion_fits_the_budget_keeping_the_cell_and_the_last_frames():
    source = (
        "def down(n):\n    if n == 0:\n        raise RuntimeError('bottom')\n    return down(n - 1)"
    )
    namespace: dict = {}
    run_cell(7, source, namespace)
    exc = run_cell(8, "down(200)", namespace)
    full = report(exc, max_tokens=100_000)
    assert full.traceback.count("in down") == 201
    small = report(exc, max_tokens=200)
    assert text_tokens(small.text()) <= 200
    assert "In [8], line 1" in small.traceback
    assert "frames left out" in small.traceback
    assert small.exception == "RuntimeError: bottom"


def test_a_huge_message_is_cut_and_secrets_in_it_hidden():
    exc = ValueError("bad value " + "v" * 20_000 + " key sk-abcdefghijklmnopqrstuvwx0123")
    result = report(exc, max_tokens=300)
    assert text_tokens(result.text()) <= 300
    assert "characters left out" in result.exception
    assert "sk-abcdefghijklmnop" not in result.text()


@pytest.mark.parametrize(
    ("path", "library"),
    [
        (json.__file__, True),
        (pytest.__file__, True),
        ("<frozen importlib._bootstrap>", True),
        ("pandas/_libs/index.pyx", True),
        (__file__, False),
    ],
)
def test_library_paths(path, library):
    assert is_library_path(path) is library
