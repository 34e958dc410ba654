from __future__ import annotations

import asyncio
import threading

import pytest

from nbchat.convert.awaitables import run_awaitable


async def _where() -> tuple[str, bool]:
    await asyncio.sleep(0)
    return threading.current_thread().name, asyncio.get_running_loop().is_running()


def test_without_a_running_loop_the_awaitable_runs_here() -> None:
    name, running = run_awaitable(_where())
    assert name == threading.current_thread().name
    assert running


def test_inside_a_running_loop_it_runs_on_a_loop_of_its_own_in_a_helper_thread() -> None:
    async def caller() -> tuple[str, bool]:
        # A synchronous call from a coroutine, as a tool runs inside Jupyter's kernel loop.
        return run_awaitable(_where())

    name, running = asyncio.run(caller())
    assert name == "nbchat-tool"
    assert running


def test_the_awaitables_exception_is_raised_to_the_caller() -> None:
    async def fails() -> None:
        raise LookupError("from inside")

    async def caller() -> None:
        run_awaitable(fails())

    with pytest.raises(LookupError, match="from inside"):
        run_awaitable(fails())
    with pytest.raises(LookupError, match="from inside"):
        asyncio.run(caller())


def test_any_awaitable_is_accepted_not_only_coroutines() -> None:
    class Ready:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return 42

    assert run_awaitable(Ready()) == 42
