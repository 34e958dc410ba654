from __future__ import annotations

import math
import re
import sys
import types

import pytest

from nbchat.conversation.chat import Reply
from nbchat.notebook.explorer import explore, token_colour
from nbchat.protocol.types import ChatCompletion

pytest.importorskip("ipywidgets")


def tok(token: str, p: float, alternatives: dict[str, float] | None = None) -> dict:
    alts = alternatives or {token: p}
    return {
        "token": token,
        "logprob": math.log(p),
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": t, "logprob": math.log(q)} for t, q in alts.items()],
    }


TOKENS = [
    tok("The", 0.9, {"The": 0.9, "A": 0.05}),
    tok(" cat", 0.3, {" dog": 0.5, " cat": 0.3}),
    tok(" sat", 0.7),
    tok("<b>", 0.1, {"<b>": 0.1, "\n": 0.6}),
]


def completion(tokens=TOKENS) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(t["token"] for t in tokens),
                    },
                    "logprobs": {"content": tokens},
                    "finish_reason": "stop",
                }
            ],
        }
    )


def spans(explorer) -> list[str]:
    return re.findall(r'<span class="(nbx-tok[^"]*)"', explorer.text.value)


def test_tokens_below_the_threshold_are_highlighted():
    explorer = explore(completion(), threshold=0.5)
    assert explorer.low == [1, 3]
    assert spans(explorer) == ["nbx-tok", "nbx-tok nbx-low", "nbx-tok", "nbx-tok nbx-low"]
    assert "<b>2</b> below 0.50" in explorer.summary.value


def test_moving_the_slider_recolours_the_tokens():
    explorer = explore(completion(), threshold=0.5)
    explorer.threshold.value = 0.8
    assert explorer.low == [1, 2, 3]
    assert spans(explorer).count("nbx-tok nbx-low") == 3
    explorer.threshold.value = 0.0
    assert explorer.low == []
    assert "nbx-low" not in explorer.text.value


def test_colour_is_redder_the_less_likely_and_neutral_above_the_threshold():
    above = token_colour(0.9, 0.5)
    assert above == token_colour(0.6, 0.5)
    hue = lambda c: int(re.match(r"hsla\((\d+)", c).group(1))  # noqa: E731
    alpha = lambda c: float(c.rsplit(",", 1)[1].rstrip(")"))  # noqa: E731
    assert hue(token_colour(0.01, 0.5)) < hue(token_colour(0.4, 0.5)) < hue(above)
    assert alpha(token_colour(0.01, 0.5)) > alpha(token_colour(0.4, 0.5))


def test_every_token_carries_its_alternatives_for_hover_and_click():
    explorer = explore(completion())
    html = explorer.text.value
    assert html.count('tabindex="0"') == 4
    assert ".nbx-tok:focus .nbx-pop" in html and ".nbx-tok:hover .nbx-pop" in html
    assert 'title="p = 0.300 |  dog 0.500 |  cat 0.300"' in html
    assert "<td> dog</td>" in html


def test_token_text_is_escaped_and_newlines_are_visible():
    explorer = explore(completion([tok("<script>", 0.5), tok("\n", 0.5)]))
    html = explorer.text.value
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "↵<br>" in html


def test_selecting_a_token_shows_its_alternatives_and_outlines_it():
    explorer = explore(completion())
    assert "Hover or click" in explorer.details.value
    explorer.select(1)
    assert explorer.index.value == 1
    details = explorer.details.value
    assert "Token #1" in details and "0.500" in details and "✓" in details
    assert spans(explorer)[1] == "nbx-tok nbx-low nbx-selected"
    explorer.index.value = 2
    assert explorer.selected == 2
    explorer.select(None)
    assert not any("nbx-selected" in s for s in spans(explorer))


def test_selecting_outside_the_reply_is_an_error():
    explorer = explore(completion())
    with pytest.raises(IndexError, match="No token 9: the reply has 4"):
        explorer.select(9)


def test_next_and_previous_low_tokens_wrap_around():
    explorer = explore(completion(), threshold=0.5)
    assert explorer.step_low(1) == 1
    assert explorer.step_low(1) == 3
    assert explorer.step_low(1) == 1
    assert explorer.step_low(-1) == 3
    explorer.threshold.value = 0.0
    assert explorer.step_low(1) is None


def test_a_reply_or_a_token_list_can_be_explored():
    from_reply = explore(Reply(completion=completion()))
    assert [t.token for t in from_reply.tokens] == ["The", " cat", " sat", "<b>"]
    from_list = explore(TOKENS[:2])
    assert len(from_list.tokens) == 2


def test_a_reply_without_logprobs_says_how_to_get_them():
    plain = completion()
    plain.choices[0].logprobs = None
    with pytest.raises(ValueError, match="no logprobs: send it with logprobs on"):
        explore(plain)
    with pytest.raises(TypeError, match="not int"):
        explore(3)


def test_table_button_shows_the_logprobs_frame(monkeypatch):
    module = types.ModuleType("nbchat.render.logprobs")

    class Frame:
        def __init__(self, completion):
            self.completion = completion

        def _repr_html_(self):
            return "<table><tr><td>frame</td></tr></table>"

    module.logprobs_frame = Frame
    monkeypatch.setitem(sys.modules, "nbchat.render.logprobs", module)
    c = completion()
    explorer = explore(c)
    explorer.table_button.value = True
    (output,) = explorer.table.outputs
    assert "frame" in output["data"]["text/html"]
    explorer.table_button.value = False
    assert explorer.table.outputs == ()


def test_table_button_without_the_logprobs_module_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "nbchat.render.logprobs", None)
    explorer = explore(completion())
    assert explorer.show_table() is None
    (output,) = explorer.table.outputs
    assert "needs nbchat.render.logprobs" in output["data"]["text/plain"]
