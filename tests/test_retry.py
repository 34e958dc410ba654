from __future__ import annotations

import email.utils

import httpx
import pytest

from nbchat.protocol.exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    class_for_status,
)
from nbchat.transport.retry import INITIAL_DELAY, MAX_DELAY, retry_delay, should_retry

NOW = 1_716_936_000.0


def status_error(status: int, code: str | None = None) -> APIStatusError:
    return class_for_status(status)("failed", status_code=status, code=code)


def with_headers(**headers: str) -> httpx.Response:
    return httpx.Response(500, headers={k.replace("_", "-"): v for k, v in headers.items()})


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retried(status: int) -> None:
    assert should_retry(status_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 402, 405, 413, 418])
def test_statuses_a_retry_cannot_fix_are_not_retried(status: int) -> None:
    assert not should_retry(status_error(status))


def test_connection_failures_and_timeouts_are_retried() -> None:
    assert should_retry(APIConnectionError())
    assert should_retry(APITimeoutError())


def test_a_429_for_an_exhausted_quota_is_not_retried() -> None:
    assert not should_retry(status_error(429, "insufficient_quota"))
    assert should_retry(status_error(429, "rate_limit_exceeded"))


def test_x_should_retry_true_makes_any_other_status_retried() -> None:
    assert should_retry(status_error(418), with_headers(x_should_retry="true"))
    assert should_retry(status_error(402), with_headers(x_should_retry=" TRUE "))


def test_x_should_retry_false_stops_a_retry() -> None:
    assert not should_retry(status_error(503), with_headers(x_should_retry="false"))
    assert not should_retry(status_error(429), with_headers(x_should_retry="false"))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_x_should_retry_cannot_make_a_hopeless_status_retried(status: int) -> None:
    assert not should_retry(status_error(status), with_headers(x_should_retry="true"))


def test_x_should_retry_cannot_retry_an_exhausted_quota() -> None:
    error = status_error(429, "insufficient_quota")
    assert not should_retry(error, with_headers(x_should_retry="true"))


def test_an_unknown_x_should_retry_value_is_ignored() -> None:
    assert should_retry(status_error(503), with_headers(x_should_retry="maybe"))
    assert not should_retry(status_error(418), with_headers(x_should_retry="1"))


def test_backoff_starts_at_half_a_second_doubles_and_caps_at_eight() -> None:
    delays = [retry_delay(n, random=lambda: 0.0) for n in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert INITIAL_DELAY == 0.5
    assert MAX_DELAY == 8.0


def test_jitter_takes_off_at_most_a_quarter() -> None:
    assert retry_delay(0, random=lambda: 1.0) == 0.375
    assert retry_delay(4, random=lambda: 1.0) == 6.0
    assert retry_delay(2, random=lambda: 0.5) == 2.0 * 0.875


def test_jitter_varies_with_the_random_source() -> None:
    values = iter([0.1, 0.9])
    first = retry_delay(1, random=lambda: next(values))
    second = retry_delay(1, random=lambda: next(values))
    assert first != second
    assert 0.75 <= second < first <= 1.0


def test_retry_after_ms_is_honoured() -> None:
    headers = httpx.Headers({"retry-after-ms": "1500"})
    assert retry_delay(0, headers, random=lambda: 0.0) == 1.5


def test_retry_after_seconds_is_honoured() -> None:
    assert retry_delay(3, httpx.Headers({"retry-after": "3"}), random=lambda: 0.0) == 3.0
    assert retry_delay(0, httpx.Headers({"retry-after": "0.25"}), random=lambda: 0.0) == 0.25


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    date = email.utils.formatdate(NOW + 7, usegmt=True)
    headers = httpx.Headers({"retry-after": date})
    assert retry_delay(0, headers, random=lambda: 0.0, now=lambda: NOW) == 7.0


def test_retry_after_ms_wins_over_retry_after() -> None:
    headers = httpx.Headers({"retry-after-ms": "200", "retry-after": "5"})
    assert retry_delay(0, headers, random=lambda: 0.0) == 0.2


def test_a_bad_retry_after_ms_falls_back_to_retry_after() -> None:
    headers = httpx.Headers({"retry-after-ms": "soon", "retry-after": "2"})
    assert retry_delay(0, headers, random=lambda: 0.0) == 2.0


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "3600"},
        {"retry-after": "-1"},
        {"retry-after": "whenever"},
        {"retry-after-ms": "600000"},
        {"retry-after-ms": "-5"},
        {"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)},
        {"retry-after": email.utils.formatdate(NOW + 3600, usegmt=True)},
    ],
    ids=["an-hour", "negative", "garbage", "ten-minutes-ms", "negative-ms", "past", "far-date"],
)
def test_a_retry_after_out_of_bounds_falls_back_to_backoff(headers: dict[str, str]) -> None:
    delay = retry_delay(1, httpx.Headers(headers), random=lambda: 0.0, now=lambda: NOW)
    assert delay == 1.0


def test_no_headers_means_backoff() -> None:
    assert retry_delay(2, None, random=lambda: 0.0) == 2.0
    assert retry_delay(2, httpx.Headers(), random=lambda: 0.0) == 2.0
