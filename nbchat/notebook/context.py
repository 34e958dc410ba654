"""The notebook as context for a model: ``%chat fix`` / ``%chat explain`` (the last error),
``--var NAME`` and ``--cells N`` (variables and earlier cells), ``--code`` (reply → next cell).

The magic side of nbchat.convert's describe, traceback, codeblocks and budget modules.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

__all__ = [
    "BUDGETS",
    "TASKS",
    "Context",
    "FailedCell",
    "add_context",
    "budget_text",
    "cells_text",
    "error_text",
    "last_error",
    "place_code",
    "record_cell",
    "task_prompt",
    "variable_text",
]

#: The subcommands that send the last error.
TASKS = ("fix", "explain")

#: Token budgets of each part of the context, for a model with an 8k window or more; smaller
#: known windows scale them down in proportion (the local model's 2,048 to a quarter).
BUDGETS = {
    "traceback": 1500,  # the exception and its trimmed traceback
    "source": 1500,  # the failing cell's source
    "error_variables": 1200,  # the variables the failing cell names, together
    "error_variable": 250,  # each of them
    "var": 1000,  # each --var description
    "cells": 2000,  # --cells, all of them
    "cell": 800,  # each cell's input
    "output": 150,  # each cell's output
}
_FULL_WINDOW = 8192

_INSTRUCTIONS = {
    "fix": (
        "This notebook cell failed. Find the cause and fix it. Reply with the whole corrected "
        "cell in one ```python block, then say in one or two sentences what was wrong."
    ),
    "explain": (
        "This notebook cell failed. Explain in a few sentences what the error means, why this "
        "cell raised it, and how to fix it."
    ),
}
# Names in every IPython namespace that say nothing about the user's code.
_SHELL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


@dataclass
class FailedCell:
    """The most recent error a cell raised: the exception, the cell's number and source."""

    error: BaseException
    cell: int | None
    source: str | None


@dataclass
class Context:
    """What a cell's options added to its prompt: the text, its parts (label, tokens) for the
    dry run's budget, and images to attach."""

    text: str = ""
    parts: list[tuple[str, int]] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)


@dataclass
class _Ran:
    """A cell that ran: its number (None when not stored in the history, as nbval runs them),
    its source as typed, its result value and the error it raised."""

    number: int | None
    source: str
    result: Any
    error: BaseException | None


# The cells run since the extension was loaded, whether or not they went into the history.
_ran: deque[_Ran] = deque(maxlen=50)
# The last error found through sys.last_value, for when a failing %chat cell replaces it.
_remembered: FailedCell | None = None


def record_cell(result: Any) -> None:
    """The ``post_run_cell`` hook: remember each cell run, its result and its error."""
    info = getattr(result, "info", None)
    source = getattr(info, "raw_cell", None)
    if not isinstance(source, str) or not source.strip() or getattr(info, "silent", False):
        return
    error = result.error_in_exec or result.error_before_exec
    # IPython 9.19 gives every result the shell's count, stored in the history or not; only a
    # stored cell owns that number (the next stored cell takes it again).
    number = result.execution_count if getattr(info, "store_history", True) else None
    _ran.append(_Ran(number, source, result.result, error))


def last_error(shell: Any) -> FailedCell | None:
    """The error ``%chat fix`` works on: the last cell that failed, %chat cells aside; before
    any was seen, ``sys.last_value`` (IPython's record of the last error) unless a %chat cell
    raised it."""
    global _remembered
    for ran in reversed(_ran):
        if ran.error is not None and not _is_chat_cell(ran.source):
            return FailedCell(ran.error, ran.number, ran.source)
    error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if error is None:
        return _remembered
    if _remembered is not None and _remembered.error is error:
        return _remembered
    cell = _cell_of_error(shell, error)
    source = _source(shell, cell)
    if source is not None and _is_chat_cell(source):
        return _remembered
    _remembered = FailedCell(error, cell, source)
    return _remembered


def task_prompt(shell: Any, args: Any, task: str, extra: str) -> str | None:
    """The prompt of ``%chat fix`` / ``%chat explain`` (``args`` then carry the error to
    :func:`add_context`), or None, said in one line, when no cell has failed."""
    failed = last_error(shell)
    if failed is None:
        print(f"There is no error to {task}: no cell has raised an exception in this kernel.")
        return None
    from ..convert.traceback import error_report

    first = error_report(failed.error, max_tokens=60).exception.splitlines()[-1]
    where = f"In [{failed.cell}]" if failed.cell is not None else "the cell that failed"
    print(f"{'Fixing' if task == 'fix' else 'Explaining'} {where}: {first}")
    args.task = (task, failed)
    prompt = _INSTRUCTIONS[task]
    return f"{prompt}\n\n{extra.strip()}" if extra.strip() else prompt


def add_context(text: str, args: Any, namespace: dict[str, Any], settings: Any) -> tuple[str, Any]:
    """``(text, Context)``: the prompt with the error, --var descriptions and --cells added."""
    context = Context()
    names = list(getattr(args, "var", None) or ())
    cells = getattr(args, "cells", None)
    task = getattr(args, "task", None)
    if not (names or cells is not None or task):
        return text, context
    if cells is not None and cells < 1:
        raise UsageError(f"--cells needs a number of cells of at least 1, not {cells}")
    for name in names:
        if _secret_name(name):
            raise UsageError(
                f"--var {name}: the name looks like a credential's; it is never sent "
                "(rename the variable to describe it)"
            )
        _value(namespace, name)
    budgets = _budgets(args, settings)
    sections: list[str] = []
    if task:
        section = _error_section(task[1], namespace, budgets)
        sections.append(section)
        context.parts.append(("error", _tokens(section)))
    for name in names:
        description = _describe_var(namespace, name, budgets["var"], args, settings)
        sections.append(description.text)
        context.parts.append((f"--var {name}", _tokens(description.text)))
        if description.image is not None:
            context.images.append(description.image)
    if cells is not None:
        shell = _shell()
        section = _cells_section(shell, cells, budgets) if shell is not None else ""
        if section:
            sections.append(section)
            context.parts.append((f"--cells {cells}", _tokens(section)))
    from ..convert.redact import hide_secrets

    # Each part hides what looks like a key already; this is the net under all of them.
    context.text = hide_secrets("\n\n".join(sections))
    joined = "\n\n".join(part for part in (text.rstrip(), context.text) if part)
    return joined, context


def place_code(shell: Any, mode: str, reply: Any) -> None:
    """``--code``: the reply's first Python block (``all``: every one) into the next cell."""
    from ..convert.codeblocks import python_code

    block = python_code(reply.content, every=mode == "all")
    if block is None:
        print("The reply has no Python code block; no cell was added.")
        return
    shell.set_next_input(block.code, replace=False)
    from .frontend import frontend

    terminal = frontend(shell) == "terminal"
    where = "the next input" if terminal else "a new cell below"
    warning = "" if block.closed else " The reply was cut off inside it: check it before running."
    print(f"The code is in {where}, not run.{warning}")


def cells_text(shell: Any, count: int) -> str:
    """The ``count`` cells run before the running one, with outputs and errors (``--cells``)."""
    return _cells_section(shell, count, dict(BUDGETS)) or "No cells have run before this one."


def error_text(shell: Any) -> str:
    """The last error a cell raised, its cell and trimmed traceback (what ``%chat fix`` sends),
    or a line saying there is none."""
    failed = last_error(shell)
    if failed is None:
        return "No cell has raised an exception in this kernel."
    return _error_section(failed, shell.user_ns if shell is not None else {}, dict(BUDGETS))


def variable_text(namespace: dict[str, Any], name: str) -> str:
    """A variable described for a model (``--var``): a credential's name is never described.
    Raises UsageError for a name that is not there."""
    if _secret_name(name):
        return f"`{name}`: not shown (its name looks like a credential's)."
    from ..convert.describe import describe

    value = _value(namespace, name)
    return describe(value, name, max_tokens=BUDGETS["var"], attach_images=False).text


def budget_text(chat: Any, request: Any, prepared: Any) -> str:
    """The dry run's table: estimated tokens by part, the context window, what is left out."""
    from ..conversation.trim import trim_history
    from ..convert.tokenbudget import estimate_budget

    parts = list(request.context.parts) if getattr(request, "context", None) else []
    attachments = getattr(request, "attachments", None)
    for block in getattr(attachments, "data", None) or ():
        label = f"--data {block.name}" if block.name else "data"
        parts.append((label, _tokens(block.prompt())))
    full = chat.messages
    if request.content is not None:
        full.append({"role": "user", "content": request.content})
    left_out = []
    trim = trim_history(full, chat.max_history_tokens)
    if trim.dropped:
        many = "exchange" if trim.exchanges == 1 else "exchanges"
        left_out.append(
            f"left out by max_history_tokens ({trim.limit:,}): the {trim.exchanges} oldest "
            f"{many}, {len(trim.dropped)} messages, ~{trim.tokens_before - trim.tokens_after:,} "
            "tokens"
        )
    window = chat.client.profile.context_window
    budget = estimate_budget(
        prepared.body, attachments=parts, context_window=window, left_out=left_out
    )
    if window and budget.over:
        tools = sum(part.tokens for part in budget.parts if part.name in ("tools", "reply start"))
        # What the messages may take so that they, the tools and the reply fit the window.
        room = window - (budget.reply_tokens or window // 4) - tools
        fit = trim_history(trim.messages, max(room, 1))
        if fit.dropped and fit.tokens_after <= room:
            left_out.append(
                f"To fit the window, the {fit.exchanges} oldest exchanges sent would have to be "
                f"left out: %config Chat.max_history_tokens = {room:,}"
            )
        else:
            left_out.append(
                "Even without the history it does not fit the window: shorten the prompt or "
                "its attachments, or lower max_tokens."
            )
        budget = estimate_budget(
            prepared.body, attachments=parts, context_window=window, left_out=left_out
        )
    return budget.table()


# -- the error --------------------------------------------------------------------------------


def _error_section(failed: FailedCell, namespace: dict[str, Any], budgets: dict[str, int]) -> str:
    from ..convert.codeblocks import fenced
    from ..convert.redact import hide_secrets
    from ..convert.tokenbudget import cut_to_tokens
    from ..convert.traceback import error_report

    shell = _shell()
    cell_of = _cell_lookup(shell)
    report = error_report(failed.error, cell_of=cell_of, max_tokens=budgets["traceback"])
    lines = []
    if failed.source is not None:
        source = cut_to_tokens(hide_secrets(failed.source), budgets["source"])
        label = f"The cell In [{failed.cell}]" if failed.cell is not None else "The cell"
        lines.append(f"{label}:\n{fenced(source, 'python')}")
    else:
        lines.append("The code that failed is not in this notebook's history.")
    lines.append(fenced(report.text(), "text"))
    names = _names_used(shell, failed.source) if failed.source else []
    seen: dict[int, str] = {}
    described = _describe_names(namespace, names, budgets, seen)
    if described:
        lines.append("Variables the cell uses, as they are now:\n" + described)
    frame_locals = _describe_names(
        report.locals, [n for n in report.locals if n not in names], budgets, seen
    )
    if frame_locals:
        function = next((f.name for f in reversed(report.frames) if f.user), "the function")
        lines.append(f"Local variables of {function} where it failed:\n" + frame_locals)
    return "\n\n".join(lines)


def _describe_names(
    values: dict[str, Any], names: list[str], budgets: dict[str, int], seen: dict[int, str]
) -> str:
    """Short descriptions of ``names`` (modules, credentials and the shell's own left out);
    ``seen`` maps the ids of objects described already to their names."""
    import types

    from ..convert.describe import describe

    left = budgets["error_variables"]
    texts = []
    for name in names:
        if name.startswith("_") or name in _SHELL_NAMES or name not in values:
            continue
        value = values[name]
        if isinstance(value, types.ModuleType) or _secret_name(name):
            continue
        if left < 20:
            break
        if id(value) in seen:
            texts.append(f"`{name}`: the same object as `{seen[id(value)]}`")
            continue
        seen[id(value)] = name
        # Images are described, not attached: the error is what the model is asked about.
        description = describe(
            value,
            name,
            max_tokens=min(budgets["error_variable"], left),
            attach_images=False,
            not_attached="the error is what is asked about",
        )
        texts.append(description.text)
        left -= description.tokens
    return "\n".join(texts)


def _names_used(shell: Any, source: str) -> list[str]:
    """The names a cell's code reads or assigns, in order of first appearance."""
    code = source
    if shell is not None:
        try:
            code = shell.transform_cell(source)
        except Exception:
            code = source
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    found: dict[str, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            place = (node.lineno, node.col_offset)
            if node.id not in found or place < found[node.id]:
                found[node.id] = place
    return sorted(found, key=found.__getitem__)


def _cell_of_error(shell: Any, error: BaseException) -> int | None:
    from ..convert.traceback import error_report

    return error_report(error, cell_of=_cell_lookup(shell), max_tokens=50).cell


def _cell_lookup(shell: Any) -> Any:
    """``filename -> execution count`` of notebook cells; ``"In [ ]"`` for a cell whose number
    is not its own (cells run unstored, as nbval runs them, all share the next number)."""
    import linecache

    mapping = getattr(getattr(shell, "compile", None), "_filename_map", None)
    if not isinstance(mapping, dict):
        return lambda filename: None
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or []
    found: dict[str, int | str] = {}

    def cell_of(filename: str) -> int | str | None:
        number = mapping.get(filename)
        if number is None:
            return None
        if filename not in found:
            code = "".join(linecache.getlines(filename)).strip()
            stored = history[number] if 0 < number < len(history) else None
            same = stored is not None and _transformed(shell, stored).strip() == code
            found[filename] = number if same else "In [ ]"
        return found[filename]

    return cell_of


def _transformed(shell: Any, source: str) -> str:
    try:
        return str(shell.transform_cell(source))
    except Exception:
        return source


def _source(shell: Any, cell: int | None) -> str | None:
    if shell is None or cell is None:
        return None
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or []
    if 0 < cell < len(history):
        return history[cell]
    return None


def _is_chat_cell(source: str) -> bool:
    return source.lstrip().startswith(("%chat", "%%chat"))


# -- variables --------------------------------------------------------------------------------


def _value(namespace: dict[str, Any], name: str) -> Any:
    """A variable, or an attribute of one (``df.columns``), from the notebook."""
    head, *attributes = name.split(".")
    if not head.isidentifier() or not all(a.isidentifier() for a in attributes):
        raise UsageError(f"--var takes a variable name (or name.attribute), not {name!r}")
    if head not in namespace:
        raise UsageError(f"--var {name}: {head!r} is not defined in the notebook")
    value = namespace[head]
    for attribute in attributes:
        try:
            value = getattr(value, attribute)
        except Exception as exc:
            raise UsageError(f"--var {name}: {type(exc).__name__}: {exc}") from None
    return value


def _describe_var(
    namespace: dict[str, Any], name: str, budget: int, args: Any, settings: Any
) -> Any:
    from ..convert.describe import describe

    value = _value(namespace, name)
    attach = _is_image(value) and _can_see(args, settings)
    return describe(value, name, max_tokens=budget, attach_images=attach)


def _is_image(value: Any) -> bool:
    pil = sys.modules.get("PIL.Image")
    figure = sys.modules.get("matplotlib.figure")
    return (pil is not None and isinstance(value, pil.Image)) or (
        figure is not None and isinstance(value, figure.Figure)
    )


def _secret_name(name: str) -> bool:
    from ..convert.redact import secret_name

    return any(secret_name(part) for part in name.split("."))


# -- earlier cells ----------------------------------------------------------------------------


def _cells_section(shell: Any, count: int, budgets: dict[str, int]) -> str:
    """The ``count`` code cells run before this one, oldest first, with their outputs."""
    from ..convert.codeblocks import fenced
    from ..convert.redact import hide_secrets
    from ..convert.tokenbudget import cut_to_tokens

    pieces: list[str] = []
    left = budgets["cells"]
    cells = _earlier_cells(shell, count)
    for ran in cells:  # newest first: past the budget, the oldest go
        label = f"In [{ran.number}]" if ran.number is not None else "In [ ]"
        source = cut_to_tokens(hide_secrets(ran.source.rstrip()), budgets["cell"])
        piece = f"{label}:\n{fenced(source, 'python')}"
        if ran.result is not None:
            shown = cut_to_tokens(hide_secrets(_output_text(shell, ran.result)), budgets["output"])
            out = f"Out[{ran.number}]" if ran.number is not None else "Out[ ]"
            piece += f"\n{out}: {shown}" if "\n" not in shown else f"\n{out}:\n{shown}"
        if ran.error is not None:
            piece += f"\n(it raised {type(ran.error).__name__}: {_first_line(ran.error)})"
        tokens = _tokens(piece)
        if tokens > left:
            pieces.append(f"({len(cells) - len(pieces)} older cells left out: the budget)")
            break
        pieces.append(piece)
        left -= tokens
    if not pieces:
        return ""
    heading = "The notebook cells run before this one, oldest first:"
    return "\n\n".join([heading, *reversed(pieces)])


def _earlier_cells(shell: Any, count: int) -> list[_Ran]:
    """Up to ``count`` code cells before the running one, newest first: those seen since the
    extension was loaded, then older ones from IPython's history. %chat cells are left out:
    they are in the conversation already."""
    cells = [ran for ran in reversed(_ran) if not _is_chat_cell(ran.source)][:count]
    numbers = [ran.number for ran in _ran if ran.number is not None]
    if len(cells) >= count or (_ran and not numbers):
        return cells
    manager = getattr(shell, "history_manager", None)
    history = list(getattr(manager, "input_hist_raw", None) or [])
    outputs = getattr(manager, "output_hist", None) or {}
    # The running cell is number execution_count (stored before it runs, when it is stored).
    below = min([*numbers, shell.execution_count, len(history)])
    for number in range(below - 1, 0, -1):
        if len(cells) == count:
            break
        source = history[number]
        if source.strip() and not _is_chat_cell(source):
            cells.append(_Ran(number, source, outputs.get(number), None))
    return cells


def _output_text(shell: Any, value: Any) -> str:
    import re

    try:
        data, _ = shell.display_formatter.format(value, include={"text/plain"})
        text = data.get("text/plain", "")
    except Exception:
        text = ""
    if not isinstance(text, str) or not text:
        text = repr(value)
    return re.sub(r" at 0x[0-9A-Fa-f]+", "", text)


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else ""


# -- helpers ----------------------------------------------------------------------------------


def _shell() -> Any:
    from IPython import get_ipython

    return get_ipython()


def _tokens(text: str) -> int:
    from ..convert.tokenbudget import text_tokens

    return text_tokens(text)


def _profile(args: Any, settings: Any) -> Any:
    """The server profile of the conversation this cell goes to (as ``conversation()`` picks)."""
    from ..conversation.sessions import client_for, session

    chat = session(args.session, new=False)
    try:
        chat.use_client_unless_chosen(client_for(settings))
        return chat.client.profile
    except Exception:
        return None


def _can_see(args: Any, settings: Any) -> bool:
    profile = _profile(args, settings)
    return profile is None or profile.supports("vision") is not False


def _budgets(args: Any, settings: Any) -> dict[str, int]:
    profile = _profile(args, settings)
    window = getattr(profile, "context_window", None)
    if not window or window >= _FULL_WINDOW:
        return dict(BUDGETS)
    scale = window / _FULL_WINDOW
    # Below 120 tokens a description is its first line and little else.
    return {name: max(int(tokens * scale), min(tokens, 120)) for name, tokens in BUDGETS.items()}
