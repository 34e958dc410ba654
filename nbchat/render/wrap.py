"""Text for a terminal, wrapped at spaces to its width as it streams; fenced code is left as is.

A terminal breaks a line wherever the width runs out, mid-word. ``Wrapper`` breaks at the last
space that fits instead, continues a list item or a quote under its text, and holds back only
the word being read (a code line: until its end, to see whether it closes the fence).
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from typing import TextIO

from ..convert.fences import FENCE, closes_fence

__all__ = ["Wrapper", "cells", "parts", "terminal_width", "unjoin", "wrap"]

#: What a continued line is indented under: a list marker, a quote, our footer's dash.
_MARKER = re.compile(r"(?:[-*+>•—]|\d{1,9}[.)])$")
_TAB = 8
#: Holds two words together; written as a space.
_JOIN = "\u00a0"


def terminal_width(out: TextIO | None) -> int | None:
    """The columns of the terminal ``out`` writes to; None when it is not a terminal."""
    try:
        if out is None or not out.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns


def cells(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide East Asian characters take two, combining
    marks none."""
    if text.isascii():
        return len(text)
    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def parts(line: str, separator: str = " · ") -> str:
    """``line`` of our own, broken only between its parts (``a b · c d``): each is held
    together unless it is longer than a line. A leading marker (``— ``) stays apart, so the
    continued lines go under the text after it."""
    marker, space, rest = line.partition(" ")
    if not (space and _MARKER.match(marker)):
        marker, space, rest = "", "", line
    return marker + space + separator.join(p.replace(" ", _JOIN) for p in rest.split(separator))


def unjoin(text: str) -> str:
    """``text`` that ``parts`` held together, with plain spaces again (for HTML)."""
    return text.replace(_JOIN, " ")


def wrap(text: str, width: int | None, *, hang: int = 0) -> str:
    """``text`` wrapped to ``width`` columns (None: as it is); continued lines are indented
    by ``hang`` columns at least."""
    wrapper = Wrapper(width, hang=hang)
    return wrapper.feed(text) + wrapper.flush()


class Wrapper:
    """Text written in pieces, wrapped at spaces to ``width`` columns (None: not wrapped).

    ``feed`` returns what can be written now; ``flush`` the rest. A word longer than a line is
    written whole (the terminal breaks it). Lines inside ``` or ~~~ fences are not wrapped.
    """

    def __init__(self, width: int | None, *, hang: int = 0) -> None:
        self.width = width if width is None or width > 8 else None
        self.hang = hang
        #: The column the next character goes to.
        self.column = 0
        self._word: list[str] = []
        self._space = ""
        self._indent = 0
        self._first = True  # the next word is the line's first
        self._table = False  # a Markdown table row: wrapping would only scramble it
        self._line: list[str] = []  # a line inside a fence, held to its end
        self._fence: str | None = None

    def feed(self, text: str) -> str:
        if self.width is None:
            if text:
                self.column = 0 if text.endswith("\n") else self.column + 1
            return unjoin(text)
        out: list[str] = []
        for char in text:
            if self._fence is not None:
                self._code(char, out)
            elif char == "\n":
                self._end_word(out)
                out.append("\n")
                self._new_line()
            elif char in " \t":
                if self._first and not self._word:
                    # Leading indentation is written as it is.
                    step = _TAB - self.column % _TAB if char == "\t" else 1
                    out.append(char)
                    self.column += step
                    self._indent = self.column
                    continue
                self._end_word(out)
                self._space += char
            else:
                self._word.append(char)
        return "".join(out)

    def flush(self) -> str:
        """The word held back (the end of the text)."""
        out: list[str] = []
        if self._fence is not None:
            out.append("".join(self._line))
            self._line = []
        else:
            self._end_word(out)
        return "".join(out)

    @property
    def at_line_start(self) -> bool:
        """Nothing is written on the current line, nor held back."""
        return self.column == 0 and not self._word and not self._line

    # -- internals ----------------------------------------------------------------------------

    def _new_line(self) -> None:
        self.column = 0
        self._space = ""
        self._indent = 0
        self._first = True
        self._table = False

    def _end_word(self, out: list[str]) -> None:
        if not self._word:
            return
        word = "".join(self._word)
        self._word = []
        if self._first:
            self._first = False
            match = FENCE.match(" " * min(self._indent, 3) + word)
            if match:
                self._fence = match.group(1)
            if _MARKER.match(word):
                self._indent = self.column + cells(word) + 1
            self._table = word.startswith("|")
        size = cells(word)
        space = cells(self._space.replace("\t", " " * _TAB))
        assert self.width is not None
        indent = max(self._indent, self.hang)
        if not self._table and self.column > indent and self.column + space + size > self.width:
            out.append("\n" + " " * indent)
            self.column = indent
        else:
            out.append(self._space)
            self.column += space
        self._space = ""
        out.append(unjoin(word))
        self.column += size
        if self.column > self.width:
            # The terminal broke a word longer than the line.
            self.column %= self.width

    def _code(self, char: str, out: list[str]) -> None:
        if char != "\n":
            self._line.append(char)
            return
        line = "".join(self._line)
        self._line = []
        out.append(line + "\n")
        assert self._fence is not None
        if closes_fence(FENCE.match(line), line, self._fence):
            self._fence = None
        self._new_line()
