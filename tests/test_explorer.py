from __future__ import annotations

import math
import re

import pytest

from nbchat.conversation.chat import Reply
from nbchat.notebook.explorer import _STYLE, explore, token_colour
from nbchat.protocol.types import ChatCompletion
from nbchat.render.logprobs import LogprobsError
from tests import hostile

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
    assert "<b>2</b> below 50.0%" in explorer.summary.value


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
    assert 'title="p = 30.0% |  dog 50.0% |  cat 30.0%"' in html
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
    assert "Token #1" in details and "50.0%" in details and "✓" in details
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
    with pytest.raises(LogprobsError, match="no logprobs: ask for them with logprobs=True"):
        explore(plain)
    with pytest.raises(LogprobsError, match="no logprobs: send it with logprobs on"):
        explore([])
    with pytest.raises(LogprobsError, match="not int"):
        explore(3)


def test_table_button_shows_the_logprobs_table_of_the_explored_tokens():
    explorer = explore(completion())
    explorer.table_button.value = True
    (shown,) = explorer.table.outputs
    table = shown["data"]["text/html"]
    assert table.count("<tr") == 5  # the header and four tokens
    assert "&lt;b&gt;" in table
    assert "[4 rows" not in table and "<th>decoded</th>" in table  # nbchat's table, not pandas'
    assert explorer.show_table().to_records()[1]["token"] == " cat"
    explorer.table_button.value = False
    assert explorer.table.outputs == ()


def test_the_explorer_is_a_vbox_with_a_cheap_repr():
    import ipywidgets as w

    explorer = explore(completion())
    assert isinstance(explorer, w.VBox) and explorer.widget is explorer
    assert "nbchat-explorer" in explorer._dom_classes
    assert w.HBox([explorer]).children == (explorer,)
    assert repr(explorer) == "LogprobsExplorer(tokens=4, threshold=0.5)"


NEG_INF = -9999.0


def test_a_logprob_of_minus_9999_is_probability_zero_not_an_overflow():
    tokens = [tok("Hi", 0.5), {**tok("!", 0.5), "logprob": NEG_INF}]
    tokens[0]["top_logprobs"].append({"token": "Yo", "logprob": NEG_INF})
    explorer = explore(completion(tokens))
    assert explorer.probabilities == [0.5, 0.0]
    assert explorer.low == [1]
    summary = explorer.summary.value
    assert "perplexity 2.000" in summary and "1 at probability 0" in summary
    assert "p = 0%" in explorer.text.value
    explorer.select(0)
    assert "-inf" in explorer.details.value and "Yo" in explorer.details.value
    explorer.select(1)
    assert "logprob -inf" in explorer.details.value


def test_a_reply_of_only_impossible_tokens_has_no_perplexity():
    tokens = [{**tok("a", 0.5), "logprob": NEG_INF}, {**tok("b", 0.5), "logprob": -math.inf}]
    explorer = explore(completion(tokens))
    assert "perplexity —" in explorer.summary.value
    assert "2 at probability 0" in explorer.summary.value


def test_where_widgets_cannot_show_the_coloured_reply_stands_in():
    explorer = explore(completion([tok("<img src=x onerror=alert(1)>", 0.2), tok(" ok", 0.9)]))
    bundle = explorer._repr_mimebundle_()
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == explorer.model_id
    assert "&lt;img src=x onerror=alert(1)&gt;" in bundle["text/html"]
    hostile.assert_inert(bundle["text/html"], "explorer fallback")
    assert "[<img src=x onerror=alert(1)>|20.0%] ok" in bundle["text/plain"]


def test_hostile_tokens_and_alternatives_stay_text_everywhere_in_the_explorer():
    payloads = list(hostile.PAYLOADS.values())
    tokens = [tok(t, 0.3, {t: 0.3, payloads[0]: 0.2}) for t in payloads]
    explorer = explore(completion(tokens))
    style = _STYLE.format(uid=explorer._uid)
    for i in range(len(tokens)):
        explorer.select(i)
        # Our one style sheet comes first; no token can add another.
        assert explorer.text.value.startswith(style)
        text = explorer.text.value.removeprefix(style)
        for markup in (text, explorer.details.value, explorer.summary.value):
            hostile.assert_inert(markup, payloads[i])
    hostile.assert_inert(explorer._repr_mimebundle_()["text/html"], "fallback")
    explorer.table_button.value = True
    hostile.assert_inert(explorer.table.outputs[0]["data"]["text/html"], "table")


def test_colours_read_in_light_and_dark_themes():
    explorer = explore(completion())
    explorer.select(1)
    markup = explorer.text.value + explorer.details.value
    # A fixed colour only as the fallback of a JupyterLab theme variable; otherwise translucent.
    for colour in re.findall(r"#[0-9a-fA-F]{3,8}\b", markup):
        assert re.search(rf"var\(--jp-[\w-]+,\s*{colour}\)", markup), colour
    for value in re.findall(r"background:([^;\"']+)", markup):
        assert value.startswith(("var(--jp-", "hsla(", "rgba(")), value


def test_the_mean_probability_is_the_summarys_geometric_one_in_percent():
    from nbchat.render.logprobs import logprobs_summary

    explorer = explore(completion([tok(" a", 0.9), tok(" b", 0.1), tok(" c", 0.5)]))
    stats = logprobs_summary(explorer.tokens)
    # (0.9 * 0.1 * 0.5) ** (1/3) = 0.356: not the arithmetic 0.5.
    assert round(stats.mean_probability, 3) == 0.356
    assert "mean probability 35.6% (geometric)" in explorer.summary.value
    assert "mean probability 35.6%, geometric" in stats.headline()


def test_the_details_pane_leaves_room_for_the_last_lines_pop_up():
    five = {f" {word}": 0.1 for word in "abcde"}
    explorer = explore(completion([tok(" a", 0.9, five)]))
    # Five alternatives and the pop-up's heading line, at about 1.45em each.
    assert float(explorer.details.layout.min_height.removesuffix("em")) >= 6 * 1.45


def test_a_reply_without_logprobs_is_one_line_in_a_notebook():
    from IPython.testing import globalipapp

    from nbchat.render.logprobs import LogprobsError

    plain = completion()
    plain.choices[0].logprobs = None
    with pytest.raises(LogprobsError) as caught:
        explore(plain)
    assert len(caught.value._render_traceback_()) == 1
    assert "the reply has no logprobs" in caught.value._render_traceback_()[0]
    globalipapp.start_ipython()
    shell = globalipapp.get_ipython()
    shell.user_ns["plain"] = plain
    result = shell.run_cell("import nbchat; nbchat.explore(plain)")
    assert isinstance(result.error_in_exec, LogprobsError)
