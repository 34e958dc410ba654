"""The tables of ``%chat log`` and ``%chat usage``: the last exchanges, and what they cost;
``%chat stored``: the completions a server stored, and one of them in full.

Our own chrome: every value in the tables (prompts and replies included) is escaped, never
rendered as Markdown or HTML; each bundle has an HTML table and a plain-text one for terminals.
A stored completion shown in full goes through the one renderer, like a conversation.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC
from typing import Any

__all__ = ["log_table", "stored_list_table", "stored_show", "usage_table"]

_SHOWN_CHARS = 60


def log_table(count: int) -> dict[str, str]:
    """The last ``count`` exchanges: time, session, model, tokens, cost, latency, text."""
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
        tokens = "" if e.prompt_tokens is None else f"{e.prompt_tokens}+{e.completion_tokens}"
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
    return _bundle(title, header, table)


def usage_table() -> dict[str, str]:
    """Tokens and cost by day, session and model, with the total and the budget."""
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
                _count(row.prompt_tokens, sent),
                _count(row.completion_tokens, sent),
                cost,
            )
        )
    lines = []
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
    lines.append(f"Store: {store_path()}")
    title = "Usage by day, session and model" if rows else "No exchanges in the store yet"
    return _bundle(title, header, table, lines)


def _bundle(
    title: str, header: tuple[str, ...], rows: list[tuple[str, ...]], lines: Sequence[str] = ()
) -> dict[str, str]:
    cell = "<td style='text-align:left'>{}</td>"
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(cell.format(html.escape(value)) for value in row) + "</tr>" for row in rows
    )
    notes = "".join(f"<div>{html.escape(line)}</div>" for line in lines)
    table = f"<table><tr>{head}</tr>{body}</table>" if rows else ""
    markup = f"<strong>{html.escape(title)}</strong>{table}{notes}"
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    text = [title]
    if rows:
        text.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        text += [
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
    text += list(lines)
    return {"text/html": markup, "text/plain": "\n".join(text)}


def _count(tokens: int | None, sent: int) -> str:
    if tokens is None:
        # Nothing sent: nothing processed. Sent, but no server said: unknown.
        return "0" if sent <= 0 else "unknown"
    return f"{tokens:,}"


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
    return _bundle(title, header, table, lines)


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
