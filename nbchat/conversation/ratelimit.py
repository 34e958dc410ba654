"""How many requests ``nbchat.map`` keeps in flight: at most ``concurrency``, fewer while the
server says to slow down (429s, ``retry-after``, ``x-ratelimit-remaining-*`` running low).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable, Mapping

import httpx

from ..protocol.exceptions import NbchatError
from ..transport.retry import MAX_SERVER_DELAY, retry_delay

__all__ = ["AdaptiveLimiter", "LimiterClosed", "parse_reset"]

# Share of recent responses that were 429/503 above which the limit is halved, and above which a
# retry-after holds back every request, not just the one it answered (the client's retry waits
# for that one). A few throttled requests are cheap; halving, or pausing the whole run, for each
# of them would throw away most of the server's capacity (a run with 5 % of 429s lost a quarter
# of its rate to pauses alone in benchmarks/map.py), so both wait until throttling is frequent.
THROTTLE_SHARE = 0.2
# Weight of the newest response in that share: about the last 50 responses count. Over 20 (a
# weight of 0.05), a steady 5 % of 429s crossed 0.2 by chance about 3 times in 10,000 responses,
# each time halving the limit for nothing; over 50 that happens about once in 2 million, and a
# server answering nothing but 429s is still heard after 12 responses.
_SHARE_WEIGHT = 0.02
# Statuses that mean "too much, slow down".
_THROTTLE_STATUSES = frozenset({429, 503})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class LimiterClosed(NbchatError):
    """The run was stopped: ``acquire`` lets no request start any more (caught by the map run;
    it never reaches the user)."""


def parse_reset(value: str | None) -> float | None:
    """Seconds in an ``x-ratelimit-reset-*`` header: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"0.5"``."""
    if not value:
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        return None
    return sum(float(number) * _UNIT[unit] for number, unit in parts)


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


class AdaptiveLimiter:
    """At most ``ceiling`` requests at once; fewer while the server pushes back.

    - When 429s (or 503s) become frequent, their ``retry-after`` pauses every new start until
      then, and the limit halves, at most once per round of requests in flight (the ones
      already sent at a cut cannot reflect it). A lone 429 only delays its own retry.
    - ``x-ratelimit-remaining-requests``/``-tokens`` near zero pause new starts until the
      matching ``x-ratelimit-reset-*``; running low shrinks the limit to fit what is left.
    - Each response without such a sign adds ``1/limit`` back (one more request in flight per
      round), up to ``ceiling``.
    """

    def __init__(self, ceiling: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be 1 or more")
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        #: Until this clock time no request starts (a retry-after or an exhausted window).
        self.paused_until = 0.0
        #: Responses that told us to slow down (429/503, or a quota at zero).
        self.throttled = 0
        #: The lowest number of requests in flight the limiter allowed.
        self.lowest = ceiling
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._share = 0.0
        self._hold = 0
        self._held = False
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._tokens_per_request: float | None = None

    @property
    def allowed(self) -> int:
        """How many requests may be in flight now."""
        return max(1, int(self.limit))

    @property
    def closed(self) -> bool:
        return self._closed

    # -- slots --------------------------------------------------------------------------------

    async def acquire(self, *, first: bool = False) -> None:
        """Wait for a slot; raises LimiterClosed once the run is stopped.

        ``first`` goes ahead of every waiter (a retry of a request sent before them).
        """
        if self._closed:
            raise LimiterClosed
        if not self._waiters and self._can_start():
            self._take()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if first:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        self._wake()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Granted just as the task was cancelled: give the slot back.
                self.release()
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def close(self) -> None:
        """Stop: every waiter gets LimiterClosed and no request starts any more."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(LimiterClosed())

    def _can_start(self) -> bool:
        return (
            not self._closed
            and self.in_flight < self.allowed
            and self._clock() >= self.paused_until
        )

    def _take(self) -> None:
        self.in_flight += 1

    def _wake(self) -> None:
        while self._waiters and self._can_start():
            waiter = self._waiters.popleft()
            if waiter.done():
                continue  # cancelled while waiting
            self._take()
            waiter.set_result(None)
        if self._waiters and not self._closed and self._timer is None:
            delay = self.paused_until - self._clock()
            if delay > 0:
                self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()

    # -- what the server says -----------------------------------------------------------------

    def record_tokens(self, tokens: int) -> None:
        """Tokens one finished request used: how far ``remaining-tokens`` will go."""
        if tokens <= 0:
            return
        if self._tokens_per_request is None:
            self._tokens_per_request = float(tokens)
        else:
            self._tokens_per_request += 0.1 * (tokens - self._tokens_per_request)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from one HTTP response (retries included) of the run."""
        # Answers to requests sent before the last cut say nothing about the new limit.
        self._held = self._hold > 0
        if self._held:
            self._hold -= 1
        now = self._clock()
        throttled = status in _THROTTLE_STATUSES
        self._share += _SHARE_WEIGHT * ((1.0 if throttled else 0.0) - self._share)
        if throttled:
            self.throttled += 1
            told = "retry-after" in headers or "retry-after-ms" in headers
            if told and self._share > THROTTLE_SHARE:
                given = headers if isinstance(headers, httpx.Headers) else httpx.Headers(headers)
                wait = retry_delay(0, given, random=lambda: 0.0)
                self._pause(now + wait)
            if self._share > THROTTLE_SHARE:
                self._cut(self.limit / 2)
            return
        if status >= 400:
            return
        slowed = self._follow_remaining(headers, now)
        if not slowed and self.limit < self.ceiling:
            before = self.allowed
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
            if self.allowed > before:
                self._wake()

    def _follow_remaining(self, headers: Mapping[str, str], now: float) -> bool:
        """Slow down for ``x-ratelimit-remaining-*``; True when it did."""
        # This response's own request is still counted in flight.
        others = max(0, self.in_flight - 1)
        slowed = False
        requests = _count(headers.get("x-ratelimit-remaining-requests"))
        if requests is not None:
            if requests <= others:
                self._exhausted(headers.get("x-ratelimit-reset-requests"), now)
                slowed = True
            elif requests < 2 * self.allowed:
                self._shrink(requests / 2)
                slowed = True
        tokens = _count(headers.get("x-ratelimit-remaining-tokens"))
        per_request = self._tokens_per_request
        if tokens is not None and per_request:
            if tokens <= others * per_request:
                self._exhausted(headers.get("x-ratelimit-reset-tokens"), now)
                slowed = True
            elif tokens < 2 * self.allowed * per_request:
                self._shrink(tokens / per_request / 2)
                slowed = True
        return slowed

    def _exhausted(self, reset: str | None, now: float) -> None:
        self.throttled += 1
        seconds = parse_reset(reset)
        self._pause(now + min(seconds if seconds is not None else 1.0, MAX_SERVER_DELAY))
        self._cut(self.limit / 2)

    def _pause(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    def _shrink(self, to: float) -> None:
        if to < self.limit:
            self.limit = max(1.0, to)
            self.lowest = min(self.lowest, self.allowed)

    def _cut(self, to: float) -> None:
        if self._held:
            return
        self._shrink(to)
        # The requests in flight now were sent under the old limit: their answers say
        # nothing about the new one.
        self._hold = self.in_flight
