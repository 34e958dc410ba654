from __future__ import annotations

import math
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pandas as pd
import pytest

from nbchat.protocol.exceptions import NbchatError
from nbchat.protocol.types import ChatCompletion, ChatCompletionChunk
from nbchat.render.logprobs import (
    COLUMNS,
    LogprobsError,
    LogprobsTable,
    _pct,
    logprobs_frame,
    logprobs_html,
    logprobs_summary,
    logprobs_table,
    token_logprobs,
)
from nbchat.transport.accumulate import ChatCompletionAccumulator

# The reference's example (天空是什么颜色? → 蓝色), verbatim.
BLUE = {"token": "蓝", "logprob": -0.0023, "bytes": [232, 147, 157]}
REFERENCE_TOKENS = [
    {
        **BLUE,
        "top_logprobs": [
            BLUE,
            {"token": "天", "logprob": -6.21, "bytes": [229, 164, 169]},
            {"token": "深", "logprob": -7.45, "bytes": [230, 150, 177]},
        ],
    },
    {"token": "色", "logprob": -0.0001, "bytes": [232, 137, 178], "top_logprobs": []},
]


def completion(tokens: list[dict], content: str | None = None, **logprobs) -> ChatCompletion:
    text = content if content is not None else "".join(t["token"] for t in tokens)
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-x",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": {"content": tokens, **logprobs},
                    "finish_reason": "stop",
                }
            ],
        }
    )


def streamed(tokens: list[dict]) -> ChatCompletion:
    """The same reply as it comes from a stream: one chunk per token, then the finish."""
    accumulator = ChatCompletionAccumulator()
    for i, token in enumerate(tokens):
        delta = {"role": "assistant", "content": token["token"]} if i == 0 else {}
        delta.setdefault("content", token["token"])
        accumulator.handle_chunk(
            ChatCompletionChunk.model_validate(
                {
                    "id": "chatcmpl-x",
                    "choices": [{"index": 0, "delta": delta, "logprobs": {"content": [token]}}],
                }
            )
        )
    accumulator.handle_chunk(
        ChatCompletionChunk.model_validate(
            {"id": "chatcmpl-x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        )
    )
    return accumulator.snapshot()


# ---------------------------------------------------------------------------------------------
# The table


def test_the_references_example_as_a_frame():
    frame = logprobs_frame(completion(REFERENCE_TOKENS))
    assert isinstance(frame, pd.DataFrame)
    # The position is the index, not a column repeating it.
    assert list(frame.columns) == [c for c in COLUMNS if c != "position"]
    assert frame.index.name == "position" and frame.index.tolist() == [0, 1]
    assert frame["token"].tolist() == ["蓝", "色"]
    assert frame["logprob"].tolist() == [-0.0023, -0.0001]
    assert frame["probability"].tolist() == pytest.approx([math.exp(-0.0023), math.exp(-0.0001)])
    assert frame["bytes"].tolist() == [[232, 147, 157], [232, 137, 178]]
    assert frame["decoded"].tolist() == ["蓝", "色"]
    assert frame["top"].tolist() == ["蓝 (99.77%), 天 (0.20%), 深 (0.06%)", ""]


def test_decoded_is_the_bytes_even_when_they_disagree_with_the_token():
    # The reference's bytes for 深 are E6 96 B1, which spell 斱: decoded shows what was sent.
    alternative = REFERENCE_TOKENS[0]["top_logprobs"][2]
    frame = logprobs_frame([{**alternative, "top_logprobs": []}])
    assert frame.loc[0, "token"] == "深"
    assert frame.loc[0, "decoded"] == "斱"


def test_a_streamed_reply_gives_the_same_table():
    unstreamed = logprobs_frame(completion(REFERENCE_TOKENS))
    accumulated = streamed(REFERENCE_TOKENS)
    assert accumulated.content == "蓝色"
    pd.testing.assert_frame_equal(logprobs_frame(accumulated), unstreamed)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda c: c,
        lambda c: c.to_dict(),
        lambda c: SimpleNamespace(completion=c),
        lambda c: c.choices[0],
        lambda c: c.choices[0].logprobs,
        lambda c: c.choices[0].logprobs.to_dict(),
        lambda c: [t.to_dict() for t in c.choices[0].logprobs.content],
        lambda c: list(c.choices[0].logprobs.content),
    ],
    ids=["completion", "dict", "reply", "choice", "logprobs", "logprobs-dict", "dicts", "models"],
)
def test_every_holder_of_logprobs_is_accepted(wrap):
    frame = logprobs_frame(wrap(completion(REFERENCE_TOKENS)))
    assert frame["token"].tolist() == ["蓝", "色"]


def test_top_limits_the_alternatives_shown():
    frame = logprobs_frame(completion(REFERENCE_TOKENS), top=2)
    assert frame.loc[0, "top"] == "蓝 (99.77%), 天 (0.20%)"


def test_alternatives_are_ranked_most_likely_first():
    token = {
        "token": "a",
        "logprob": -1.0,
        "top_logprobs": [
            {"token": "b", "logprob": -3.0},
            {"token": "a", "logprob": -1.0},
            {"token": "c", "logprob": -9999.0},
        ],
    }
    assert logprobs_frame([token]).loc[0, "top"] == "a (36.8%), b (4.98%), c (0%)"


def test_a_missing_bytes_field_falls_back_to_the_token():
    frame = logprobs_frame([{"token": " hello", "logprob": -0.5}, BLUE])
    assert frame.loc[0, "bytes"] is None
    assert frame.loc[0, "decoded"] == " hello"


def test_a_server_that_sends_no_bytes_gets_no_empty_bytes_column():
    tokens = [{"token": " hello", "logprob": -0.5}, {"token": "!", "logprob": -0.1}]
    frame = logprobs_frame(tokens)
    assert list(frame.columns) == ["token", "logprob", "probability", "top"]
    assert frame.index.tolist() == [0, 1]
    table = logprobs_table(tokens)
    assert table.columns == ["position", "token", "logprob", "probability", "top"]
    assert "bytes" not in str(table) and "decoded" not in table._repr_html_()


def test_a_character_split_across_tokens_shows_escapes_in_the_table():
    # 😀 is F0 9F 98 80; servers write the halves' token strings as byte escapes.
    tokens = [
        {"token": "\\xf0\\x9f", "logprob": -0.1, "bytes": [240, 159]},
        {"token": "\\x98\\x80", "logprob": -0.2, "bytes": [152, 128]},
        {"token": "!", "logprob": -0.3, "bytes": [33]},
    ]
    frame = logprobs_frame(tokens)
    assert frame["decoded"].tolist() == ["\\xf0\\x9f", "\\x98\\x80", "!"]
    view = logprobs_html(tokens)
    assert view.text.splitlines()[0] == "😀!"
    assert ">😀</span>" in view.html
    assert "part of a character completed by a later token" in view.html


def test_minus_9999_is_probability_zero_without_warnings():
    tokens = [
        {"token": "a", "logprob": -9999.0},
        {"token": "b", "logprob": float("-inf")},
        {"token": "c", "logprob": float("nan")},
        {"token": "d", "logprob": -0.5},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = logprobs_frame(tokens)
        summary = logprobs_summary(tokens)
        view = logprobs_html(tokens)
    assert frame["probability"].tolist() == [0.0, 0.0, 0.0, math.exp(-0.5)]
    assert frame["logprob"].tolist()[:3] == [-math.inf] * 3
    assert not frame["probability"].isna().any()
    assert summary.impossible == 3
    assert summary.mean_logprob == -0.5
    assert summary.perplexity == pytest.approx(math.exp(0.5))
    assert "3 token(s) at probability 0 left out" in str(summary)
    assert "logprob -inf" in view.html


def test_all_impossible_tokens_give_no_mean_rather_than_nan():
    summary = logprobs_summary([{"token": "a", "logprob": -9999.0}])
    assert summary.mean_logprob is None and summary.perplexity is None
    assert str(summary).startswith("1 tokens, no finite logprobs")


def test_a_huge_finite_mean_gives_infinite_perplexity_not_an_overflow():
    summary = logprobs_summary([{"token": "a", "logprob": -800.0}])
    assert summary.perplexity == math.inf


# ---------------------------------------------------------------------------------------------
# Summary


def test_summary_of_the_reference_example():
    summary = logprobs_summary(completion(REFERENCE_TOKENS))
    assert summary.tokens == 2
    assert summary.mean_logprob == pytest.approx(-0.0012)
    assert summary.perplexity == pytest.approx(math.exp(0.0012))
    assert summary.total_logprob == pytest.approx(-0.0024)
    assert [row["token"] for row in summary.least_certain] == ["蓝", "色"]
    assert summary.least_certain[0]["top"] == "蓝 (99.77%), 天 (0.20%), 深 (0.06%)"
    assert summary.to_dict()["tokens"] == 2


def test_least_certain_are_the_k_lowest_earliest_first_on_ties():
    tokens = [
        {"token": t, "logprob": math.log(p)}
        for t, p in [("a", 0.9), ("b", 0.2), ("c", 0.5), ("d", 0.2), ("e", 0.99)]
    ]
    summary = logprobs_summary(tokens, k=3)
    assert [row["position"] for row in summary.least_certain] == [1, 3, 2]
    assert "#1" in str(summary) and "20.0%" in str(summary)
    html = summary._repr_html_()
    assert html.count("<tr>") == 4
    assert "perplexity" in html


# ---------------------------------------------------------------------------------------------
# The coloured reply


def test_html_colours_each_token_and_has_a_legend_and_tooltips():
    view = logprobs_html(completion(REFERENCE_TOKENS))
    assert view.html.count("<span title=") == 2
    assert 'title="#0 蓝: 99.77% (logprob -0.0023)&#10;top: 蓝 (99.77%), 天 (0.20%)' in view.html
    for label in ("≥ 90%", "70–90%", "50–70%", "30–50%", "10–30%", "&lt; 10%"):
        assert label in view.html
    assert view._repr_html_() == view.html
    assert str(view).startswith("蓝色\n")


def test_html_escapes_tokens_and_tooltips():
    tokens = [
        {
            "token": '<b>"x"&',
            "logprob": -2.0,
            "top_logprobs": [{"token": "<i>", "logprob": -0.1}],
        }
    ]
    page = logprobs_html(tokens).html
    assert "<b>" not in page and "<i>" not in page
    assert "&lt;b&gt;&quot;x&quot;&amp;" in page


def test_colour_bands_follow_probability():
    tokens = [{"token": t, "logprob": math.log(p)} for t, p in [("sure", 0.95), ("unsure", 0.05)]]
    page = logprobs_html(tokens).html
    assert 'rgba(46, 160, 67, 0.10);border-radius:2px">sure<' in page
    assert 'rgba(200, 0, 0, 0.65);border-radius:2px">unsure<' in page


def test_the_text_form_marks_tokens_below_the_threshold():
    tokens = [
        {"token": t, "logprob": math.log(p)} for t, p in [("The", 0.99), (" sky", 0.3), (".", 0.8)]
    ]
    view = logprobs_html(tokens, threshold=0.5)
    assert view.text == "The[ sky|30.0%].\n\n[token|p%] marks tokens below 50.0%"


def test_refusal_logprobs_are_used_when_there_is_no_content():
    refusal = [{"token": "No", "logprob": -0.1}]
    reply = completion([], content="", refusal=refusal)
    assert token_logprobs(reply)[0].token == "No"
    assert token_logprobs(reply, part="content") == []


# ---------------------------------------------------------------------------------------------
# Errors and the fallback table


def test_a_reply_without_logprobs_says_how_to_get_them():
    reply = completion(REFERENCE_TOKENS)
    reply.choices[0].logprobs = None
    with pytest.raises(LogprobsError, match="no logprobs: ask for them with logprobs=True") as info:
        logprobs_frame(reply)
    assert isinstance(info.value, NbchatError) and isinstance(info.value, ValueError)


def test_bad_sources_are_errors():
    with pytest.raises(LogprobsError, match="no choice 3"):
        logprobs_frame(completion(REFERENCE_TOKENS), choice=3)
    with pytest.raises(LogprobsError, match="not int"):
        logprobs_frame(42)
    with pytest.raises(LogprobsError, match="not a token logprob"):
        logprobs_frame([{"logprob": "high"}])
    with pytest.raises(LogprobsError, match="part must be"):
        logprobs_frame(completion(REFERENCE_TOKENS), part="reasoning")
    with pytest.raises(LogprobsError, match="no choices"):
        logprobs_frame(ChatCompletion())


def test_without_pandas_a_plain_table_stands_in(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    table = logprobs_frame(completion(REFERENCE_TOKENS))
    assert isinstance(table, LogprobsTable)
    assert len(table) == 2
    assert table["decoded"] == ["蓝", "色"]
    assert table.to_records()[0]["bytes"] == [232, 147, 157]
    lines = str(table).splitlines()
    assert lines[0].split() == list(COLUMNS)
    assert lines[1].split()[:5] == ["0", "蓝", "-0.0023", "99.77%", "232"]
    html = table._repr_html_()
    assert html.count("<tr>") == 3
    assert "<td>天" not in html and "蓝 (99.77%), 天 (0.20%), 深 (0.06%)" in html


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.0, "0%"),
        (1.0, "100%"),
        (0.9999, "99.99%"),
        (0.99999, "99.99%"),
        (0.9977, "99.77%"),
        (0.5, "50.0%"),
        (0.0123, "1.23%"),
        (0.000001, "<0.01%"),
    ],
)
def test_percentages(p, text):
    assert _pct(p) == text


def test_importing_the_module_does_not_import_pandas():
    code = "import sys, nbchat.render.logprobs\nprint('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_summary_plain_text_in_ipython_is_the_readable_summary():
    from IPython.lib.pretty import pretty

    from nbchat.render.logprobs import logprobs_summary

    tokens = [
        {"token": "蓝", "logprob": -0.0023, "bytes": [232, 147, 157], "top_logprobs": []},
        {"token": "色", "logprob": -0.0001, "bytes": [232, 137, 178], "top_logprobs": []},
    ]
    text = pretty(logprobs_summary(tokens))
    assert text.startswith("2 tokens, mean logprob")
    assert "LogprobsSummary(" not in text


def test_logprobs_table_is_ours_with_pandas_too_and_keeps_dollars_from_mathjax():
    tokens = [{"token": "$x$", "logprob": -0.1}, {"token": "<b>", "logprob": -2.0}]
    table = logprobs_table(completion(tokens))
    assert isinstance(table, LogprobsTable) and len(table) == 2
    page = table._repr_html_()
    assert page.startswith('<div class="nbchat-output tex2jax_ignore mathjax_ignore">')
    assert "<td>&lt;b&gt;</td>" in page and "<b>" not in page
    lines = []
    table._repr_pretty_(SimpleNamespace(text=lines.append), False)
    assert lines == [str(table)] and "$x$" in lines[0]


def test_coloured_reply_and_summary_are_kept_from_mathjax():
    tokens = [{"token": "$x", "logprob": -0.1}, {"token": "$", "logprob": -0.2}]
    for page in (
        logprobs_html(completion(tokens)).html,
        logprobs_summary(completion(tokens))._repr_html_(),
    ):
        assert "mathjax_ignore" in page.split(">", 1)[0]
