from __future__ import annotations

import random

import pytest

from nbchat.convert.reasoning import split_think
from nbchat.protocol.types import ChatCompletion
from nbchat.render.thinking import (
    LIVE_TAIL_CHARS,
    ThinkSplitter,
    reasoning_tokens,
    thinking_html,
    thinking_text,
)

TEXTS = [
    "<think>2 plus 2</think>Four.",
    "  \n<THINK>\nstep one\nstep two\n</Think>  \n\n  Answer",
    "<think>unclosed, still thinking",
    "<thin",
    "no thinking at all",
    "  leading space, <think> not at the start</think>",
    "<think></think>\n\n\nafter",
    "<think>a </thin k> b</think>x</think>y",
    "",
]


def split_in_pieces(text: str, cuts: list[int]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    thought, answer = [], []
    start = 0
    for cut in [*cuts, len(text)]:
        inside, outside = splitter.feed(text[start:cut])
        thought.append(inside)
        answer.append(outside)
        start = cut
    inside, outside = splitter.flush()
    return "".join(thought) + inside, "".join(answer) + outside


@pytest.mark.parametrize("text", TEXTS)
def test_the_splitter_parts_a_stream_as_split_think_parts_the_whole(text):
    rng = random.Random(text)
    expected_thought, expected_answer = split_think(text)
    for _ in range(50):
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text), rng.randint(0, 6))))
        thought, answer = split_in_pieces(text, cuts)
        assert answer == (expected_answer or "")
        assert thought.strip("\n") == (expected_thought or "")
    # One character at a time, the hardest split.
    thought, answer = split_in_pieces(text, list(range(1, len(text))))
    assert answer == (expected_answer or "")


def test_the_splitter_holds_back_only_a_few_characters():
    splitter = ThinkSplitter()
    splitter.feed("<think>")
    thought, _ = splitter.feed("x" * 1000)
    assert len(thought) >= 1000 - len("</think>")


def test_the_live_block_renders_the_tail_only_and_escapes_it():
    html = thinking_html("<b>" + "y" * 5000, 1234, partial=True, ongoing=True)
    assert "<details" in html and "<details open" not in html
    assert "Thinking…" in html and "~1,234 tokens" in html
    assert "<b>" not in html
    assert html.count("y") <= LIVE_TAIL_CHARS + 10


def test_the_final_block_renders_markdown_and_counts_exactly_when_the_server_says():
    completion = ChatCompletion.model_validate(
        {
            "model": "m",
            "choices": [],
            "usage": {
                "prompt_tokens": 1,
                "completion_tokens": 50,
                "total_tokens": 51,
                "completion_tokens_details": {"reasoning_tokens": 42},
            },
        }
    )
    assert reasoning_tokens(completion, counted=7) == (42, True)
    assert reasoning_tokens(ChatCompletion.model_validate({"choices": []}), 7) == (7, False)
    html = thinking_html("**bold** idea", 42, exact=True)
    assert "<strong>bold</strong>" in html and "42 tokens" in html and "~" not in html
    assert "1 token)" not in thinking_text("x", 1) and "~1 token]" in thinking_text("x", 1)


def test_the_plain_form_is_a_heading_and_the_last_lines_shortened():
    text = "\n".join(f"line {i} " + "z" * 200 for i in range(10))
    plain = thinking_text(text, 12)
    lines = plain.splitlines()
    assert lines[0] == "[thinking, ~12 tokens]"
    assert len(lines) == 4 and lines[-1].startswith("  line 9")
    assert all(len(line) <= 102 for line in lines)
