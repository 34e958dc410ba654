"""The Batch API's HTTP calls (upload to ``/files``, start, poll and cancel ``/batches``, read a
file's lines) through the client's own request path: auth headers, retries, typed errors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..protocol.exceptions import APIError, APIStatusError
from .body import aiter_lines
from .client import AsyncClient
from .urls import without_credentials

__all__ = [
    "FINAL_STATUSES",
    "BatchError",
    "BatchUnsupportedError",
    "cancel_batch",
    "create_batch",
    "file_lines",
    "retrieve_batch",
    "upload_batch_file",
]

#: Batch statuses after which nothing more will run.
FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
# Answers that mean "there is no such endpoint here".
_MISSING = frozenset({404, 405, 501})


class BatchUnsupportedError(APIError):
    """The server has no Batch API (``/files`` or ``/batches`` is missing)."""


class BatchError(APIError):
    """The server answered the Batch API with something unusable, or the batch itself failed."""


async def upload_batch_file(
    client: AsyncClient, data: bytes, *, filename: str = "nbchat-batch.jsonl"
) -> str:
    """Upload a batch input file (``purpose=batch``); returns the file's id."""
    options = {
        "files": {"file": (filename, data, "application/jsonl")},
        "data": {"purpose": "batch"},
    }
    body = await _call(client, "POST", "/files", None, options)
    return _field(body, "id", "the uploaded file")


async def create_batch(
    client: AsyncClient,
    input_file_id: str,
    *,
    endpoint: str,
    completion_window: str = "24h",
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start a batch over an uploaded file; returns the batch object."""
    request: dict[str, Any] = {
        "input_file_id": input_file_id,
        "endpoint": endpoint,
        "completion_window": completion_window,
    }
    if metadata:
        request["metadata"] = metadata
    body = await _call(client, "POST", "/batches", request, {})
    _field(body, "id", "the new batch")
    return body


async def retrieve_batch(client: AsyncClient, batch_id: str) -> dict[str, Any]:
    body = await _call(client, "GET", f"/batches/{batch_id}", None, {})
    _field(body, "status", f"batch {batch_id}")
    return body


async def cancel_batch(client: AsyncClient, batch_id: str) -> dict[str, Any]:
    return await _call(client, "POST", f"/batches/{batch_id}/cancel", None, {})


async def file_lines(client: AsyncClient, file_id: str) -> AsyncIterator[str]:
    """The lines of a file's content (``/files/{id}/content``), read as they arrive.

    Within the client's limits: each line within ``max_event_bytes``, the whole file within
    ``max_file_bytes``, decoded a slice at a time (past one: ResponseTooLargeError); a
    connection lost while reading is an APIConnectionError.
    """
    response, _ = await client.send_request("GET", f"/files/{file_id}/content", stream=True)
    lines = aiter_lines(
        response,
        what=f"batch file {file_id}",
        max_line_bytes=client.max_event_bytes,
        line_option="max_event_bytes",
        max_bytes=client.max_file_bytes,
        option="max_file_bytes",
    )
    try:
        while True:
            broken: httpx.TransportError | None = None
            try:
                line = await anext(lines)
            except StopAsyncIteration:
                return
            except httpx.TransportError as exc:
                broken = exc
            if broken is not None:
                # Outside the except block: httpx's error holds the request as sent, key and all.
                raise client.connection_error(broken, response.request)
            text = line.decode("utf-8", errors="replace")
            if text.strip():
                yield text
    finally:
        await lines.aclose()
        await response.aclose()


async def _call(
    client: AsyncClient, method: str, path: str, body: dict[str, Any] | None, options: dict
) -> dict[str, Any]:
    try:
        response, content = await client.send_request(method, path, body, **options)
    except APIStatusError as exc:
        if exc.status_code in _MISSING and path in ("/files", "/batches"):
            where = without_credentials(client.base_url)
            raise BatchUnsupportedError(
                f"The server at {where} has no Batch API ({method} {path} answered "
                f"{exc.status_code}); leave out via='batch' to run the rows online "
                "(nbchat.map's default).",
                request=exc.request,
            ) from None
        raise
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise BatchError(
            f"{method} {path} answered something that is not a JSON object",
            request=response.request,
        )
    return data


def _field(body: dict[str, Any], name: str, what: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise BatchError(f"The server's answer for {what} has no {name!r}")
    return value
