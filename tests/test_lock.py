from __future__ import annotations

import asyncio
import threading
import time

from nbchat.conversation.lock import ConversationLock


def test_a_thread_may_take_the_lock_again_and_another_waits():
    lock = ConversationLock()
    order = []
    with lock, lock:
        worker = threading.Thread(
            target=lambda: (lock.acquire(), order.append("other"), lock.release())
        )
        worker.start()
        time.sleep(0.05)
        order.append("holder")
    worker.join(2)
    assert order == ["holder", "other"] and not lock.locked()


def test_tasks_take_turns_without_blocking_their_loop():
    lock = ConversationLock()
    events = []

    async def hold(name):
        async with lock:
            events.append(f"{name} in")
            await asyncio.sleep(0.02)
            events.append(f"{name} out")

    async def ticker():
        for _ in range(3):
            events.append("tick")
            await asyncio.sleep(0.005)

    async def main():
        await asyncio.gather(hold("a"), hold("b"), ticker())

    asyncio.run(main())
    a, b = events.index("a in"), events.index("b in")
    first, second = ("a", "b") if a < b else ("b", "a")
    assert events.index(f"{first} out") < events.index(f"{second} in")
    assert "tick" in events[events.index(f"{first} in") : events.index(f"{first} out")]


def test_a_task_waits_for_a_thread_that_holds_the_lock():
    lock = ConversationLock()
    order = []
    held = threading.Event()

    def thread():
        with lock:
            held.set()
            time.sleep(0.1)
            order.append("thread")

    worker = threading.Thread(target=thread)
    worker.start()
    held.wait(2)

    async def task():
        async with lock:
            order.append("task")

    asyncio.run(task())
    worker.join(2)
    assert order == ["thread", "task"]


def test_a_cancelled_waiting_task_leaves_no_trace():
    lock = ConversationLock()

    async def main():
        lock.acquire()
        waiter = asyncio.ensure_future(lock.aacquire())
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        lock.release()
        await asyncio.wait_for(lock.aacquire(), 1)
        lock.release()

    asyncio.run(main())
    assert not lock.locked() and lock._waiting == []
