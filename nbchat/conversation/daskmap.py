"""``nbchat.map`` over a Dask DataFrame: a lazy Dask DataFrame of the same result columns, each
partition mapped on a worker of the user's cluster (Dask schedules; nbchat writes no scheduler).

What travels with each task is plain data: the prompt, the request fields and the client's
settings without any credential (``Client.settings()``); a worker makes its own client, its key
read from its own environment. The concurrency is split between the partitions that run at once,
so that the cluster as a whole keeps no more requests in flight than one map would.
"""

from __future__ import annotations

import os
from typing import Any

from ..convert.rows import RowTemplate, as_prompt, row_source
from ..protocol.exceptions import RequestValidationError
from ..transport.client import AsyncClient, Client
from .mapjob import MapJob

__all__ = ["is_dask_frame", "map_partitions", "partition_concurrency"]


def is_dask_frame(rows: Any) -> bool:
    """True for a Dask DataFrame (without importing Dask when it is not one)."""
    module = type(rows).__module__ or ""
    return module.startswith("dask") and hasattr(rows, "map_partitions")


def map_partitions(prompt: Any, frame: Any, options: dict[str, Any]) -> Any:
    """The lazy Dask DataFrame of ``map(prompt, frame, **options)``: every mistake the driver
    can see (a column the template names but the frame lacks, a bad option) is raised here,
    before any task runs."""
    import pandas as pd

    options = dict(options)
    if options.pop("via", "online") != "online":
        raise RequestValidationError(
            "via='batch' does not take a Dask DataFrame: leave via out (each partition is "
            "mapped online on its worker)",
            field="via",
        )
    for name in ("poll_interval", "batch_max_rows", "batch_max_bytes"):
        if options.get(name) is not None:
            raise RequestValidationError(f"{name} is for via='batch'", field=name)
        options.pop(name, None)
    client = options.pop("client", None)
    concurrency = options.get("concurrency", 16)
    meta = frame._meta
    # One row of the frame's columns (no task runs to get a real one): every check MapJob
    # makes before sending is made on it here.
    sample = pd.DataFrame({name: [""] for name in meta.columns})
    checked = MapJob(prompt, sample, **_job_options(options))
    made = as_prompt(prompt)
    if isinstance(made, RowTemplate):
        made.check(row_source(sample))
    settings = _settings_of(client)
    share = partition_concurrency(concurrency, frame.npartitions, _slots())
    result_meta = pd.DataFrame(
        {
            name: pd.Series(dtype={"tokens": "Int64", "latency": "Float64"}.get(name, object))
            for name in checked.result_columns
        },
        index=meta.index[:0],
    )
    return frame.map_partitions(
        _run_partition,
        prompt,
        settings,
        {**options, "concurrency": share},
        meta=result_meta,
        enforce_metadata=False,
    )


def partition_concurrency(concurrency: int, partitions: int, slots: int) -> int:
    """Requests each partition may keep in flight: ``concurrency`` shared by the partitions that
    run at once (at most ``slots``, the cluster's worker threads), at least one each."""
    at_once = max(1, min(partitions, slots))
    return max(1, concurrency // at_once)


def _slots() -> int:
    """How many tasks the cluster runs at once: its worker threads, or this machine's cores."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return os.cpu_count() or 1
    return max(1, sum(client.nthreads().values()))


def _settings_of(client: Any) -> dict[str, Any]:
    if client is None:
        from .endpoint import default_client

        client = default_client()
    if not isinstance(client, (Client, AsyncClient)):
        raise RequestValidationError(
            f"client must be an nbchat Client or AsyncClient, not {type(client).__name__}",
            field="client",
        )
    return client.settings()


_JOB_OPTIONS = ("model", "system", "schema", "concurrency", "cache", "resume", "request_fields")


def _job_options(options: dict[str, Any]) -> dict[str, Any]:
    given = {name: options[name] for name in _JOB_OPTIONS if name in options}
    fields = dict(given.pop("request_fields", None) or {})
    fields.update({k: v for k, v in options.items() if k not in _JOB_OPTIONS})
    return {**given, "fields": fields}


def _run_partition(
    partition: Any, prompt: Any, settings: dict[str, Any], options: dict[str, Any]
) -> Any:
    """One partition, on a worker: a client of its own (its key from this worker's
    environment), the map's engine, the partition's result frame."""
    from .mapping import run_blocking

    with Client(**settings) as client:
        job = MapJob(prompt, partition, client=client, **_job_options(options))
        run = run_blocking(job)
    return job.assemble(run.outcomes, run.unfinished)
