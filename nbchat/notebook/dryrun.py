"""``--dry-run``: every form of cell shown by one renderer, and nothing sent.

A prompt shows its exact request, its token budget and the notes on how it was fitted to the
server; ``--each`` the request of its first row and how the rows would be sent; a comparison
one request per model. A request this server would refuse is still shown, as written, with a
note saying what would be refused: a dry run never fails for what only sending could not do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import display

from ..conversation.chat import REFUSED
from .cell import CellRequest, as_option, map_job
from .failure import fail_cell, name_attachments

if TYPE_CHECKING:
    from ..transport.client import AsyncClient, Client

__all__ = ["show_dry_run"]


def show_dry_run(
    request: CellRequest,
    *,
    chat: Any = None,
    client: Client | AsyncClient | None = None,
    namespace: dict[str, Any],
) -> None:
    """Show what ``request`` would send; ``-o VAR`` keeps the (first) request's body."""
    if request.form == "each":
        assert client is not None
        body = _each(request, client, namespace)
    elif request.form == "compare":
        assert client is not None
        body = _compare(request, client)
    else:
        body = _prompt(request, chat)
    out = getattr(request.args, "out", None)
    if out and body is not None:
        # The request itself, in full (the display shortens image data).
        namespace[out] = body


def _show(prepared: Any, title: str) -> None:
    from ..render.bundles import request_bundle

    display(request_bundle(prepared, title=title), raw=True)
    for note in prepared.notes:
        print(f"Note: {note}")


def _prompt(request: CellRequest, chat: Any) -> dict[str, Any]:
    from .context import budget_text

    try:
        prepared = chat.prepare(request.prompt, strict=False)
    except Exception as exc:
        fail_cell(exc, request, conversation=chat)
    prepared = _named(prepared, request, own=len(chat))
    _show(prepared, _title(prepared, "Dry run (not sent)"))
    display({"text/plain": budget_text(chat, request, prepared)}, raw=True)
    return prepared.body


def _title(prepared: Any, title: str) -> str:
    """The dry run's title, saying so when this server would refuse the request."""
    if any(note.startswith(REFUSED) for note in prepared.notes):
        return title.replace("(not sent)", "(not sent; this server would refuse it)")
    return title


def _named(prepared: Any, request: CellRequest, *, own: int) -> Any:
    """The notes with the attachments a server would refuse named as the cell wrote them."""
    from dataclasses import replace

    notes = tuple(name_attachments(note, request.args, own=own) for note in prepared.notes)
    return prepared if notes == prepared.notes else replace(prepared, notes=notes)


def _compare(request: CellRequest, client: Client | AsyncClient) -> dict[str, Any] | None:
    from ..conversation.chat import Chat

    first = None
    for model in request.models:
        chat = Chat(model=model, system=request.system, client=client)
        try:
            prepared = chat.prepare(request.prompt, strict=False)
        except Exception as exc:
            fail_cell(exc, request)
        _show(prepared, _title(prepared, "Dry run (not sent)") + f": {model}")
        first = first or prepared.body
    return first


def _each(
    request: CellRequest, client: Client | AsyncClient, namespace: dict[str, Any]
) -> dict[str, Any] | None:
    from ..protocol.exceptions import RequestValidationError

    job = map_job(request, client, namespace)
    if not len(job):
        print(f"{request.rows_name} has no rows: nothing would be sent.")
        return None
    job.bind(client, job.model)
    try:
        prepared = job.first_request()
    except RequestValidationError as exc:
        raise UsageError(as_option(exc)) from None
    _show(prepared, f"Dry run (not sent): the request for row 1 of {len(job):,}")
    gaps = _missing(job)
    if gaps:
        print(f"Missing values are filled in as empty text: {gaps}.")
    if request.via == "batch":
        from ..conversation.batchjob import DEFAULT_POLL_INTERVAL

        every = DEFAULT_POLL_INTERVAL if request.poll_interval is None else request.poll_interval
        print(
            f"{len(job):,} rows would be sent as one Batch API job, its status looked at "
            f"every {every:g} s."
        )
    else:
        print(f"{len(job):,} rows would be sent, at most {job.concurrency} at a time.")
    return prepared.body


def _missing(job: Any) -> str:
    """Which of the template's expressions are missing (None, NaN) in how many rows."""
    from ..convert.rows import RowTemplate

    if not isinstance(job.prompt, RowTemplate):
        return ""
    counts = job.prompt.missing(job.source)
    return ", ".join(
        f"{{{name}}} in {n:,} row{'' if n == 1 else 's'}" for name, n in sorted(counts.items())
    )
