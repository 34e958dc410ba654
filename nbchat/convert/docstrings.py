"""Docstrings read for a tool: the summary paragraph and each parameter's description.

``parse_docstring()`` knows the Google (``Args:``), NumPy (``Parameters`` + dashes) and Sphinx
(``:param name:``) styles; the first description found for a parameter wins.
"""

from __future__ import annotations

import inspect
import re

__all__ = ["parse_docstring"]

_GOOGLE_PARAMS = {
    "args",
    "arguments",
    "parameters",
    "params",
    "keyword args",
    "keyword arguments",
    "other parameters",
    "attributes",
}
_GOOGLE_SECTIONS = _GOOGLE_PARAMS | {
    "returns",
    "return",
    "yields",
    "yield",
    "raises",
    "raise",
    "example",
    "examples",
    "note",
    "notes",
    "see also",
    "warning",
    "warnings",
    "references",
    "todo",
}
_SPHINX_FIELD = re.compile(r"^:(param|parameter|arg|argument|key|keyword)\s+([^:]+):\s*(.*)$")
_SPHINX_ANY = re.compile(r"^:\w+[^:]*:")
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::.*)?$")
_DASHES = re.compile(r"^-{3,}\s*$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The first paragraph, and per-parameter descriptions from Google, NumPy or Sphinx style."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    first_section = len(lines)
    for index in range(len(lines)):
        if _is_section_start(lines, index):
            first_section = index
            break
    paragraph: list[str] = []
    for line in lines[:first_section]:
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    params: dict[str, str] = {}
    _google_params(lines, params)
    _numpy_params(lines, params)
    _sphinx_params(lines, params)
    return " ".join(paragraph), params


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_section_start(lines: list[str], index: int) -> bool:
    line = lines[index]
    stripped = line.strip()
    if stripped.endswith(":") and stripped[:-1].strip().lower() in _GOOGLE_SECTIONS:
        return True
    if _SPHINX_ANY.match(stripped):
        return True
    following = lines[index + 1].strip() if index + 1 < len(lines) else ""
    return bool(stripped) and bool(_DASHES.match(following))


def _block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """Lines after ``start`` indented deeper than ``base`` (blank lines kept), and the end."""
    block = []
    index = start
    while index < len(lines):
        line = lines[index]
        if line.strip() and _indent(line) <= base:
            break
        block.append(line)
        index += 1
    while block and not block[-1].strip():
        block.pop()
    return block, index


def _join(parts: list[str]) -> str:
    return " ".join(part.strip() for part in parts if part.strip())


def _google_params(lines: list[str], params: dict[str, str]) -> None:
    index = 0
    while index < len(lines):
        line = lines[index]
        header = line.strip()
        if not (header.endswith(":") and header[:-1].strip().lower() in _GOOGLE_PARAMS):
            index += 1
            continue
        block, index = _block(lines, index + 1, _indent(line))
        entries = [item for item in block if item.strip()]
        if not entries:
            continue
        entry_indent = min(_indent(item) for item in entries)
        name = None
        text: list[str] = []
        for item in block:
            match = _GOOGLE_ENTRY.match(item.strip()) if _indent(item) == entry_indent else None
            if match:
                if name:
                    params.setdefault(name, _join(text))
                name, text = match.group(1), [match.group(2)]
            elif name:
                text.append(item)
        if name:
            params.setdefault(name, _join(text))


def _numpy_params(lines: list[str], params: dict[str, str]) -> None:
    for index in range(len(lines) - 1):
        title = lines[index].strip().lower()
        if title not in {"parameters", "other parameters", "attributes"}:
            continue
        if not _DASHES.match(lines[index + 1].strip()):
            continue
        base = _indent(lines[index])
        position = index + 2
        while position < len(lines):
            line = lines[position]
            if not line.strip():
                position += 1
                continue
            if _indent(line) < base or _is_section_start(lines, position):
                break
            match = _NUMPY_ENTRY.match(line.strip()) if _indent(line) == base else None
            block, position = _block(lines, position + 1, _indent(line))
            if match:
                for name in match.group(1).split(","):
                    params.setdefault(name.strip().lstrip("*"), _join(block))


def _sphinx_params(lines: list[str], params: dict[str, str]) -> None:
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _SPHINX_FIELD.match(line.strip())
        if not match:
            index += 1
            continue
        block, index = _block(lines, index + 1, _indent(line))
        # ":param type name:" names the parameter last.
        name = match.group(2).split()[-1].lstrip("*")
        params.setdefault(name, _join([match.group(3), *block]))
