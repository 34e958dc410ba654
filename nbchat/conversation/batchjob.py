"""``nbchat.map(..., via="batch")`` as one Batch API job, and its offline halves ``batch_file`` and
``read_batch_output``; a row missing from the output is marked with its error, never left blank.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import warnings
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
from ..protocol.exceptions import APIError, RequestValidationError
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

__all__ = ["DEFAULT_POLL_INTERVAL", "batch_file", "read_batch_output", "run_batch"]

#: Seconds between two looks at a batch job (they take minutes to hours).
DEFAULT_POLL_INTERVAL = 10.0


async def run_batch(
    job: MapJob, run: Any, client: AsyncClient, *, poll_interval: float | None = None
) -> None:
    """Send every row as one batch job, wait for it, and record each row's outcome in ``run``."""
    interval = DEFAULT_POLL_INTERVAL if poll_interval is None else poll_interval
    lines: list[str] = []
    for position, prepared in job.requests():
        if isinstance(prepared, Exception):
            run.record(position, Outcome(error=one_line_error(prepared)))
        else:
            lines.append(request_line(position, prepared.body))
    data = ("\n".join(lines) + "\n").encode()
    del lines
    file_id = await upload_batch_file(client, data)
    del data
    batch = await create_batch(
        client, file_id, endpoint=ENDPOINT, metadata={"created_by": "nbchat.map"}
    )
    batch_id = batch["id"]
    # The job exists: from now on there is progress to show.
    run.sending = True
    failed_early = run.done  # rows whose request could not be built
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(stopping.set)

    run.on_stop(wake)
    try:
        while batch.get("status") not in FINAL_STATUSES:
            _show(run, batch, failed_early)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)
            if stopping.is_set():
                await _cancel(client, batch_id, run)
                return
            batch = await retrieve_batch(client, batch_id)
    finally:
        run.on_stop(None)
    status = batch.get("status")
    if status == "failed":
        raise BatchError(f"The batch {batch_id} failed: {_batch_errors(batch)}")
    run.note = f"{status}, downloading"
    run.recount()
    unread = None
    for key in ("output_file_id", "error_file_id"):
        file = batch.get(key)
        if isinstance(file, str) and file:
            try:
                await _collect(job, run, file_lines(client, file))
            except APIError as exc:
                # Past a size limit, or cut off: the rows read so far keep their outcomes.
                unread = unread or f"{file} was not read to its end: {one_line_error(exc)}"
    missing = f"not in the output of batch {batch_id} (it ended {status})"
    if unread is not None:
        missing = f"not in what was read of batch {batch_id}'s output; {unread}"
    for position, outcome in enumerate(run.outcomes):
        if outcome is None:
            run.record(position, Outcome(error=missing))


def _show(run: Any, batch: dict[str, Any], failed_early: int) -> None:
    counts = batch.get("request_counts") or {}
    finished = int(counts.get("completed") or 0) + int(counts.get("failed") or 0)
    run.done = failed_early + finished
    run.errors = int(counts.get("failed") or 0)
    run.note = f"{batch.get('id')} {batch.get('status')}"


async def _cancel(client: AsyncClient, batch_id: str, run: Any) -> None:
    try:
        await cancel_batch(client, batch_id)
    except Exception as exc:
        run.unfinished_note = f"batch {batch_id} could not be cancelled ({one_line_error(exc)})"
    else:
        run.unfinished_note = (
            f"batch {batch_id} was cancelled on the server; rows it had finished are in its "
            "output file (read it with nbchat.read_batch_output)"
        )
    # The counts shown while polling were the server's, not rows collected here.
    run.recount()


async def _collect(job: MapJob, run: Any, lines: Any) -> None:
    async for text in lines:
        _record_line(job, run.outcomes, text, run.record)


def _record_line(job: MapJob, outcomes: list[Outcome | None], text: str, record: Any) -> str:
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
    messages = []
    for item in data or ():
        if isinstance(item, dict):
            where = f" (line {item['line']})" if item.get("line") is not None else ""
            messages.append(f"{item.get('message') or item.get('code')}{where}")
        else:
            messages.append(str(item))
    return "; ".join(messages[:3]) or "the server gave no reason"


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
