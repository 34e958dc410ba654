"""Which frontend runs this kernel: the one answer every display decision reads.

``"jupyter"``: a Jupyter kernel (JupyterLab, Notebook, VS Code, nbconvert) that shows widgets
and updates outputs in place; ``"terminal"``: terminal IPython, which can do neither; ``"none"``:
plain Python, no IPython at all; ``"other"``: another IPython shell.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Chat as ChatSettings

__all__ = [
    "FRONTENDS",
    "choose_mode",
    "clicks_reach_this_loop",
    "display_mode",
    "frontend",
    "shows_widgets",
]

FRONTENDS = ("jupyter", "terminal", "other", "none")


def frontend(shell: object = None) -> str:
    """The frontend of ``shell`` (the running IPython's when None)."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return "none"
        shell = get_ipython()
        if shell is None:
            return "none"
    kind = type(shell).__name__
    if kind == "ZMQInteractiveShell":
        return "jupyter"
    if kind == "TerminalInteractiveShell":
        return "terminal"
    return "other"


def shows_widgets(shell: object = None) -> bool:
    """True where an ipywidgets widget can show: a Jupyter kernel with ipywidgets installed."""
    if frontend(shell) != "jupyter":
        return False
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def clicks_reach_this_loop(shell: object = None) -> bool:
    """True in a Jupyter kernel's own loop, where a widget click arrives while a cell awaits.

    ipykernel 7 dispatches widget messages while an awaiting cell runs; a blocking cell (or a
    loop in another thread) never sees them, so no stop button is offered there.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if frontend(shell) != "jupyter":
        return False
    try:
        import ipykernel
    except ImportError:
        return False
    major = str(getattr(ipykernel, "__version__", "0")).split(".")[0]
    return major.isdigit() and int(major) >= 7


def display_mode(shell: object, settings: ChatSettings) -> str:
    """How a reply is shown: ``%config Chat.display``, or for ``auto`` what the frontend can
    do (terminal IPython cannot update an output in place: text)."""
    if settings.display != "auto":
        return str(settings.display)
    return "text" if frontend(shell) == "terminal" else "live"


def choose_mode(
    mode: str | bool | None, modes: Sequence[str], *, what: str, auto: Callable[[], str]
) -> str:
    """A view's mode as a user gave it: True is ``auto``, False or None ``off``; ``auto``
    becomes what ``auto()`` says this frontend can show. Anything else is a ValueError."""
    if mode is True:
        mode = "auto"
    if mode is False or mode is None:
        return "off"
    if mode not in modes:
        raise ValueError(f"{what} must be one of {', '.join(modes)}, not {mode!r}")
    return auto() if mode == "auto" else mode
