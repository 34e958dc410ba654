"""The engine of ``nbchat.map``: one prompt over every row, each request built by
``Chat.prepare`` and sent through the store's door, at most ``concurrency`` in flight on an
AsyncClient; a stop keeps the rows done. It shows nothing: a watcher (the notebook's progress
bar, ``notebook/mapview.py``) is told how the run goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypedDict, Unpack

from ..protocol.exceptions import RequestValidationError
from ..transport.client import AsyncClient, Client
from .mapjob import MapJob, Outcome, one_line_error
from .ratelimit import AdaptiveLimiter, LimiterClosed

__all__ = [
    "VIAS",
    "MapRun",
    "MapWatcher",
    "RunOptions",
    "Watch",
    "check_via",
    "execute",
    "job_of",
    "run_async",
    "run_blocking",
    "run_online",
]

#: How a map sends its rows: one request per row now, or one Batch API job.
VIAS = ("online", "batch")
# Seconds between two looks at the progress (the bar itself redraws at most 5 times a second).
REFRESH = 0.1
# After Ctrl-C, how long to wait for the requests in flight to be called off.
STOP_GRACE = 5.0


class MapRun:
    """One run's progress, shared by the runner and whoever shows or stops it (another thread).

    ``outcomes[i]`` stays None for a row that did not finish; ``unfinished(i)`` says why.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.outcomes: list[Outcome | None] = [None] * total
        self.done = 0
        self.errors = 0
        self.tokens = 0
        #: Rows the store (or a cassette) answered: nothing was sent for them.
        self.kept = 0
        #: Rows whose request is on the wire.
        self.in_flight: set[int] = set()
        #: Set once the requests are built and checked: from then on there is progress to show.
        self.sending = False
        #: What the bar shows after the counts (a batch job's status).
        self.note: str | None = None
        #: Why the run stopped early ("Ctrl-C", "the stop button"…), None while it has not.
        self.stop_reason: str | None = None
        #: Said of every unfinished row after the stop (a batch job names itself here).
        self.unfinished_note = ""
        #: What the user should hear once the run is over (lines of output no row claims).
        self.warnings: list[str] = []
        self.limiter: AdaptiveLimiter | None = None
        self.started = time.perf_counter()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._wake: Callable[[], None] | None = None

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self, reason: str) -> None:
        """Stop the run from any thread: no request starts after this returns."""
        with self._lock:
            if self._stopped.is_set():
                return
            self.stop_reason = reason
            self._stopped.set()
            wake = self._wake
        if wake is not None:
            wake()

    def on_stop(self, wake: Callable[[], None] | None) -> None:
        """The runner's way to hear of a stop (called at once if it came already)."""
        with self._lock:
            self._wake = wake
            already = self._stopped.is_set()
        if already and wake is not None:
            wake()

    def record(self, position: int, outcome: Outcome) -> None:
        self.outcomes[position] = outcome
        self.done += 1
        if outcome.kept:
            self.kept += 1
        if outcome.error is not None:
            self.errors += 1
        if outcome.tokens:
            self.tokens += outcome.tokens

    def recount(self) -> None:
        """Counts from the outcomes recorded (after showing a batch job's own counts)."""
        recorded = [outcome for outcome in self.outcomes if outcome is not None]
        self.done = len(recorded)
        self.errors = sum(1 for outcome in recorded if outcome.error is not None)
        self.tokens = sum(outcome.tokens or 0 for outcome in recorded)

    def unfinished(self, position: int) -> str:
        reason = self.stop_reason or "an error"
        note = f"; {self.unfinished_note}" if self.unfinished_note else ""
        if position in self.in_flight:
            return (
                f"not run: the map was stopped ({reason}) while this row's request was in "
                f"flight; no reply was kept{note}"
            )
        return f"not run: the map was stopped ({reason}) before this row was sent{note}"

    def resumed(self) -> str:
        """What a resumed run took from the store and what it sent."""
        sent = self.done - self.kept
        return (
            f"nbchat.map: {self.kept:,} of {self.total:,} rows came from the store (sent "
            f"before); {sent:,} {'was' if sent == 1 else 'were'} sent now."
        )

    def summary(self) -> str:
        unfinished = self.total - self.done
        return (
            f"nbchat.map was stopped ({self.stop_reason}): {self.done:,} of {self.total:,} rows "
            f"finished; the other {unfinished:,} have an 'error' saying they were not run."
        )


class MapWatcher(Protocol):
    """Who watches a run (the notebook's progress bar): told often, and once at the end."""

    def update(self, run: MapRun) -> None: ...

    def close(self, run: MapRun) -> None: ...


#: Makes the watcher of a run, given the run (whose ``stop()`` a stop button may call).
Watch = Callable[[MapRun], MapWatcher]


class RunOptions(TypedDict, total=False):
    """How a run sends its rows (``run_blocking``/``run_async``): ``via`` "online" (the
    default) or "batch"; ``poll_interval``, a batch's seconds between looks; ``split``, a
    batch's ``batch_max_rows``/``batch_max_bytes``; ``watch``, who is told how it goes."""

    via: str
    poll_interval: float | None
    split: dict[str, int] | None
    watch: Watch | None


def run_blocking(job: MapJob, **options: Unpack[RunOptions]) -> MapRun:
    """Run ``job`` to its end (or Ctrl-C) from synchronous code, even inside Jupyter's loop.

    The requests run on an event loop of their own in a worker thread, so a running loop (a
    notebook's) is never re-entered; this thread tells the watcher and hears Ctrl-C.
    """
    run = MapRun(len(job))
    if not len(job):
        return run
    if job.client is None:
        from .endpoint import default_client

        job.client = default_client()
    watcher = _watcher(run, options)
    failure: list[BaseException] = []
    finished = threading.Event()

    def work() -> None:
        try:
            asyncio.run(execute(job, run, **_how(options)))
        except BaseException as exc:
            failure.append(exc)
        finally:
            finished.set()

    worker = threading.Thread(target=work, name="nbchat-map", daemon=True)
    worker.start()
    try:
        try:
            while not finished.wait(REFRESH):
                if watcher is not None:
                    watcher.update(run)
        except KeyboardInterrupt:
            run.stop("Ctrl-C")
            # A second Ctrl-C stops waiting for the requests in flight to be called off.
            with contextlib.suppress(KeyboardInterrupt):
                finished.wait(STOP_GRACE)
    finally:
        if watcher is not None:
            watcher.close(run)
    if failure and run.stop_reason is None:
        raise failure[0]
    return run


async def run_async(job: MapJob, **options: Unpack[RunOptions]) -> MapRun:
    """Run ``job`` on the running event loop; cancelling the task that awaits it stops it like
    Ctrl-C (the rows done are kept)."""
    run = MapRun(len(job))
    if not len(job):
        return run
    watcher = _watcher(run, options)
    ticker = asyncio.ensure_future(_tick(watcher, run)) if watcher is not None else None
    try:
        await execute(job, run, **_how(options))
    except asyncio.CancelledError:
        run.stop("cancelled")
    finally:
        if ticker is not None:
            ticker.cancel()
        if watcher is not None:
            watcher.close(run)
    return run


def _watcher(run: MapRun, options: RunOptions) -> MapWatcher | None:
    watch = options.get("watch")
    return watch(run) if watch is not None else None


def _how(options: RunOptions) -> dict[str, Any]:
    """``execute``'s keywords: how the rows are sent."""
    return {
        "via": options.get("via", "online"),
        "poll_interval": options.get("poll_interval"),
        "split": options.get("split"),
    }


async def _tick(watcher: MapWatcher, run: MapRun) -> None:
    while True:
        watcher.update(run)
        await asyncio.sleep(REFRESH)


async def execute(
    job: MapJob,
    run: MapRun,
    *,
    via: str = "online",
    poll_interval: float | None = None,
    split: dict[str, int] | None = None,
) -> None:
    """Open the client, settle the model, and run every row (online or as a batch job)."""
    from ..store.replay import deferred

    clients, owned = await _async_clients(job)
    try:
        job.bind(clients[0], await _resolve_model(job.model, clients[0]))
        with deferred():  # recording thousands of rows: the cassette is written in batches
            if via == "batch":
                from .batchjob import run_batch

                await run_batch(job, run, clients[0], poll_interval=poll_interval, **(split or {}))
            else:
                await run_online(job, run, clients)
    finally:
        if owned:
            for client in clients:
                await client.aclose()


async def run_online(job: MapJob, run: MapRun, clients: Sequence[AsyncClient]) -> None:
    """Every row, ``job.concurrency`` at most in flight; returns when all ran or on a stop.

    The requests are spread over ``clients`` (twins of one client, each with its own pool). A
    row waiting to be retried (after a 429, a 5xx, a broken connection) is not in flight: it
    gives its slot to the next row and takes one again to send its retry.
    """
    from ..store.exchange import aanswer
    from ..transport.twin import around_retry_waits, watch_responses

    first = job.first_request()  # row 0's mistakes are the user's: raised before any send
    limiter = AdaptiveLimiter(job.concurrency)
    run.limiter = limiter
    run.sending = True
    positions = iter(range(len(job)))
    # Rows each client is sending (or waiting to retry): a row goes to the least busy pool.
    busy = [0] * len(clients)

    async def observe(response: Any) -> None:
        limiter.observe(response.status_code, response.headers)

    async def send(position: int) -> None:
        started = time.perf_counter()
        try:
            prepared = first if position == 0 else job.prepare(position)
            if run.stopped:
                return  # nothing is sent after a stop
            pool = min(range(len(clients)), key=busy.__getitem__) if len(clients) > 1 else 0
            client = clients[pool]
            run.in_flight.add(position)
            busy[pool] += 1
            try:
                # The door: a cassette or the store answers a row seen before; the budget
                # holds each row's estimate while it is in flight; every row is logged.
                mark = _Mark()
                completion = await aanswer(
                    prepared,
                    send=lambda _watch: client.send_completion(prepared),
                    client=client,
                    reply=mark,
                    **job.door,
                )
            finally:
                busy[pool] -= 1
        except LimiterClosed:
            return  # stopped while waiting to retry: the row says its request was in flight
        except Exception as exc:
            outcome = Outcome(error=one_line_error(exc), latency=time.perf_counter() - started)
        else:
            outcome = job.outcome(completion, time.perf_counter() - started)
            outcome.kept = mark.cached
            if outcome.tokens and not mark.cached:
                limiter.record_tokens(outcome.tokens)
        # A cancelled request stays in in_flight: its row says it was cut short.
        run.in_flight.discard(position)
        run.record(position, outcome)

    async def worker() -> None:
        slot = _Slot(crew)
        _SLOT.set(slot)  # this task's own: its retry waits give the slot back (_retry_wait)
        try:
            while not run.stopped and not crew.surplus:
                try:
                    await limiter.acquire()
                except LimiterClosed:
                    return
                slot.held = True
                try:
                    # One shared iterator, read once a slot is held: each row is taken once.
                    position = next(positions, None)
                    if position is None:
                        crew.rows_left = False
                        return
                    await send(position)
                finally:
                    if slot.held:
                        slot.held = False
                        limiter.release()
        finally:
            crew.alive -= 1

    crew = _Crew(limiter, job.concurrency, worker)
    for _ in range(min(job.concurrency, len(job))):
        crew.spawn()
    loop = asyncio.get_running_loop()

    def halt() -> None:
        limiter.close()
        for task in crew.tasks:
            task.cancel()

    def wake() -> None:
        loop.call_soon_threadsafe(halt)

    run.on_stop(wake)
    try:
        with contextlib.ExitStack() as watching:
            for client in clients:
                watching.enter_context(watch_responses(client, observe))
                watching.enter_context(around_retry_waits(client, _retry_wait))
            try:
                await crew.finish()
            except asyncio.CancelledError:
                halt()  # the task running the map was cancelled: so are its workers
                raise
    finally:
        run.on_stop(None)
    for task in crew.tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error


class _Mark:
    """What the door says of one row: answered from the store (or a cassette), and its cost."""

    __slots__ = ("cached", "completions", "cost", "origin")

    def __init__(self) -> None:
        self.completions = ()
        self.cached = False
        self.cost: float | None = None
        self.origin: Any = None


class _Crew:
    """The workers of one online run: ``concurrency`` of them, and for each row waiting to be
    retried one more, which takes the slot that row gave up (and goes once it is back)."""

    def __init__(
        self, limiter: AdaptiveLimiter, concurrency: int, work: Callable[[], Awaitable[None]]
    ) -> None:
        self.limiter = limiter
        self.concurrency = concurrency
        self.tasks: list[asyncio.Task[None]] = []
        self.alive = 0
        #: Rows waiting to be retried, their slots given up.
        self.waiting = 0
        self.rows_left = True
        self._work = work

    @property
    def surplus(self) -> bool:
        """More workers than slots to fill: the one that sees it leaves."""
        return self.alive > self.concurrency + self.waiting

    def spawn(self) -> None:
        self.alive += 1
        self.tasks.append(asyncio.ensure_future(self._work()))

    async def finish(self) -> None:
        """Until every worker, the ones started meanwhile too, has ended."""
        while pending := [task for task in self.tasks if not task.done()]:
            await asyncio.wait(pending)


class _Slot:
    """A worker's place among the requests in flight, and whether it holds it now."""

    __slots__ = ("crew", "held")

    def __init__(self, crew: _Crew) -> None:
        self.crew = crew
        self.held = False


# The slot of the map worker running in this task (None outside nbchat.map).
_SLOT: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("nbchat_map_slot")


async def _retry_wait(wait: Callable[[float], Awaitable[Any]], seconds: float) -> None:
    """A client's wait before a retry, in a map worker: not in flight meanwhile.

    The slot is given to another worker for the wait (one is started if all are busy) and
    taken again, ahead of new rows, before the retry is sent: no more than ``concurrency``
    requests are ever on the wire.
    """
    slot = _SLOT.get(None)
    if slot is None or not slot.held:
        await wait(seconds)
        return
    crew = slot.crew
    slot.held = False
    crew.waiting += 1
    try:
        crew.limiter.release()
        if crew.rows_left and crew.alive < crew.concurrency + crew.waiting:
            crew.spawn()
        await wait(seconds)
        await crew.limiter.acquire(first=True)
        slot.held = True
    finally:
        crew.waiting -= 1


async def _async_clients(job: MapJob) -> tuple[list[AsyncClient], bool]:
    """The AsyncClients to send on, and whether they are ours to close.

    A given AsyncClient is used as it is, its pool and limits untouched (it is the caller's,
    maybe shared); a Client gets twins whose pools hold ``concurrency`` connections between
    them.
    """
    client = job.client
    if client is None:
        from .endpoint import default_client

        client = job.client = await asyncio.to_thread(default_client)
    if isinstance(client, AsyncClient):
        return [client], False
    if isinstance(client, Client):
        from ..transport.twin import async_twins

        return async_twins(client, connections=job.concurrency), True
    raise RequestValidationError(
        f"client must be an nbchat Client or AsyncClient, not {type(client).__name__}",
        field="client",
    )


async def _resolve_model(model: str | None, client: AsyncClient) -> str:
    """The model every row names: given, the profile's, or the one the server lists."""
    if model:
        return model
    profile = client.profile
    if profile.default_model:
        return profile.default_model
    from .endpoint import replayed_model

    recorded = replayed_model()
    if recorded is not None:
        return recorded  # replaying asks no server anything
    try:
        listed = await client.models()
    except Exception:
        listed = []
    if len(listed) == 1:
        profile.remember_model(listed[0])
        return listed[0]
    hint = f" (the server lists {len(listed)}: {', '.join(listed[:5])})" if listed else ""
    raise RequestValidationError(
        f"No model is set{hint}: pass model=... (or -m on the cell)", field="model"
    )


_MAP_OPTIONS = ("model", "system", "schema", "concurrency", "client", "cache", "resume")


def job_of(prompt: Any, rows: Any, given: dict[str, Any]) -> tuple[MapJob, dict[str, Any]]:
    """The checked job of a map call (``given``: its keyword arguments), and how to send it."""
    given = dict(given)
    given.pop("prompt", None)
    given.pop("rows", None)
    given.pop("progress", None)
    fields = dict(given.pop("request_fields", None) or {})
    via = given.pop("via", "online")
    poll_interval = given.pop("poll_interval", None)
    split = {
        name: value
        for name, value in (
            ("max_rows", given.pop("batch_max_rows", None)),
            ("max_bytes", given.pop("batch_max_bytes", None)),
        )
        if value is not None
    }
    options = {name: given.pop(name) for name in _MAP_OPTIONS if name in given}
    fields.update(given)  # amap's request fields come as keywords
    check_via(via, poll_interval)
    if split:
        from .batchjob import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, check_split

        if via != "batch":
            raise RequestValidationError(
                "batch_max_rows and batch_max_bytes are for via='batch'", field="via"
            )
        check_split(
            split.get("max_rows", DEFAULT_MAX_ROWS), split.get("max_bytes", DEFAULT_MAX_BYTES)
        )
    job = MapJob(prompt, rows, fields=fields, **options)
    return job, {"via": via, "poll_interval": poll_interval, "split": split}


def check_via(via: str, poll_interval: float | None) -> None:
    """``via`` and ``poll_interval`` as map takes them; a mistake is a RequestValidationError."""
    if via not in VIAS:
        raise RequestValidationError(f"via must be 'online' or 'batch', not {via!r}", field="via")
    if poll_interval is not None:
        if via != "batch":
            raise RequestValidationError(
                "poll_interval is for via='batch' (the online map does not poll)",
                field="poll_interval",
            )
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)):
            raise RequestValidationError(
                f"poll_interval must be a number of seconds, not {poll_interval!r}",
                field="poll_interval",
            )
        if poll_interval <= 0:
            raise RequestValidationError(
                f"poll_interval must be more than 0 seconds, not {poll_interval!r}",
                field="poll_interval",
            )
