"""``nbchat.map(..., via="batch")`` as one Batch API job, and its offline halves ``batch_file`` and
``read_batch_output``; a row missing from the output is marked with its error, never left blank.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import warnings
from collections.abc import Container, Iterator
from pathlib import Path
from typing import Any

from ..convert.batchfile import (
    ENDPOINT,
    OutputLine,
    custom_id,
    parse_output_line,
    position_of,
    read_lines,
    request_line,
)
from ..protocol.exceptions import APIError, APIStatusError, RequestValidationError, first_line
from ..transport.batches import (
    FINAL_STATUSES,
    BatchError,
    cancel_batch,
    create_batch,
    file_lines,
    retrieve_batch,
    upload_batch_file,
)
from ..transport.client import AsyncClient, Client
from .mapjob import MapJob, Outcome, one_line_error

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_POLL_INTERVAL",
    "batch_file",
    "check_split",
    "read_batch_output",
    "run_batch",
]

#: Seconds between two looks at a batch job (they take minutes to hours).
DEFAULT_POLL_INTERVAL = 10.0
#: The most requests in one Batch API input file (the API's limit).
DEFAULT_MAX_ROWS = 50_000
#: The most bytes in one Batch API input file (the API's limit is 200 MB).
DEFAULT_MAX_BYTES = 200 * 1000 * 1000


async def run_batch(
    job: MapJob,
    run: Any,
    client: AsyncClient,
    *,
    poll_interval: float | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> None:
    """Send every row as Batch API jobs (as many as ``max_rows``/``max_bytes`` per input file
    need, run at once), wait for them, and record each row's outcome in ``run``.

    A job is kept in the store by its input file: the same map run again (after a kernel
    restart) picks a job up instead of starting another. A job that fails marks its own rows.
    """
    interval = DEFAULT_POLL_INTERVAL if poll_interval is None else poll_interval
    jobs = [_Job(positions, data) for positions, data in _parts(job, run, max_rows, max_bytes)]
    failed_early = run.done  # rows whose request could not be built
    store = _store()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(stopping.set)

    run.on_stop(wake)
    try:
        for each in jobs:
            await each.start(client, store)
        # Every job exists: from now on there is progress to show.
        run.sending = True
        await asyncio.gather(
            *(each.wait(client, stopping, interval, jobs, run, failed_early) for each in jobs)
        )
    finally:
        run.on_stop(None)
        for each in jobs:
            each.data = b""
    if stopping.is_set():
        await asyncio.gather(*(each.cancel(client, store) for each in jobs))
        run.unfinished_note = "; ".join(each.cancelled_note for each in jobs if each.cancelled_note)
        run.recount()
        return
    failures = [each for each in jobs if each.status == "failed"]
    if failures and len(failures) == len(jobs):
        raise BatchError(f"The batch {failures[0].batch_id} failed: {failures[0].reason}")
    run.note = "downloading"
    run.recount()
    for each in jobs:
        await each.collect(job, run, client)


def check_split(max_rows: Any, max_bytes: Any) -> None:
    """``batch_max_rows`` and ``batch_max_bytes`` as map takes them: whole numbers, 1 or more."""
    for name, value in (("batch_max_rows", max_rows), ("batch_max_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RequestValidationError(
                f"{name} must be a whole number of 1 or more, not {value!r}", field=name
            )


def _parts(
    job: MapJob, run: Any, max_rows: int, max_bytes: int
) -> Iterator[tuple[list[int], bytes]]:
    """The rows' request lines, cut into input files of at most ``max_rows`` lines and
    ``max_bytes`` bytes; a row whose request cannot be built is recorded in ``run`` instead."""
    positions: list[int] = []
    lines: list[bytes] = []
    size = 0
    for position, prepared in job.requests():
        if isinstance(prepared, Exception):
            run.record(position, Outcome(error=one_line_error(prepared)))
            continue
        line = (request_line(position, prepared.body) + "\n").encode()
        if len(line) > max_bytes:
            run.record(position, Outcome(error=_too_big(len(line), max_bytes)))
            continue
        if lines and (len(lines) >= max_rows or size + len(line) > max_bytes):
            yield positions, b"".join(lines)
            positions, lines, size = [], [], 0
        positions.append(position)
        lines.append(line)
        size += len(line)
    if lines:
        yield positions, b"".join(lines)


def _too_big(size: int, limit: int) -> str:
    return (
        f"not sent: its request is {size:,} bytes, more than a batch input file may hold "
        f"(batch_max_bytes={limit:,})"
    )


def _store() -> Any:
    from ..store.exchange import current_store

    return current_store()


class _Job:
    """One Batch API job of a map: its rows, input file, id, status and counts."""

    def __init__(self, positions: list[int], data: bytes) -> None:
        self.positions = positions
        self.expected = frozenset(positions)
        self.data = data
        self.key = hashlib.sha256(data).hexdigest()
        self.batch_id = ""
        self.batch: dict[str, Any] = {}
        self.resumed = False
        self.reason = ""
        self.cancelled_note = ""
        self.store_key = ""

    @property
    def status(self) -> str:
        status = self.batch.get("status")
        return status if isinstance(status, str) else "unknown"

    @property
    def finished(self) -> int:
        """Requests the server says are done (completed or failed), as far as it says."""
        counts = self.batch.get("request_counts")
        if not isinstance(counts, dict):
            return 0
        done = sum(_count(counts.get(name)) for name in ("completed", "failed"))
        return min(done, len(self.positions))

    @property
    def failed_rows(self) -> int:
        counts = self.batch.get("request_counts")
        failed = _count(counts.get("failed")) if isinstance(counts, dict) else 0
        return min(failed, len(self.positions))

    async def start(self, client: AsyncClient, store: Any) -> None:
        """Pick up the job kept for this input file, or upload it and start one (kept)."""
        key = f"{client.endpoint} {self.key}"
        known = store.batch_job(key) if store is not None else None
        self.store_key = key
        if known is not None:
            try:
                batch = await retrieve_batch(client, known)
            except APIStatusError as exc:
                if exc.status_code != 404:
                    raise
            else:
                if batch.get("status") != "failed":  # a failed job ran nothing: start anew
                    self.batch_id, self.batch, self.resumed = known, batch, True
                    return
        file_id = await upload_batch_file(client, self.data)
        self.batch = await create_batch(
            client, file_id, endpoint=ENDPOINT, metadata={"created_by": "nbchat.map"}
        )
        self.batch_id = str(self.batch["id"])
        if store is not None:
            store.keep_batch_job(
                key, self.batch_id, endpoint=client.endpoint, rows=len(self.positions)
            )
        self.store_key = key

    async def wait(
        self,
        client: AsyncClient,
        stopping: asyncio.Event,
        interval: float,
        jobs: list[_Job],
        run: Any,
        failed_early: int,
    ) -> None:
        """Poll until the job ends (or the run is stopped), showing every job's progress."""
        self.data = b""  # uploaded: the server has it
        while self.status not in FINAL_STATUSES:
            _show(run, jobs, failed_early)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)
            if stopping.is_set():
                return
            self.batch = await retrieve_batch(client, self.batch_id)
        _show(run, jobs, failed_early)
        if self.status == "failed":
            self.reason = _batch_errors(self.batch)

    async def cancel(self, client: AsyncClient, store: Any) -> None:
        if self.status in FINAL_STATUSES:
            return
        try:
            await cancel_batch(client, self.batch_id)
        except Exception as exc:
            self.cancelled_note = (
                f"batch {self.batch_id} could not be cancelled ({one_line_error(exc)})"
            )
            return
        self.cancelled_note = (
            f"batch {self.batch_id} was cancelled on the server; rows it had finished are in its "
            "output file (read it with nbchat.read_batch_output)"
        )
        if store is not None and self.store_key:
            # Stopped on purpose: the same map run again starts anew.
            store.keep_batch_job(self.store_key, None)

    async def collect(self, job: MapJob, run: Any, client: AsyncClient) -> None:
        """Every row of this job gets its outcome: its output or error line, the job's error,
        or why it has none."""
        if self.status == "failed":
            error = f"The batch {self.batch_id} failed: {self.reason}"
            for position in self.positions:
                run.record(position, Outcome(error=first_line(error, limit=300)))
            return
        unread = None
        unknown = 0
        for key in ("output_file_id", "error_file_id"):
            file = self.batch.get(key)
            if isinstance(file, str) and file:
                try:
                    unknown += await _collect(job, run, file_lines(client, file), self.expected)
                except APIError as exc:
                    # Past a size limit, or cut off: the rows read so far keep their outcomes.
                    unread = unread or f"{file} was not read to its end: {one_line_error(exc)}"
        if unknown:
            run.warnings.append(
                f"nbchat.map: {unknown:,} lines of batch {self.batch_id}'s output name no row "
                "of it (a custom_id nbchat did not write); they were skipped."
            )
        missing = f"not in the output of batch {self.batch_id} (it ended {self.status})"
        if unread is not None:
            missing = f"not in what was read of batch {self.batch_id}'s output; {unread}"
        for position in self.positions:
            if run.outcomes[position] is None:
                run.record(position, Outcome(error=missing))


def _count(value: Any) -> int:
    """A count the server gave, or 0 when it is not a whole number of 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def _show(run: Any, jobs: list[_Job], failed_early: int) -> None:
    run.done = failed_early + sum(each.finished for each in jobs)
    run.errors = failed_early + sum(each.failed_rows for each in jobs)
    if len(jobs) == 1:
        run.note = f"{jobs[0].batch_id} {jobs[0].status}"
        return
    statuses: dict[str, int] = {}
    for each in jobs:
        statuses[each.status] = statuses.get(each.status, 0) + 1
    run.note = f"{len(jobs)} jobs: " + ", ".join(f"{n} {status}" for status, n in statuses.items())


async def _collect(job: MapJob, run: Any, lines: Any, expected: frozenset[int]) -> int:
    """File the lines of one output file; returns how many named no row of the job."""
    unknown = 0
    async for text in lines:
        if _record_line(job, run.outcomes, text, run.record, expected) != "ok":
            unknown += 1
    return unknown


def _record_line(
    job: MapJob,
    outcomes: list[Outcome | None],
    text: str,
    record: Any,
    expected: Container[int] | None = None,
) -> str:
    """File one output line under its row: ``"ok"``, ``"unknown"`` or ``"bad"``."""
    try:
        line = parse_output_line(text)
    except ValueError:
        return "bad"
    if line is None:
        return "ok"
    position = position_of(line.custom_id)
    if position is None or position >= len(outcomes):
        return "unknown"
    if expected is not None and position not in expected:
        return "unknown"
    if outcomes[position] is not None:
        return "ok"  # the output file came first and wins
    record(position, _outcome(job, line))
    return "ok"


def _outcome(job: MapJob, line: OutputLine) -> Outcome:
    if line.completion is not None:
        return job.outcome_from_body(line.completion, None)
    return Outcome(error=line.error)


def _batch_errors(batch: dict[str, Any]) -> str:
    errors = batch.get("errors") or {}
    data = errors.get("data") if isinstance(errors, dict) else errors
    if not isinstance(data, list):
        data = [data] if data else []
    messages = []
    for item in data:
        if isinstance(item, dict):
            line = item.get("line")
            where = (
                f" (line {line})" if isinstance(line, int) and not isinstance(line, bool) else ""
            )
            messages.append(f"{item.get('message') or item.get('code')}{where}")
        else:
            messages.append(str(item))
    return first_line("; ".join(messages[:3]), limit=300) or "the server gave no reason"


# -- offline ----------------------------------------------------------------------------------


def batch_file(
    prompt: Any,
    rows: Any,
    path: str | os.PathLike[str],
    *,
    model: str | None = None,
    system: str | None = None,
    schema: Any = None,
    client: Client | AsyncClient | None = None,
    **request_fields: Any,
) -> Path:
    """Write one Batch API request per row to ``path`` (JSONL) and return the path.

    The lines are what ``map(..., via="batch")`` would upload: ``custom_id`` ``row-0``,
    ``row-1``… in the order of ``rows``, each body built by ``Chat.prepare``. vLLM runs such a
    file with ``python -m vllm.entrypoints.openai.run_batch -i FILE -o OUT --model M``; read
    its output with ``read_batch_output(OUT, rows)``. ``client`` fits the requests to a server
    (its profile, its single model); without one they are written as the protocol has them and
    ``model`` is needed.
    """
    job = MapJob(
        prompt,
        rows,
        model=model,
        system=system,
        schema=schema,
        client=client,
        fields=request_fields,
    )
    owned = None
    if client is None:
        if not job.model:
            raise RequestValidationError(
                "batch_file needs model=... (every line names it)", field="model"
            )
        # Only for building the bodies: no request is sent, no key is read.
        client = owned = Client(api_key="", base_url="http://localhost/v1", server="generic")
    chosen = job.model or client.profile.default_model
    if not chosen and not isinstance(client, Client):
        raise RequestValidationError(
            "batch_file needs model=... with an AsyncClient (every line names it)", field="model"
        )
    try:
        job.bind(client, chosen)
        return _write(job, Path(path))
    finally:
        if owned is not None:
            owned.close()


def _write(job: MapJob, target: Path) -> Path:
    # Written next to the target and renamed at the end: a failure leaves no half file.
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".jsonl.part")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for position, prepared in job.requests():
                if isinstance(prepared, Exception):
                    raise RequestValidationError(
                        f"row {position}: {one_line_error(prepared)}", field="prompt"
                    )
                out.write(request_line(position, prepared.body) + "\n")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def read_batch_output(
    path: str | os.PathLike[str],
    rows: Any,
    errors: str | os.PathLike[str] | None = None,
    *,
    schema: Any = None,
) -> Any:
    """The result of a batch run read from its output file (and error file), as ``map`` returns.

    ``rows`` are the rows the input file was written for (``batch_file``), in the same order:
    line ``row-N`` belongs to the Nth. A row with no line in either file has an ``error`` that
    says so; ``schema`` parses the replies into columns as ``map(schema=...)`` does.
    """
    job = MapJob("", rows, schema=schema)
    outcomes: list[Outcome | None] = [None] * len(job)

    def record(position: int, outcome: Outcome) -> None:
        outcomes[position] = outcome

    counts = {"ok": 0, "unknown": 0, "bad": 0}
    for source in (path, errors):
        if source is None:
            continue
        for text in read_lines(source):
            counts[_record_line(job, outcomes, text, record)] += 1
    if counts["unknown"] or counts["bad"]:
        warnings.warn(
            f"read_batch_output: {counts['unknown']:,} lines name no row of the {len(job):,} "
            f"given and {counts['bad']:,} are not batch output lines; they were skipped.",
            stacklevel=2,
        )
    where = Path(path).name + (f" or {Path(errors).name}" if errors is not None else "")

    def unfinished(position: int) -> str:
        return (
            f"missing from the batch output: no line with custom_id {custom_id(position)} "
            f"in {where}"
        )

    return job.assemble(outcomes, unfinished)
