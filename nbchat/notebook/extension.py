"""Loading and unloading the IPython extension: the magics, the ``Chat`` settings object, an
input transformer that keeps a ``%chat`` prompt ending in "?" from becoming a help request, and
one that runs ``%%chat --agent`` cells as async cells where approval buttons need clicks.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["agent_cells", "keep_question_marks", "load", "unload"]

_LINE_MAGIC = re.compile(r"^([ \t]*)%chat(?:[ \t]+(.*?))?[ \t]*$")


def keep_question_marks(lines: list[str]) -> list[str]:
    """Turn ``%chat … ?`` lines into explicit magic calls before IPython reads "?" as help.

    IPython treats a line ending in "?" as ``pinfo`` of its last name, so ``%chat Why?``
    would show help for ``Why`` instead of asking. Cell magics (``%%chat``) are not affected.
    """
    if lines and lines[0].lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        match = _LINE_MAGIC.match(line.rstrip("\r\n"))
        if match and line.rstrip().endswith("?"):
            indent, args = match.group(1), match.group(2) or ""
            out.append(f"{indent}get_ipython().run_line_magic('chat', {args!r})\n")
        else:
            out.append(line)
    return out


def load(ipython: Any) -> None:
    from .magics import ChatMagics
    from .settings import Chat

    settings = next((c for c in ipython.configurables if isinstance(c, Chat)), None)
    if settings is None:
        # parent=ipython gives the settings the shell's config: profiles and %config reach it.
        settings = Chat(parent=ipython)
        ipython.configurables.append(settings)
    ipython.register_magics(ChatMagics(ipython, settings))
    # %chat fix and --cells need each cell's source, result and error, stored in history or not.
    if record_cell not in ipython.events.callbacks["post_run_cell"]:
        ipython.events.register("post_run_cell", record_cell)
    if note_notebook not in ipython.events.callbacks["pre_run_cell"]:
        ipython.events.register("pre_run_cell", note_notebook)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and keep_question_marks not in cleanup:
        cleanup.append(keep_question_marks)
    if cleanup is not None and agent_cells not in cleanup:
        cleanup.append(agent_cells)


def record_cell(result: Any) -> None:
    """The ``post_run_cell`` hook; the context module loads at the first cell, not at load."""
    from .context import record_cell as record

    record(result)


def agent_cells(lines: list[str]) -> list[str]:
    """``%%chat --agent`` cells run as async cells where approval buttons can be clicked; the
    agent module loads with the first such cell, not at load."""
    if not lines or not lines[0].lstrip().startswith("%%chat") or "--agent" not in lines[0]:
        return lines
    from .agentcell import rewrite

    return rewrite(lines)


def note_notebook(info: Any = None) -> None:
    """The ``pre_run_cell`` hook: tell the store which notebook runs, where the frontend put its
    path in the kernel's namespace (VS Code's ``__vsc_ipynb_file__``, ``__session__``)."""
    from IPython import get_ipython

    shell = get_ipython()
    namespace = getattr(shell, "user_ns", None) or {}
    for name in ("__vsc_ipynb_file__", "__session__"):
        value = namespace.get(name)
        if isinstance(value, str) and value:
            from ..store import config

            if config.settings.notebook != value:
                config.configure(notebook=value)
            return


def unload(ipython: Any) -> None:
    from .settings import Chat

    ipython.configurables[:] = [c for c in ipython.configurables if not isinstance(c, Chat)]
    magics = ipython.magics_manager.magics
    magics["line"].pop("chat", None)
    magics["cell"].pop("chat", None)
    if record_cell in ipython.events.callbacks["post_run_cell"]:
        ipython.events.unregister("post_run_cell", record_cell)
    if note_notebook in ipython.events.callbacks["pre_run_cell"]:
        ipython.events.unregister("pre_run_cell", note_notebook)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and keep_question_marks in cleanup:
        cleanup.remove(keep_question_marks)
    if cleanup is not None and agent_cells in cleanup:
        cleanup.remove(agent_cells)
