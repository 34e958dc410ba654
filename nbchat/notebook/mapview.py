"""``nbchat.map`` and ``nbchat.amap`` as a notebook shows them: the engine of
``conversation/mapping.py`` with a progress bar (and a Stop button where a click can reach the
kernel), the summary of a stopped or resumed run said where the user sees it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from ..conversation.daskmap import is_dask_frame, map_partitions
from ..conversation.mapjob import MapJob
from ..conversation.mapping import MapRun, MapWatcher, Watch, job_of, run_async, run_blocking
from .frontend import clicks_reach_this_loop

if TYPE_CHECKING:
    from ..transport.client import AsyncClient, Client

__all__ = ["amap", "map", "watching"]


def map(
    prompt: Any,
    rows: Any,
    *,
    model: str | None = None,
    system: str | None = None,
    schema: Any = None,
    concurrency: int = 16,
    client: Client | AsyncClient | None = None,
    progress: bool | str = True,
    via: str = "online",
    poll_interval: float | None = None,
    cache: bool | None = None,
    resume: bool = False,
    batch_max_rows: int | None = None,
    batch_max_bytes: int | None = None,
    **request_fields: Any,
) -> Any:
    """Send ``prompt`` once per row and collect the replies, in the order of the rows.

    ``prompt`` is a template (``"Classify: {text}"``, the interpolation rules of cells, against
    each row's columns; the whole row is ``{row}``) or a function ``row -> str | messages``.
    ``rows`` is a DataFrame (the result is one too, with its index), a list of dicts, or any
    iterable (the result is a list of dicts). Each result row has ``reply``, ``error`` (None or
    the row's one-line error), the schema's fields when ``schema`` is given, ``finish_reason``,
    ``tokens`` and ``latency``.

    At most ``concurrency`` requests are in flight, fewer while the server says to slow down; a
    row waiting to be retried (a 429, a 5xx) is not in flight meanwhile, and a row that fails
    after its retries keeps its error while the others go on. Ctrl-C (or the stop button)
    stops at once: no request starts after it, and the rows done are returned with a warning.
    ``via="batch"`` sends the rows as Batch API jobs — as many as the API's limits need
    (``batch_max_rows``, 50,000 requests, and ``batch_max_bytes``, 200 MB, per input file), run
    at once under one progress bar, their results merged in row order; a job that fails marks
    only its own rows — and polls them every ``poll_interval`` seconds. Each job is kept in the
    store: the same call after a kernel restart picks the running jobs up instead of starting
    (and paying for) others. Other keywords are request fields (``temperature``,
    ``max_tokens``…).

    Every row goes through the store like a cell's request: it is logged (session ``map``,
    with its model and cost), recorded or replayed under ``NBCHAT_REPLAY``, and counted against
    ``%config Chat.budget`` while in flight. ``cache=True`` answers the rows sent before from
    the store; ``resume=True`` does so after a crash, a restart or Ctrl-C — only the rows that
    never arrived are sent — and says how many came from the store.

    ``rows`` may be a Dask DataFrame: the result is then a lazy Dask DataFrame of the same
    columns, each partition mapped on a worker of the cluster (its client made there from
    ``client.settings()``, its key read from the worker's environment, never put in the task
    graph), ``concurrency`` shared by the partitions that run at once.

    ``client`` is a Client or AsyncClient (the local model server when None). For a Client,
    map makes AsyncClient twins of it whose pools hold ``concurrency`` connections between
    them, at most 8 each (httpx spends more CPU per request in a pool of many connections).
    An AsyncClient is used as it is, with its own pool, and not closed: give it at least
    ``concurrency`` connections (``httpx.AsyncHTTPTransport(limits=httpx.Limits(
    max_connections=N))``; httpx's default is 100) and leave ``max_keepalive_connections`` at
    httpx's 20 (many idle connections in one pool cost CPU on every request). One pool serves
    8 in flight as fast as the twins do, but from about 16 on a Client is the faster choice.
    """
    if is_dask_frame(rows):
        return _lazy(prompt, rows, locals())
    job, how = job_of(prompt, rows, locals())
    run = run_blocking(job, watch=watching(progress, how["via"]), **how)
    return _result(job, run)


async def amap(prompt: Any, rows: Any, **options: Any) -> Any:
    """``await nbchat.amap(...)``: ``map`` for async code, on the running event loop; it takes
    ``map``'s arguments.

    Cancelling the task that awaits it (as interrupting a Jupyter cell does) stops it like
    Ctrl-C: the rows done are returned with a warning. In a Jupyter kernel the bar has a Stop
    button, since a click reaches a cell that awaits.
    """
    progress = options.pop("progress", True)
    if is_dask_frame(rows):
        return _lazy(prompt, rows, options)
    job, how = job_of(prompt, rows, options)
    watch = watching(progress, how["via"], stop_button=clicks_reach_this_loop())
    run = await run_async(job, watch=watch, **how)
    return _result(job, run)


def _lazy(prompt: Any, frame: Any, given: dict[str, Any]) -> Any:
    """A Dask DataFrame's map: lazy, each partition mapped on a worker (no progress bar here:
    Dask's dashboard shows the tasks)."""
    options = {k: v for k, v in given.items() if k not in ("prompt", "rows", "progress")}
    return map_partitions(prompt, frame, options)


def _result(job: MapJob, run: MapRun) -> Any:
    result = job.assemble(run.outcomes, run.unfinished)
    for message in run.warnings:
        warnings.warn(message, stacklevel=3)
    if run.stop_reason is not None:
        warnings.warn(run.summary(), stacklevel=3)
    if job.resume:
        # Asked for: how much of the work was already done.
        print(run.resumed())
    return result


def watching(progress: Any, via: str = "online", *, stop_button: bool = False) -> Watch:
    """The progress bar of a run, shown once it starts sending (a mistake found first shows
    none); with ``stop_button``, its Stop button stops the run."""

    def watch(run: MapRun) -> MapWatcher:
        on_stop = (lambda: run.stop("the stop button")) if stop_button else None
        label = "nbchat.map (batch)" if via == "batch" else "nbchat.map"
        return _View(run.total, mode=progress, label=label, on_stop=on_stop)

    return watch


class _View:
    """The progress bar, made when the run starts sending."""

    def __init__(self, total: int, **options: Any) -> None:
        self._total = total
        self._options = options
        self._view: Any = None

    def update(self, run: MapRun) -> None:
        if self._view is None and run.sending:
            from .progress import ProgressView

            self._view = ProgressView(self._total, **self._options)
        if self._view is not None:
            self._view.update(run.done, run.errors, run.tokens, _note(run))

    def close(self, run: MapRun) -> None:
        if self._view is None and run.done:
            self.update(run)
        if self._view is not None:
            self._view.close(
                run.done, run.errors, run.tokens, stopped=run.stop_reason, note=_note(run)
            )


def _note(run: MapRun) -> str | None:
    """What the bar says after the counts: a batch job's status, or the rows the store gave."""
    if run.note:
        return run.note
    return f"{run.kept:,} from the store" if run.kept else None
