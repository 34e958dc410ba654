from __future__ import annotations

from nbchat.convert.docstrings import parse_docstring


def test_parse_docstring_returns_empty_for_none() -> None:
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("") == ("", {})
    assert parse_docstring("Only a summary.") == ("Only a summary.", {})


def test_the_summary_is_the_first_paragraph_joined_into_one_line() -> None:
    doc = """
        Fetch the weather
        for one city.

        Longer notes that the model does not need.
    """
    assert parse_docstring(doc) == ("Fetch the weather for one city.", {})


def test_google_style_with_types_and_continuation_lines() -> None:
    doc = """Walk a tree.

    Args:
        path (str): Where to start,
            relative to the cwd.
        *extra: Ignored.

    Returns:
        depth: not a parameter.
    """
    summary, params = parse_docstring(doc)
    assert summary == "Walk a tree."
    assert params == {"path": "Where to start, relative to the cwd.", "extra": "Ignored."}


def test_numpy_style_including_names_listed_together() -> None:
    doc = """Sum numbers.

    Parameters
    ----------
    a, b : int
        The addends.
    scale : float
        A factor,
        applied last.

    Returns
    -------
    int
    """
    assert parse_docstring(doc)[1] == {
        "a": "The addends.",
        "b": "The addends.",
        "scale": "A factor, applied last.",
    }


def test_sphinx_style_with_a_type_before_the_name() -> None:
    doc = """Sphinx style.

    :param a: first one
    :param str b: second one
        continued
    :returns: nothing
    """
    assert parse_docstring(doc) == (
        "Sphinx style.",
        {"a": "first one", "b": "second one continued"},
    )


def test_a_section_right_after_the_summary_ends_it() -> None:
    doc = """Summary line.
    Args:
        x: the input
    """
    assert parse_docstring(doc) == ("Summary line.", {"x": "the input"})


def test_google_wins_when_two_styles_describe_one_parameter() -> None:
    doc = """Both.

    Args:
        x: from Google

    :param x: from Sphinx
    """
    assert parse_docstring(doc)[1] == {"x": "from Google"}
