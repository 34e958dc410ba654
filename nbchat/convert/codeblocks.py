"""Fenced code blocks of a reply, read as CommonMark reads them (pulldown-cmark's events, the
parser the renderer uses), and fenced blocks written around code for a prompt.

``%%chat --code`` puts the first Python block (or all of them, joined) into the next cell.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["PYTHON_LANGUAGES", "CodeBlock", "code_blocks", "fenced", "python_code"]

#: Info-string languages taken as Python (``pycon`` sessions lose their prompts and output).
PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "py3", "ipython", "ipython3", "pycon"})

_BACKTICKS = re.compile(r"`{3,}")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block: its language (the info string's first word, lower case; "" for none),
    its code, and whether the fence was closed (a reply cut short leaves it open)."""

    language: str
    code: str
    closed: bool = True

    @property
    def is_python(self) -> bool:
        return self.language in PYTHON_LANGUAGES


def code_blocks(markdown: str | None) -> list[CodeBlock]:
    """Every fenced code block of ``markdown``, in order."""
    if not markdown:
        return []
    import pyromark

    source = markdown.encode()
    blocks = []
    info: str | None = None
    code: list[str] = []
    for event, span in pyromark.events_with_range(markdown):
        found: Any = event
        if not isinstance(found, dict):
            continue
        start = found.get("Start")
        if isinstance(start, dict) and isinstance(start.get("CodeBlock"), dict):
            info, code = start["CodeBlock"].get("Fenced", ""), []
        elif info is not None and "Text" in found:
            code.append(found["Text"])
        elif info is not None and found.get("End") == "CodeBlock":
            words = info.split()
            # ``{python}`` (Quarto, R Markdown) and ``.python`` (Pandoc) name a language too.
            language = words[0].strip("{}.").lower() if words else ""
            text = "".join(code)
            if language == "pycon":
                text = _without_prompts(text)
            closed = _closed(source[span["start"] : span["end"]].decode(errors="replace"))
            blocks.append(CodeBlock(language, text.rstrip("\n"), closed))
            info = None
    return blocks


def python_code(markdown: str | None, *, every: bool = False) -> CodeBlock | None:
    """The first Python block of ``markdown`` (or, with ``every``, all of them joined by a blank
    line) as one CodeBlock; None when there is none.

    Blocks labelled with a Python language count; when there are none, unlabelled blocks whose
    text parses as Python (IPython's ``%magic`` and ``!shell`` lines allowed) count instead,
    since small models often leave the label out.
    """
    blocks = [block for block in code_blocks(markdown) if block.code.strip()]
    chosen = [block for block in blocks if block.is_python]
    if not chosen:
        chosen = [block for block in blocks if not block.language and _parses(block.code)]
    if not chosen:
        return None
    if not every:
        return chosen[0]
    return CodeBlock(
        "python",
        "\n\n".join(block.code for block in chosen),
        all(block.closed for block in chosen),
    )


def fenced(code: str, language: str = "") -> str:
    """``code`` in a fenced block whose fence no line of the code can close."""
    longest = max((len(run) for run in _BACKTICKS.findall(code)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code.rstrip(chr(10))}\n{fence}"


def _closed(block: str) -> bool:
    """Whether a fenced block's source ends with a fence that closes its opening one."""
    lines = block.rstrip("\n").split("\n")
    opening = lines[0].lstrip(" >")
    mark = opening[:1]
    width = len(opening) - len(opening.lstrip(mark)) if mark in ("`", "~") else 3
    closing = lines[-1].strip(" \t>")
    return len(lines) > 1 and closing.startswith(mark * width) and not closing.strip(mark)


def _without_prompts(session: str) -> str:
    kept = []
    for line in session.splitlines():
        if line.startswith((">>> ", "... ")) or line in (">>>", "..."):
            kept.append(line[4:])
    return "\n".join(kept) + "\n" if kept else session


def _parses(code: str) -> bool:
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines()]
    try:
        ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return False
    return True
