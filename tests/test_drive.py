"""transport/drive.py: flows and their drivers, the iterating ones above all (a stream's chunks
pass through them once per read)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nbchat.transport.drive import Call, Emit, adrive, aiterate, drive, iterate


class Read:
    """An operation giving the next of ``pieces`` (b"" at the end), or raising one that is an
    exception."""

    def __init__(self, pieces: list[Any]) -> None:
        self.pieces = pieces

    def run(self) -> Any:
        piece = self.pieces.pop(0) if self.pieces else b""
        if isinstance(piece, BaseException):
            raise piece
        return piece

    async def arun(self) -> Any:
        await asyncio.sleep(0)
        return self.run()


def lines(pieces: list[Any], log: list[str]):
    """Emits each piece's lines; a failed read is noted and reading goes on."""
    read = Read(pieces)
    try:
        while True:
            try:
                piece = yield read
            except ConnectionError as exc:
                log.append(f"retried after {exc}")
                continue
            if not piece:
                return "done"
            yield Emit(piece.decode().split())
    finally:
        log.append("flow closed")


def collect(flow, how: str, *, stop_after: int | None = None, then=None) -> list[Any]:
    seen: list[Any] = []
    if how == "sync":
        values = iterate(flow, then=then) if then is not None else iterate(flow)
        for value in values:
            seen.append(value)
            if stop_after is not None and len(seen) == stop_after:
                values.close()
                break
        return seen

    async def run() -> None:
        values = aiterate(flow)
        try:
            async for value in values:
                seen.append(value)
                if stop_after is not None and len(seen) == stop_after:
                    break
        finally:
            await values.aclose()

    asyncio.run(run())
    return seen


@pytest.mark.parametrize("how", ["sync", "async"])
def test_values_come_out_in_order_and_a_failed_operation_is_thrown_into_the_flow(how):
    log: list[str] = []
    pieces = [b"a b", ConnectionError("reset"), b"c", b"d e"]
    assert collect(lines(pieces, log), how) == ["a", "b", "c", "d", "e"]
    assert log == ["retried after reset", "flow closed"]


@pytest.mark.parametrize("how", ["sync", "async"])
def test_a_failure_the_flow_does_not_handle_reaches_the_reader_after_what_came(how):
    log: list[str] = []
    seen: list[Any] = []
    flow = lines([b"a", KeyError("gone")], log)
    with pytest.raises(KeyError):
        if how == "sync":
            for value in iterate(flow):
                seen.append(value)
        else:

            async def run() -> None:
                async for value in aiterate(flow):
                    seen.append(value)

            asyncio.run(run())
    assert seen == ["a"]
    assert log == ["flow closed"]


@pytest.mark.parametrize("how", ["sync", "async"])
def test_a_reader_that_stops_early_ends_the_flow(how):
    log: list[str] = []
    assert collect(lines([b"a b c", b"d"], log), how, stop_after=2) == ["a", "b"]
    assert log == ["flow closed"]


@pytest.mark.parametrize("ending", ["end", "early", "failure"])
def test_then_is_called_once_however_the_iteration_ends(ending):
    calls: list[str] = []
    pieces: list[Any] = [b"a b", b"c"]
    if ending == "failure":
        pieces.append(ValueError("bad"))
    flow = lines(pieces, [])
    values = iterate(flow, then=lambda: calls.append("then"))
    if ending == "failure":
        with pytest.raises(ValueError):
            list(values)
    elif ending == "early":
        assert next(values) == "a"
        values.close()
    else:
        assert list(values) == ["a", "b", "c"]
    assert calls == ["then"]


def test_then_is_called_even_when_the_flow_fails_to_close():
    calls: list[str] = []

    def stubborn():
        try:
            yield Emit([1, 2])
        finally:
            raise RuntimeError("cannot close")

    values = iterate(stubborn(), then=lambda: calls.append("then"))
    assert next(values) == 1
    with pytest.raises(RuntimeError, match="cannot close"):
        values.close()
    assert calls == ["then"]


@pytest.mark.parametrize("how", ["sync", "async"])
def test_call_runs_a_function_and_awaits_what_it_returns_in_async_code(how):
    async def later(value: int) -> int:
        return value * 10

    def flow():
        plain = yield Call(lambda value: value + 1, 1)
        awaited = yield Call(later, 2) if how == "async" else Call(lambda: 20)
        return plain, awaited

    result = drive(flow()) if how == "sync" else asyncio.run(adrive(flow()))
    assert result == (2, 20)
