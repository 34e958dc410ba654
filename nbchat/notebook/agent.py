"""``%%chat --agent``: the notebook as tools for the model, and the user's approval of its actions.

Read-only tools run without asking: the cells run so far with their outputs, the user's
variables, a description of one variable (secrets hidden), the last error. Acting tools are
shown before they happen and run only when approved: ``run_python`` runs code in the kernel
and ``insert_cell`` puts code into a new cell below, not run. ``--yes`` approves every action
of one cell; where nobody can answer (a headless run, no frontend) acting tools are refused and
the model is told so, never run silently. Stop ends the turn, keeping what happened.

``run_python`` executes the code in the notebook's namespace (``exec`` on ``user_ns``, IPython
syntax translated by ``shell.transform_cell``) rather than through ``shell.run_cell``: a nested
run_cell would give the model's code an execution number, an ``In``/``Out`` entry and a history
line, fire the pre/post-run hooks (nbchat's own records the cell that is still running), and make
its errors the "last error" ``%chat fix`` works on. The code still sees and changes the user's
variables, its displays show in the cell, and Ctrl-C interrupts it like a cell.
"""

from __future__ import annotations

import ast
import contextlib
import io
import linecache
import os
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from .agentcell import can_answer

__all__ = [
    "ACTING",
    "READ_ONLY",
    "Approver",
    "RunOutput",
    "agent_tools",
    "approval_for",
    "can_answer",
    "execute",
    "kit",
]

READ_ONLY = ("notebook_cells", "list_variables", "describe_variable", "last_error")
ACTING = ("run_python", "insert_cell")

#: Characters kept of each of stdout and stderr (the first and the last half).
MAX_STREAM_CHARS = 8000
#: Characters kept of the result's repr.
MAX_REPR_CHARS = 4000
#: Most variables ``list_variables`` names.
MAX_VARIABLES = 200
_FILENAME = "<model code {}>"
_SHELL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


# ---------------------------------------------------------------------------------------------
# The tools


def agent_tools(shell: Any = None) -> list[Any]:
    """The notebook tools of ``--agent`` for ``shell`` (the running IPython by default)."""
    from ..convert.tools import tool
    from .context import cells_text, error_text, variable_text

    shell = shell if shell is not None else _shell()
    if shell is None:
        raise UsageError("--agent needs IPython: the tools read and run the notebook's code")
    placed: list[str] = []

    def notebook_cells(count: int = 5) -> str:
        """The last cells run in this notebook (at most 20), oldest first, with their outputs
        and the errors they raised."""
        return cells_text(shell, max(1, min(int(count), 20)))

    def list_variables() -> str:
        """The user's variables in the notebook, with their types and shapes or lengths."""
        return variables_text(shell.user_ns, getattr(shell, "user_ns_hidden", {}))

    def describe_variable(name: str) -> str:
        """A description of one variable of the notebook (or name.attribute): its type, shape,
        columns, a preview of its values."""
        try:
            return variable_text(shell.user_ns, name)
        except UsageError as exc:
            raise ValueError(str(exc).removeprefix("--var ")) from None

    def last_error() -> str:
        """The last error a notebook cell raised: the cell, the exception and a trimmed
        traceback."""
        return error_text(shell)

    def run_python(code: str) -> str:
        """Run Python code in the user's notebook kernel, in its namespace (the user's
        variables). Returns what it printed, the value of its last expression and any error.
        The user sees the code and approves each run."""
        from .agentcell import in_main_thread

        output = in_main_thread(lambda: execute(shell, code))
        if output.interrupted:
            raise KeyboardInterrupt
        return output.text()

    def insert_cell(code: str) -> str:
        """Put code into a new cell below this one for the user to read and run; it is not
        run. The user approves it first."""
        from .agentcell import in_main_thread

        placed.append(code.rstrip())
        # One new cell per %%chat cell: IPython keeps one "next input"; later code joins it.
        in_main_thread(lambda: shell.set_next_input("\n\n".join(placed), replace=False))
        if len(placed) > 1:
            return "Added to the new cell below (after the code added before); not run."
        return "The code is in a new cell below; it was not run."

    read = [tool(fn) for fn in (notebook_cells, list_variables, describe_variable, last_error)]
    act = [tool(fn, confirm=True) for fn in (run_python, insert_cell)]
    return read + act


def variables_text(namespace: Mapping[str, Any], hidden: Mapping[str, Any] | None = None) -> str:
    """One line per user variable: name, type, shape or length; credentials' values never."""
    from ..convert.redact import secret_name

    hidden = hidden or {}
    lines: list[str] = []
    names = [
        name
        for name, value in namespace.items()
        if not name.startswith("_")
        and name not in _SHELL_NAMES
        and not (name in hidden and hidden[name] is value)
        and not isinstance(value, types.ModuleType)
    ]
    for name in names[:MAX_VARIABLES]:
        value = namespace[name]
        kind = type(value).__name__
        if secret_name(name):
            lines.append(f"{name}: {kind} (a credential's name: not described)")
            continue
        lines.append(f"{name}: {kind}{_size(value)}")
    if len(names) > MAX_VARIABLES:
        lines.append(f"({len(names) - MAX_VARIABLES} more not listed)")
    return "\n".join(lines) if lines else "The notebook has no user variables yet."


def _size(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
        return f", shape {shape}"
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        return f", length {len(value)}"
    return ""


# ---------------------------------------------------------------------------------------------
# Running the model's code


@dataclass
class RunOutput:
    """What running the model's code gave: its output streams, result, error, all bounded."""

    stdout: str = ""
    stderr: str = ""
    result: str | None = None
    error: str | None = None
    interrupted: bool = False

    def text(self) -> str:
        """The tool message: each part that is not empty, labelled."""
        parts = []
        if self.stdout.strip():
            parts.append(f"stdout:\n{self.stdout.rstrip()}")
        if self.stderr.strip():
            parts.append(f"stderr:\n{self.stderr.rstrip()}")
        if self.result is not None:
            parts.append(f"result: {self.result}")
        if self.error is not None:
            parts.append(f"error:\n{self.error}")
        if self.interrupted:
            parts.append("interrupted by the user (Ctrl-C)")
        return _hide("\n\n".join(parts) or "It ran and printed nothing.")


class _Bounded(io.TextIOBase):
    """A text stream keeping the first and the last ``limit // 2`` characters written."""

    def __init__(self, limit: int = MAX_STREAM_CHARS) -> None:
        self.half = limit // 2
        self.head = ""
        self.tail = ""
        self.total = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.total += len(text)
        if len(self.head) < self.half:
            room = self.half - len(self.head)
            self.head += text[:room]
            text = text[room:]
        if text:
            self.tail = (self.tail + text)[-self.half :]
        return len(text)

    def value(self) -> str:
        kept = len(self.head) + len(self.tail)
        if self.total <= kept:
            return self.head + self.tail
        left = self.total - kept
        return f"{self.head}\n[… {left:,} characters left out …]\n{self.tail}"


def execute(shell: Any, code: str) -> RunOutput:
    """Run ``code`` in ``shell.user_ns`` as a cell would (its last expression is the result),
    capturing stdout and stderr; the error is a trimmed traceback."""
    from ..convert.traceback import error_report

    output = RunOutput()
    execute.count += 1  # type: ignore[attr-defined]
    filename = _FILENAME.format(execute.count)  # type: ignore[attr-defined]
    try:
        source = shell.transform_cell(code) if shell is not None else code
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        output.error = f"SyntaxError: {exc.msg} (line {exc.lineno})"
        return output
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body[-1].value)
        tree.body.pop()
    # Tracebacks show the model's lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = shell.user_ns if shell is not None else {}
    out, err = _Bounded(), _Bounded()
    value: Any = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile(tree, filename, "exec"), namespace)
            if last is not None:
                value = eval(compile(last, filename, "eval"), namespace)
    except KeyboardInterrupt:
        output.interrupted = True
    except BaseException as exc:
        # SystemExit too: the model's exit() ends its code, not the kernel.
        report = error_report(exc, cell_of=lambda name: name if name == filename else None)
        output.error = report.text()
    output.stdout, output.stderr = out.value(), err.value()
    if value is not None:
        output.result = _repr(shell, value)
    return output


execute.count = 0  # type: ignore[attr-defined]


def _repr(shell: Any, value: Any) -> str:
    text = ""
    with contextlib.suppress(Exception):
        data, _ = shell.display_formatter.format(value, include={"text/plain"})
        text = data.get("text/plain", "")
    if not isinstance(text, str) or not text:
        try:
            text = repr(value)
        except Exception as exc:
            text = f"<{type(value).__name__} whose repr failed: {type(exc).__name__}>"
    if len(text) > MAX_REPR_CHARS:
        text = text[: MAX_REPR_CHARS - 1] + f"… [{len(text):,} characters]"
    return text


def _hide(text: str) -> str:
    """Credentials out of what goes to the model: values that look like keys, and the values of
    environment variables named like credentials."""
    from ..convert.redact import HIDDEN, hide_secrets, secret_name

    for name, value in os.environ.items():
        if len(value) >= 8 and secret_name(name) and value in text:
            text = text.replace(value, HIDDEN)
    return hide_secrets(text)


# ---------------------------------------------------------------------------------------------
# Approval


Ask = Callable[[str], str]


class Approver:
    """The confirm callback of an agent cell: shows each action before it happens and asks.

    Only tools made with ``confirm=True`` (the acting ones) are asked about, every tool with
    ``ask_all``. ``yes`` approves every action (``--yes``); ``ask`` reads one answer for a prompt
    (input() by default, where someone can answer); ``show`` displays a bundle.
    """

    def __init__(
        self,
        shell: Any,
        *,
        yes: bool = False,
        text: bool = False,
        ask: Ask | None = None,
        show: Callable[[dict[str, str]], None] | None = None,
        who: str | None = "auto",
        ask_all: bool = False,
    ) -> None:
        self.shell = shell
        self.ask_all = ask_all
        self.yes = yes
        self.text = text
        from .agentcell import widget_asker

        widget = widget_asker() if ask is None else None
        self.who = "widget" if widget is not None else can_answer(shell) if who == "auto" else who
        self._ask = ask or widget or input
        self._show = show or _display
        #: (tool name, decision) for every action asked about, in order.
        self.decisions: list[tuple[str, str]] = []

    def __call__(self, tool: Any, arguments: dict[str, Any]) -> Any:
        from ..conversation.toolrun import Decision
        from ..render.steps import proposal_bundle

        if not (tool.confirm or self.ask_all):
            # A callback is asked about every tool; the read-only ones need no one's approval.
            return Decision("yes", "")
        self._show(proposal_bundle(tool.name, arguments))
        if self.yes:
            return self._decided(tool, "approved", "approved by --yes", Decision("yes", "--yes"))
        if self.who is None:
            message = (
                f"{tool.name} was not run: this notebook runs where nobody can approve actions "
                "(a headless run). Do not call it again; answer with what you know, or say what "
                "the user should run."
            )
            return self._decided(
                tool,
                "refused",
                "refused: nobody can approve actions here (a headless run); not run",
                Decision("no", "nobody", message),
            )
        try:
            answer = self._ask("Run it? [y]es / [n]o, skip it / stop: ").strip().lower()
        except (EOFError, OSError, RuntimeError):
            # No input to read after all (StdinNotImplementedError is a RuntimeError).
            self.who = None
            return self(tool, arguments)
        if answer in ("y", "yes", "r", "run", "ok"):
            return self._decided(tool, "approved", "approved", Decision("yes", "user"))
        if answer in ("stop", "x", "q", "quit"):
            return self._decided(
                tool, "stopped", "stopped: nothing more runs or is sent", Decision("stop", "user")
            )
        message = (
            f"The user declined: {tool.name} was not run. Do not try it again unless the user "
            "asks; go on without it."
        )
        return self._decided(
            tool,
            "declined",
            "skipped: the model is told you declined",
            Decision("no", "user", message),
        )

    def _decided(self, tool: Any, kind: str, line: str, decision: Any) -> Any:
        from ..render.steps import decision_bundle

        self.decisions.append((tool.name, kind))
        self._show(decision_bundle(kind, line))
        return decision


def _display(bundle: dict[str, str]) -> None:
    from IPython.display import display

    display(bundle, raw=True)


def approval_for(shell: Any, args: Any, *, text: bool = False, ask_all: bool = False) -> Approver:
    """The confirm callback of a cell with ``--agent`` (or ``--yes``); ``ask_all`` (``--confirm``)
    asks about every tool, not only those made with ``confirm=True``."""
    show = _printer if text else _display
    yes = bool(getattr(args, "yes", False))
    return Approver(shell, yes=yes, text=text, show=show, ask_all=ask_all)


def kit(*, yes: bool = False) -> tuple[list[Any], Approver]:
    """``Chat.send(agent=True)``: the notebook tools and the approval of their actions."""
    from ..protocol.exceptions import RequestValidationError

    shell = _shell()
    if shell is None:
        raise RequestValidationError(
            "agent=True needs IPython: the tools read and run the notebook's code", field="agent"
        )
    from .frontend import frontend

    terminal = frontend(shell) == "terminal"
    return agent_tools(shell), Approver(shell, yes=yes, show=_printer if terminal else _display)


def _printer(bundle: dict[str, str]) -> None:
    from ..render.markdown import terminal_text

    # On a line of its own, after the text the model streamed.
    print("\n" + terminal_text(bundle["text/plain"]))


def _shell() -> Any:
    from IPython import get_ipython

    return get_ipython()
