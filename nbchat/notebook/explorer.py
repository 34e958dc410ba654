"""The logprobs explorer: a reply's tokens coloured by probability, with their alternatives.

Hover or click a token to see its top alternatives (plain HTML and CSS, so it works wherever the
widget shows); a slider sets the threshold below which tokens are highlighted.
"""

from __future__ import annotations

import html
import itertools
import math
from typing import Any

from ..protocol.exceptions import first_line
from ..protocol.types import ChatCompletion, TokenLogprob

__all__ = ["LogprobsExplorer", "explore", "token_colour", "token_probabilities"]

_ids = itertools.count(1)


def token_probabilities(tokens: list[TokenLogprob]) -> list[float]:
    return [math.exp(token.logprob) for token in tokens]


def token_colour(probability: float, threshold: float) -> str:
    """Background for a token: red to amber below the threshold, a faint green above it."""
    if probability < threshold:
        # 0 → red, threshold → amber; stronger the less likely the token was.
        share = probability / threshold if threshold > 0 else 1.0
        hue = round(40 * share)
        alpha = round(0.65 - 0.35 * share, 2)
        return f"hsla({hue}, 90%, 55%, {alpha})"
    return "hsla(120, 60%, 45%, 0.12)"


def _tokens_of(source: Any, choice: int) -> list[TokenLogprob]:
    completion = getattr(source, "completion", source)
    if isinstance(completion, list):
        return [
            t if isinstance(t, TokenLogprob) else TokenLogprob.model_validate(t) for t in source
        ]
    if isinstance(completion, dict):
        completion = ChatCompletion.model_validate(completion)
    if not isinstance(completion, ChatCompletion):
        raise TypeError(
            f"explore() takes a ChatCompletion, a Reply or a list of token logprobs, "
            f"not {type(source).__name__}"
        )
    if not completion.choices:
        raise ValueError("The completion has no choices to explore")
    if not 0 <= choice < len(completion.choices):
        raise ValueError(f"No choice {choice}: the completion has {len(completion.choices)}")
    logprobs = completion.choices[choice].logprobs
    tokens = (logprobs.content or logprobs.refusal) if logprobs is not None else None
    if not tokens:
        raise ValueError(
            "The reply has no logprobs: send it with logprobs on (the panel's toggle, or "
            "%%chat --logprobs)"
        )
    return list(tokens)


def _shown(token: str) -> str:
    """The token as visible text: newlines and tabs marked, everything else escaped."""
    text = html.escape(token)
    return text.replace("\n", "↵<br>").replace("\t", "⇥")


def _label(token: str) -> str:
    return repr(token)[1:-1] if token.strip() != token or not token else token


class LogprobsExplorer:
    """The explorer's widgets and state. Display it; ``.widget`` is the ipywidgets VBox."""

    def __init__(self, source: Any, *, threshold: float = 0.5, choice: int = 0) -> None:
        from .widgets import ipywidgets_module

        w = ipywidgets_module()
        self.source = getattr(source, "completion", source)
        self.tokens = _tokens_of(source, choice)
        self.probabilities = token_probabilities(self.tokens)
        self.selected: int | None = None
        self._uid = f"nbx{next(_ids)}"

        self.threshold = w.FloatSlider(
            value=threshold,
            min=0.0,
            max=1.0,
            step=0.01,
            description="highlight below",
            readout_format=".2f",
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
        self.table = w.Output()
        self.widget = w.VBox(
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
        )
        self.widget.add_class("nbchat-explorer")

        self.threshold.observe(lambda _: self._render(), names="value")
        self.index.observe(lambda change: self.select(change["new"]), names="value")
        self.previous_low.on_click(lambda _: self.step_low(-1))
        self.next_low.on_click(lambda _: self.step_low(1))
        self.table_button.observe(self._on_table, names="value")
        self._render()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

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
        total = sum(t.logprob for t in self.tokens)
        perplexity = math.exp(-total / count) if count else float("nan")
        self.summary.value = (
            f"<small>{count} tokens · mean probability "
            f"{sum(self.probabilities) / count:.2f} · perplexity {perplexity:.2f} · "
            f"<b>{len(self.low)}</b> below {limit:.2f}</small>"
        )
        self.text.value = self.text_html()
        self.details.value = self.details_html()

    def text_html(self) -> str:
        uid = self._uid
        limit = self.threshold.value
        style = (
            f"<style>.{uid}{{white-space:pre-wrap;line-height:1.9;font-family:var(--jp-code-font-"
            f"family,monospace);font-size:0.92em}}"
            f".{uid} .nbx-tok{{position:relative;cursor:pointer;border-radius:3px;padding:1px 0}}"
            f".{uid} .nbx-tok.nbx-selected{{outline:2px solid #1976d2}}"
            f".{uid} .nbx-pop{{display:none;position:absolute;left:0;top:1.7em;z-index:1000;"
            f"background:var(--jp-layout-color0,#fff);color:var(--jp-content-font-color1,#000);"
            f"border:1px solid #999;border-radius:4px;padding:4px 6px;white-space:nowrap;"
            f"box-shadow:0 2px 6px rgba(0,0,0,.25);font-size:0.9em;line-height:1.3}}"
            f".{uid} .nbx-tok:hover .nbx-pop,.{uid} .nbx-tok:focus .nbx-pop{{display:block}}"
            # ipywidgets' HTML widget clips its content; the pop-ups must overflow it.
            f".nbchat-explorer-area,.nbchat-explorer,.nbchat-explorer .widget-box,"
            f".nbchat-explorer .widget-html,.nbchat-explorer .widget-html-content"
            f"{{overflow:visible !important}}"
            f"</style>"
        )
        spans = []
        for i, (token, p) in enumerate(zip(self.tokens, self.probabilities, strict=True)):
            classes = "nbx-tok" + (" nbx-low" if p < limit else "")
            if i == self.selected:
                classes += " nbx-selected"
            alternatives = (
                "".join(
                    f"<tr><td>{html.escape(_label(alt.token))}</td>"
                    f"<td style='text-align:right;padding-left:8px'>"
                    f"{math.exp(alt.logprob):.3f}</td></tr>"
                    for alt in token.top_logprobs
                )
                or "<tr><td colspan=2><i>no alternatives sent</i></td></tr>"
            )
            title = f"p = {p:.3f}" + "".join(
                f" | {_label(alt.token)} {math.exp(alt.logprob):.3f}" for alt in token.top_logprobs
            )
            spans.append(
                f'<span class="{classes}" tabindex="0" data-index="{i}" '
                f'data-p="{p:.4f}" title="{html.escape(title, quote=True)}" '
                f'style="background:{token_colour(p, limit)}">{_shown(token.token)}'
                f'<span class="nbx-pop"><b>#{i}</b> p = {p:.3f}<table>{alternatives}</table>'
                f"</span></span>"
            )
        return f'{style}<div class="{uid}">{"".join(spans)}</div>'

    def details_html(self) -> str:
        if self.selected is None:
            return "<small><i>Hover or click a token to see its alternatives.</i></small>"
        i = self.selected
        token = self.tokens[i]
        p = self.probabilities[i]
        rows = []
        for alt in token.top_logprobs:
            q = math.exp(alt.logprob)
            chosen = " ✓" if alt.token == token.token else ""
            rows.append(
                f"<tr><td><code>{html.escape(_label(alt.token))}</code>{chosen}</td>"
                f"<td style='text-align:right'>{q:.3f}</td><td style='text-align:right'>"
                f"{alt.logprob:.3f}</td><td><div style='background:#1976d2;height:0.7em;"
                f"width:{max(1, round(q * 200))}px'></div></td></tr>"
            )
        body = "".join(rows) or "<tr><td colspan=4><i>no alternatives sent</i></td></tr>"
        return (
            f"<div><b>Token #{i}</b> <code>{html.escape(_label(token.token))}</code> — "
            f"p = {p:.3f} (logprob {token.logprob:.3f})"
            f"<table><tr><th>alternative</th><th>p</th><th>logprob</th><th></th></tr>"
            f"{body}</table></div>"
        )

    # -- table --------------------------------------------------------------------------------

    def _on_table(self, change: dict[str, Any]) -> None:
        self.table.outputs = ()
        if not change["new"]:
            return
        self.show_table()

    def show_table(self) -> Any:
        """Show the logprobs table under the tokens; returns what was shown."""
        try:
            from ..render.logprobs import logprobs_frame
        except ImportError:
            shown: Any = None
            bundle = {
                "text/plain": "The logprobs table needs nbchat.render.logprobs (not available)."
            }
        else:
            try:
                shown = logprobs_frame(self.source)
            except Exception as exc:
                shown = None
                bundle = {"text/plain": f"No table: {first_line(exc)}"}
            else:
                from IPython.core.formatters import DisplayFormatter

                data, _ = DisplayFormatter().format(shown)
                bundle = data
        self.table.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
        return shown


def explore(completion: Any, *, threshold: float = 0.5, choice: int = 0) -> LogprobsExplorer:
    """A widget to explore the token probabilities of ``completion`` (or a Reply)."""
    return LogprobsExplorer(completion, threshold=threshold, choice=choice)
