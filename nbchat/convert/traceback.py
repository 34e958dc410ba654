"""A failed cell's error written for a model: the exception and a traceback trimmed to what
helps — the user's frames in full, library frames collapsed — within a token budget.

Pure functions over an exception; the notebook side says which file names are its cells.
"""

from __future__ import annotations

import contextlib
import os
import site
import sys
import sysconfig
import traceback as _tb
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .redact import hide_secrets
from .tokenbudget import cut_to_tokens, text_tokens

__all__ = ["DEFAULT_TOKENS", "ErrorReport", "Frame", "error_report", "is_library_path"]

#: The budget of a traceback and its exception, in estimated tokens.
DEFAULT_TOKENS = 1500
# Most chained exceptions (``raise … from …``, errors while handling errors) that are named.
_CHAIN = 3


@dataclass(frozen=True)
class Frame:
    """One frame of a traceback: where (``In [3]`` or a path), line, function and code."""

    where: str
    line: int | None
    name: str
    code: str
    user: bool
    cell: int | str | None = None

    def text(self) -> str:
        head = f"{self.where}, line {self.line}" if self.line else self.where
        name = "" if self.name == "<module>" else f", in {self.name}"
        return f"  {head}{name}" + (f"\n    {self.code}" if self.code else "")


@dataclass(frozen=True)
class ErrorReport:
    """What ``%chat fix`` sends about an error.

    ``cell`` is the execution count of the cell that raised it (None when no cell frame is in
    the traceback); ``locals`` are the variables of the innermost user function that failed.
    """

    exception: str
    traceback: str
    cell: int | None
    frames: tuple[Frame, ...]
    locals: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def tokens(self) -> int:
        return text_tokens(self.text())

    def text(self) -> str:
        return f"{self.traceback}\n{self.exception}" if self.traceback else self.exception


def error_report(
    exc: BaseException,
    *,
    cell_of: Callable[[str], int | str | None] = lambda filename: None,
    max_tokens: int = DEFAULT_TOKENS,
) -> ErrorReport:
    """The report of ``exc`` within ``max_tokens``; ``cell_of(filename)`` names notebook cells:
    their execution count, a label for a cell without one (``"In [ ]"``), or None for files.

    Library frames (the standard library, site-packages, compiled extensions) between user
    frames become one line naming them; the frame that raised is kept in full. Frames before the
    first cell (IPython running it) are left out. Past the budget, the exceptions it
    was raised from go first, then the library frame that raised is collapsed too, then middle
    user frames go, and last the text is cut.
    """
    frames, innermost = _frames(exc, cell_of)
    first_cell = next((frame.cell for frame in frames if frame.cell is not None), None)
    if first_cell is None and isinstance(exc, SyntaxError) and exc.filename:
        first_cell = cell_of(exc.filename)
    cell = first_cell if isinstance(first_cell, int) else None
    exception = _exception_text(exc, cell_of)
    chain = _chain(exc, cell_of)
    exception_budget = max(max_tokens // 2, 1)
    if text_tokens(exception) > exception_budget:
        exception = cut_to_tokens(exception, exception_budget)
    if (
        isinstance(exc, SyntaxError)
        and first_cell is not None
        and frames
        and frames[0].cell is None
    ):
        # The cell never ran: the frames are IPython compiling it, the message says where.
        frames = []
    attempts = [(True, True, chain), (True, True, []), (False, True, []), (False, False, [])]
    for keep_raiser, keep_middle, causes in attempts:
        lines = _lines(frames, keep_raiser=keep_raiser, keep_middle=keep_middle)
        text = _traceback_text(lines, causes)
        if text_tokens(f"{text}\n{exception}") <= max_tokens:
            break
    else:
        text = cut_to_tokens(text, max(max_tokens - text_tokens(exception), 1))
    return ErrorReport(hide_secrets(exception), hide_secrets(text), cell, tuple(frames), innermost)


def is_library_path(path: str) -> bool:
    """True for code nbchat's user did not write: the standard library, installed packages,
    frozen modules and compiled extensions (whose frames name relative paths)."""
    if path.startswith("<"):
        return True
    if not os.path.isabs(path):
        return True
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root + os.sep) for root in _library_roots())


@lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    roots = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            roots.add(path)
    with contextlib.suppress(AttributeError):  # virtualenv's old site module lacks it
        roots.update(site.getsitepackages())
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        roots.add(user_site)
    roots.update(path for path in sys.path if path.endswith(("site-packages", "dist-packages")))
    return tuple(sorted({os.path.realpath(root) for root in roots}, key=len, reverse=True))


def _where(path: str, cell: int | str | None) -> str:
    if isinstance(cell, int):
        return f"In [{cell}]"
    if isinstance(cell, str):
        return cell
    if not os.path.isabs(path) or path.startswith("<"):
        return path
    real = os.path.realpath(path)
    for root in _library_roots():
        if real.startswith(root + os.sep):
            return os.path.relpath(real, root)
    try:
        relative = os.path.relpath(real)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative


def _frames(
    exc: BaseException, cell_of: Callable[[str], int | str | None]
) -> tuple[list[Frame], dict[str, Any]]:
    frames: list[Frame] = []
    innermost: dict[str, Any] = {}
    walked = list(_tb.walk_tb(exc.__traceback__))
    summaries = _tb.StackSummary.extract(iter(walked), lookup_lines=True, capture_locals=False)
    for (frame, _), summary in zip(walked, summaries, strict=True):
        cell = cell_of(summary.filename)
        user = cell is not None or not is_library_path(summary.filename)
        frames.append(
            Frame(
                where=_where(summary.filename, cell),
                line=summary.lineno,
                name=summary.name,
                code=(summary.line or "").strip(),
                user=user,
                cell=cell,
            )
        )
        if user and summary.name != "<module>":
            innermost = dict(frame.f_locals)
        elif user:
            innermost = {}
    # What runs a cell (IPython's run_code) comes before it and says nothing about the error:
    # the traceback starts at the first cell, or else at the first user frame.
    first = next((i for i, frame in enumerate(frames) if frame.cell is not None), None)
    if first is None:
        first = next((i for i, frame in enumerate(frames) if frame.user), 0)
    return frames[first:], innermost


def _lines(frames: list[Frame], *, keep_raiser: bool, keep_middle: bool) -> list[str]:
    shown: list[Frame | list[Frame]] = []
    for i, frame in enumerate(frames):
        raiser = i == len(frames) - 1
        if frame.user or (raiser and keep_raiser):
            shown.append(frame)
        elif shown and isinstance(shown[-1], list):
            shown[-1].append(frame)
        else:
            shown.append([frame])
    if not keep_middle:
        users = [i for i, item in enumerate(shown) if isinstance(item, Frame)]
        if len(users) > 3:
            # The cell that ran and the two frames nearest the error say the most.
            low, high = users[1], users[-3]
            span = shown[low : high + 1]
            count = sum(len(item) if isinstance(item, list) else 1 for item in span)
            return [
                *(_item_text(item) for item in shown[:low]),
                f"  … {count} frames left out …",
                *(_item_text(item) for item in shown[high + 1 :]),
            ]
    return [_item_text(item) for item in shown]


def _item_text(item: Frame | list[Frame]) -> str:
    if isinstance(item, Frame):
        return item.text()
    places = []
    for frame in item:
        place = f"{frame.where} ({frame.name})"
        if place not in places:
            places.append(place)
    shown = ", ".join(places[:4]) + (", …" if len(places) > 4 else "")
    count = f"{len(item)} library frame{'' if len(item) == 1 else 's'}"
    return f"  … {count}: {shown}"


def _traceback_text(lines: list[str], chain: list[str]) -> str:
    if not lines and not chain:
        return ""
    head = "Traceback (most recent call last; library frames collapsed):"
    return "\n".join([*chain, head, *lines] if lines else chain)


def _exception_text(exc: BaseException, cell_of: Callable[[str], int | str | None]) -> str:
    text = "".join(_tb.format_exception_only(type(exc), exc)).rstrip()
    filename = getattr(exc, "filename", None)
    if isinstance(exc, SyntaxError) and filename:
        cell = cell_of(filename)
        if cell is not None:
            text = text.replace(f'File "{filename}"', _where(filename, cell))
    return text


def _chain(exc: BaseException, cell_of: Callable[[str], int | str | None]) -> list[str]:
    """One line for each exception this one was raised from or while handling, oldest first."""
    lines: list[str] = []
    seen = {id(exc)}
    current: BaseException | None = exc
    while current is not None and len(lines) < _CHAIN:
        if current.__cause__ is not None:
            cause, how = current.__cause__, "raised from"
        elif current.__context__ is not None and not current.__suppress_context__:
            cause, how = current.__context__, "raised while handling"
        else:
            break
        if id(cause) in seen:
            break
        seen.add(id(cause))
        first = _tb.format_exception_only(type(cause), cause)[-1].strip()
        at = ""
        frames, _ = _frames(cause, cell_of)
        if frames:
            last = frames[-1]
            at = f" (at {last.where}, line {last.line})" if last.line else f" (at {last.where})"
        lines.insert(0, f"The error below was {how}: {_short(first, 300)}{at}")
        current = cause
    return lines


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
