"""When to retry a failed request, and how long to wait first. Pure functions of the response."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import httpx

from ..protocol.exceptions import APIError, APIStatusError

__all__ = ["INITIAL_DELAY", "MAX_DELAY", "retry_delay", "should_retry"]

INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
# A server's own retry-after is honoured up to this; past it we fall back to our backoff.
MAX_SERVER_DELAY = 60.0

_NEVER = frozenset({400, 401, 403, 404, 422})


def should_retry(error: APIError, response: httpx.Response | None = None) -> bool:
    """True for 408, 409, 429, 5xx and connection failures, unless the server says otherwise.

    A server's ``x-should-retry`` header overrides that choice, except for the answers that no
    retry can change: 400, 401, 403, 404, 422, and a 429 for an exhausted quota.
    """
    if isinstance(error, APIStatusError) and (
        error.status_code in _NEVER
        or (error.status_code == 429 and error.code == "insufficient_quota")
    ):
        return False
    if response is not None:
        verdict = response.headers.get("x-should-retry", "").strip().lower()
        if verdict == "true":
            return True
        if verdict == "false":
            return False
    if not isinstance(error, APIStatusError):
        return True  # connection failures and time-outs
    status = error.status_code
    return status in (408, 409, 429) or status >= 500


def retry_delay(
    retries_done: int,
    headers: httpx.Headers | None = None,
    *,
    random: Callable[[], float],
    now: Callable[[], float] = time.time,
) -> float:
    """Seconds to wait before retry number ``retries_done + 1``.

    The server's ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date) wins when it is
    within sane bounds; otherwise exponential backoff from 0.5 s, doubling, capped at 8 s, less up
    to 25 % jitter so that many clients do not retry in step.
    """
    server = _server_delay(headers, now) if headers is not None else None
    if server is not None:
        return server
    delay = min(INITIAL_DELAY * 2.0**retries_done, MAX_DELAY)
    return delay * (1.0 - 0.25 * random())


def _server_delay(headers: httpx.Headers, now: Callable[[], float]) -> float | None:
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            seconds = float(value) / 1000.0
        except ValueError:
            seconds = None
        if seconds is not None and 0 <= seconds <= MAX_SERVER_DELAY:
            return seconds
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - now()
    if 0 <= seconds <= MAX_SERVER_DELAY:
        return seconds
    return None
