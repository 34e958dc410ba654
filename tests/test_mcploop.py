"""The event loop MCP sessions live on: one thread, coroutines waited for, Ctrl-C cancelling."""

from __future__ import annotations

import asyncio
import threading

import pytest

from nbchat.mcpclient.loop import LoopThread


def test_coroutines_run_on_the_loop_thread_and_their_errors_come_back():
    loop = LoopThread("test-loop")

    async def where():
        return threading.current_thread().name

    async def fail():
        raise ValueError("boom")

    assert loop.run(where()) == "test-loop"
    with pytest.raises(ValueError, match="boom"):
        loop.run(fail())
    loop.stop()
    assert not loop.running
    assert loop.run(where()) == "test-loop"  # started again on use
    loop.stop()


def test_a_timeout_or_interrupt_cancels_the_coroutine():
    loop = LoopThread()
    cancelled = threading.Event()

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        loop.run(slow(), timeout=0.1)
    assert cancelled.wait(5)
    loop.stop()
