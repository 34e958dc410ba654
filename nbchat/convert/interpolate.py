"""``{expression}`` in a prompt replaced by its value from the notebook's namespace.

Prompts are full of code and JSON, so only braces holding a Python expression are replaced
(what an f-string would fill in, a generator included); anything else, and everything inside
``` or ~~~ fences, stays as written; ``{{``/``}}`` escape.
"""

from __future__ import annotations

import ast
import functools
import re
import types
from collections.abc import Callable, Mapping
from typing import Any

from ..protocol.exceptions import NbchatError
from .fences import FENCE, closes_fence

__all__ = ["InterpolationError", "interpolate", "is_missing"]

_SPEC = re.compile(r"^[<>=^]?[+\-]?#?0?\d*[,_]?(\.\d+)?[bcdeEfFgGnosxX%]?$")
_CONVERSIONS = {"r": repr, "s": str, "a": ascii}


class InterpolationError(NbchatError, ValueError):
    """An expression in braces failed to evaluate."""


#: Told the expression whose value was missing; ``None``: missing values are written as str().
OnMissing = Callable[[str], None] | None


def interpolate(text: str, namespace: Mapping[str, Any], *, on_missing: OnMissing = None) -> str:
    """Return ``text`` with each ``{expression}`` outside code fences replaced by its value.

    With ``on_missing``, a missing value (None, NaN, pandas' NA and NaT) is filled in as empty
    text, and ``on_missing`` is told the expression (rows of a table: a gap is not "nan").
    """
    return _substitute_outside_fences(text.splitlines(keepends=True), namespace, on_missing)


def is_missing(value: Any) -> bool:
    """None, a float NaN (numpy's too), or pandas' NA and NaT."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    return type(value).__name__ in ("NAType", "NaTType")


def _substitute_outside_fences(
    lines: list[str], namespace: Mapping[str, Any], on_missing: OnMissing
) -> str:
    result: list[str] = []
    run: list[str] = []
    fence: str | None = None
    for line in lines:
        match = FENCE.match(line)
        inside = fence is not None
        if not inside and match:
            result.append(_substitute("".join(run), namespace, on_missing))
            run = []
            fence = match.group(1)
            result.append(line)
            continue
        if fence is not None:
            result.append(line)
            if closes_fence(match, line, fence):
                fence = None
            continue
        run.append(line)
    result.append(_substitute("".join(run), namespace, on_missing))
    return "".join(result)


def _substitute(text: str, namespace: Mapping[str, Any], on_missing: OnMissing) -> str:
    if "{" not in text and "}" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    # "}}" is an escape only after a "{{"; otherwise it closes nested JSON and stays as is.
    escaped = 0
    while i < n:
        # Text up to the next brace that can mean something is copied as it is, in one piece.
        following = _next_brace(text, i, escaped)
        if following > i:
            out.append(text[i:following])
            i = following
            if i >= n:
                break
        char = text[i]
        if char == "{":
            if text.startswith("{{", i):
                out.append("{")
                escaped += 1
                i += 2
                continue
            end = _matching_brace(text, i)
            if end is None:
                out.append(char)
                i += 1
                continue
            value = _evaluate(text[i + 1 : end], namespace, on_missing)
            if value is None:
                # Not an expression: keep this brace and look inside for ones that are.
                out.append(char)
                i += 1
                continue
            out.append(value)
            i = end + 1
        elif char == "}" and escaped and text.startswith("}}", i):
            out.append("}")
            escaped -= 1
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _next_brace(text: str, start: int, escaped: int) -> int:
    """Where the next ``{`` (or, after a ``{{``, ``}``) is at or after ``start``; else the end."""
    found = text.find("{", start)
    if escaped:
        closing = text.find("}", start)
        if closing >= 0 and (found < 0 or closing < found):
            found = closing
    return len(text) if found < 0 else found


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _evaluate(inner: str, namespace: Mapping[str, Any], on_missing: OnMissing) -> str | None:
    """The formatted value, or None when ``inner`` is not an expression (keep it literal)."""
    expression, convert, spec = _split_format(inner)
    if expression is None:
        return None
    code = _compile(expression)
    if code is None:
        return None
    try:
        value = eval(code, {"__builtins__": __builtins__}, dict(namespace))
    except Exception as exc:
        literal = "{{" + inner + "}}"
        raise InterpolationError(
            f"Cannot fill in {{{inner.strip()}}}: {type(exc).__name__}: {exc}. "
            f"Write {literal} to keep the braces, or use --no-interpolate."
        ) from None
    if isinstance(value, types.GeneratorType):
        # What {x for x in y} gives, as in an f-string: its repr would say nothing.
        raise InterpolationError(
            f"{{{inner.strip()}}} makes a generator, not text: write {{[{inner.strip()}]}} for "
            f"a list, or {{{{{inner.strip()}}}}} to keep the braces."
        )
    if on_missing is not None and is_missing(value):
        on_missing(expression.strip())
        return ""
    if convert is not None:
        value = convert(value)
    try:
        return format(value, spec) if spec else str(value)
    except (ValueError, TypeError) as exc:
        raise InterpolationError(f"Cannot format {{{inner}}}: {exc}") from None


def _split_format(inner: str) -> tuple[str | None, Any, str]:
    if not inner.strip() or (inner != inner.strip() and "\n" in inner):
        return None, None, ""
    expression, convert, spec = inner, None, ""
    head, colon, tail = inner.rpartition(":")
    if colon and _SPEC.match(tail) and tail and _compile(head) is not None:
        expression, spec = head, tail
    head, bang, tail = expression.rpartition("!")
    if bang and tail in _CONVERSIONS and _compile(head) is not None:
        expression, convert = head, _CONVERSIONS[tail]
    return expression, convert, spec


@functools.lru_cache(maxsize=512)
def _compile(expression: str) -> Any:
    # Cached: a template filled in for every row of a table compiles the same expressions.
    stripped = expression.strip()
    if not stripped or stripped != expression:
        # "{ x }" is prose more often than code.
        return None
    try:
        tree = ast.parse(stripped, "<prompt>", "eval")
    except SyntaxError:
        # A generator is an expression inside an f-string's braces ({x for x in y}) too; it
        # is code, filled in (and failing) by the same rule as {name}.
        try:
            tree = ast.parse(f"({stripped})", "<prompt>", "eval")
        except SyntaxError:
            return None
        if not isinstance(tree.body, ast.GeneratorExp):
            return None
    # Only an expression that names something is meant to be filled in: {"a": 1}, {1, 2}
    # and {} are JSON or prose.
    if not any(isinstance(node, ast.Name) for node in ast.walk(tree)):
        return None
    return compile(tree, "<prompt>", "eval")
