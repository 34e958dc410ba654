"""Token log-probabilities of a reply as a table, a summary and the reply coloured by certainty.

Takes a ChatCompletion (unstreamed or accumulated from a stream), a Reply, a choice, its
logprobs or a list of token logprobs; pandas is optional (a plain table object stands in).

Conventions:

- A logprob at or below −9999 (what servers send for −inf), −inf itself or NaN counts as
  probability 0. The summary's mean logprob and perplexity are over the other tokens, and it
  says how many it left out, so one impossible token does not turn them into −inf/inf.
- ``decoded`` is the token's ``bytes`` read as UTF-8; a token holding part of a character (an
  emoji or CJK character split across tokens) shows its bytes as ``\\xe8\\x93`` escapes. In the
  coloured reply a split character is shown on the token that completes it. Without ``bytes``
  the token string is used. The ``top`` column, the summary and the tooltips show token strings
  (the decoded bytes where a string only stands in for bytes, like ``bytes:\\xe8``).
- Percentages: one decimal from 10 % (two from 99 %, rounded down), two below 10 %,
  ``<0.01%`` for anything smaller but not 0.
"""

from __future__ import annotations

import codecs
import math
from dataclasses import dataclass, field
from typing import Any

from ..protocol.exceptions import NbchatError, first_line
from ..protocol.types import (
    ChatCompletion,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    TokenLogprob,
    TopLogprob,
)
from .markdown import escape, output_html

__all__ = [
    "COLUMNS",
    "NEG_INF_LOGPROB",
    "LogprobsError",
    "LogprobsSummary",
    "LogprobsTable",
    "LogprobsView",
    "logprobs_frame",
    "logprobs_html",
    "logprobs_summary",
    "logprobs_table",
    "percent",
    "token_logprobs",
]

NEG_INF_LOGPROB = -9999.0
COLUMNS = ("position", "token", "logprob", "probability", "bytes", "decoded", "top")

# (lowest probability of the band, background, label): most certain first.
_BANDS = (
    (0.9, "rgba(46, 160, 67, 0.10)", "≥ 90%"),
    (0.7, "rgba(160, 200, 40, 0.30)", "70–90%"),
    (0.5, "rgba(240, 200, 0, 0.40)", "50–70%"),
    (0.3, "rgba(255, 140, 0, 0.45)", "30–50%"),
    (0.1, "rgba(240, 70, 40, 0.50)", "10–30%"),
    (0.0, "rgba(200, 0, 0, 0.65)", "< 10%"),
)


class LogprobsError(NbchatError, ValueError):
    """There are no logprobs to show, or the object holds none."""

    def _render_traceback_(self) -> list[str]:
        # A mistake in what was asked for, not a fault in nbchat: one line in a notebook or
        # terminal IPython, not a traceback through nbchat's files.
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {first_line(self)}"]


# ---------------------------------------------------------------------------------------------
# Reading logprobs out of whatever holds them


def token_logprobs(source: Any, *, choice: int = 0, part: str | None = None) -> list[TokenLogprob]:
    """The token logprobs of ``source``.

    ``source``: a ChatCompletion (or its dict), an object with ``.completion`` (a Reply),
    a Choice, a ChoiceLogprobs or a list of token logprobs (models or dicts). ``part`` picks
    ``"content"`` or ``"refusal"``; by default content, or the refusal's if there is no content.
    """
    if part not in (None, "content", "refusal"):
        raise LogprobsError(f"part must be 'content' or 'refusal', not {part!r}")
    source = getattr(source, "completion", source)
    if isinstance(source, list):
        return [_token(item) for item in source]
    if isinstance(source, dict):
        source = _from_dict(source)
    if isinstance(source, ChatCompletion):
        if not source.choices:
            raise LogprobsError("the completion has no choices")
        if not 0 <= choice < len(source.choices):
            raise LogprobsError(f"no choice {choice}: the completion has {len(source.choices)}")
        source = source.choices[choice]
    if isinstance(source, Choice | ChunkChoice):
        source = source.logprobs
        if source is None:
            raise LogprobsError(
                "the reply has no logprobs: ask for them with logprobs=True "
                "(%%chat --logprobs), and check that the server supports them"
            )
    if not isinstance(source, ChoiceLogprobs):
        raise LogprobsError(
            "expected a ChatCompletion, Reply, Choice, ChoiceLogprobs or a list of token "
            f"logprobs, not {type(source).__name__}"
        )
    if part == "refusal":
        return list(source.refusal or [])
    if part == "content" or source.content:
        return list(source.content or [])
    return list(source.refusal or [])


def _from_dict(data: dict[str, Any]) -> Any:
    try:
        if "choices" in data:
            return ChatCompletion.model_validate(data)
        if "message" in data or "delta" in data:
            return (Choice if "message" in data else ChunkChoice).model_validate(data)
        return ChoiceLogprobs.model_validate(data)
    except ValueError as exc:
        raise LogprobsError(f"not a completion or logprobs object: {first_line(exc)}") from None


def _token(item: Any) -> TokenLogprob:
    if isinstance(item, TokenLogprob):
        return item
    try:
        return TokenLogprob.model_validate(item)
    except ValueError as exc:
        raise LogprobsError(f"not a token logprob: {first_line(exc)}") from None


# ---------------------------------------------------------------------------------------------
# Numbers and text


def _logprob(value: float) -> float:
    """The logprob with −9999, −inf and NaN all as −inf."""
    if math.isnan(value) or value <= NEG_INF_LOGPROB:
        return -math.inf
    return min(value, 0.0)


def _probability(value: float) -> float:
    clean = _logprob(value)
    return 0.0 if clean == -math.inf else math.exp(clean)


def percent(probability: float) -> str:
    """A probability as nbchat shows every probability: a percentage (see the module's notes)."""
    return _pct(probability)


def _pct(probability: float) -> str:
    percent = probability * 100
    if percent == 0:
        return "0%"
    if percent >= 100:
        return "100%"
    if percent >= 99:
        # Near certainty the second decimal matters, and 99.996% must not read as 100%.
        return f"{math.floor(percent * 100) / 100:.2f}%"
    if percent >= 10:
        return f"{percent:.1f}%"
    if percent >= 0.01:
        return f"{percent:.2f}%"
    return "<0.01%"


def _decoded(token: TokenLogprob | TopLogprob) -> str:
    if token.bytes is None:
        return token.token
    try:
        return bytes(token.bytes).decode("utf-8")
    except (UnicodeDecodeError, ValueError):
        return bytes(b & 0xFF for b in token.bytes).decode("utf-8", errors="backslashreplace")


def _label(token: TokenLogprob | TopLogprob) -> str:
    """The token as a person reads it: its string, or its decoded bytes if the string is only
    a stand-in for bytes (``bytes:\\xe8``, ``\\xe8\\x93`` or a replacement character)."""
    text = token.token
    if token.bytes is not None and ("\ufffd" in text or "\\x" in text or text.startswith("bytes:")):
        return _decoded(token)
    return text


def _visible(text: str) -> str:
    """A token as one readable line: newlines and tabs escaped, edge spaces shown as ␣."""
    shown = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    stripped = shown.strip(" ")
    if stripped != shown:
        left = len(shown) - len(shown.lstrip(" "))
        right = len(shown) - len(shown.rstrip(" "))
        shown = "␣" * left + stripped + "␣" * right
    return shown or "∅"


def _alternatives(token: TokenLogprob, top: int | None) -> list[TopLogprob]:
    ranked = sorted(token.top_logprobs, key=lambda alt: _logprob(alt.logprob), reverse=True)
    return ranked if top is None else ranked[:top]


def _top_text(token: TokenLogprob, top: int | None) -> str:
    return ", ".join(
        f"{_visible(_label(alt))} ({_pct(_probability(alt.logprob))})"
        for alt in _alternatives(token, top)
    )


# ---------------------------------------------------------------------------------------------
# The table


class LogprobsTable:
    """The logprobs table when pandas is not installed: rows of dicts with HTML and text views."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.columns = shown_columns(rows)
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, column: str) -> list[Any]:
        if column not in self.columns:
            raise KeyError(column)
        return [row[column] for row in self.rows]

    def to_records(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.rows]

    def _cell(self, column: str, value: Any) -> str:
        if column == "logprob":
            return "-inf" if value == -math.inf else f"{value:.4f}"
        if column == "probability":
            return _pct(value)
        if column == "token":
            return _visible(value)
        if column == "bytes":
            return "" if value is None else " ".join(str(b) for b in value)
        return str(value)

    def __str__(self) -> str:
        cells = [[self._cell(c, row[c]) for c in self.columns] for row in self.rows]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))]
        for row in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
        return "\n".join(line.rstrip() for line in lines)

    def __repr__(self) -> str:
        return f"LogprobsTable({len(self.rows)} tokens)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # The notebook's plain-text form (and a static viewer's) is the table itself.
        printer.text(str(self))

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{escape(self._cell(c, row[c]))}</td>" for c in self.columns)
            + "</tr>"
            for row in self.rows
        )
        return output_html(
            f'<table class="nbchat-logprobs"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )


def shown_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The columns that carry something: ``bytes`` and ``decoded`` (read from the bytes) only
    when some token has bytes; without any, ``decoded`` would repeat the token."""
    columns = list(COLUMNS)
    if all(row["bytes"] is None for row in rows) and all(
        row["decoded"] == row["token"] for row in rows
    ):
        columns.remove("bytes")
        columns.remove("decoded")
    return columns


def _rows(tokens: list[TokenLogprob], top: int | None) -> list[dict[str, Any]]:
    return [
        {
            "position": i,
            "token": token.token,
            "logprob": _logprob(token.logprob),
            "probability": _probability(token.logprob),
            "bytes": list(token.bytes) if token.bytes is not None else None,
            "decoded": _decoded(token),
            "top": _top_text(token, top),
        }
        for i, token in enumerate(tokens)
    ]


def logprobs_frame(
    source: Any, *, choice: int = 0, top: int | None = None, part: str | None = None
) -> Any:
    """One row per token, indexed by its position: token, logprob, probability, bytes,
    decoded, top (``bytes`` and ``decoded`` only when they carry something, see
    :func:`shown_columns`).

    ``top`` is the top alternatives as ``"tok (p%)"`` strings, most likely first (at most
    ``top`` of them if given). A pandas DataFrame, or a :class:`LogprobsTable` without pandas.
    """
    rows = _rows(token_logprobs(source, choice=choice, part=part), top)
    try:
        import pandas as pd
    except ImportError:
        return LogprobsTable(rows)
    columns = shown_columns(rows)
    frame = pd.DataFrame(rows, columns=columns).astype(
        {"position": "int64", "logprob": "float64", "probability": "float64"}
    )
    # The position is the index, not a column that repeats it.
    return frame.set_index("position")


def logprobs_table(
    source: Any, *, choice: int = 0, top: int | None = None, part: str | None = None
) -> LogprobsTable:
    """The rows of :func:`logprobs_frame` as nbchat's own table (escaped HTML, plain text),
    whether or not pandas is installed: what ``%%chat --logprobs`` shows."""
    return LogprobsTable(_rows(token_logprobs(source, choice=choice, part=part), top))


# ---------------------------------------------------------------------------------------------
# The summary


@dataclass(frozen=True)
class LogprobsSummary:
    """How sure the model was: mean logprob, perplexity and the least certain tokens.

    ``mean_logprob`` and ``perplexity`` leave out the ``impossible`` tokens (probability 0,
    logprob −9999/−inf); both are None when no token is left.
    """

    tokens: int
    mean_logprob: float | None
    perplexity: float | None
    total_logprob: float
    impossible: int
    least_certain: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mean_probability(self) -> float | None:
        """The geometric mean of the tokens' probabilities, e^mean logprob (1 / perplexity):
        the one "mean probability" nbchat shows, in the summary and the explorer."""
        return None if self.mean_logprob is None else math.exp(self.mean_logprob)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "mean_logprob": self.mean_logprob,
            "perplexity": self.perplexity,
            "total_logprob": self.total_logprob,
            "impossible": self.impossible,
            "least_certain": [dict(row) for row in self.least_certain],
        }

    def headline(self) -> str:
        if self.mean_logprob is None or self.perplexity is None:
            return f"{self.tokens} tokens, no finite logprobs"
        text = (
            f"{self.tokens} tokens, mean logprob {self.mean_logprob:.4f} "
            f"(mean probability {_pct(math.exp(self.mean_logprob))}, geometric), "
            f"perplexity {self.perplexity:.3f}"
        )
        if self.impossible:
            text += f"; {self.impossible} token(s) at probability 0 left out"
        return text

    def __str__(self) -> str:
        lines = [self.headline()]
        if self.least_certain:
            lines.append("least certain:")
            for row in self.least_certain:
                alts = f"  [{row['top']}]" if row["top"] else ""
                lines.append(
                    f"  #{row['position']:<4} {_visible(row['label']):<16} "
                    f"{_pct(row['probability']):>7}{alts}"
                )
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # The notebook's plain-text form is the readable summary, not the dataclass fields.
        printer.text(str(self))

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{row['position']}</td><td><code>{escape(_visible(row['label']))}"
            f"</code></td><td>{_pct(row['probability'])}</td>"
            f"<td>{escape(row['top'])}</td></tr>"
            for row in self.least_certain
        )
        table = (
            "<table><thead><tr><th>#</th><th>token</th><th>p</th><th>alternatives</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>"
            if rows
            else ""
        )
        return output_html(f"<p>{escape(self.headline())}</p>{table}")


def logprobs_summary(
    source: Any, *, choice: int = 0, k: int = 5, top: int | None = 3, part: str | None = None
) -> LogprobsSummary:
    """Mean logprob, perplexity (e^−mean) and the ``k`` least likely tokens (ties: earliest)."""
    tokens = token_logprobs(source, choice=choice, part=part)
    rows = _rows(tokens, top)
    finite = [row["logprob"] for row in rows if row["logprob"] != -math.inf]
    mean = math.fsum(finite) / len(finite) if finite else None
    perplexity = None
    if mean is not None:
        # exp overflows past 709: say inf rather than raise.
        perplexity = math.exp(-mean) if -mean < 709 else math.inf
    least = [
        {**row, "label": _label(tokens[row["position"]])}
        for row in sorted(rows, key=lambda row: (row["probability"], row["position"]))[: max(k, 0)]
    ]
    return LogprobsSummary(
        tokens=len(rows),
        mean_logprob=mean,
        perplexity=perplexity,
        total_logprob=math.fsum(finite),
        impossible=len(rows) - len(finite),
        least_certain=least,
    )


# ---------------------------------------------------------------------------------------------
# The coloured reply


@dataclass(frozen=True)
class LogprobsView:
    """The reply coloured by token probability: ``html`` for notebooks, ``text`` for terminals."""

    html: str
    text: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def _band(probability: float) -> tuple[str, str]:
    for low, colour, label in _BANDS:
        if probability >= low:
            return colour, label
    return _BANDS[-1][1], _BANDS[-1][2]


def _pieces(tokens: list[TokenLogprob]) -> list[str]:
    """The text each token adds to the reply, characters split across tokens made whole."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces = []
    for token in tokens:
        if token.bytes is None:
            pending = decoder.decode(b"", final=True)
            decoder.reset()
            pieces.append(pending + token.token)
        else:
            pieces.append(decoder.decode(bytes(b & 0xFF for b in token.bytes)))
    if pieces:
        pieces[-1] += decoder.decode(b"", final=True)
    return pieces


def logprobs_html(
    source: Any,
    *,
    choice: int = 0,
    top: int | None = 5,
    threshold: float = 0.5,
    part: str | None = None,
) -> LogprobsView:
    """The reply token by token, each coloured by its probability, with a legend.

    Hover a token for its probability and top alternatives. The plain-text form marks tokens
    below ``threshold`` as ``[token|p%]``.
    """
    tokens = token_logprobs(source, choice=choice, part=part)
    rows = _rows(tokens, top)
    pieces = _pieces(tokens)
    spans = []
    text_parts = []
    for row, piece in zip(rows, pieces, strict=True):
        p = row["probability"]
        colour, _ = _band(p)
        logprob = "-inf" if row["logprob"] == -math.inf else f"{row['logprob']:.4f}"
        label = _visible(_label(tokens[row["position"]]))
        tip = f"#{row['position']} {label}: {_pct(p)} (logprob {logprob})"
        if row["top"]:
            tip += f"\ntop: {row['top']}"
        if not piece and row["bytes"]:
            tip += "\n(part of a character completed by a later token)"
        title = escape(tip).replace("\n", "&#10;")
        spans.append(
            f'<span title="{title}" style="background:{colour};border-radius:2px">'
            f"{escape(piece)}</span>"
        )
        text_parts.append(f"[{piece}|{_pct(p)}]" if p < threshold and piece else piece)
    legend = " ".join(
        f'<span style="background:{colour};padding:0 4px;border-radius:2px">{escape(label)}</span>'
        for _, colour, label in _BANDS
    )
    body = "".join(spans)
    page = output_html(
        '<div class="nbchat-logprobs-view">'
        f'<div style="white-space:pre-wrap;line-height:1.6">{body}</div>'
        f'<div style="margin-top:4px;font-size:0.85em">token probability: {legend}</div>'
        "</div>"
    )
    text = "".join(text_parts)
    text += f"\n\n[token|p%] marks tokens below {_pct(threshold)}"
    return LogprobsView(html=page, text=text)
