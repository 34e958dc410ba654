"""An awaitable run to completion from synchronous code, also where a loop already runs (Jupyter).

``run_awaitable()`` uses ``asyncio.run`` when this thread has no running loop, and otherwise a
fresh loop in a helper thread; Ctrl-C cancels the coroutine instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any

__all__ = ["run_awaitable"]


def run_awaitable(awaitable: Awaitable[Any]) -> Any:
    """The result of ``awaitable``, awaited to the end (its exception raised here)."""

    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    return _run_on_own_loop(wait())


def _run_on_own_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` on a new loop in a helper thread: this thread's loop is busy (Jupyter).

    The coroutine must not rely on objects tied to the busy loop.
    """
    loop = asyncio.new_event_loop()
    outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            outcome.set_result(loop.run_until_complete(coroutine))
        except BaseException as exc:
            outcome.set_exception(exc)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    threading.Thread(target=target, name="nbchat-tool", daemon=True).start()
    try:
        return outcome.result()
    except KeyboardInterrupt:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_cancel_all, loop)
        raise


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
