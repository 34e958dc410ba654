"""An ``%%chat --agent`` cell in a frontend that shows widgets (JupyterLab, VS Code): run as an
async cell, so that the approval buttons can be clicked while the cell runs.

``rewrite`` (an input transformer) turns such a cell into ``await`` of :func:`run`, which runs
the ordinary magic in a worker thread and waits for it: the kernel's loop stays free to deliver
the buttons' clicks, the model's code still runs in the kernel's main thread (the worker hands
it over, and Ctrl-C interrupts it there), and Ctrl-C anywhere else stops the turn at its next
step. Headless runs and kernels that cannot deliver clicks to a running cell keep the ordinary
synchronous cell, where actions are refused or asked about with a prompt.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["can_answer", "in_main_thread", "rewrite", "run", "stop_requested", "widget_asker"]

_CELL = "%%chat"
#: The worker's means to ask (the widget), to hand code to the main thread, and the stop flag.
_asker: contextvars.ContextVar[Callable[[str], str] | None] = contextvars.ContextVar(
    "nbchat_agent_asker", default=None
)
_main: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "nbchat_agent_main_loop", default=None
)
_stop: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "nbchat_agent_stop", default=None
)
# Seconds a stopped turn gets to end itself (its stream stops at the next chunk).
_WIND_DOWN = 30.0


def rewrite(lines: list[str]) -> list[str]:
    """An ``%%chat ... --agent`` cell as ``await`` of :func:`run` where a click can reach it."""
    if not lines or not lines[0].lstrip().startswith(_CELL):
        return lines
    first = lines[0].strip()
    options = first[len(_CELL) :].split()
    if "--agent" not in options or "--yes" in options or not _widgets_can_answer():
        return lines
    line = first[len(_CELL) :].strip()
    cell = "".join(lines[1:])
    return [
        "await __import__('nbchat.notebook.agentcell', fromlist=['run'])"
        f".run(get_ipython(), {line!r}, {cell!r})\n"
    ]


def _widgets_can_answer() -> bool:
    """A kernel whose frontend answers (allow_stdin), shows widgets, and delivers their clicks to
    a cell that awaits (frontend.py says where)."""
    from IPython import get_ipython

    from .frontend import clicks_reach_this_loop, shows_widgets

    shell = get_ipython()
    return can_answer(shell) == "stdin" and shows_widgets(shell) and clicks_reach_this_loop(shell)


async def run(shell: Any, line: str, cell: str) -> Any:
    """The magic run in a worker thread with the approval widget; Ctrl-C stops it."""
    from .approval import ApprovalWidget

    loop = asyncio.get_running_loop()
    stop = threading.Event()
    widget = ApprovalWidget(stop)
    context = contextvars.copy_context()
    context.run(_asker.set, widget.ask)
    context.run(_main.set, loop)
    context.run(_stop.set, stop)
    magic = shell.find_cell_magic("chat")
    future = loop.run_in_executor(None, context.run, magic, line, cell)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        # Ctrl-C: ipykernel cancels an async cell. The turn stops at its next step and keeps
        # what happened; its own error (Interrupted…) ends the cell.
        stop.set()
        return await asyncio.wait_for(future, _WIND_DOWN)


def can_answer(shell: Any) -> str | None:
    """Who can approve an action here: ``"terminal"`` (a y/n/stop prompt), ``"stdin"`` (a
    frontend that answers input requests: JupyterLab, VS Code; nbconvert and nbval do not), or
    None (a headless run: nobody)."""
    from .frontend import frontend

    kind = frontend(shell) if shell is not None else "none"
    if kind in ("terminal", "none"):
        stdin = sys.stdin
        return "terminal" if stdin is not None and stdin.isatty() else None
    kernel = getattr(shell, "kernel", None)
    if kind == "jupyter" and kernel is not None and getattr(kernel, "_allow_stdin", False):
        return "stdin"
    return None


def widget_asker() -> Callable[[str], str] | None:
    """The approval widget's ask, inside an agent cell run by :func:`run`."""
    return _asker.get()


def stop_requested() -> bool:
    stop = _stop.get()
    return stop is not None and stop.is_set()


def in_main_thread(function: Callable[[], Any]) -> Any:
    """``function()`` run in the kernel's main thread (where Ctrl-C lands), from the worker of
    :func:`run`; called directly anywhere else."""
    loop = _main.get()
    if loop is None or threading.current_thread() is threading.main_thread():
        return function()
    done: Any = {}
    finished = threading.Event()

    def call() -> None:
        # The kernel's own SIGINT handler only cancels the awaiting cell, which cannot stop code
        # running in this thread: Ctrl-C raises KeyboardInterrupt in the code instead.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            done["value"] = function()
        except BaseException as exc:
            done["error"] = exc
        finally:
            signal.signal(signal.SIGINT, previous)
            finished.set()

    loop.call_soon_threadsafe(call)
    while not finished.wait(0.1):
        if loop.is_closed():
            raise RuntimeError("the kernel's loop closed while the model's code waited to run")
    if "error" in done:
        raise done["error"]
    return done["value"]
