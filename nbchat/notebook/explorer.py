"""The logprobs explorer: a widget showing a reply's tokens coloured by probability.

Hover or click a token to see its top alternatives (plain HTML and CSS, so it works wherever the
widget shows); a slider sets the threshold below which tokens are highlighted.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from ..protocol.types import TokenLogprob
from ..render.logprobs import (
    LogprobsError,
    LogprobsTable,
    _probability,
    logprobs_html,
    logprobs_summary,
    logprobs_table,
    percent,
    token_logprobs,
)
from ..render.markdown import escape
from .widgets import VBox, ipywidgets_module, output, widget_view_bundle

__all__ = ["LogprobsExplorer", "explore", "token_colour", "token_probabilities"]

_ids = itertools.count(1)


def token_probabilities(tokens: list[TokenLogprob]) -> list[float]:
    """Each token's probability; a logprob of −9999 (what servers send for −inf) counts as 0."""
    return [_probability(token.logprob) for token in tokens]


def token_colour(probability: float, threshold: float) -> str:
    """Background for a token: red to amber below the threshold, a faint green above it.

    Translucent colours, so that the theme's text colour reads on them in light and dark.
    """
    if probability < threshold:
        # 0 → red, threshold → amber; stronger the less likely the token was.
        share = probability / threshold if threshold > 0 else 1.0
        hue = round(40 * share)
        alpha = round(0.65 - 0.35 * share, 2)
        return f"hsla({hue}, 90%, 55%, {alpha})"
    return "hsla(120, 60%, 45%, 0.12)"


def _tokens_of(source: Any, choice: int) -> list[TokenLogprob]:
    tokens = token_logprobs(source, choice=choice)
    if not tokens:
        raise LogprobsError(
            "the reply has no logprobs: send it with logprobs on (the panel's toggle, or "
            "%%chat --logprobs)"
        )
    return tokens


def _shown(token: str) -> str:
    """The token as visible text: newlines and tabs marked, everything else escaped."""
    return escape(token).replace("\n", "↵<br>").replace("\t", "⇥")


def _label(token: str) -> str:
    return repr(token)[1:-1] if token.strip() != token or not token else token


def _number(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else str(value)


_STYLE = (
    "<style>.{uid}{{white-space:pre-wrap;line-height:1.9;"
    "font-family:var(--jp-code-font-family,monospace);font-size:0.92em}}"
    ".{uid} .nbx-tok{{position:relative;cursor:pointer;border-radius:3px;padding:1px 0}}"
    ".{uid} .nbx-tok.nbx-selected{{outline:2px solid var(--jp-brand-color1,#1976d2)}}"
    ".{uid} .nbx-pop{{display:none;position:absolute;left:0;top:1.7em;z-index:1000;"
    "background:var(--jp-layout-color0,Canvas);color:var(--jp-content-font-color1,CanvasText);"
    "border:1px solid var(--jp-border-color1,rgba(127,127,127,0.6));border-radius:4px;"
    "padding:4px 6px;white-space:nowrap;box-shadow:0 2px 6px rgba(0,0,0,.25);font-size:0.9em;"
    "line-height:1.3}}"
    ".{uid} .nbx-tok:hover .nbx-pop,.{uid} .nbx-tok:focus .nbx-pop{{display:block}}"
    # ipywidgets' HTML widget clips its content; the pop-ups must overflow it.
    ".nbchat-explorer-area,.nbchat-explorer,.nbchat-explorer .widget-box,"
    ".nbchat-explorer .widget-html,.nbchat-explorer .widget-html-content"
    "{{overflow:visible !important}}"
    "</style>"
)


class LogprobsExplorer(VBox):
    """The explorer, an ipywidgets VBox: display it, or put it in a layout.

    ``.widget`` is the explorer itself (an alias kept from when it held its VBox).
    """

    def __init__(
        self, source: Any, *, threshold: float = 0.5, choice: int = 0, **kwargs: Any
    ) -> None:
        w = ipywidgets_module("The logprobs explorer")
        self.source = getattr(source, "completion", source)
        self.tokens = _tokens_of(source, choice)
        self.probabilities = token_probabilities(self.tokens)
        self.stats = logprobs_summary(self.tokens, k=0)
        self.selected: int | None = None
        self._uid = f"nbx{next(_ids)}"

        self.threshold = w.FloatSlider(
            value=threshold,
            min=0.0,
            max=1.0,
            step=0.01,
            description="highlight below",
            # Probabilities are percentages everywhere nbchat shows them.
            readout_format=".0%",
            style={"description_width": "initial"},
            continuous_update=True,
        )
        self.index = w.BoundedIntText(
            value=0,
            min=0,
            max=len(self.tokens) - 1,
            description="token #",
            layout={"width": "150px"},
        )
        self.previous_low = w.Button(description="◀ previous low", tooltip="Previous token below")
        self.next_low = w.Button(description="next low ▶", tooltip="Next token below threshold")
        self.table_button = w.ToggleButton(value=False, description="Table", icon="table")
        for button in (self.previous_low, self.next_low, self.table_button):
            button.layout.width = "auto"
        self.summary = w.HTML()
        self.text = w.HTML()
        self.text.add_class("nbchat-explorer-text")
        # The alternatives pop up below a token: nothing around them may clip it.
        self.text.layout.overflow = "visible"
        self.details = w.HTML()
        self.details.add_class("nbchat-explorer-details")
        # A token's pop-up opens below it and may reach past the text: the pane under the text
        # is at least as tall, so the pop-up of the last line stays inside the explorer (an
        # output area would clip it, or scroll).
        alternatives = max((len(t.top_logprobs) for t in self.tokens), default=0)
        self.details.layout.min_height = f"{(max(alternatives, 1) + 1) * 1.45 + 1.2:.1f}em"
        self.table = w.Output()
        super().__init__(
            [
                w.HBox(
                    [
                        self.threshold,
                        self.index,
                        self.previous_low,
                        self.next_low,
                        self.table_button,
                    ],
                    layout=w.Layout(flex_flow="row wrap", align_items="center"),
                ),
                self.summary,
                self.text,
                self.details,
                self.table,
            ],
            layout=w.Layout(overflow="visible"),
            **kwargs,
        )
        self.add_class("nbchat-explorer")

        self.threshold.observe(lambda _: self._render(), names="value")
        self.index.observe(lambda change: self.select(change["new"]), names="value")
        self.previous_low.on_click(lambda _: self.step_low(-1))
        self.next_low.on_click(lambda _: self.step_low(1))
        self.table_button.observe(self._on_table, names="value")
        self._render()

    @property
    def widget(self) -> LogprobsExplorer:
        return self

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # Where widgets cannot show (an HTML export, GitHub), the coloured reply stands in.
        view = logprobs_html(self.tokens, threshold=self.threshold.value)
        return {**widget_view_bundle(self, view.text), "text/html": view.html}

    def __repr__(self) -> str:
        return f"LogprobsExplorer(tokens={len(self.tokens)}, threshold={self.threshold.value})"

    # -- state --------------------------------------------------------------------------------

    @property
    def low(self) -> list[int]:
        """Indices of the tokens below the threshold."""
        limit = self.threshold.value
        return [i for i, p in enumerate(self.probabilities) if p < limit]

    def select(self, index: int | None) -> None:
        """Show the alternatives of token ``index`` in the details pane (None clears it)."""
        if index is not None and not 0 <= index < len(self.tokens):
            raise IndexError(f"No token {index}: the reply has {len(self.tokens)}")
        self.selected = index
        if index is not None and self.index.value != index:
            self.index.value = index
        self._render()

    def step_low(self, direction: int) -> int | None:
        """Select the next (1) or previous (-1) token below the threshold; None if there is none."""
        low = self.low
        if not low:
            return None
        here = (
            self.selected
            if self.selected is not None
            else (-1 if direction > 0 else len(self.tokens))
        )
        ahead = [i for i in low if (i > here if direction > 0 else i < here)]
        target = (
            (ahead[0] if direction > 0 else ahead[-1])
            if ahead
            else (low[0] if direction > 0 else low[-1])
        )
        self.select(target)
        return target

    # -- rendering ----------------------------------------------------------------------------

    def _render(self) -> None:
        limit = self.threshold.value
        count = len(self.tokens)
        stats = self.stats
        perplexity = "—" if stats.perplexity is None else _number(stats.perplexity)
        impossible = f" · {stats.impossible} at probability 0" if stats.impossible else ""
        mean = "—" if stats.mean_probability is None else percent(stats.mean_probability)
        self.summary.value = (
            f"<small>{count} tokens · mean probability {mean} (geometric) · perplexity "
            f"{perplexity}{impossible} · <b>{len(self.low)}</b> below {percent(limit)}</small>"
        )
        self.text.value = self.text_html()
        self.details.value = self.details_html()

    def text_html(self) -> str:
        uid = self._uid
        limit = self.threshold.value
        spans = []
        for i, (token, p) in enumerate(zip(self.tokens, self.probabilities, strict=True)):
            classes = "nbx-tok" + (" nbx-low" if p < limit else "")
            if i == self.selected:
                classes += " nbx-selected"
            alternatives = (
                "".join(
                    f"<tr><td>{escape(_label(alt.token))}</td>"
                    f"<td style='text-align:right;padding-left:8px'>"
                    f"{percent(_probability(alt.logprob))}</td></tr>"
                    for alt in token.top_logprobs
                )
                or "<tr><td colspan=2><i>no alternatives sent</i></td></tr>"
            )
            title = f"p = {percent(p)}" + "".join(
                f" | {_label(alt.token)} {percent(_probability(alt.logprob))}"
                for alt in token.top_logprobs
            )
            spans.append(
                f'<span class="{classes}" tabindex="0" data-index="{i}" '
                f'data-p="{p:.4f}" title="{escape(title)}" '
                f'style="background:{token_colour(p, limit)}">{_shown(token.token)}'
                f'<span class="nbx-pop"><b>#{i}</b> p = {percent(p)}<table>{alternatives}</table>'
                f"</span></span>"
            )
        return f'{_STYLE.format(uid=uid)}<div class="{uid}">{"".join(spans)}</div>'

    def details_html(self) -> str:
        if self.selected is None:
            return "<small><i>Hover or click a token to see its alternatives.</i></small>"
        i = self.selected
        token = self.tokens[i]
        p = self.probabilities[i]
        rows = []
        for alt in token.top_logprobs:
            q = _probability(alt.logprob)
            chosen = " ✓" if alt.token == token.token else ""
            rows.append(
                f"<tr><td><code>{escape(_label(alt.token))}</code>{chosen}</td>"
                f"<td style='text-align:right'>{percent(q)}</td><td style='text-align:right'>"
                f"{_logprob_text(alt.logprob)}</td><td><div style='background:"
                f"var(--jp-brand-color1,#1976d2);height:0.7em;"
                f"width:{max(1, round(q * 200))}px'></div></td></tr>"
            )
        body = "".join(rows) or "<tr><td colspan=4><i>no alternatives sent</i></td></tr>"
        return (
            f"<div><b>Token #{i}</b> <code>{escape(_label(token.token))}</code> — "
            f"p = {percent(p)} (logprob {_logprob_text(token.logprob)})"
            f"<table><tr><th>alternative</th><th>p</th><th>logprob</th><th></th></tr>"
            f"{body}</table></div>"
        )

    # -- table --------------------------------------------------------------------------------

    def _on_table(self, change: dict[str, Any]) -> None:
        self.table.outputs = ()
        if not change["new"]:
            return
        self.show_table()

    def show_table(self) -> LogprobsTable:
        """Show the logprobs table under the tokens (nbchat's own, escaped, as ``%%chat
        --logprobs`` shows it) and return it; ``logprobs_frame`` gives a DataFrame."""
        table = logprobs_table(self.tokens)
        self.table.outputs = (output({"text/html": table._repr_html_(), "text/plain": str(table)}),)
        return table


def _logprob_text(value: float) -> str:
    # What servers send for −inf (−9999) reads as −inf, as in the logprobs table.
    return "-inf" if _probability(value) == 0.0 else f"{value:.3f}"


def explore(completion: Any, *, threshold: float = 0.5, choice: int = 0) -> LogprobsExplorer:
    """A widget to explore the token probabilities of ``completion`` (or a Reply)."""
    return LogprobsExplorer(completion, threshold=threshold, choice=choice)
