"""``%%chat --each DF``, ``%%chat --compare A,B`` and ``%chat compare -m A -m B …``: a cell's
request (read by ``cell.py``) sent once per row through ``nbchat.map``, or to several models
side by side through ``nbchat.compare``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .cell import CellRequest, map_job
from .failure import ChatCellError, fail_cell
from .frontend import display_mode
from .settings import Chat as ChatSettings

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..transport.client import AsyncClient, Client

__all__ = ["run_many"]


def run_many(shell: InteractiveShell, settings: ChatSettings, request: CellRequest) -> Any:
    """A cell of several requests: ``--each`` rows or a comparison of models."""
    client = _client(settings)
    if request.args.dry_run:
        from .dryrun import show_dry_run

        return show_dry_run(request, client=client, namespace=shell.user_ns)
    if request.form == "each":
        return _run_each(shell, settings, request, client)
    return _run_compare(shell, settings, request, client)


def _client(settings: ChatSettings) -> Any:
    from ..conversation.sessions import client_for
    from ..protocol.exceptions import NbchatError

    try:
        return client_for(settings)
    except NbchatError as exc:
        # No endpoint configured and the local server cannot start: say how to fix it.
        raise UsageError(str(exc)) from None


def _progress_mode(shell: InteractiveShell, settings: ChatSettings) -> str:
    mode = display_mode(shell, settings)
    return {"live": "auto", "final": "final", "text": "text"}.get(mode, "auto")


def _run_each(
    shell: InteractiveShell,
    settings: ChatSettings,
    request: CellRequest,
    client: Client | AsyncClient,
) -> Any:
    """``%%chat --each ROWS``: the cell is the template, sent once per row."""
    from ..conversation.mapping import run_blocking
    from .mapview import watching

    args = request.args
    job = map_job(request, client, shell.user_ns)
    try:
        run = run_blocking(
            job,
            via=request.via,
            poll_interval=request.poll_interval,
            watch=watching(_progress_mode(shell, settings), request.via),
        )
    except Exception as exc:
        fail_cell(exc, request)
    result = job.assemble(run.outcomes, run.unfinished)
    if run.stop_reason is not None:
        # A notice, not a warning: a warning from here would show this module's source line.
        print(run.summary())
    if job.resume:
        print(run.resumed())
    if args.out:
        shell.user_ns[args.out] = result
        not_run = len(job) - run.done
        print(
            f"{len(job):,} rows: {run.done - run.errors:,} replies, {run.errors:,} errors"
            + (f", {not_run:,} not run" if not_run else "")
            + f"; the result is in {args.out}."
        )
        return None
    return result


def _run_compare(
    shell: InteractiveShell,
    settings: ChatSettings,
    request: CellRequest,
    client: Client | AsyncClient,
) -> Any:
    """The same prompt to each model at once, side by side."""
    from ..conversation.chat import Reply
    from ..protocol.exceptions import one_line
    from .compareview import compare

    try:
        replies = compare(
            request.prompt,
            request.models,
            system=request.system,
            client=client,
            display=display_mode(shell, settings),
        )
    except Exception as exc:
        fail_cell(exc, request)
    args = request.args
    if args.out:
        shell.user_ns[args.out] = [r.value if isinstance(r, Reply) else r for r in replies]
    failed = [
        (m, r) for m, r in zip(request.models, replies, strict=True) if isinstance(r, Exception)
    ]
    if failed:
        model, error = failed[0]
        # Each column shows its own card; the cell says which failed, as any cell says it.
        raise ChatCellError(
            f"{len(failed)} of {len(request.models)} failed; {model}: {one_line(error)}"
        )
    return None
