from __future__ import annotations

import asyncio

import pytest

from nbchat.conversation.flow import adrive, drive


class Echo:
    """An operation whose result is its value, on either side."""

    def __init__(self, value):
        self.value = value

    def run(self):
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value

    async def arun(self):
        await asyncio.sleep(0)
        return self.run()


def flow(log):
    first = yield Echo(1)
    log.append(first)
    try:
        yield Echo(ValueError("refused"))
    except ValueError as exc:
        log.append(str(exc))
    second = yield Echo(2)
    return first + second


@pytest.mark.parametrize("how", ["sync", "async"])
def test_a_flow_gets_each_result_and_each_failure_and_returns_its_value(how):
    log: list = []
    result = drive(flow(log)) if how == "sync" else asyncio.run(adrive(flow(log)))
    assert result == 3 and log == [1, "refused"]


@pytest.mark.parametrize("how", ["sync", "async"])
def test_a_failure_the_flow_does_not_handle_reaches_the_caller(how):
    def failing():
        yield Echo(KeyError("k"))

    with pytest.raises(KeyError):
        drive(failing()) if how == "sync" else asyncio.run(adrive(failing()))


def test_cancelling_the_async_driver_is_thrown_into_the_flow():
    seen = []

    class Slow:
        def run(self):
            raise AssertionError

        async def arun(self):
            await asyncio.sleep(10)

    def waiting():
        try:
            yield Slow()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main():
        task = asyncio.ensure_future(adrive(waiting()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["cancelled"]
