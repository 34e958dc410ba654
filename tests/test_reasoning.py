from __future__ import annotations

import pytest

from nbchat import ChatCompletion
from nbchat.convert.reasoning import reasoning_of, split_think


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>\nLet me add.\n</think>\n\n42", ("Let me add.", "42")),
        ("  <THINK>a</think>b", ("a", "b")),
        ("<think>still going", ("still going", "")),
        ("no thinking here", (None, "no thinking here")),
        ("The tag <think> later is text", (None, "The tag <think> later is text")),
        ("", (None, "")),
        (None, (None, None)),
    ],
)
def test_a_leading_think_block_is_split_from_the_answer(text, expected):
    assert split_think(text) == expected


def _message(**fields):
    return (
        ChatCompletion.model_validate(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", **fields},
                        "finish_reason": "stop",
                    }
                ],
            }
        )
        .choices[0]
        .message
    )


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_fields_are_read_in_either_spelling(field):
    assert reasoning_of(_message(content="42", **{field: "thought"})) == "thought"
    assert reasoning_of({"content": "42", field: "thought"}) == "thought"


def test_a_think_block_is_reasoning_when_no_field_carries_it():
    assert reasoning_of(_message(content="<think>hm</think>42")) == "hm"
    assert reasoning_of(_message(content="42")) is None
    assert reasoning_of({"content": None}) is None
