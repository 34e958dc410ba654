"""convert/fences.py: where fenced code blocks open and close, by CommonMark's fence rules."""

from __future__ import annotations

import pytest

from nbchat.convert.fences import FENCE, closes_fence, is_inside_fence


@pytest.mark.parametrize(
    ("text", "inside"),
    [
        ("no code at all", False),
        ("```python\nx = 1\n", True),
        ("```python\nx = 1\n```\nafter", False),
        ("~~~\ncode\n", True),
        ("~~~\ncode\n~~~", False),
        # A closing fence is the same character, at least as long, with nothing after it.
        ("````\ncode\n```\n", True),
        ("```\ncode\n````", False),
        ("```\ncode\n~~~\n", True),
        ("```\ncode\n``` not a close\n", True),
        # Up to three spaces of indent open or close a fence; four make indented code.
        ("   ```\ncode\n   ```", False),
        ("    ```\ncode\n", False),
        # Two fences, the second left open.
        ("```\na\n```\ntext\n```js\nb\n", True),
    ],
)
def test_is_inside_fence_follows_the_fence_rules(text, inside):
    assert is_inside_fence(text) is inside


def test_closes_fence_needs_a_match_of_the_same_kind():
    line = "```"
    assert closes_fence(FENCE.match(line), line, "```")
    assert not closes_fence(FENCE.match(line), line, "~~~")
    assert not closes_fence(None, "text", "```")
    longer = "`````"
    assert closes_fence(FENCE.match(longer), longer, "```")
    assert not closes_fence(FENCE.match("```"), "```", "`````")
