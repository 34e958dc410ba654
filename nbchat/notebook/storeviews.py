"""The tables of ``%chat log`` and ``%chat usage``: the last exchanges, and what they cost;
``%chat stored``: the completions a server stored, and one of them in full.

Our own chrome: every value in the tables (prompts and replies included) is escaped, never
rendered as Markdown or HTML; each bundle has an HTML table and a plain-text one for terminals.
A stored completion shown in full goes through the one renderer, like a conversation.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

__all__ = ["log_table", "stored_list_table", "stored_show", "usage_table"]

_SHOWN_CHARS = 80
#: Marks a figure nbchat counted, where the server sent no usage.
_COUNTED = "~"
_COUNTED_NOTE = (
    f"{_COUNTED}N: completion tokens nbchat counted (one a streamed piece); the server sent no "
    "usage"
)
#: Columns that give way when a table is wider than the terminal, and the least they keep.
_LOG_FLEXIBLE = {7: 24, 6: 24, 2: 14}
_USAGE_FLEXIBLE = {2: 14, 1: 8}
_STORED_FLEXIBLE = {5: 24, 4: 12, 1: 16}


def log_table(count: int, *, width: int | None = None) -> dict[str, str]:
    """The last ``count`` exchanges: time, session, model, tokens, cost, latency, text.

    ``width``: the columns the text fits in (None: the terminal's, when stdout is one)."""
    from ..store.log import entries, prompt_text, reply_text
    from ..store.prices import dollars

    rows = entries(limit=count)
    header = ("time", "session", "model", "tokens", "cost", "latency", "prompt", "reply")
    table: list[tuple[str, ...]] = []
    for e in rows:
        if e.source != "server":
            cost = "cached" if e.source == "cache" else "replayed"
        elif e.status != "ok":
            cost = e.status
        else:
            cost = dollars(e.cost)
        tokens = _tokens(e.prompt_tokens, e.completion_tokens, e.counted_tokens)
        reply = reply_text(e.response) or (e.error or {}).get("message", "")
        table.append(
            (
                e.time.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                e.session or "",
                e.model or e.model_requested or "",
                tokens,
                cost,
                "" if e.latency is None else f"{e.latency:.2f} s",
                _short(prompt_text(e.request)),
                _short(reply),
            )
        )
    title = f"Last {len(rows)} exchange{'s' if len(rows) != 1 else ''} in the store"
    if not rows:
        title = "No exchanges in the store yet"
    lines = [_COUNTED_NOTE] if any(_COUNTED in row[3] for row in table) else []
    return _bundle(title, header, table, lines, width, _LOG_FLEXIBLE, _log_record)


def usage_table(*, width: int | None = None) -> dict[str, str]:
    """Tokens and cost by day, session and model, with the total and the budget.

    ``width``: the columns the text fits in (None: the terminal's, when stdout is one)."""
    from ..render.wrap import parts
    from ..store import budget as budgets
    from ..store.config import budget, store_path
    from ..store.log import usage_rows
    from ..store.prices import dollars

    rows = usage_rows()
    header = (
        "day (UTC)",
        "session",
        "model",
        "exchanges",
        "cached",
        "prompt",
        "completion",
        "cost",
    )
    table: list[tuple[str, ...]] = []
    total, priced, unpriced, cached = 0.0, 0, 0, 0
    for row in rows:
        sent = row.exchanges - row.cached - row.errors
        total += row.cost
        priced += sent - row.unpriced
        unpriced += row.unpriced
        cached += row.cached
        if sent <= 0:
            cost = "nothing billed"
        elif row.unpriced >= sent:
            cost = dollars(None)
        elif row.unpriced:
            cost = f"{dollars(row.cost)} + {row.unpriced} unpriced"
        else:
            cost = dollars(row.cost)
        table.append(
            (
                row.day,
                row.session or "",
                row.model or "",
                str(row.exchanges),
                str(row.cached),
                _count(row.prompt_tokens, sent, unreported=row.unreported),
                _count(row.completion_tokens, sent, row.counted_tokens, row.unreported),
                cost,
            )
        )
    lines = [_COUNTED_NOTE] if any(row[6].startswith(_COUNTED) for row in table) else []
    if priced:
        lines.append(f"Billed: {dollars(total)} for {priced} priced exchange{_s(priced)}")
    if unpriced:
        lines.append(
            f"{unpriced} exchange{_s(unpriced)} with no known price (local servers, models "
            "genai-prices does not list)"
        )
    if cached:
        lines.append(f"{cached} answered by the cache or a cassette: nothing billed")
    limit = budget()
    if limit is not None:
        lines.append(f"Budget: {dollars(budgets.spent())} of {dollars(limit)} spent")
    # The path is one word: a line of its own would say nothing.
    lines.append(parts(f"Store: {store_path()}", separator="\n"))
    title = "Usage by day, session and model" if rows else "No exchanges in the store yet"
    return _bundle(title, header, table, lines, width, _USAGE_FLEXIBLE, _usage_record)


Record = Callable[[tuple[str, ...], tuple[str, ...], int], list[str]]


def _bundle(
    title: str,
    header: tuple[str, ...],
    rows: list[tuple[str, ...]],
    lines: Sequence[str],
    width: int | None,
    flexible: dict[int, int],
    record: Record,
) -> dict[str, str]:
    cell = "<td style='text-align:left'>{}</td>"
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(cell.format(html.escape(value)) for value in row) + "</tr>" for row in rows
    )
    from ..render.wrap import terminal_width, unjoin, wrap

    notes = "".join(f"<div>{html.escape(unjoin(line))}</div>" for line in lines)
    table = f"<table><tr>{head}</tr>{body}</table>" if rows else ""
    markup = f"<strong>{html.escape(title)}</strong>{table}{notes}"
    fit = width if width is not None else terminal_width(sys.stdout)
    text = [title, *_text_rows(header, rows, fit, flexible, record)]
    text += [wrap(line, fit) for line in lines]
    return {"text/html": markup, "text/plain": "\n".join(text)}


def _text_rows(
    header: tuple[str, ...],
    rows: list[tuple[str, ...]],
    width: int | None,
    flexible: dict[int, int],
    record: Record,
) -> list[str]:
    """The rows as a table of aligned columns, narrowed to ``width`` by clipping the flexible
    columns; where even that is too wide, each row as a short record."""
    from ..render.wrap import cells

    if not rows:
        return []
    widths = [max(cells(h), *(cells(r[i]) for r in rows)) for i, h in enumerate(header)]
    if width is not None:
        over = sum(widths) + 2 * (len(widths) - 1) - width
        for column, least in flexible.items():
            if over <= 0:
                break
            give = min(over, max(widths[column] - max(least, len(header[column])), 0))
            widths[column] -= give
            over -= give
        if over > 0:
            return [line for row in rows for line in record(header, row, width)]

    def line(values: Sequence[str]) -> str:
        shown = [_clip(v, w) for v, w in zip(values, widths, strict=True)]
        padded = (v + " " * (w - cells(v)) for v, w in zip(shown, widths, strict=True))
        return "  ".join(padded).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _log_record(header: tuple[str, ...], row: tuple[str, ...], width: int) -> list[str]:
    """One exchange on three lines: what, when and how much; the prompt; the reply."""
    from ..render.wrap import parts, wrap

    time, session, model, tokens, cost, latency, prompt, reply = row
    head = " · ".join(
        part
        for part in (
            time,
            session,
            model,
            f"{tokens} tokens" if tokens else "",
            cost,
            latency,
        )
        if part
    )
    return [
        *wrap(parts(head), width, hang=4).splitlines(),
        _clip(f"  > {prompt}", width),
        _clip(f"  < {reply}", width),
    ]


def _usage_record(header: tuple[str, ...], row: tuple[str, ...], width: int) -> list[str]:
    """One day, session and model on two lines or more: which, then each figure named."""
    from ..render.wrap import parts, wrap

    which = " · ".join(v for v in row[:3] if v)
    figures = ", ".join(f"{name} {value}" for name, value in zip(header[3:], row[3:], strict=True))
    return [
        *wrap(parts(which), width, hang=4).splitlines(),
        *wrap(f"  {parts(figures, ', ')}", width).splitlines(),
    ]


def _stored_record(header: tuple[str, ...], row: tuple[str, ...], width: int) -> list[str]:
    """One stored completion on two lines or more: when, id and model; then its reply."""
    from ..render.wrap import parts, wrap

    which = " · ".join(v for v in row[:4] if v)
    return [
        *wrap(parts(which), width, hang=4).splitlines(),
        *wrap(f"  {row[5]}", width).splitlines(),
    ]


def _clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns, "…" marking the cut."""
    from ..render.wrap import cells

    if cells(text) <= width:
        return text
    kept: list[str] = []
    used = 1
    for char in text:
        used += cells(char)
        if used > width:
            break
        kept.append(char)
    return "".join(kept) + "…"


def _tokens(prompt: int | None, completion: int | None, counted: int | None) -> str:
    """``prompt+completion`` for the log; ``?+~N`` when the server sent no usage and nbchat
    counted N streamed pieces; empty when nothing is known."""
    if prompt is not None or completion is not None:
        return f"{_or_unknown(prompt)}+{_or_unknown(completion)}"
    if counted:
        return f"?+{_COUNTED}{counted}"
    return ""


def _or_unknown(value: int | None) -> str:
    return "?" if value is None else str(value)


def _count(tokens: int | None, sent: int, counted: int | None = None, unreported: int = 0) -> str:
    if counted:
        # Some of the exchanges had no usage: what nbchat counted stands in for theirs.
        return f"{_COUNTED}{(tokens or 0) + counted:,}"
    if tokens is None:
        # Nothing sent: nothing processed. Sent, but no server said: unknown.
        return "0" if sent <= 0 else "unknown"
    # Some exchanges had no usage: the sum is of the others only.
    return f"≥{tokens:,}" if unreported else f"{tokens:,}"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def stored_list_table(page: Any) -> dict[str, str]:
    """A page of stored completions, newest first: time, id, model, tokens, labels, reply."""
    header = ("created", "id", "model", "tokens", "metadata", "reply")
    table: list[tuple[str, ...]] = []
    for completion in page.data:
        usage = completion.usage
        tokens = "" if usage is None else f"{usage.prompt_tokens}+{usage.completion_tokens}"
        labels = _labels(completion.metadata)
        table.append(
            (
                _created(completion.created),
                completion.id,
                completion.model,
                tokens,
                _short(labels),
                _short(completion.content or ""),
            )
        )
    shown = len(table)
    title = f"{shown} stored completion{_s(shown)} on the server"
    if not table:
        title = "No stored completions on the server (send with --store to keep one)"
    lines = ["More: %chat stored list N shows more."] if page.has_more else []
    return _bundle(title, header, table, lines, None, _STORED_FLEXIBLE, _stored_record)


def stored_show(completion: Any, messages: Sequence[Any]) -> dict[str, str]:
    """One stored completion: its request's messages and its reply, through the one renderer."""
    from ..render.bundles import completion_bundle, message_html
    from ..render.markdown import escape, html_bundle

    labels = _labels(completion.metadata)
    head = (
        f"Stored completion {completion.id} · {completion.model} · "
        f"{_created(completion.created)}" + (f" · {labels}" if labels else "")
    )
    parts = [f"<strong>{escape(head)}</strong>"]
    text = [head]
    for message in messages:
        shown = message.to_dict()
        shown.pop("id", None)
        body, plain = message_html(shown)
        parts.append(body)
        text.append(plain)
    reply = completion_bundle(completion)
    parts.append(reply["text/html"])
    text.append(reply["text/plain"])
    return html_bundle("".join(parts), "\n".join(text))


def _labels(metadata: Any) -> str:
    if not isinstance(metadata, dict):
        return "" if metadata is None else str(metadata)
    return ", ".join(f"{key}={value}" for key, value in sorted(metadata.items()))


def _created(timestamp: int) -> str:
    if not timestamp:
        return ""
    from datetime import datetime

    moment = datetime.fromtimestamp(timestamp, tz=UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")
