"""Sans-I/O flows and their two drivers: logic written once as a generator, run sync or async.

A flow yields an *operation* (send this request, read the next piece of this body, wait this
long…) and is resumed with its result, or has the exception thrown into it. ``drive()`` runs
the operations in this thread, ``adrive()`` awaits them on the running loop; each operation is
a line of I/O for each side (httpx's ``auth_flow`` is the model). A flow that hands values to
its caller as it goes (a stream's chunks) yields them in an ``Emit``, and is run by
``iterate()`` or ``aiterate()``. The client's retries, a body's reading, a stream and the
conversation's rounds are flows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator
from typing import Any, Protocol, TypeVar

__all__ = ["Call", "Emit", "Flow", "Op", "adrive", "aiterate", "drive", "iterate"]

T = TypeVar("T")


class Op(Protocol):
    """One thing a flow asks to be done: ``run()`` here and now, or ``await arun()``."""

    def run(self) -> Any: ...

    def arun(self) -> Awaitable[Any]: ...


class _Resume:
    """A flow between two operations: the next one, and what came of the last."""

    __slots__ = ("failure", "flow", "result", "value")

    def __init__(self, flow: Flow[Any]) -> None:
        self.flow = flow
        self.result: Any = None
        self.failure: BaseException | None = None
        self.value: Any = None

    def next(self) -> Op | Emit | None:
        failure, self.failure = self.failure, None
        try:
            if failure is not None:
                return self.flow.throw(failure)
            return self.flow.send(self.result)
        except StopIteration as stop:
            self.value = stop.value
            return None

    def take(self, run: Callable[[], Any]) -> None:
        try:
            self.result = run()
        except BaseException as exc:
            self.failure = exc


class Emit:
    """Not an operation: values a flow hands to whoever iterates it (``iterate``)."""

    __slots__ = ("values",)

    def __init__(self, values: Iterable[Any]) -> None:
        self.values = values


#: A flow: it yields operations (and, run by ``iterate``, values to hand on), returns a T.
Flow = Generator[Op | Emit, Any, T]


def drive(flow: Flow[T]) -> T:
    """Run ``flow`` to its end in this thread; its return value, or what it raises."""
    step = _Resume(flow)
    while (op := step.next()) is not None:
        step.take(op.run)  # type: ignore[union-attr]  # an Emit is for iterate() only
    return step.value


async def adrive(flow: Flow[T]) -> T:
    """Run ``flow`` to its end on the running event loop; cancelling it is thrown into it."""
    step = _Resume(flow)
    while (op := step.next()) is not None:
        try:
            step.result = await op.arun()  # type: ignore[union-attr]
        except BaseException as exc:
            step.failure = exc
    return step.value


def iterate(flow: Flow[Any], *, then: Callable[[], object] | None = None) -> Iterator[Any]:
    """The values ``flow`` emits, its operations run in this thread; ``then()`` is called when
    the iteration ends, however it ends (a stream's response closed)."""
    return _steps(_Resume(flow), then)


def aiterate(flow: Flow[Any]) -> AsyncIterator[Any]:
    """The values ``flow`` emits, its operations awaited on the running loop."""
    return _asteps(_Resume(flow))


def _steps(step: _Resume, then: Callable[[], object] | None = None) -> Iterator[Any]:
    try:
        while (op := step.next()) is not None:
            if isinstance(op, Emit):
                yield from op.values
            else:
                step.take(op.run)
    finally:
        try:
            step.flow.close()  # left early (the caller stopped reading): the flow ends too
        finally:
            if then is not None:
                then()


async def _asteps(step: _Resume) -> AsyncIterator[Any]:
    try:
        while (op := step.next()) is not None:
            if isinstance(op, Emit):
                for value in op.values:
                    yield value
                continue
            try:
                step.result = await op.arun()
            except BaseException as exc:
                step.failure = exc
    finally:
        step.flow.close()


class Call:
    """Call ``function(*args)``: in async code, its result is awaited when it is awaitable (a
    hook or a wait may be either kind of function)."""

    __slots__ = ("args", "function")

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self.function = function
        self.args = args

    def run(self) -> Any:
        return self.function(*self.args)

    async def arun(self) -> Any:
        result = self.function(*self.args)
        if isinstance(result, Awaitable):
            return await result
        return result
