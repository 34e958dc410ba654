"""Reading the store back: ``nbchat.log()`` as a DataFrame, and usage by session, model and day.

Rows come newest last. Filters are the session name, a model (asked for or answering) and a
start time (a datetime, a date, an ISO string, or a timedelta meaning "that long ago").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from .config import store_path
from .db import Store, open_store
from .record import Exchange

__all__ = [
    "COLUMNS",
    "UsageRow",
    "entries",
    "log",
    "prompt_text",
    "reply_text",
    "since_utc",
    "tool_log",
    "usage",
    "usage_rows",
]

#: The DataFrame's columns, in order.
COLUMNS = (
    "id",
    "time",
    "session",
    "notebook",
    "model_requested",
    "model",
    "server",
    "source",
    "status",
    "prompt",
    "reply",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "counted_tokens",
    "cost",
    "latency",
    "time_to_first_token",
    "finish_reason",
    "stream",
    "url",
    "key",
    "request",
    "response",
    "error",
)


def log(
    session: str | None = None,
    model: str | None = None,
    since: datetime | date | timedelta | str | None = None,
    *,
    limit: int | None = None,
) -> Any:
    """Every exchange kept in the store as a pandas DataFrame, oldest first.

    ``session`` and ``model`` (the model asked for or the one that answered) filter the rows;
    ``since`` keeps those from then on; ``limit`` the last N. ``cost`` is US dollars billed
    (NaN: price unknown), ``source`` says whether the server, the cache or a cassette answered.
    """
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "nbchat.log() returns a pandas DataFrame: pip install pandas "
            "(%chat log shows the last exchanges without it)"
        ) from None
    rows = [_row(e) for e in entries(session=session, model=model, since=since, limit=limit)]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["cost"] = frame["cost"].astype("float64")
    return frame


#: The columns of ``tool_log()``, in order.
TOOL_COLUMNS = (
    "id",
    "exchange_id",
    "time",
    "session",
    "name",
    "call_id",
    "status",
    "approval",
    "arguments",
    "content",
    "error",
    "duration",
)


def tool_log(session: str | None = None) -> Any:
    """Every tool call kept in the store as a pandas DataFrame, oldest first: which exchange's
    reply asked for it (``exchange_id``, the ``id`` of ``log()``), what it did (``status``:
    ok, error, declined), how it was allowed or not (``approval``: not asked, approved by user,
    approved by --yes, declined by user, refused: nobody can answer, stopped by user…) and what
    the model was told (``content``)."""
    import pandas as pd

    store = _store()
    calls = []
    if store is not None:
        store.flush(timeout=5.0)
        calls = [c for c in store.tool_calls() if session is None or c.session == session]
    rows = [{name: getattr(call, name) for name in TOOL_COLUMNS} for call in calls]
    frame = pd.DataFrame(rows, columns=list(TOOL_COLUMNS))
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def entries(
    session: str | None = None,
    model: str | None = None,
    since: datetime | date | timedelta | str | None = None,
    *,
    limit: int | None = None,
    store: Store | None = None,
) -> list[Exchange]:
    """The stored exchanges that match, oldest first (the last ``limit`` of them)."""
    store = store if store is not None else _store()
    if store is None:
        return []
    # What this process queued a moment ago belongs in the answer.
    store.flush(timeout=5.0)
    where, params = _filters(session, model, since)
    sql = f"{where} ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit is not None else "")
    return list(reversed(store.select(sql, params)))


@dataclass
class UsageRow:
    """Tokens and dollars of one day, session and model."""

    day: str
    session: str | None
    model: str | None
    exchanges: int
    #: Answered by the cache or a cassette: nothing sent, nothing billed.
    cached: int
    errors: int
    #: Tokens servers reported (None: none reported any, as local servers' streams do not).
    prompt_tokens: int | None
    completion_tokens: int | None
    #: Completion tokens nbchat counted for exchanges whose server sent no usage (None: none).
    counted_tokens: int | None
    #: US dollars billed for the priced exchanges.
    cost: float
    #: Exchanges sent to a server whose price is unknown (local servers, unknown models).
    unpriced: int
    #: Exchanges answered by a server that sent no usage (their tokens are not in the sums).
    unreported: int = 0


def usage_rows(
    session: str | None = None,
    model: str | None = None,
    since: datetime | date | timedelta | str | None = None,
    *,
    store: Store | None = None,
) -> list[UsageRow]:
    """Usage grouped by day (UTC), session and model; tokens count what servers processed."""
    store = store if store is not None else _store()
    if store is None:
        return []
    store.flush(timeout=5.0)
    where, params = _filters(session, model, since)
    sent = "source = 'server'"
    rows = store.query(
        "SELECT substr(time, 1, 10) AS day, session, COALESCE(model, model_requested) AS m, "
        "COUNT(*), "
        f"SUM(NOT ({sent})), "
        "SUM(status = 'error'), "
        f"SUM(CASE WHEN {sent} THEN prompt_tokens END), "
        f"SUM(CASE WHEN {sent} THEN completion_tokens END), "
        f"SUM(CASE WHEN {sent} AND completion_tokens IS NULL THEN counted_tokens END), "
        f"SUM(CASE WHEN {sent} THEN COALESCE(cost, 0) ELSE 0 END), "
        f"SUM({sent} AND status != 'error' AND cost IS NULL), "
        f"SUM({sent} AND status != 'error' AND prompt_tokens IS NULL) "
        f"FROM exchanges {where} GROUP BY day, session, m ORDER BY day, session, m",
        params,
    )
    return [UsageRow(*_usage_values(row)) for row in rows]


def _usage_values(row: tuple[Any, ...]) -> tuple[Any, ...]:
    day, session, model, count, cached, errors, prompt, completion, counted, cost, *rest = row
    counts = (int(value or 0) for value in (count, cached, errors))
    tokens = (None if value is None else int(value) for value in (prompt, completion, counted))
    unpriced, unreported = (int(value or 0) for value in rest)
    return (day, session, model, *counts, *tokens, float(cost or 0.0), unpriced, unreported)


def usage(
    session: str | None = None,
    model: str | None = None,
    since: datetime | date | timedelta | str | None = None,
) -> Any:
    """``usage_rows()`` as a pandas DataFrame."""
    import pandas as pd

    rows = usage_rows(session=session, model=model, since=since)
    return pd.DataFrame([vars(row) for row in rows], columns=list(UsageRow.__dataclass_fields__))


def prompt_text(request: dict[str, Any] | None) -> str:
    """The text of a request's last user (or tool) message."""
    messages = (request or {}).get("messages") or []
    for message in reversed(messages):
        if message.get("role") in ("user", "tool"):
            return _text(message.get("content"))
    return _text(messages[-1].get("content")) if messages else ""


def reply_text(response: dict[str, Any] | None) -> str:
    """The text of a response's first choice (its tool calls when it has no text)."""
    choices = (response or {}).get("choices") or []
    if not choices:
        return ""
    message = choices[0].get("message") or {}
    if message.get("content"):
        return _text(message["content"])
    if message.get("refusal"):
        return f"[refused] {message['refusal']}"
    audio = message.get("audio") or {}
    if audio.get("transcript"):
        return f"[spoken] {audio['transcript']}"
    calls = message.get("tool_calls") or []
    # A function call or a custom tool call: its body is under its type.
    return " ".join(f"{(c.get(c.get('type', 'function')) or {}).get('name')}(…)" for c in calls)


def since_utc(since: datetime | date | timedelta | str) -> datetime:
    """A start time in UTC; naive datetimes and dates are local time."""
    if isinstance(since, timedelta):
        return datetime.now(UTC) - since
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since.strip())
        except ValueError:
            raise ValueError(
                f"since={since!r} is not an ISO date or time (e.g. '2025-05-12' or "
                "'2025-05-12T09:30')"
            ) from None
    if not isinstance(since, datetime):
        since = datetime.combine(since, time())
    if since.tzinfo is None:
        since = since.astimezone()  # local time, as the user reads clocks
    return since.astimezone(UTC)


def _filters(
    session: str | None, model: str | None, since: datetime | date | timedelta | str | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if session is not None:
        clauses.append("session = ?")
        params.append(session)
    if model is not None:
        clauses.append("(model = ? OR model_requested = ?)")
        params += [model, model]
    if since is not None:
        clauses.append("time >= ?")
        params.append(since_utc(since).isoformat(timespec="microseconds"))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _row(exchange: Exchange) -> dict[str, Any]:
    row = {name: getattr(exchange, name, None) for name in COLUMNS}
    row["prompt"] = prompt_text(exchange.request)
    row["reply"] = reply_text(exchange.response)
    return row


def _store() -> Store | None:
    path = store_path()
    return None if path is None else open_store(path)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                texts.append("[image]")
        return " ".join(texts)
    return ""
