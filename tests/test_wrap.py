from __future__ import annotations

import random

import pytest

from nbchat.render.wrap import Wrapper, cells, parts, terminal_width, wrap

PROSE = (
    "Python is a high-level, general-purpose programming language. Its design philosophy "
    "emphasizes code readability with the use of significant indentation."
)


def test_prose_is_broken_at_spaces_within_the_width():
    text = wrap(PROSE, 30)
    lines = text.splitlines()
    assert all(len(line) <= 30 for line in lines)
    assert " ".join(lines) == PROSE
    # No word was cut: every line ends and starts at a word of the prose.
    assert set(" ".join(lines).split()) == set(PROSE.split())


def test_code_fences_and_table_rows_are_left_as_they_are():
    code = "print('" + "x" * 60 + "')"
    table = "| a | " + "b " * 40 + "|"
    text = f"Intro.\n\n```python\n{code}\n```\n\n{table}\n\n~~~\n{code}\n~~~\nAfter."
    out = wrap(text, 40)
    assert code in out.splitlines() and table in out.splitlines()
    assert out.splitlines()[-1] == "After."


def test_list_items_and_quotes_continue_under_their_text():
    out = wrap("- " + PROSE + "\n  12. " + PROSE + "\n> " + PROSE, 40)
    lines = out.splitlines()
    assert lines[0].startswith("- ") and lines[1].startswith("  ") and lines[1][2] != " "
    item = next(i for i, line in enumerate(lines) if line.startswith("  12. "))
    assert lines[item + 1].startswith(" " * 6) and lines[item + 1][6] != " "
    quote = next(i for i, line in enumerate(lines) if line.startswith("> "))
    assert lines[quote + 1].startswith("  ")


def test_a_word_longer_than_the_line_is_written_whole():
    url = "https://example.com/" + "a" * 80
    lines = wrap(f"See {url} now", 40).splitlines()
    # The terminal breaks it where the line ends; the next word follows it on its last row.
    assert lines == ["See", f"{url} now"]


def test_wide_characters_take_two_columns():
    assert cells("中文") == 4 and cells("e\u0301") == 1
    out = wrap("中文字符 " * 10, 20)
    assert all(cells(line) <= 20 for line in out.splitlines())


@pytest.mark.parametrize("seed", range(5))
def test_text_fed_in_any_pieces_wraps_as_the_whole_does(seed):
    text = PROSE + "\n\n- " + PROSE + "\n```\n" + "y " * 50 + "\n```\n" + PROSE
    chooser = random.Random(seed)
    wrapper = Wrapper(33)
    out, i = [], 0
    while i < len(text):
        step = chooser.randint(1, 9)
        out.append(wrapper.feed(text[i : i + step]))
        i += step
    out.append(wrapper.flush())
    assert "".join(out) == wrap(text, 33)


def test_parts_of_our_own_lines_stay_together():
    footer = "— model-x · finish: stop · 10 prompt + 5 completion = 15 tokens · 0.71 s"
    out = wrap(parts(footer), 40)
    assert "\u00a0" not in out
    lines = out.splitlines()
    assert lines == [
        "— model-x · finish: stop ·",
        "  10 prompt + 5 completion = 15 tokens ·",
        "  0.71 s",
    ]
    line = "2025-05-12 10:00:00 · default · a-model · 1.23 s"
    assert wrap(parts(line), 32, hang=4).splitlines() == [
        "2025-05-12 10:00:00 · default ·",
        "    a-model · 1.23 s",
    ]


def test_no_width_means_the_text_as_it_is():
    assert wrap(PROSE, None) == PROSE
    assert terminal_width(None) is None

    class NotATerminal:
        def isatty(self):
            return False

    assert terminal_width(NotATerminal()) is None
