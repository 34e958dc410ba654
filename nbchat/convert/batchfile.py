"""The Batch API's JSONL: one chat-completions request per line with a ``custom_id`` per row, and
output/error lines read back (OpenAI's format, which vLLM's batch runner reads and writes too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ENDPOINT",
    "OutputLine",
    "custom_id",
    "parse_output_line",
    "position_of",
    "read_lines",
    "request_line",
]

#: The URL every request line names, and the batch's ``endpoint``.
ENDPOINT = "/v1/chat/completions"
_PREFIX = "row-"
_MESSAGE_LIMIT = 300


def custom_id(position: int) -> str:
    """The ``custom_id`` of the row at ``position`` (0-based) among the rows given."""
    return f"{_PREFIX}{position}"


def position_of(identifier: Any) -> int | None:
    """The row position a ``custom_id`` stands for, or None when it is not one of ours: only an
    id exactly as ``custom_id`` writes it counts (``row-01``, ``row-²`` or ``row-+1`` do not)."""
    if not isinstance(identifier, str) or not identifier.startswith(_PREFIX):
        return None
    digits = identifier[len(_PREFIX) :]
    if not (digits.isascii() and digits.isdigit()):
        return None
    position = int(digits)
    return position if custom_id(position) == identifier else None


def request_line(position: int, body: Mapping[str, Any]) -> str:
    """One line of a batch input file (without the newline)."""
    line = {"custom_id": custom_id(position), "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class OutputLine:
    """One line of a batch output or error file: the completion body, or a one-line error."""

    custom_id: str
    completion: dict[str, Any] | None
    error: str | None
    status_code: int | None = None


def parse_output_line(text: str) -> OutputLine | None:
    """Read one output/error line; None for a blank line, ValueError for one that is not ours."""
    text = text.strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not a JSON line ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
        raise ValueError("a line without a custom_id")
    response = record.get("response")
    response = response if isinstance(response, dict) else {}
    status = response.get("status_code")
    status = status if isinstance(status, int) else None
    body = response.get("body")
    error = record.get("error")
    ok = (
        error is None
        and isinstance(body, dict)
        and "error" not in body
        and (status is None or 200 <= status < 300)
    )
    if ok:
        return OutputLine(record["custom_id"], body, None, status)
    return OutputLine(record["custom_id"], None, _error_text(error, body, status), status)


def _error_text(error: Any, body: Any, status: int | None) -> str:
    message, code = _message_and_code(error)
    if message is None and isinstance(body, dict):
        message, code = _message_and_code(body.get("error"))
    if message is None:
        message = "the request failed and the server said no more"
    message = " ".join(str(message).split())
    if len(message) > _MESSAGE_LIMIT:
        message = message[:_MESSAGE_LIMIT] + "…"
    what = ", ".join(str(part) for part in (status, code) if part)
    return (
        f"Batch request failed ({what}): {message}" if what else f"Batch request failed: {message}"
    )


def _message_and_code(error: Any) -> tuple[str | None, Any]:
    # OpenAI writes {"code", "message"}; vLLM a string, {"error": {...}} or {"object": "error", …}.
    if error is None:
        return None, None
    if isinstance(error, str):
        return error, None
    if isinstance(error, dict):
        inner = error.get("error")
        if isinstance(inner, dict):
            return _message_and_code(inner)
        if isinstance(inner, str) and "message" not in error:
            return inner, error.get("code")
        message = error.get("message")
        code = error.get("code") or error.get("type")
        return (str(message) if message is not None else None), code
    return str(error), None


def read_lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """The lines of a JSONL file, read as they are needed."""
    with Path(path).open(encoding="utf-8") as handle:
        yield from handle
