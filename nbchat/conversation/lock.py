"""The lock one conversation's sends take turns on, from threads and from asyncio tasks alike.

A panel's thread, a cell and ``await chat.asend(...)`` may all send to one Chat; whoever holds
the lock may take it again (a panel holds it around its own send), a thread by its identity and
a task by its own. An asyncio task waits without blocking its event loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__all__ = ["ConversationLock"]


class ConversationLock:
    """A re-entrant lock whose owner is a thread (``with lock``) or a task (``async with lock``)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._free = threading.Condition(self._mutex)
        self._owner: tuple[str, int] | None = None
        self._depth = 0
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        state = "held" if self._owner is not None else "free"
        return f"<ConversationLock {state}>"

    def locked(self) -> bool:
        return self._owner is not None

    # -- threads ------------------------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = ("thread", threading.get_ident())
        with self._free:
            if not blocking:
                return self._take(me)
            wait = None if timeout is None or timeout < 0 else timeout
            return self._free.wait_for(lambda: self._take(me), wait)

    def release(self) -> None:
        with self._free:
            if self._owner is None:
                raise RuntimeError("release of an unheld ConversationLock")
            self._depth -= 1
            if self._depth:
                return
            self._owner = None
            self._free.notify_all()
            waiting, self._waiting = self._waiting, []
        for loop, future in waiting:
            # Each waiting task looks again; the one that finds the lock free takes it.
            loop.call_soon_threadsafe(_wake, future)

    def __enter__(self) -> ConversationLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # -- tasks --------------------------------------------------------------------------------

    async def aacquire(self) -> None:
        task = asyncio.current_task()
        me = ("task", id(task))
        loop = asyncio.get_running_loop()
        while True:
            with self._mutex:
                if self._take(me):
                    return
                future: asyncio.Future[None] = loop.create_future()
                self._waiting.append((loop, future))
            try:
                await future
            except BaseException:
                with self._mutex:
                    if (loop, future) in self._waiting:
                        self._waiting.remove((loop, future))
                raise

    async def __aenter__(self) -> ConversationLock:
        await self.aacquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def _take(self, me: tuple[str, int]) -> bool:
        if self._owner is None or self._owner == me:
            self._owner = me
            self._depth += 1
            return True
        return False


def _wake(future: Any) -> None:
    if not future.done():
        future.set_result(None)
