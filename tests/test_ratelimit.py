from __future__ import annotations

import asyncio
import random

import pytest

from nbchat.conversation.ratelimit import AdaptiveLimiter, LimiterClosed, parse_reset


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reset_durations_in_openai_form_are_read():
    assert parse_reset("1s") == 1.0
    assert parse_reset("6m0s") == 360.0
    assert parse_reset("20ms") == pytest.approx(0.02)
    assert parse_reset("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_reset("0.5") == 0.5
    assert parse_reset("soon") is None
    assert parse_reset("") is None


def test_at_most_the_ceiling_are_granted_and_release_lets_the_next_one_in():
    async def scenario() -> list[int]:
        limiter = AdaptiveLimiter(2)
        await limiter.acquire()
        await limiter.acquire()
        third = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        states = [limiter.in_flight, int(third.done())]
        limiter.release()
        await asyncio.sleep(0)
        states += [limiter.in_flight, int(third.done())]
        return states

    assert asyncio.run(scenario()) == [2, 0, 2, 1]


def test_frequent_429s_halve_the_limit_once_per_round():
    limiter = AdaptiveLimiter(16, clock=Clock())
    limiter.in_flight = 16
    for _ in range(11):
        limiter.observe(429, {})
    assert limiter.allowed == 16  # eleven in a row are not yet "frequent"
    limiter.observe(429, {})
    assert limiter.allowed == 8
    # The 16 requests in flight at the cut were sent under the old limit: their 429s are held.
    for _ in range(16):
        limiter.observe(429, {})
    assert limiter.allowed == 8
    limiter.observe(429, {})
    assert limiter.allowed == 4
    assert limiter.throttled == 29
    assert limiter.lowest == 4


def test_an_occasional_429_does_not_cut_the_limit():
    limiter = AdaptiveLimiter(16, clock=Clock())
    limiter.in_flight = 16
    for i in range(400):
        limiter.observe(429 if i % 20 == 0 else 200, {})
    assert limiter.allowed == 16


def test_429s_at_random_to_one_request_in_twenty_never_cut_the_limit_nor_pause():
    # A server that throttles a steady 5 % at random (benchmarks/map.py's 429 variant): a few
    # 429s in a row happen by chance and must not be taken for a server asking to slow down.
    chance = random.Random(13)
    limiter = AdaptiveLimiter(32, clock=Clock())
    limiter.in_flight = 32
    for _ in range(10_000):
        limiter.observe(429 if chance.random() < 0.05 else 200, {"retry-after-ms": "20"})
    assert limiter.throttled > 400
    assert limiter.lowest == 32
    assert limiter.paused_until == 0.0


def test_retry_after_of_frequent_429s_pauses_every_new_start_until_it_passes():
    clock = Clock()

    async def scenario() -> tuple[bool, bool]:
        limiter = AdaptiveLimiter(4, clock=clock)
        for _ in range(11):
            limiter.observe(429, {"retry-after-ms": "50"})
        assert limiter.paused_until == 0.0  # a few 429s only delay their own retries
        limiter.observe(429, {"retry-after-ms": "50"})
        assert limiter.paused_until == pytest.approx(clock.now + 0.05)
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.01)
        before = waiting.done()
        clock.now += 0.05
        await asyncio.sleep(0.08)  # the limiter's timer fires and lets it in
        return before, waiting.done()

    assert asyncio.run(scenario()) == (False, True)


def test_remaining_requests_at_zero_pause_until_the_reset():
    clock = Clock()
    limiter = AdaptiveLimiter(8, clock=clock)
    limiter.in_flight = 3
    limiter.observe(
        200, {"x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "2s"}
    )
    assert limiter.paused_until == pytest.approx(clock.now + 2.0)
    assert limiter.allowed == 4


def test_remaining_requests_running_low_shrink_the_limit():
    limiter = AdaptiveLimiter(32, clock=Clock())
    limiter.in_flight = 1
    limiter.observe(200, {"x-ratelimit-remaining-requests": "20"})
    assert limiter.allowed == 10
    assert limiter.paused_until == 0.0


def test_remaining_tokens_are_weighed_by_the_tokens_a_request_uses():
    limiter = AdaptiveLimiter(16, clock=Clock())
    limiter.record_tokens(1000)
    limiter.in_flight = 1
    limiter.observe(200, {"x-ratelimit-remaining-tokens": "8000"})
    assert limiter.allowed == 4  # 8 requests' worth left: half of it in flight at once
    limiter.in_flight = 5
    limiter.observe(200, {"x-ratelimit-remaining-tokens": "3000", "x-ratelimit-reset-tokens": "1s"})
    assert limiter.paused_until > 0


def test_quiet_responses_speed_it_back_up_to_the_ceiling():
    limiter = AdaptiveLimiter(8, clock=Clock())
    limiter.limit = 1.0
    for _ in range(100):
        limiter.observe(200, {"x-ratelimit-remaining-requests": "10000"})
    assert limiter.allowed == 8
    assert limiter.limit <= 8


def test_a_waiter_asking_to_go_first_is_let_in_before_the_others():
    async def scenario() -> list[str]:
        limiter = AdaptiveLimiter(1)
        await limiter.acquire()
        order: list[str] = []

        async def wait(name: str, first: bool) -> None:
            await limiter.acquire(first=first)
            order.append(name)
            limiter.release()

        tasks = [
            asyncio.ensure_future(wait("new 1", False)),
            asyncio.ensure_future(wait("new 2", False)),
        ]
        await asyncio.sleep(0)
        tasks.append(asyncio.ensure_future(wait("retry", True)))
        await asyncio.sleep(0)
        limiter.release()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["retry", "new 1", "new 2"]


def test_close_fails_waiters_and_refuses_new_ones():
    async def scenario() -> tuple[bool, bool]:
        limiter = AdaptiveLimiter(1)
        await limiter.acquire()
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        limiter.close()
        await asyncio.sleep(0)
        failed = isinstance(waiting.exception(), LimiterClosed)
        try:
            await limiter.acquire()
        except LimiterClosed:
            refused = True
        else:
            refused = False
        return failed, refused

    assert asyncio.run(scenario()) == (True, True)


def test_a_cancelled_waiter_leaves_no_slot_taken():
    async def scenario() -> int:
        limiter = AdaptiveLimiter(1)
        await limiter.acquire()
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.sleep(0)
        limiter.release()
        await limiter.acquire()
        return limiter.in_flight

    assert asyncio.run(scenario()) == 1


def test_a_ceiling_below_one_is_refused():
    with pytest.raises(ValueError):
        AdaptiveLimiter(0)
